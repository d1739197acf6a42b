/**
 * Image names -> manifest (or index) descriptors, kept in the OCI layout's
 * index.json: one descriptor per name, with the full reference in the
 * `io.containerd.image.name` and `org.opencontainers.image.ref.name`
 * annotations. Every change rewrites index.json atomically under a lock.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fail, notFound } from '../errors.js';
import { decodeJson } from './decode.js';
import { writeFileAtomic, withLock } from './fsutil.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, LayoutIndex, MediaType, type Descriptor, type Index } from './oci.js';

export interface NamedImage {
  /** Full normalized reference, e.g. docker.io/library/busybox:latest. */
  readonly name: string;
  readonly target: Descriptor;
}

export interface NameStore {
  list(): Promise<NamedImage[]>;
  get(name: string): Promise<NamedImage | undefined>;
  /** Point `name` at `target` (replacing what it pointed at). */
  set(name: string, target: Descriptor): Promise<void>;
  /** Remove a name; NotFound if absent. */
  delete(name: string): Promise<NamedImage>;
  /** Run `fn` with the names locked (for read-modify-write across calls, e.g. GC). */
  locked<A>(fn: () => Promise<A>): Promise<A>;
}

const emptyIndex = (): Index => ({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });

export const openNameStore = (layoutDir: string): NameStore => {
  const indexFile = path.join(layoutDir, 'index.json');
  const lockFile = path.join(layoutDir, 'index.lock');
  let held = false;

  const read = async (): Promise<Index> => {
    let raw: Buffer;
    try {
      raw = readFileSync(indexFile); // small, and read by every create: sync (a promise read costs ~25x the CPU)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyIndex();
      throw e;
    }
    return decodeJson(LayoutIndex, raw, indexFile);
  };
  const write = async (idx: Index): Promise<void> => {
    await fsp.mkdir(layoutDir, { recursive: true });
    await writeFileAtomic(indexFile, `${JSON.stringify(idx, null, 2)}\n`);
  };
  const nameOf = (d: Descriptor): string | undefined => d.annotations?.[ANNOTATION_IMAGE_NAME] ?? d.annotations?.[ANNOTATION_REF_NAME];

  const locked = async <A>(fn: () => Promise<A>): Promise<A> => {
    if (held) return fn();
    await fsp.mkdir(layoutDir, { recursive: true });
    return withLock(lockFile, 'image index', async () => {
      held = true;
      try {
        return await fn();
      } finally {
        held = false;
      }
    });
  };

  const list = async (): Promise<NamedImage[]> =>
    (await read()).manifests.flatMap((d) => {
      const name = nameOf(d);
      return name === undefined ? [] : [{ name, target: d }];
    });

  return {
    list,
    locked,
    get: async (name) => (await list()).find((n) => n.name === name),
    set: (name, target) =>
      locked(async () => {
        const idx = await read();
        const { annotations: _drop, ...plain } = target;
        void _drop;
        const entry: Descriptor = { ...plain, annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: name } };
        await write({ ...idx, manifests: [...idx.manifests.filter((d) => nameOf(d) !== name), entry] });
      }),
    delete: (name) =>
      locked(async () => {
        const idx = await read();
        const found = idx.manifests.find((d) => nameOf(d) === name);
        if (!found) return fail(notFound('image', name));
        await write({ ...idx, manifests: idx.manifests.filter((d) => d !== found) });
        return { name, target: found };
      }),
  };
};
