/**
 * The image store facade: blobs + names + layers under one Berth root.
 *
 *   <root>/images/        an OCI image layout (oci-layout, index.json, blobs/)
 *   <root>/images/ingest  blob writes in progress
 *   <root>/images/leases  one file per running operation that adds content
 *   <root>/layers/        unpacked layers by chain ID (see layers.ts)
 *   <root>/unsettled/     markers of pulled content not yet synced (see settle.ts)
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { conflict, fail, invalidSpec, notFound, unsupported } from '../errors.js';
import { openBlobStore, type BlobStore } from './blobs.js';
import { decodeJson } from './decode.js';
import { encodedOf, isDigest, type Digest } from './digest.js';
import { pidAlive, randomSuffix, writeFileAtomic } from './fsutil.js';
import { chainIds, openLayerStore, type LayerStore } from './layers.js';
import type { Mount } from './mount.js';
import { openNameStore, type NameStore, type NamedImage } from './names.js';
import { openUnsettled } from './settle.js';
import { ImageConfig, Index, Manifest, MediaType, isIndexType, isManifestType, type Descriptor, type Platform } from './oci.js';
import { choosePlatform, formatPlatform, hostPlatform } from './platform.js';
import { familiarName, formatReference, parseReference } from './reference.js';

export interface Image {
  /** Names that point at this image (full references). */
  readonly names: readonly string[];
  /** What the name points at: a manifest or an index. */
  readonly target: Descriptor;
  /** The platform manifest. */
  readonly manifestDescriptor: Descriptor;
  readonly manifest: Manifest;
  /** The image ID: the config digest (as Docker shows it). */
  readonly id: Digest;
  readonly config: ImageConfig;
  /** Chain IDs of the layers, bottom to top. */
  readonly chain: readonly Digest[];
  /** Sum of compressed layer sizes plus config and manifest. */
  readonly size: number;
}

export interface Store {
  readonly root: string;
  readonly layoutDir: string;
  readonly blobs: BlobStore;
  readonly names: NameStore;
  readonly layers: LayerStore;
  readManifest(d: Descriptor | Digest, label?: string): Promise<Manifest>;
  readIndex(d: Descriptor | Digest, label?: string): Promise<Index>;
  readConfig(d: Digest, label?: string): Promise<ImageConfig>;
  /** From a name's target to the platform manifest, config and chain. */
  load(target: Descriptor, names?: readonly string[], platform?: Platform): Promise<Image>;
  /** Find an image by name (as a user writes it), name@digest, digest, or ID prefix (unnamed images too). */
  resolve(userRef: string, platform?: Platform): Promise<Image>;
  list(): Promise<Image[]>;
  /** Name an image (tag). `name` is a user reference, normalized here. */
  tag(target: Descriptor, name: string): Promise<string>;
  /** Unpack every layer of an image that is not unpacked yet, from local blobs. */
  unpack(img: Image): Promise<void>;
  /** The overlay mount for an image's layers plus upper/work dirs. */
  mount(img: Image, upper: string, work: string, target: string): Promise<Mount>;
  /** Hold a lease while adding content so that GC keeps it. */
  withLease<A>(fn: () => Promise<A>): Promise<A>;
  /**
   * Start writing back the content this process published unsynced (a
   * pull's layers and blobs), detached; see settle.ts. Returns the markers
   * that go once it is on disk.
   */
  settle(): string[];
  /**
   * Marks layers (chain IDs) and blobs about to be published without waiting
   * for the disk (settle.ts), ahead of time: a pull does it for every layer
   * it will download before the first byte comes. Nothing when not deferring.
   */
  markUnsettled(chains: readonly Digest[], blobs: readonly Digest[]): Promise<void>;
  /**
   * Removes the marks of lost content (settle.ts) that no longer exists.
   * GC calls it after listing every blob and layer (a listing removes lost
   * content it finds). Returns how many.
   */
  dropLostMarks(): number;
}

export interface StoreOptions {
  /** Sync pulled, loaded and built content (default true); false: never (benchmarks, tests). */
  readonly durable?: boolean;
  /**
   * A pull publishes layers before they are on disk and syncs them after,
   * with markers that make a crash in between detectable (default true;
   * false: every layer is synced before it is published).
   */
  readonly deferred?: boolean;
}

export const openStore = (root: string, opts: StoreOptions = {}): Store => {
  const layoutDir = path.join(root, 'images');
  const leasesDir = path.join(layoutDir, 'leases');
  const durable = opts.durable ?? true;
  const unsettled = durable && opts.deferred !== false ? openUnsettled(path.join(root, 'unsettled'), [path.join(root, 'layers'), layoutDir]) : undefined;
  const blobs = openBlobStore(layoutDir, { durable, ...(unsettled ? { unsettled } : {}) });
  const names = openNameStore(layoutDir);
  const layers = openLayerStore(path.join(root, 'layers'), { durable, ...(unsettled ? { unsettled } : {}) });

  const ensureLayout = async (): Promise<void> => {
    await fsp.mkdir(layoutDir, { recursive: true });
    const f = path.join(layoutDir, 'oci-layout');
    try {
      await fsp.access(f);
    } catch {
      await writeFileAtomic(f, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    }
  };

  const digestOf = (d: Descriptor | Digest): Digest => (typeof d === 'string' ? d : d.digest);

  /**
   * Manifests and configs by digest, once verified and decoded: content
   * addressed, so a digest's content never changes (every create resolves its
   * image; a stack's creates read the same two blobs again and again).
   * Bounded; a failed read is not kept.
   */
  const decoded = new Map<string, Promise<unknown>>();
  const memo = <A>(key: string, f: () => Promise<A>): Promise<A> => {
    const hit = decoded.get(key);
    if (hit) return hit as Promise<A>;
    if (decoded.size >= 256) decoded.clear();
    const p = f();
    decoded.set(key, p);
    p.catch(() => decoded.delete(key));
    return p;
  };

  const readManifest = async (d: Descriptor | Digest, label?: string): Promise<Manifest> => {
    const dg = digestOf(d);
    return memo(`m${dg}`, async () => decodeJson(Manifest, await blobs.readAll(dg), label ?? `manifest ${dg}`));
  };
  const readIndex = async (d: Descriptor | Digest, label?: string): Promise<Index> => {
    const dg = digestOf(d);
    return decodeJson(Index, await blobs.readAll(dg), label ?? `index ${dg}`);
  };
  const readConfig = async (d: Digest, label?: string): Promise<ImageConfig> =>
    memo(`c${d}`, async () => decodeJson(ImageConfig, await blobs.readAll(d), label ?? `image config ${d}`));

  const mediaTypeOf = async (d: Descriptor): Promise<string> => {
    if (isManifestType(d.mediaType) || isIndexType(d.mediaType)) return d.mediaType;
    // some writers leave mediaType generic: look inside
    const raw = JSON.parse((await blobs.readAll(d.digest)).toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof raw.mediaType === 'string') return raw.mediaType;
    return Array.isArray(raw.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  };

  const load = async (target: Descriptor, nameList: readonly string[] = [], platform: Platform = hostPlatform()): Promise<Image> => {
    const label = nameList[0] ?? target.digest;
    let md = target;
    let mt = await mediaTypeOf(target);
    for (let depth = 0; isIndexType(mt); depth++) {
      if (depth > 4) fail(invalidSpec(`image ${label}`, ['indexes nested too deeply']));
      const idx = await readIndex(md, `image ${label}: index ${md.digest}`);
      const local: Descriptor[] = [];
      for (const m of idx.manifests) if (await blobs.has(m.digest)) local.push(m);
      const pick = choosePlatform(local, platform) ?? (local.length === 1 && local[0]?.platform === undefined ? local[0] : undefined);
      if (!pick) return fail(notFound('image platform', `${label} for ${formatPlatform(platform)}`, 'pull it for this platform'));
      md = pick;
      mt = await mediaTypeOf(pick);
    }
    if (!isManifestType(mt)) fail(unsupported(`image ${label}: media type ${mt}`));
    const manifest = await readManifest(md, `image ${label}: manifest ${md.digest}`);
    const config = await readConfig(manifest.config.digest, `image ${label}: config ${manifest.config.digest}`);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      fail(invalidSpec(`image ${label}`, [`config lists ${config.rootfs.diff_ids.length} diff IDs but the manifest has ${manifest.layers.length} layers`]));
    }
    const size = manifest.layers.reduce((s, l) => s + l.size, manifest.config.size + md.size);
    return { names: nameList, target, manifestDescriptor: md, manifest, id: manifest.config.digest, config, chain: chainIds(config.rootfs.diff_ids), size };
  };

  const list = async (): Promise<Image[]> => {
    const named = await names.list();
    const byTarget = new Map<string, NamedImage[]>();
    for (const n of named) byTarget.set(n.target.digest, [...(byTarget.get(n.target.digest) ?? []), n]);
    const out: Image[] = [];
    for (const group of byTarget.values()) {
      const first = group[0] as NamedImage;
      out.push(await load(first.target, group.map((g) => g.name)));
    }
    // unnamed images (an untagged build, commit or import): listed as <none>, found by ID
    for (const d of await names.unnamed()) out.push(await load(d, []));
    return out;
  };

  const resolve = async (userRef: string, platform?: Platform): Promise<Image> => {
    const named = await names.list();
    const namesFor = (digest: string): string[] => named.filter((n) => n.target.digest === digest).map((n) => n.name);
    // 1. a name as the user writes it
    let ref;
    try {
      ref = parseReference(userRef);
    } catch {
      ref = undefined;
    }
    if (ref) {
      if (ref.digest !== undefined) {
        const hit = named.find((n) => n.target.digest === ref.digest);
        if (hit) return load(hit.target, namesFor(hit.target.digest), platform);
        const info = await blobs.stat(ref.digest);
        if (info) return load({ mediaType: await mediaTypeOf({ mediaType: '', digest: ref.digest, size: info.size }), digest: ref.digest, size: info.size }, [], platform);
      } else {
        const full = formatReference(ref);
        const hit = named.find((n) => n.name === full);
        if (hit) return load(hit.target, namesFor(hit.target.digest), platform);
      }
    }
    // 2. an image ID (config digest) or manifest digest, or a unique prefix of one
    const hex = userRef.replace(/^sha256:/, '');
    if (/^[a-f0-9]{3,64}$/.test(hex)) {
      const imgs = await list();
      const hits = imgs.filter((i) => i.id.slice(7).startsWith(hex) || i.target.digest.slice(7).startsWith(hex));
      const ids = new Set(hits.map((h) => h.id));
      if (ids.size > 1) fail(conflict('image ID', userRef, `ambiguous: matches ${ids.size} images; give more digits`));
      if (hits[0]) return hits[0];
    }
    return fail(notFound('image', ref ? familiarName(ref) : userRef, 'pull it with `berth pull`'));
  };

  const leaseFile = (): string => path.join(leasesDir, `${process.pid}-${randomSuffix()}`);

  return {
    root,
    layoutDir,
    blobs,
    names,
    layers,
    readManifest,
    readIndex,
    readConfig,
    load,
    resolve,
    list,
    async tag(target, name) {
      await ensureLayout();
      const full = formatReference(parseReference(name));
      await names.set(full, target);
      return full;
    },
    async unpack(img) {
      const label = img.names[0] ?? img.id;
      for (let i = 0; i < img.chain.length; i++) {
        const chainId = img.chain[i] as Digest;
        if (await layers.has(chainId)) continue;
        const layer = img.manifest.layers[i] as Descriptor;
        if (!(await blobs.has(layer.digest))) fail(notFound('layer blob', layer.digest, `image ${label} is incomplete; pull it again`));
        const parent = i > 0 ? img.chain[i - 1] : undefined;
        await layers.unpack({
          chainId,
          diffId: img.config.rootfs.diff_ids[i] as Digest,
          ...(parent !== undefined ? { parent } : {}),
          source: blobs.read(layer.digest),
          label: `image ${label} layer ${layer.digest}`,
        });
      }
    },
    async mount(img, upper, work, target) {
      return layers.mount(img.chain, upper, work, target);
    },
    async withLease(fn) {
      await ensureLayout();
      await fsp.mkdir(leasesDir, { recursive: true });
      const f = leaseFile();
      await fsp.writeFile(f, String(process.pid));
      try {
        return await fn();
      } finally {
        await fsp.rm(f, { force: true });
      }
    },
    settle: () => unsettled?.settle() ?? [],
    async markUnsettled(chains, blobDigests) {
      await unsettled?.mark([...chains.map((c) => `layer-${encodedOf(c)}`), ...blobDigests.map((d) => `blob-${encodedOf(d)}`)]);
    },
    dropLostMarks() {
      const lost = unsettled?.lostNames() ?? [];
      for (const n of lost) unsettled?.forget(n);
      return lost.length;
    },
  };
};

/** The oldest live lease's start time (ms), or undefined if none: GC spares anything newer. */
export const oldestLease = async (store: Store): Promise<number | undefined> => {
  const dir = path.join(store.layoutDir, 'leases');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let oldest: number | undefined;
  for (const n of names) {
    const pid = Number(n.split('-')[0]);
    const f = path.join(dir, n);
    if (!pidAlive(pid)) {
      await fsp.rm(f, { force: true });
      continue;
    }
    const st = await fsp.stat(f).catch(() => undefined);
    if (st && (oldest === undefined || st.mtimeMs < oldest)) oldest = st.mtimeMs;
  }
  return oldest;
};

export const isDigestRef = (s: string): boolean => isDigest(s);
