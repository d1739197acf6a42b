// docker-archive loading: layers shared between images are written once by
// `docker save`, the others as symlinks to it, and docker sorts the entries by
// name, so a symlink often comes before the file it points at.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../../../engine/store/store.js';
import { loadArchive } from '../../../engine/image/archive.js';
import { makeTar, streamOf, type Entry } from '../store/tars.js';

const isRoot = process.getuid?.() === 0;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-test-archive-'));
  store = openStore(path.join(dir, 'root'), { durable: false });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const config = (diffIds: string[]): Buffer =>
  Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));

/** Two images sharing a base layer, laid out as docker save does (entries sorted by name). */
const sharedLayerArchive = async (link: Entry, more: Entry[] = []): Promise<{ tar: Buffer; ids: string[] }> => {
  const base = await makeTar([{ name: 'a', content: 'A' }]);
  const top = await makeTar([{ name: 'b', content: 'B' }]);
  const c1 = config([sha(base)]);
  const c2 = config([sha(base), sha(top)]);
  const manifest = [
    { Config: 'c1.json', RepoTags: ['one:1'], Layers: ['aaa/layer.tar'] },
    { Config: 'c2.json', RepoTags: ['two:1'], Layers: ['zzz/layer.tar', 'top/layer.tar'] },
  ];
  const tar = await makeTar([
    { name: 'aaa/', type: 'directory' },
    link,
    { name: 'c1.json', content: c1 },
    { name: 'c2.json', content: c2 },
    { name: 'manifest.json', content: JSON.stringify(manifest) },
    ...more,
    { name: 'top/', type: 'directory' },
    { name: 'top/layer.tar', content: top },
    { name: 'zzz/', type: 'directory' },
    { name: 'zzz/layer.tar', content: base },
  ]);
  return { tar, ids: [sha(c1), sha(c2)] };
};

describe.skipIf(!isRoot)('docker-archive load (needs root: unpacking keeps ownership)', () => {
  it('a layer given as a symlink to an entry later in the archive is found', async () => {
    const { tar, ids } = await sharedLayerArchive({ name: 'aaa/layer.tar', type: 'symlink', linkname: '../zzz/layer.tar' });
    const r = await loadArchive(store, streamOf(tar), 'shared.tar');
    expect(r.names.sort()).toEqual(['docker.io/library/one:1', 'docker.io/library/two:1'].sort());
    expect(r.ids).toEqual(ids);
  });

  it('a chain of symlinks is followed', async () => {
    // aaa/layer.tar -> mid/layer.tar -> zzz/layer.tar (the file, last in the archive)
    const { tar, ids } = await sharedLayerArchive({ name: 'aaa/layer.tar', type: 'symlink', linkname: '../top/../mid/layer.tar' }, [
      { name: 'mid/layer.tar', type: 'symlink', linkname: '../zzz/layer.tar' },
    ]);
    const r = await loadArchive(store, streamOf(tar), 'chain.tar');
    expect(r.ids).toEqual(ids);
  });

  it('a symlink to nothing is a clear error naming the layer, and nothing is named', async () => {
    const { tar } = await sharedLayerArchive({ name: 'aaa/layer.tar', type: 'symlink', linkname: '../nowhere/layer.tar' });
    await expect(loadArchive(store, streamOf(tar), 'broken.tar')).rejects.toThrow(/broken\.tar.*missing layer aaa\/layer\.tar/s);
    expect(await store.names.list()).toEqual([]);
  });

  it('a symlink loop is a clear error, not a hang', async () => {
    const { tar } = await sharedLayerArchive({ name: 'aaa/layer.tar', type: 'symlink', linkname: 'layer.tar' });
    await expect(loadArchive(store, streamOf(tar), 'loop.tar')).rejects.toThrow(/missing layer aaa\/layer\.tar/);
  });
});
