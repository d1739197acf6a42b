/**
 * Garbage collection: mark everything reachable from the image names (and
 * from layer chains the caller says are in use, e.g. by containers), sweep
 * the rest: unreferenced blobs, unpacked layers, ingest files and extract
 * directories left by dead processes. Content newer than the oldest live
 * lease (a pull or load in progress) is spared.
 */
import { promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import type { Digest } from './digest.js';
import { isIndexType } from './oci.js';
import { oldestLease, type Store } from './store.js';
import { chainIds } from './layers.js';

export interface GcOptions {
  /** Chain IDs in use outside the image store (containers' rootfs). Kept with their parents. */
  readonly inUse?: readonly Digest[];
  /** Report what would go without removing it. */
  readonly dryRun?: boolean;
  readonly log?: Logger;
}

export interface GcResult {
  readonly blobsRemoved: number;
  readonly layersRemoved: number;
  readonly bytesFreed: number;
  readonly garbageRemoved: number;
}

/** Every blob digest and chain ID reachable from the names and the unnamed images. */
export const reachable = async (store: Store): Promise<{ blobs: Set<string>; chains: Set<string> }> => {
  const blobs = new Set<string>();
  const chains = new Set<string>();
  const visit = async (digest: Digest, mediaType: string, depth: number): Promise<void> => {
    if (blobs.has(digest) || depth > 5 || !(await store.blobs.has(digest))) return;
    blobs.add(digest);
    let raw: { mediaType?: string; manifests?: unknown };
    raw = JSON.parse((await store.blobs.readAll(digest)).toString('utf8')) as typeof raw;
    if (isIndexType(mediaType) || isIndexType(raw.mediaType) || Array.isArray(raw.manifests)) {
      const idx = await store.readIndex(digest);
      for (const m of idx.manifests) await visit(m.digest, m.mediaType, depth + 1);
      return;
    }
    const m = await store.readManifest(digest);
    blobs.add(m.config.digest);
    for (const l of m.layers) blobs.add(l.digest);
    if (await store.blobs.has(m.config.digest)) {
      const cfg = await store.readConfig(m.config.digest);
      for (const c of chainIds(cfg.rootfs.diff_ids)) chains.add(c);
    }
  };
  for (const n of await store.names.list()) await visit(n.target.digest, n.target.mediaType, 0);
  // unnamed images stay until they are removed or pruned (image prune drops them first)
  for (const d of await store.names.unnamed()) await visit(d.digest, d.mediaType, 0);
  return { blobs, chains };
};

export const collectGarbage = async (store: Store, opts: GcOptions = {}): Promise<GcResult> =>
  store.names.locked(async () => {
    const { blobs: liveBlobs, chains: liveChains } = await reachable(store);
    // a chain in use keeps its parents too
    for (const c of opts.inUse ?? []) {
      let cur: Digest | undefined = c;
      while (cur !== undefined && !liveChains.has(cur)) {
        liveChains.add(cur);
        cur = (await store.layers.get(cur))?.parent;
      }
    }
    const lease = await oldestLease(store);
    let blobsRemoved = 0;
    let layersRemoved = 0;
    let bytesFreed = 0;
    for (const b of await store.blobs.list()) {
      if (liveBlobs.has(b.digest)) continue;
      if (lease !== undefined && (await fsp.stat(store.blobs.pathOf(b.digest))).mtimeMs >= lease) continue;
      opts.log?.debug({ blob: b.digest, size: b.size }, 'gc: removing blob');
      if (!opts.dryRun) await store.blobs.delete(b.digest);
      blobsRemoved++;
      bytesFreed += b.size;
    }
    for (const l of await store.layers.list()) {
      if (liveChains.has(l.chainId)) continue;
      if (lease !== undefined && Date.parse(l.created) >= lease) continue;
      opts.log?.debug({ layer: l.chainId, size: l.size }, 'gc: removing unpacked layer');
      if (!opts.dryRun) await store.layers.remove(l.chainId);
      layersRemoved++;
      bytesFreed += l.size;
    }
    // the listings above removed any content a crash left unsynced (settle.ts); what marks remain name nothing
    const garbageRemoved = opts.dryRun ? 0 : (await store.blobs.cleanIngest()) + (await store.layers.cleanExtracts()) + store.dropLostMarks();
    return { blobsRemoved, layersRemoved, bytesFreed, garbageRemoved };
  });

export interface DiskUsage {
  readonly images: { readonly count: number; readonly bytes: number };
  readonly blobs: { readonly count: number; readonly bytes: number; readonly reclaimableBytes: number };
  readonly layers: { readonly count: number; readonly bytes: number; readonly reclaimableBytes: number };
}

export const diskUsage = async (store: Store, inUse: readonly Digest[] = []): Promise<DiskUsage> => {
  const imgs = await store.list();
  const { blobs: liveBlobs, chains: liveChains } = await reachable(store);
  for (const c of inUse) liveChains.add(c);
  const blobs = await store.blobs.list();
  const layers = await store.layers.list();
  const sum = (xs: readonly { size: number }[]): number => xs.reduce((s, x) => s + x.size, 0);
  return {
    images: { count: imgs.length, bytes: sum(imgs) },
    blobs: { count: blobs.length, bytes: sum(blobs), reclaimableBytes: sum(blobs.filter((b) => !liveBlobs.has(b.digest))) },
    layers: { count: layers.length, bytes: sum(layers), reclaimableBytes: sum(layers.filter((l) => !liveChains.has(l.chainId))) },
  };
};
