import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, readdir, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../../../engine/store/store.js';
import { collectGarbage, diskUsage } from '../../../engine/store/gc.js';
import { importRootfs } from '../../../engine/image/archive.js';
import { makeTar, streamOf } from './tars.js';

const isRoot = process.getuid?.() === 0;
let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-gc-'));
  store = openStore(path.join(dir, 'root'), { durable: false });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!isRoot)('garbage collection', () => {
  it('keeps what names reach, removes the rest, and spares chains containers use', async () => {
    const a = await importRootfs(store, streamOf(await makeTar([{ name: 'a', content: 'A' }])), { name: 'keep:1' });
    const b = await importRootfs(store, streamOf(await makeTar([{ name: 'b', content: 'B' }])), { name: 'drop:1' });
    const c = await importRootfs(store, streamOf(await makeTar([{ name: 'c', content: 'C' }])), { name: 'used:1' });
    expect((await store.layers.list()).length).toBe(3);
    await store.names.delete('docker.io/library/drop:1');
    await store.names.delete('docker.io/library/used:1');
    const du = await diskUsage(store, c.chain);
    expect(du.layers.reclaimableBytes).toBe(1);
    const r = await collectGarbage(store, { inUse: c.chain });
    expect(r.layersRemoved).toBe(1);
    expect(r.blobsRemoved).toBe(6); // drop's and used's manifest, config, layer
    expect((await store.layers.list()).map((l) => l.chainId).sort()).toEqual([a.chain[0], c.chain[0]].sort());
    expect(await store.blobs.has(b.manifest.layers[0]!.digest)).toBe(false);
    expect((await store.resolve('keep:1')).id).toBe(a.id);
    // with nothing in use, the container's layer goes too
    await collectGarbage(store);
    expect((await store.layers.list()).map((l) => l.chainId)).toEqual([a.chain[0]]);
  });

  it('spares content newer than a live lease (a pull in progress)', async () => {
    await store.withLease(async () => {
      // content no name reaches yet (a pull names its image last)
      await importRootfs(store, streamOf(await makeTar([{ name: 'x', content: 'X' }])), { name: 'x:1' });
      await store.names.delete('docker.io/library/x:1');
      const r = await collectGarbage(store);
      expect(r.layersRemoved + r.blobsRemoved).toBe(0);
    });
    const r = await collectGarbage(store);
    expect(r.layersRemoved).toBe(1);
    expect(r.blobsRemoved).toBe(3);
  });

  it('keeps unnamed images (an import or build without a name) until they are dropped', async () => {
    const img = await importRootfs(store, streamOf(await makeTar([{ name: 'u', content: 'U' }])));
    expect(img.names).toEqual([]);
    expect((await collectGarbage(store)).layersRemoved).toBe(0);
    expect((await store.resolve(img.id.slice(7, 19))).id).toBe(img.id);
    expect((await store.list()).map((i) => [i.id, i.names])).toEqual([[img.id, []]]);
    // named: no longer listed apart; unnamed again only by a new import
    await store.tag(img.target, 'u:1');
    expect(await store.names.unnamed()).toEqual([]);
    await store.names.delete('docker.io/library/u:1');
    expect(await store.names.dropUnnamed(img.target.digest)).toBe(false);
    const r = await collectGarbage(store);
    expect(r.layersRemoved).toBe(1);
    await expect(store.resolve(img.id)).rejects.toThrow(/not found/);
  });

  it('removes leftovers of dead processes', async () => {
    await mkdir(path.join(store.root, 'layers', 'extract-999999999-aa', 'diff'), { recursive: true });
    await mkdir(path.join(store.layoutDir, 'ingest'), { recursive: true });
    await writeFile(path.join(store.layoutDir, 'ingest', '999999999-bb'), 'partial');
    const r = await collectGarbage(store);
    expect(r.garbageRemoved).toBe(2);
    expect(await readdir(path.join(store.root, 'layers'))).toEqual([]);
  });
});
