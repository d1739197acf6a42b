/**
 * Layer compression: detected from the first bytes (magic numbers), since
 * media types in the wild are not always truthful (docker-archive layers
 * are named `layer.tar` whatever they hold).
 */
import { Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Compression } from './oci.js';

const CHUNK = 1024 * 1024;

export const sniffCompression = (head: Uint8Array): Compression => {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
};

export const decompressor = (c: Compression): NodeJS.ReadWriteStream | undefined =>
  c === 'gzip' ? zlib.createGunzip({ chunkSize: CHUNK }) : c === 'zstd' ? zlib.createZstdDecompress({ chunkSize: CHUNK }) : undefined;

/**
 * The first bytes of a stream (at least 4 unless it ends sooner), put back
 * so that the stream reads from its start again; `stream` is `src`, or a
 * replacement when `src` ended while peeking.
 */
const peek = (src: Readable): Promise<{ head: Buffer; stream: Readable }> =>
  new Promise((resolve, reject) => {
    let head: Buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onError);
      src.off('close', onClose);
    };
    const onData = (c: Buffer): void => {
      head = head.length === 0 ? c : Buffer.concat([head, c]);
      if (head.length < 4) return;
      cleanup();
      src.pause();
      src.unshift(head);
      resolve({ head, stream: src });
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ head, stream: Readable.from(head.length > 0 ? [head] : [], { objectMode: false }) });
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const onClose = (): void => {
      cleanup();
      reject(src.errored ?? new Error('the layer stream closed before its end'));
    };
    // a source that failed before anyone listened (e.g. a download cut early) must not hang us
    if (src.errored) return reject(src.errored);
    if (src.destroyed) return reject(new Error('the layer stream closed before its end'));
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', onError);
    src.once('close', onClose);
  });

/**
 * The uncompressed bytes of `src`, whichever compression it uses. Errors on
 * either side tear down both. A Readable source is piped as it is (no
 * per-chunk promise in between); other iterables are wrapped in one.
 */
export const decompressAuto = async (src: AsyncIterable<Uint8Array> | Readable): Promise<{ compression: Compression; stream: Readable }> => {
  const readable = src instanceof Readable ? src : Readable.from(src, { objectMode: false, highWaterMark: CHUNK });
  const { head, stream: raw } = await peek(readable);
  const compression = sniffCompression(head);
  const z = decompressor(compression);
  if (!z) return { compression, stream: raw };
  const out = pipeline(raw, z, () => undefined) as unknown as Readable; // pipeline destroys z with the error; readers see it there
  return { compression, stream: out };
};
