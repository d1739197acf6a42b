// berth-unpack (native/unpack/) through its engine wrapper: the inputs a pull gives it (a socket
// handed over with bytes already read, a pipe, a blob file's fd), the blob file it writes, the
// digests it reports, and its failures. The hostile-tar rules are in unpack.test.ts (both unpackers).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { nativeUnpacker, runNativeUnpack } from '../../../engine/store/native-unpack.js';
import { makeTar, streamOf } from './tars.js';

const isRoot = process.getuid?.() === 0;
const bin = nativeUnpacker();
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let base: string;
let dest: string;
beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'berth-native-unpack-'));
  dest = path.join(base, 'diff');
  await mkdir(dest);
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A connected socket pair over loopback: `send` is written by the server side and then closed. */
const socketWith = async (send: Buffer): Promise<{ client: net.Socket; done: () => Promise<void> }> => {
  const server = net.createServer((s) => {
    s.end(send);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
  client.pause();
  return { client, done: () => new Promise<void>((r) => server.close(() => r())) };
};

const title = (t: string): string => (bin ? t : `${t} [skipped: native/build/berth-unpack not built; make -C native needs zlib1g-dev and libssl-dev]`);

describe.skipIf(!isRoot || !bin)('berth-unpack', () => {
  const u = bin as NonNullable<typeof bin>;

  it(title('reads a handed-over socket after the bytes already read, writes the blob, reports both digests'), async () => {
    const content = randomBytes(20 << 20); // > 16 MiB: the writeback-while-writing path runs too
    const tar = await makeTar([
      { name: 'big', content },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/small', content: 'x' },
    ]);
    const gz = gzipSync(tar, { level: 1 });
    const split = 100_000; // what the engine read before handing the socket over
    const { client, done } = await socketWith(gz.subarray(split));
    const blobFile = path.join(base, 'blob');
    try {
      const r = await runNativeUnpack(u, { input: { kind: 'socket', socket: client, prefix: gz.subarray(0, split), length: gz.length - split }, dest, blobFile, sync: true, label: 'L' });
      expect(r).toEqual({ compression: 'gzip', digest: sha(gz), size: gz.length, diffId: sha(tar), entries: 3, bytes: content.length + 1 });
    } finally {
      await done();
    }
    expect((await readFile(blobFile)).equals(gz)).toBe(true);
    expect((await readFile(path.join(dest, 'big'))).equals(content)).toBe(true);
    expect(await readFile(path.join(dest, 'etc/small'), 'utf8')).toBe('x');
  });

  it(title('a connection that ends before Content-Length is a Remote failure naming the byte counts'), async () => {
    const gz = gzipSync(await makeTar([{ name: 'f', content: randomBytes(1 << 20) }]), { level: 1 });
    const { client, done } = await socketWith(gz.subarray(1000, 300_000));
    try {
      const p = runNativeUnpack(u, { input: { kind: 'socket', socket: client, prefix: gz.subarray(0, 1000), length: gz.length - 1000 }, dest, sync: false, label: 'L', endpoint: 'reg/x@sha256:1' });
      await expect(p).rejects.toMatchObject({ error: { _tag: 'Remote', endpoint: 'reg/x@sha256:1' } });
      await expect(p).rejects.toThrow(new RegExp(`download failed after 300000 of ${gz.length} bytes`));
    } finally {
      await done();
    }
  });

  const zstd = bin?.zstd() === true;
  it.skipIf(!zstd)(title(`unpacks from a blob file descriptor (zstd) and from a pipe (uncompressed)${zstd ? '' : ' [skipped: berth-unpack built without libzstd-dev]'}`), async () => {
    const tar = await makeTar([{ name: 'hello', content: 'world' }]);
    const zst = zstdCompressSync(tar);
    const file = path.join(base, 'layer.zst');
    await writeFile(file, zst);
    const fh = await open(file, 'r');
    try {
      const r = await runNativeUnpack(u, { input: { kind: 'fd', fd: fh.fd }, dest, sync: false, label: 'L' });
      expect(r).toMatchObject({ compression: 'zstd', digest: sha(zst), diffId: sha(tar), entries: 1, bytes: 5 });
    } finally {
      await fh.close();
    }
    const dest2 = path.join(base, 'diff2');
    await mkdir(dest2);
    const r2 = await runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(tar) }, dest: dest2, sync: false, label: 'L' });
    expect(r2).toMatchObject({ compression: 'none', digest: sha(tar), diffId: sha(tar) });
    expect(await readFile(path.join(dest2, 'hello'), 'utf8')).toBe('world');
  });

  it(title('refuses truncated gzip and garbage with InvalidSpec naming the layer'), async () => {
    const gz = gzipSync(await makeTar([{ name: 'f', content: 'x'.repeat(100_000) }]));
    const p = runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(gz.subarray(0, gz.length - 30)) }, dest, sync: false, label: 'image i layer sha256:2' });
    await expect(p).rejects.toMatchObject({ error: { _tag: 'InvalidSpec', source: 'image i layer sha256:2' } });
    await expect(p).rejects.toThrow(/truncated/);
    const dest2 = path.join(base, 'diff2');
    await mkdir(dest2);
    const q = runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(Buffer.alloc(1024, 0x41)) }, dest: dest2, sync: false, label: 'L' });
    await expect(q).rejects.toThrow(/L: not a valid tar stream: /);
    expect(await readdir(dest2)).toEqual([]);
  });

  // native/unpack/direct.c: the blob and files of 4 MiB and more bypass the page cache. What
  // shows it: right after the unpack, only their unaligned tails are in the page cache (fincore),
  // where BERTH_UNPACK_DIRECT=0 leaves every byte there. Needs a filesystem with O_DIRECT that
  // does not keep the data in memory anyway (tmpfs does).
  const tmpIsTmpfs = spawnSync('stat', ['-f', '-c', '%T', tmpdir()]).stdout?.toString().trim() === 'tmpfs';
  const resident = (file: string): number => Number(spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file]).stdout.toString().trim());
  it.skipIf(tmpIsTmpfs)(title(`the blob and large files go past the page cache, with every byte kept: odd sizes, a socket, a pipe, gzip and plain${tmpIsTmpfs ? ' [skipped: the temporary directory is on tmpfs]' : ''}`), async () => {
    const big = randomBytes((9 << 20) + 777); // an odd tail: its last bytes go through the page cache
    const second = randomBytes((5 << 20) + 4096 * 3 + 1);
    const tar = await makeTar([
      { name: 'small', content: 'x'.repeat(5000) },
      { name: 'big', content: big },
      { name: 'dir/second', content: second },
    ]);
    const gz = gzipSync(tar, { level: 1 });
    const check = async (d: string): Promise<void> => {
      expect((await readFile(path.join(d, 'big'))).equals(big)).toBe(true);
      expect((await readFile(path.join(d, 'dir/second'))).equals(second)).toBe(true);
      expect(await readFile(path.join(d, 'small'), 'utf8')).toBe('x'.repeat(5000));
    };
    // gzip through a socket handed over after an odd number of bytes: the blob's O_DIRECT writes
    // start once the reader's slots are aligned again
    const { client, done } = await socketWith(gz.subarray(1001));
    const blobFile = path.join(base, 'blob');
    try {
      const r = await runNativeUnpack(u, { input: { kind: 'socket', socket: client, prefix: gz.subarray(0, 1001), length: gz.length - 1001 }, dest, blobFile, sync: false, label: 'L' });
      expect(r).toMatchObject({ digest: sha(gz), diffId: sha(tar), entries: 3 });
    } finally {
      await done();
    }
    expect(resident(path.join(dest, 'big'))).toBeLessThanOrEqual(4096);
    expect(resident(path.join(dest, 'dir/second'))).toBeLessThanOrEqual(4096);
    expect(resident(blobFile)).toBeLessThanOrEqual(4096);
    await check(dest);
    expect((await readFile(blobFile)).equals(gz)).toBe(true);
    // a plain tar through a pipe, the same way
    const plain = path.join(base, 'plain');
    await mkdir(plain);
    await runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(tar) }, dest: plain, sync: true, label: 'L' });
    expect(resident(path.join(plain, 'big'))).toBeLessThanOrEqual(4096);
    await check(plain);
    // and with BERTH_UNPACK_DIRECT=0, as before: all of it in the page cache
    const buffered = path.join(base, 'buffered');
    await mkdir(buffered);
    process.env['BERTH_UNPACK_DIRECT'] = '0';
    try {
      await runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(gz) }, dest: buffered, blobFile: path.join(base, 'blob2'), sync: false, label: 'L' });
    } finally {
      delete process.env['BERTH_UNPACK_DIRECT'];
    }
    expect(resident(path.join(buffered, 'big'))).toBeGreaterThanOrEqual(big.length);
    expect(resident(path.join(base, 'blob2'))).toBeGreaterThanOrEqual(gz.length);
    await check(buffered);
  });

  it(title('a blob file that exists already is not overwritten'), async () => {
    const blobFile = path.join(base, 'blob');
    await writeFile(blobFile, 'keep');
    const p = runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(await makeTar([{ name: 'f', content: 'x' }])) }, dest, blobFile, sync: false, label: 'L' });
    await expect(p).rejects.toThrow(/creating the blob file .*File exists/);
    expect(await readFile(blobFile, 'utf8')).toBe('keep');
    expect((await stat(dest)).isDirectory()).toBe(true);
    expect(await readdir(dest)).toEqual([]);
  });

  it(title('durable unpack of a layer with many files (one syncfs) and of one with few (fsync of each file and directory)'), async () => {
    // both paths must leave the same tree; durability itself is not observable without a crash
    for (const n of [40, 3]) {
      const d = path.join(base, `d${n}`);
      await mkdir(d);
      const entries = Array.from({ length: n }, (_, i) => ({ name: `dir${i % 5}/sub/f${i}`, content: `c${i}` }));
      const r = await runNativeUnpack(u, { input: { kind: 'stream', stream: streamOf(await makeTar(entries)) }, dest: d, sync: true, label: 'L' });
      expect(r.entries).toBe(n);
      for (const [i, e] of entries.entries()) expect(await readFile(path.join(d, e.name), 'utf8')).toBe(`c${i}`);
    }
  });

  it(title('bad arguments are refused with the option named and nothing written'), () => {
    const run = (args: string[]): { status: number | null; err: string } => {
      const r = spawnSync(u.path, args, { input: '', encoding: 'utf8' });
      return { status: r.status, err: r.stderr };
    };
    expect(run(['--length', 'x', '--dest', dest])).toMatchObject({ status: 64, err: expect.stringContaining('--length needs a non-negative integer, got "x"') });
    expect(run(['--blob', path.join(base, 'b')])).toMatchObject({ status: 64, err: expect.stringContaining('--dest is required') });
    expect(run(['--dest', dest, '--bogus', '1'])).toMatchObject({ status: 64, err: expect.stringContaining('unknown option "--bogus"') });
    expect(run(['--dest'])).toMatchObject({ status: 64, err: expect.stringContaining('--dest needs a value') });
    // started by a process that is not its parent (the engine died meanwhile): it does nothing
    expect(run(['--dest', dest, '--parent', '1', '--blob', path.join(base, 'b')])).toMatchObject({ status: 1, err: expect.stringContaining('the engine process 1 is gone') });
    return readdir(base).then((names) => expect(names.sort()).toEqual(['diff']));
  });
});
