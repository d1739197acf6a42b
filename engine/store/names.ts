/**
 * Image names -> manifest (or index) descriptors, kept in the OCI layout's
 * index.json: one descriptor per name, with the full reference in the
 * `io.containerd.image.name` and `org.opencontainers.image.ref.name`
 * annotations. Every change rewrites index.json atomically under a lock.
 *
 * An entry without those annotations is an unnamed image (Docker's
 * "dangling" `<none>:<none>`): the result of an untagged build, commit or
 * import, or an archive entry without a name. It is kept, and can be used
 * by its ID, until it is named, removed (`rmi <id>`) or pruned.
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
  /** The unnamed images' descriptors (no name points at the same digest). */
  unnamed(): Promise<Descriptor[]>;
  /** Keep `target` as an unnamed image (nothing when a name or an unnamed entry has it already). */
  keepUnnamed(target: Descriptor): Promise<void>;
  /** Forget the unnamed entry of `digest` (its content goes at the next GC); whether there was one. */
  dropUnnamed(digest: string): Promise<boolean>;
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
  /** The descriptor without annotations (a name is given by set). */
  const plainOf = (d: Descriptor): Descriptor => {
    const { annotations: _drop, ...plain } = d;
    void _drop;
    return plain;
  };

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
        const entry: Descriptor = { ...plainOf(target), annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: name } };
        // named now: an unnamed entry of the same image goes
        await write({ ...idx, manifests: [...idx.manifests.filter((d) => nameOf(d) !== name && !(nameOf(d) === undefined && d.digest === target.digest)), entry] });
      }),
    async unnamed() {
      const all = (await read()).manifests;
      const named = new Set(all.filter((d) => nameOf(d) !== undefined).map((d) => d.digest));
      return all.filter((d) => nameOf(d) === undefined && !named.has(d.digest));
    },
    keepUnnamed: (target) =>
      locked(async () => {
        const idx = await read();
        if (idx.manifests.some((d) => d.digest === target.digest)) return;
        await write({ ...idx, manifests: [...idx.manifests, plainOf(target)] });
      }),
    dropUnnamed: (digest) =>
      locked(async () => {
        const idx = await read();
        const keep = idx.manifests.filter((d) => !(nameOf(d) === undefined && d.digest === digest));
        if (keep.length === idx.manifests.length) return false;
        await write({ ...idx, manifests: keep });
        return true;
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
