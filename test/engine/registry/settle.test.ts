/**
 * Deferred durability of pulled content (engine/store/settle.ts): a pull
 * publishes its layers and blobs before they are on disk, marks them, and a
 * detached sync removes the marks; content whose mark names an earlier boot
 * (a crash before the write-back) is removed before anything uses it, and a
 * pull fetches it again.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../../../engine/store/store.js';
import { pullImage } from '../../../engine/registry/pull.js';
import { bootId, openUnsettled } from '../../../engine/store/settle.js';
import { encodedOf } from '../../../engine/store/digest.js';
import { nativeUnpacker } from '../../../engine/store/native-unpack.js';
import { EngineFailure } from '../../../engine/errors.js';
import { collectGarbage } from '../../../engine/store/gc.js';
import { busyboxLayout, have, skopeo, startRegistry, type RegistryHandle } from './helpers.js';

const ready = process.getuid?.() === 0 && have('docker-registry') && have('skopeo') && nativeUnpacker() !== undefined;
const why = 'needs root, docker-registry, skopeo and native/build/berth-unpack';

let work: string;
let root: string;
let cfg: string;
beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-settle-'));
  root = path.join(work, 'root');
  cfg = path.join(work, 'config');
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const oldBoot = '00000000-dead-beef-0000-000000000000';

const markers = (): string[] => {
  try {
    return readdirSync(path.join(root, 'unsettled')).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
};

/** Waits for the detached write-back of a pull to remove its markers. */
const settled = async (): Promise<void> => {
  for (let i = 0; i < 400 && markers().length > 0; i++) await new Promise((r) => setTimeout(r, 25));
  expect(markers()).toEqual([]);
};

describe('unsettled marks', () => {
  it('are empty files naming the content, the boot and the process; settle removes them after a sync', async () => {
    const dir = path.join(work, 'marks');
    const u = openUnsettled(dir, [work]);
    await u.mark(['layer-aa', 'blob-bb']);
    expect(readdirSync(dir).sort()).toEqual([`blob-bb@${bootId()}@${process.pid}`, `layer-aa@${bootId()}@${process.pid}`]);
    expect(u.lost('layer-aa')).toBe(false); // this boot: the page cache has it
    const files = u.settle();
    expect(files.sort()).toEqual(readdirSync(dir).sort().map((f) => path.join(dir, f)));
    for (let i = 0; i < 400 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(readdirSync(dir)).toEqual([]);
    expect(u.settle()).toEqual([]); // nothing left to settle
  });

  it('from an earlier boot are lost until forgotten; those of a live process of this boot are not settled by another', async () => {
    const dir = path.join(work, 'marks');
    const u0 = openUnsettled(dir, [work]);
    await u0.mark(['layer-live']); // this process: alive
    await writeFile(path.join(dir, `layer-old@${oldBoot}@1`), '');
    await writeFile(path.join(dir, 'not-a-mark'), '');
    const u = openUnsettled(dir, [work]);
    expect(u.lost('layer-old')).toBe(true);
    expect(u.lost('layer-live')).toBe(false);
    expect(u.lostNames()).toEqual(['layer-old']);
    u.forget('layer-old');
    expect(u.lost('layer-old')).toBe(false);
    expect(existsSync(path.join(dir, `layer-old@${oldBoot}@1`))).toBe(false);
    expect(u.settle()).toEqual([]); // another store in the same process: u0's marks are u0's to settle
    expect(u0.settle()).toEqual([path.join(dir, `layer-live@${bootId()}@${process.pid}`)]);
  });

  it('is lost for one process no longer once another removed the content and forgot it', async () => {
    const dir = path.join(work, 'marks');
    mkdirSync(dir, { recursive: true });
    await writeFile(path.join(dir, `layer-x@${oldBoot}@1`), '');
    const a = openUnsettled(dir, [work]);
    const b = openUnsettled(dir, [work]);
    expect(a.lostNames()).toEqual(['layer-x']);
    expect(b.lostNames()).toEqual(['layer-x']); // both scanned before either acted
    a.forget('layer-x'); // a removed the content (and may pull it again)
    expect(b.lost('layer-x')).toBe(false); // so b leaves the new content alone
  });
});

describe.skipIf(!ready)(`pulled content is synced after it is published (${why})`, () => {
  let reg: RegistryHandle;
  let ref: string;
  beforeAll(async () => {
    reg = await startRegistry();
    const layout = await busyboxLayout(path.join(await mkdtemp(path.join(tmpdir(), 'berth-settle-layout-')), 'layout'), 'v1');
    await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/test/settle:v1`]);
    await rm(path.dirname(layout.dir), { recursive: true, force: true });
    ref = `${reg.host}/test/settle:v1`;
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('marks each layer and blob before publishing it and removes the marks once a sync wrote them back', async () => {
    const store = openStore(root);
    const img = await pullImage(store, ref, { configDir: cfg });
    // the marks were made (fsynced) before the content was published; the write-back may be done already
    const names = new Set([...img.chain.map((c) => `layer-${encodedOf(c)}`), ...img.manifest.layers.map((l) => `blob-${encodedOf(l.digest)}`)]);
    for (const m of markers()) expect(names.has(m.split('@')[0]!)).toBe(true);
    await settled();
    for (const c of img.chain) expect(await store.layers.get(c)).toBeDefined();
    for (const l of img.manifest.layers) expect(await store.blobs.has(l.digest)).toBe(true);
    // a fresh process (store) in the same boot uses them
    const again = openStore(root);
    expect(await again.layers.get(img.chain[1]!)).toBeDefined();
  });

  it('BERTH_DURABLE=sync behaviour (deferred: false) syncs before publishing and leaves no marks', async () => {
    const store = openStore(root, { deferred: false });
    await pullImage(store, ref, { configDir: cfg });
    expect(existsSync(path.join(root, 'unsettled'))).toBe(false);
  });

  it('after a crash before the write-back (a mark from another boot) the content is removed and a pull fetches it again', async () => {
    const first = openStore(root);
    const img = await pullImage(first, ref, { configDir: cfg });
    await settled();
    // as if the machine died right after the pull: the marks survive with the old boot's id
    const top = img.chain[1]!;
    const topBlob = img.manifest.layers[1]!.digest;
    await writeFile(path.join(root, 'unsettled', `layer-${encodedOf(top)}@${oldBoot}@${process.pid}`), '');
    await writeFile(path.join(root, 'unsettled', `blob-${encodedOf(topBlob)}@${oldBoot}@${process.pid}`), '');

    const store = openStore(root); // the next boot's first command
    expect(await store.layers.get(img.chain[0]!)).toBeDefined(); // unmarked: kept
    expect(await store.layers.get(top)).toBeUndefined();
    expect(existsSync(store.layers.diffPath(top))).toBe(false);
    expect(await store.blobs.has(topBlob)).toBe(false);
    expect(markers()).toEqual([]);
    // the image still resolves (manifest and config were synced) but cannot be mounted: it says what to do
    const resolved = await store.resolve(ref);
    const err = await store.mount(resolved, path.join(work, 'u'), path.join(work, 'w'), path.join(work, 'm')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineFailure);
    expect((err as Error).message).toMatch(/pull the image again/);

    // a pull fetches the missing blob and layer again
    const events: string[] = [];
    await pullImage(store, ref, { configDir: cfg, onProgress: (e) => (e.kind === 'layer' ? events.push(e.state) : undefined) });
    expect(events.filter((s) => s === 'exists')).toHaveLength(1);
    expect(await store.layers.get(top)).toBeDefined();
    expect(await store.blobs.has(topBlob)).toBe(true);
    expect(await readFile(path.join(store.layers.diffPath(top), 'etc/motd'), 'utf8')).toBe('hello from berth\n');
    await settled();
  });

  it('a command killed before it settled (a mark of this boot, its pid gone) loses nothing; the next pull settles it', async () => {
    const store = openStore(root);
    const img = await pullImage(store, ref, { configDir: cfg });
    await settled();
    const top = img.chain[1]!;
    const orphan = path.join(root, 'unsettled', `layer-${encodedOf(top)}@${bootId()}@2147483646`); // no such pid
    await writeFile(orphan, '');
    const fresh = openStore(root);
    expect(await fresh.layers.get(top)).toBeDefined(); // same boot: the page cache holds it, nothing is lost
    await pullImage(fresh, ref, { configDir: cfg }); // nothing to download, but its settle takes the orphan over
    await settled();
    expect(existsSync(orphan)).toBe(false);
    expect(await fresh.layers.get(top)).toBeDefined();
  });

  it('GC removes lost content it finds and the marks of lost content that is gone', async () => {
    const first = openStore(root);
    const img = await pullImage(first, ref, { configDir: cfg });
    await settled();
    await writeFile(path.join(root, 'unsettled', `layer-${encodedOf(img.chain[1]!)}@${oldBoot}@1`), '');
    await writeFile(path.join(root, 'unsettled', `blob-${'0'.repeat(64)}@${oldBoot}@1`), ''); // names nothing that exists
    const store = openStore(root);
    const r = await collectGarbage(store);
    expect(r.garbageRemoved).toBe(1);
    expect(markers()).toEqual([]);
    expect(existsSync(store.layers.diffPath(img.chain[1]!))).toBe(false);
    expect(existsSync(store.layers.diffPath(img.chain[0]!))).toBe(true); // still referenced, never marked
  });
});
