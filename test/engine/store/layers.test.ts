import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { chainIds, openLayerStore } from '../../../engine/store/layers.js';
import { sha256, type Digest } from '../../../engine/store/digest.js';
import { nativeUnpacker } from '../../../engine/store/native-unpack.js';
import { makeTar } from './tars.js';

const isRoot = process.getuid?.() === 0;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-layers-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

describe('chainIds', () => {
  it('follows the OCI definition', () => {
    const a = sha256('a');
    const b = sha256('b');
    const c = sha256('c');
    const ab = sha256(`${a} ${b}`);
    expect(chainIds([a, b, c])).toEqual([a, ab, sha256(`${ab} ${c}`)]);
    expect(chainIds([])).toEqual([]);
  });
});

// berth-unpack when built, and the TypeScript unpacker (BERTH_NATIVE_UNPACK=0): the same behaviour
const nativeBuilt = nativeUnpacker() !== undefined;
describe.each([
  [nativeBuilt ? 'native' : 'native [skipped: native/build/berth-unpack not built]', '1'],
  ['typescript', '0'],
])('%s unpacker:', (_kind, flag) => {
  const saved = process.env['BERTH_NATIVE_UNPACK'];
  beforeEach(() => {
    process.env['BERTH_NATIVE_UNPACK'] = flag;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env['BERTH_NATIVE_UNPACK'];
    else process.env['BERTH_NATIVE_UNPACK'] = saved;
  });
describe.skipIf(!isRoot || (flag === '1' && !nativeBuilt))('layer store', () => {
  it.each([
    ['uncompressed', (b: Buffer) => b],
    ['gzip', (b: Buffer) => gzipSync(b)],
    ['zstd', (b: Buffer) => zstdCompressSync(b)],
  ])('unpacks a %s layer under its chain ID, once', async (kind, compress) => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    const tar = await makeTar([{ name: 'hello', content: 'world' }]);
    const diffId = sha256(tar);
    const info = await ls.unpack({ chainId: diffId, diffId, source: once(compress(tar)), label: 'L' });
    expect(info.unpacked).toBe(true);
    expect(info.compression).toBe(kind === 'uncompressed' ? 'none' : kind);
    expect(await readFile(path.join(ls.diffPath(diffId), 'hello'), 'utf8')).toBe('world');
    const again = await ls.unpack({ chainId: diffId, diffId, source: once(Buffer.from('not read')), label: 'L' });
    expect(again.unpacked).toBe(false);
    expect((await ls.list()).map((l) => l.chainId)).toEqual([diffId]);
  });

  it('refuses a layer whose diff ID does not match and leaves nothing behind', async () => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    const tar = await makeTar([{ name: 'hello', content: 'world' }]);
    const wrong = sha256('other');
    await expect(ls.unpack({ chainId: wrong, diffId: wrong, source: once(tar), label: 'image x layer sha256:1' })).rejects.toMatchObject({
      error: { _tag: 'Corrupt', object: 'image x layer sha256:1 (uncompressed diff ID)' },
    });
    expect(await readdir(path.join(dir, 'layers'))).toEqual([]);
  });

  it('refuses a hostile layer and leaves nothing behind', async () => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    const tar = await makeTar([{ name: 'ok', content: 'x' }, { name: '../escape', content: 'x' }]);
    await expect(ls.unpack({ chainId: sha256(tar), diffId: sha256(tar), source: once(tar), label: 'image x layer sha256:2' })).rejects.toThrow(
      /image x layer sha256:2: refused entry "..\/escape"/,
    );
    expect(await readdir(path.join(dir, 'layers'))).toEqual([]);
    expect(await readdir(dir)).toEqual(['layers']);
  });

  it('refuses corrupt gzip', async () => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    const tar = await makeTar([{ name: 'hello', content: 'world'.repeat(1000) }]);
    const gz = gzipSync(tar);
    gz[gz.length - 20] ^= 0xff;
    await expect(ls.unpack({ chainId: sha256(tar), diffId: sha256(tar), source: once(gz), label: 'L' })).rejects.toBeDefined();
    expect(await readdir(path.join(dir, 'layers'))).toEqual([]);
  });

  it('cleans extract dirs of dead processes', async () => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    await mkdir(path.join(dir, 'layers', 'extract-999999999-abc', 'diff'), { recursive: true });
    expect(await ls.cleanExtracts()).toBe(1);
    expect(await readdir(path.join(dir, 'layers'))).toEqual([]);
  });

  it('gives an overlay mount that shows the chain with whiteouts applied', async () => {
    const ls = openLayerStore(path.join(dir, 'layers'));
    const t1 = await makeTar([{ name: 'etc/passwd', content: 'root' }, { name: 'etc/hosts', content: 'h' }]);
    const t2 = await makeTar([{ name: 'etc/.wh.passwd', content: '' }, { name: 'app', content: 'A' }]);
    const diffs = [sha256(t1), sha256(t2)];
    const chain = chainIds(diffs);
    await ls.unpack({ chainId: chain[0] as Digest, diffId: diffs[0] as Digest, source: once(t1), label: 'L1' });
    await ls.unpack({ chainId: chain[1] as Digest, diffId: diffs[1] as Digest, parent: chain[0] as Digest, source: once(t2), label: 'L2' });
    const upper = path.join(dir, 'upper');
    const work = path.join(dir, 'work');
    const target = path.join(dir, 'rootfs');
    await Promise.all([mkdir(upper), mkdir(work), mkdir(target)]);
    const m = await ls.mount(chain, upper, work, target);
    expect(m.type).toBe('overlay');
    expect(m.options[0]).toBe(`lowerdir=${ls.diffPath(chain[1] as Digest)}:${ls.diffPath(chain[0] as Digest)}`);
    execFileSync('mount', ['-t', m.type, m.source, '-o', m.options.join(','), m.target]);
    try {
      expect((await readdir(path.join(target, 'etc'))).sort()).toEqual(['hosts']);
      await writeFile(path.join(target, 'new'), 'n');
    } finally {
      execFileSync('umount', [target]);
    }
    expect(await readdir(upper)).toEqual(['new']);
    await expect(ls.mount([sha256('nope')], upper, work, target)).rejects.toMatchObject({ error: { _tag: 'NotFound' } });
  });
});
});
