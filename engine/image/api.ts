/**
 * The image half of the Engine facade (ImageApi) over the store, the
 * registry client and the archive code: pull, push, save, load, remove
 * (untag, then drop what nothing references), prune. List, inspect, tag and
 * import come from local-images.ts. Wire it with
 * `openLocalEngine(roots, { images: (store) => openImageApi(store, { inUse }) })`.
 */
import { createReadStream } from 'node:fs';
import type { Logger } from 'pino';
import type { ImageApi, ProgressSink as EngineProgressSink } from '../engine.js';
import { fail, notFound } from '../errors.js';
import { openLocalImages, imageInfo } from '../local-images.js';
import { pullImage } from '../registry/pull.js';
import { pushImage } from '../registry/push.js';
import type { ProgressEvent } from '../registry/progress.js';
import type { Digest } from '../store/digest.js';
import { collectGarbage } from '../store/gc.js';
import { parsePlatform } from '../store/platform.js';
import { formatReference, parseReference } from '../store/reference.js';
import type { Store } from '../store/store.js';
import { loadArchive, saveImages } from './archive.js';

export interface ImageApiOptions {
  /** Chain IDs that containers use (their rootfs lowers): never collected. */
  readonly inUse?: () => Promise<readonly Digest[]>;
  readonly log?: Logger;
}

/** The registry's progress events in the facade's vocabulary. */
export const toEngineProgress = (sink: EngineProgressSink | undefined) => (e: ProgressEvent): void => {
  if (!sink || e.kind !== 'layer') return;
  const phase = e.state === 'unpacking' ? 'extracting' : e.state === 'uploading' ? 'pushing' : e.state === 'mounted' ? 'exists' : e.state;
  sink({ id: e.digest, phase, current: e.current, total: e.total });
};

/**
 * Images to prune: the unnamed ones no container uses (Docker's dangling
 * images), and with `all` every image no container uses. Their names and
 * unnamed entries are removed (GC then removes their content); returns
 * their IDs.
 */
export const pruneImageEntries = async (store: Store, inUse: readonly string[], all: boolean): Promise<Digest[]> => {
  const deleted: Digest[] = [];
  for (const img of await store.list()) {
    const top = img.chain[img.chain.length - 1];
    if (top !== undefined && inUse.includes(top)) continue;
    if (img.names.length === 0) {
      if (await store.names.dropUnnamed(img.target.digest)) deleted.push(img.id);
    } else if (all) {
      for (const n of img.names) await store.names.delete(n);
      deleted.push(img.id);
    }
  }
  return deleted;
};

/** Untag `ref`; returns the names removed. An image ID untags all its names; an unnamed image is forgotten. */
export const untag = async (store: Store, ref: string): Promise<string[]> => {
  let full: string | undefined;
  try {
    full = formatReference(parseReference(ref));
  } catch {
    full = undefined; // not a name: maybe an ID
  }
  if (full !== undefined && (await store.names.get(full))) {
    await store.names.delete(full);
    return [full];
  }
  const img = await store.resolve(ref);
  for (const n of img.names) await store.names.delete(n);
  if (img.names.length === 0 && !(await store.names.dropUnnamed(img.target.digest))) fail(notFound('image name', ref));
  return [...img.names];
};

export const openImageApi = (store: Store, opts: ImageApiOptions = {}): ImageApi => {
  const base = openLocalImages(store);
  const inUse = async (): Promise<readonly Digest[]> => (opts.inUse ? opts.inUse() : []);
  return {
    ...base,
    async pullImage(ref, o) {
      const platform = o?.platform !== undefined ? parsePlatform(o.platform) : undefined;
      if (o?.platform !== undefined && platform === undefined) fail({ _tag: 'InvalidSpec', source: 'platform', problems: [`expected os/arch[/variant], got ${JSON.stringify(o.platform)}`] });
      const img = await pullImage(store, ref, { ...(platform ? { platform } : {}), onProgress: toEngineProgress(o?.onProgress), ...(opts.log ? { log: opts.log } : {}) });
      return imageInfo(img);
    },
    async pushImage(ref, o) {
      const r = await pushImage(store, ref, undefined, { onProgress: toEngineProgress(o?.onProgress), ...(opts.log ? { log: opts.log } : {}) });
      return { digest: r.digest };
    },
    async saveImages(refs, outputPath) {
      await saveImages(store, refs, outputPath);
    },
    async loadImages(inputPath) {
      return (await loadArchive(store, createReadStream(inputPath), inputPath)).names;
    },
    async removeImage(ref, o) {
      const img = await store.resolve(ref);
      const untagged = await untag(store, ref);
      const stillNamed = (await store.names.list()).some((n) => n.target.digest === img.target.digest);
      if (stillNamed) return { untagged, deleted: [] };
      const used = await inUse();
      if (!o?.force && img.chain.some((c) => used.includes(c)) && used.includes(img.chain[img.chain.length - 1] as Digest)) {
        return { untagged, deleted: [] }; // a container still runs on it: its layers stay until the container goes
      }
      await collectGarbage(store, { inUse: used, ...(opts.log ? { log: opts.log } : {}) });
      return { untagged, deleted: [img.id] };
    },
    async pruneImages(o) {
      const used = await inUse();
      const deleted = await pruneImageEntries(store, used, o?.all === true);
      const r = await collectGarbage(store, { inUse: used, ...(opts.log ? { log: opts.log } : {}) });
      return { deleted, reclaimedBytes: r.bytesFreed };
    },
  };
};
