/**
 * Image archives:
 * - save: a docker-archive tar (manifest.json + repositories + <id>.json
 *   config + <diffid>/layer.tar uncompressed layers) that `docker load` and
 *   `podman load` accept;
 * - load: docker-archive tars (docker save, podman save, skopeo
 *   docker-archive:) and OCI-layout tars (skopeo oci-archive:, docker 25+);
 * - import: a rootfs tarball (plain, gzip or zstd) as a one-layer image.
 *
 * Archives are untrusted: entry names are checked, every JSON file decoded
 * with io-ts, every blob verified against its digest, layers unpacked by the
 * same hostile-tar-safe unpacker as pulls. The names are set last.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Transform, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import * as t from 'io-ts';
import * as tar from 'tar-stream';
import { fail, invalidSpec, notFound, EngineFailure } from '../errors.js';
import { decodeJson } from '../store/decode.js';
import { digestOfHash, encodedOf, isDigest, newHash, sha256, type Digest } from '../store/digest.js';
import { decompressAuto, sniffCompression } from '../store/compression.js';
import { randomSuffix } from '../store/fsutil.js';
import { ImageConfig, Index, MediaType, OciLayoutFile, type Descriptor, type Manifest } from '../store/oci.js';
import { hostPlatform } from '../store/platform.js';
import { familiarName, formatReference, parseReference } from '../store/reference.js';
import type { Image, Store } from '../store/store.js';
import { isoTime } from '../time.js';

const DockerArchiveManifest = t.array(
  t.intersection([t.type({ Config: t.string, Layers: t.array(t.string) }), t.partial({ RepoTags: t.union([t.array(t.string), t.null]) })]),
);

const tmpDir = async (store: Store, what: string): Promise<string> => {
  const d = path.join(store.root, 'tmp', `${what}-${process.pid}-${randomSuffix()}`);
  await fsp.mkdir(d, { recursive: true, mode: 0o700 });
  return d;
};

/** Decompress a stored layer blob into a file; returns its size and diff ID. */
const uncompressedLayer = async (store: Store, d: Digest, file: string): Promise<{ size: number; diffId: Digest }> => {
  const { stream } = await decompressAuto(store.blobs.read(d));
  const h = newHash('sha256');
  let size = 0;
  await pipeline(
    stream,
    new Transform({
      transform(c: Buffer, _e, cb) {
        h.update(c);
        size += c.length;
        cb(null, c);
      },
    }),
    createWriteStream(file),
  );
  return { size, diffId: digestOfHash('sha256', h) };
};

const addEntry = (pack: tar.Pack, name: string, body: Buffer | string): Promise<void> =>
  new Promise((resolve, reject) => {
    const b = Buffer.from(body);
    pack.entry({ name, size: b.length, mode: 0o644, mtime: new Date(0) }, b, (e) => (e ? reject(e) : resolve()));
  });

const addFile = (pack: tar.Pack, name: string, file: string, size: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
    const src = createReadStream(file, { highWaterMark: 1 << 20 });
    src.on('error', reject);
    src.pipe(entry as unknown as NodeJS.WritableStream);
  });

/** Write `refs` (local names or IDs) as one docker-archive tar at `out` (atomically). */
export const saveImages = async (store: Store, refs: readonly string[], out: string): Promise<{ images: number; bytes: number }> => {
  const images: Array<{ img: Image; tags: string[] }> = [];
  for (const r of refs) {
    const img = await store.resolve(r);
    let asName: string | undefined;
    try {
      const p = parseReference(r);
      asName = p.tag !== undefined ? familiarName({ domain: p.domain, path: p.path, tag: p.tag }) : undefined;
    } catch {
      asName = undefined; // an ID: save it with all its tags
    }
    const tags = asName !== undefined && img.names.some((n) => familiarName(parseReference(n)) === asName) ? [asName] : img.names.filter((n) => !n.includes('@')).map((n) => familiarName(parseReference(n)));
    const existing = images.find((x) => x.img.id === img.id);
    if (existing) existing.tags.push(...tags.filter((tg) => !existing.tags.includes(tg)));
    else images.push({ img, tags });
  }
  const tmp = await tmpDir(store, 'save');
  const partial = `${out}.${randomSuffix()}.partial`;
  try {
    const pack = tar.pack();
    const fileOut = createWriteStream(partial);
    const written = pipeline(pack as unknown as Readable, fileOut);
    const manifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
    const repositories: Record<string, Record<string, string>> = {};
    const doneLayers = new Set<string>();
    for (const { img, tags } of images) {
      const cfgName = `${encodedOf(img.id)}.json`;
      await addEntry(pack, cfgName, await store.blobs.readAll(img.id));
      const layers: string[] = [];
      for (const [i, l] of img.manifest.layers.entries()) {
        const diffId = img.config.rootfs.diff_ids[i] as Digest;
        const name = `${encodedOf(diffId)}/layer.tar`;
        layers.push(name);
        if (doneLayers.has(name)) continue;
        if (!(await store.blobs.has(l.digest))) fail(notFound('layer blob', l.digest, `image ${img.names[0] ?? img.id} is incomplete; pull it again`));
        const f = path.join(tmp, encodedOf(diffId));
        const { size, diffId: actual } = await uncompressedLayer(store, l.digest, f);
        if (actual !== diffId) fail({ _tag: 'Corrupt', object: `layer ${l.digest} of ${img.names[0] ?? img.id}`, expected: diffId, actual });
        await addFile(pack, name, f, size);
        await fsp.rm(f);
        doneLayers.add(name);
      }
      manifest.push({ Config: cfgName, RepoTags: tags, Layers: layers });
      const top = layers[layers.length - 1]?.split('/')[0];
      for (const tg of tags) {
        const i = tg.lastIndexOf(':');
        const repo = tg.slice(0, i);
        if (top) repositories[repo] = { ...(repositories[repo] ?? {}), [tg.slice(i + 1)]: top };
      }
    }
    await addEntry(pack, 'manifest.json', JSON.stringify(manifest));
    await addEntry(pack, 'repositories', JSON.stringify(repositories));
    pack.finalize();
    await written;
    const h = await fsp.open(partial, 'r+');
    await h.sync();
    await h.close();
    await fsp.rename(partial, out);
    return { images: images.length, bytes: (await fsp.stat(out)).size };
  } catch (e) {
    await fsp.rm(partial, { force: true });
    throw e;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
};

/** Spool an archive's entries to files (names checked); small ones also kept in memory. */
const spool = async (input: Readable, dir: string, source: string): Promise<Map<string, { file: string; size: number }>> => {
  const files = new Map<string, { file: string; size: number }>();
  const extract = tar.extract();
  input.on('error', (e) => extract.destroy(e));
  input.pipe(extract as unknown as NodeJS.WritableStream);
  // symlinks in an archive point at other entries: docker save writes
  // `<id>/layer.tar -> ../<other id>/layer.tar` for a layer two images share,
  // and its entries are sorted by name, so the target often comes later
  const links = new Map<string, string>();
  let n = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const name = h.name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        entry.resume();
        if (h.type === 'symlink' && h.linkname && !name.includes('..')) {
          links.set(name, path.posix.normalize(path.posix.join(path.posix.dirname(name), h.linkname)));
        }
        continue;
      }
      if (name.split('/').includes('..') || name.startsWith('/')) fail(invalidSpec(source, [`archive entry ${JSON.stringify(h.name)} is outside the archive`]));
      const file = path.join(dir, String(n++));
      await pipeline(entry as unknown as Readable, createWriteStream(file));
      files.set(name, { file, size: h.size ?? 0 });
    }
  } catch (e) {
    if (e instanceof EngineFailure) throw e;
    fail(invalidSpec(source, [`not a readable tar archive: ${(e as Error).message}`]), e);
  }
  // resolve once every entry is known (chains of links too; a link to nothing or a loop stays unresolved)
  for (const [name, first] of links) {
    let target = first;
    for (let hops = 0; hops < 8 && !files.has(target); hops++) {
      const next = links.get(target);
      if (next === undefined) break;
      target = next;
    }
    const hit = files.get(target);
    if (hit && !files.has(name)) files.set(name, hit);
  }
  return files;
};

/** Put a file into the blob store; with `digest` it is verified, else it is computed. */
const putFile = async (store: Store, file: string, label: string, digest?: Digest): Promise<Digest> => {
  if (digest !== undefined && (await store.blobs.has(digest))) return digest;
  const w = await store.blobs.writer(digest !== undefined ? { digest } : {}, label);
  try {
    for await (const c of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) await w.write(c);
    return (await w.commit()).digest;
  } catch (e) {
    await w.abort();
    throw e;
  }
};

export interface LoadResult {
  readonly names: string[];
  readonly ids: Digest[];
}

/** Load a docker-archive or OCI-layout tar (optionally gzip/zstd compressed). */
export const loadArchive = async (store: Store, input: Readable, source = 'archive'): Promise<LoadResult> =>
  store.withLease(async () => {
    const tmp = await tmpDir(store, 'load');
    try {
      const { stream } = await decompressAuto(input);
      const files = await spool(stream, tmp, source);
      const text = async (name: string): Promise<Buffer> => {
        const f = files.get(name);
        if (!f) return fail(invalidSpec(source, [`missing ${name}`]));
        if (f.size > 16 << 20) return fail(invalidSpec(source, [`${name} is too large`]));
        return fsp.readFile(f.file);
      };
      const named: Array<{ name: string; target: Descriptor }> = [];
      const ids: Digest[] = [];
      const unnamed: Descriptor[] = [];
      if (files.has('index.json') && files.has('oci-layout')) {
        decodeJson(OciLayoutFile, await text('oci-layout'), `${source}: oci-layout`);
        const idx = decodeJson(Index, await text('index.json'), `${source}: index.json`);
        for (const [name, f] of files) {
          const m = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/.exec(name);
          if (!m) continue;
          const d = `${m[1]}:${m[2]}`;
          if (!isDigest(d)) return fail(invalidSpec(source, [`blob name ${name} is not a digest`]));
          await putFile(store, f.file, `${source}: ${name}`, d);
        }
        for (const [i, d] of idx.manifests.entries()) {
          const refName = d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
          const img = await store.load(d, refName ? [refName] : []);
          await store.unpack(img);
          ids.push(img.id);
          // an entry without a name is kept unnamed (found by its ID, listed as <none>)
          if (refName) named.push({ name: formatReference(parseReference(refName)), target: d });
          else unnamed.push(d);
          void i;
        }
      } else if (files.has('manifest.json')) {
        const entries = decodeJson(DockerArchiveManifest, await text('manifest.json'), `${source}: manifest.json`);
        for (const e of entries) {
          const configBytes = await text(e.Config);
          const configDigest = sha256(configBytes);
          const config: ImageConfig = decodeJson(ImageConfig, configBytes, `${source}: ${e.Config}`);
          if (config.rootfs.diff_ids.length !== e.Layers.length) fail(invalidSpec(`${source}: manifest.json`, [`${e.Config} lists ${config.rootfs.diff_ids.length} diff IDs but ${e.Layers.length} layers are given`]));
          await store.blobs.put(configBytes, configDigest, `${source}: ${e.Config}`);
          const layers: Descriptor[] = [];
          for (const [i, l] of e.Layers.entries()) {
            const f = files.get(l);
            if (!f) return fail(invalidSpec(source, [`missing layer ${l}`]));
            const head = Buffer.alloc(4);
            const fh = await fsp.open(f.file, 'r');
            await fh.read(head, 0, 4, 0);
            await fh.close();
            const comp = sniffCompression(head);
            const digest = await putFile(store, f.file, `${source}: ${l}`);
            const mediaType = comp === 'gzip' ? MediaType.DockerLayerGzip : comp === 'zstd' ? MediaType.OciLayerZstd : MediaType.DockerLayer;
            layers.push({ mediaType, digest, size: f.size });
            void i;
          }
          const manifest: Manifest = {
            schemaVersion: 2,
            mediaType: MediaType.DockerManifest,
            config: { mediaType: MediaType.DockerConfig, digest: configDigest, size: configBytes.length },
            layers,
          };
          const mBytes = Buffer.from(JSON.stringify(manifest));
          const mInfo = await store.blobs.put(mBytes);
          const target: Descriptor = { mediaType: MediaType.DockerManifest, digest: mInfo.digest, size: mBytes.length };
          const img = await store.load(target, e.RepoTags ?? []);
          await store.unpack(img); // verifies every diff ID
          ids.push(img.id);
          for (const tg of e.RepoTags ?? []) named.push({ name: formatReference(parseReference(tg)), target });
          if ((e.RepoTags ?? []).length === 0) unnamed.push(target);
        }
      } else {
        fail(invalidSpec(source, ['neither a docker-archive (manifest.json) nor an OCI layout (index.json + oci-layout)']));
      }
      for (const n of named) await store.names.set(n.name, n.target);
      for (const d of unnamed) await store.names.keepUnnamed(d);
      return { names: named.map((n) => n.name), ids };
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });

/** Import a rootfs tarball as a one-layer image named `name` (optional). */
export const importRootfs = async (
  store: Store,
  input: Readable,
  opts: { name?: string; source?: string; config?: Partial<NonNullable<ImageConfig['config']>> } = {},
): Promise<Image> =>
  store.withLease(async () => {
    const source = opts.source ?? 'rootfs tarball';
    const { stream } = await decompressAuto(input);
    const diffHash = newHash('sha256');
    const writer = await store.blobs.writer({}, source);
    const gz = zlib.createGzip({ level: 1, chunkSize: 256 * 1024 });
    try {
      await pipeline(
        stream,
        new Transform({
          transform(c: Buffer, _e, cb) {
            diffHash.update(c);
            cb(null, c);
          },
        }),
        gz,
        async function (src: AsyncIterable<Buffer>) {
          for await (const c of src) await writer.write(c);
        },
      );
    } catch (e) {
      await writer.abort();
      throw e;
    }
    const layer = await writer.commit();
    const diffId = digestOfHash('sha256', diffHash);
    const plat = hostPlatform();
    const now = isoTime();
    const config: ImageConfig = {
      created: now,
      architecture: plat.architecture,
      os: plat.os,
      ...(plat.variant ? { variant: plat.variant } : {}),
      config: { ...(opts.config ?? {}) },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: now, created_by: `berth import ${source}`, comment: 'imported' }],
    };
    const cBytes = Buffer.from(JSON.stringify(config));
    const cInfo = await store.blobs.put(cBytes);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: cInfo.digest, size: cBytes.length },
      layers: [{ mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size }],
    };
    const mBytes = Buffer.from(JSON.stringify(manifest));
    const mInfo = await store.blobs.put(mBytes);
    const target: Descriptor = { mediaType: MediaType.OciManifest, digest: mInfo.digest, size: mBytes.length };
    const img = await store.load(target, opts.name ? [formatReference(parseReference(opts.name))] : []);
    await store.unpack(img); // the unpacker checks the rootfs like any layer
    if (opts.name) await store.names.set(formatReference(parseReference(opts.name)), target);
    else await store.names.keepUnnamed(target); // `docker import` without a name: an unnamed image
    return img;
  });
