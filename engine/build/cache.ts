/**
 * The build cache: <root>/build/cache/<key>.json, one file per step that
 * ran, keyed by sha256(parent image ID, the instruction as recorded in
 * history, and for COPY/ADD a digest of the copied files' contents and
 * metadata). An entry holds the resulting image config and layer
 * descriptors, so a hit replays the step exactly (same config bytes, same
 * image ID). An entry whose layer blobs are gone (GC after `image prune`)
 * is a miss. Writes are atomic; two builds writing one key write the same
 * kind of content, and either is as good.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as t from 'io-ts';
import { encodedOf, type Digest as DigestT } from '../store/digest.js';
import { decodeJson } from '../store/decode.js';
import { writeFileAtomic } from '../store/fsutil.js';
import { Descriptor } from '../store/oci.js';
import type { Store } from '../store/store.js';

const Entry = t.type({
  config: t.UnknownRecord,
  layers: t.array(Descriptor),
});
export type CacheEntry = t.TypeOf<typeof Entry>;

export interface BuildCache {
  get(store: Store, key: DigestT): Promise<CacheEntry | undefined>;
  put(key: DigestT, entry: CacheEntry): Promise<void>;
}

export const openCache = (dir: string): BuildCache => {
  const file = (key: DigestT): string => path.join(dir, `${encodedOf(key)}.json`);
  return {
    async get(store, key) {
      let raw: Buffer;
      try {
        raw = await fsp.readFile(file(key));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      let entry: CacheEntry;
      try {
        entry = decodeJson(Entry, raw, `build cache entry ${key}`);
      } catch {
        return undefined; // a damaged entry is a miss; the step runs and rewrites it
      }
      for (const l of entry.layers) if (!(await store.blobs.has(l.digest))) return undefined;
      return entry;
    },
    async put(key, entry) {
      await fsp.mkdir(dir, { recursive: true });
      await writeFileAtomic(file(key), JSON.stringify(entry));
    },
  };
};
