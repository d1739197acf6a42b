/**
 * Layer compression: detected from the first bytes (magic numbers), since
 * media types in the wild are not always truthful (docker-archive layers
 * are named `layer.tar` whatever they hold).
 */
import { Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Compression } from './oci.js';

const CHUNK = 256 * 1024;

export const sniffCompression = (head: Uint8Array): Compression => {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
};

export const decompressor = (c: Compression): NodeJS.ReadWriteStream | undefined =>
  c === 'gzip' ? zlib.createGunzip({ chunkSize: CHUNK }) : c === 'zstd' ? zlib.createZstdDecompress({ chunkSize: CHUNK }) : undefined;

/**
 * The uncompressed bytes of `src`, whichever compression it uses. Errors on
 * either side tear down both.
 */
export const decompressAuto = async (src: AsyncIterable<Uint8Array>): Promise<{ compression: Compression; stream: Readable }> => {
  const it = src[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) break;
    head = head.length === 0 ? Buffer.from(r.value) : Buffer.concat([head, r.value]);
  }
  const compression = sniffCompression(head);
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      if (head.length > 0) yield head;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      }
    } finally {
      await it.return?.();
    }
  }
  const raw = Readable.from(rest(), { objectMode: false, highWaterMark: CHUNK });
  const z = decompressor(compression);
  if (!z) return { compression, stream: raw };
  const out = pipeline(raw, z, () => undefined) as unknown as Readable; // pipeline destroys z with the error; readers see it there
  return { compression, stream: out };
};
