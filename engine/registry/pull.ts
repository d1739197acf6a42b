/**
 * Pull: registry -> blob store -> layer store -> name.
 *
 * 1. The manifest (or index, from which the host's platform is chosen) and
 *    the config are fetched and verified against their digests.
 * 2. Layers download concurrently. Each download streams through the blob
 *    writer (hashing the compressed bytes) into the unpacker (hashing the
 *    uncompressed bytes); the layer is published only when both digests
 *    match. Layers already unpacked with their blob present are skipped; a
 *    blob present but not unpacked is unpacked from disk.
 * 3. Only then does the name point at the new manifest: a pull killed at any
 *    point leaves the old name intact and only garbage (ingest files,
 *    extract dirs, unreferenced blobs) that GC removes.
 */
import { promises as fsp } from 'node:fs';
import { Transform } from 'node:stream';
import type { Logger } from 'pino';
import { EngineFailure, fail, invalidSpec, notFound, remote } from '../errors.js';
import { decodeJson } from '../store/decode.js';
import type { Digest } from '../store/digest.js';
import { ImageConfig, Index, Manifest, isIndexType, isLayerType, type Descriptor, type Platform } from '../store/oci.js';
import { choosePlatform, formatPlatform, hostPlatform } from '../store/platform.js';
import { formatReference, parseReference, type Reference } from '../store/reference.js';
import type { BlobWriter } from '../store/blobs.js';
import { chainIds } from '../store/layers.js';
import { trace } from '../runtime/trace.js';
import { nativeUnpacker, type NativeInput } from '../store/native-unpack.js';
import type { Image, Store } from '../store/store.js';
import { Registry, type RegistryOptions, type Repository } from './client.js';
import type { ProgressSink } from './progress.js';

export interface PullOptions extends RegistryOptions {
  readonly platform?: Platform;
  /** Layers downloaded at once (default 3). */
  readonly concurrency?: number;
  /** Tries per layer when the registry or the connection fails (default 3). */
  readonly retries?: number;
  readonly onProgress?: ProgressSink;
  readonly log?: Logger;
}

/** Run `fn` over items with at most `n` at a time; the first failure fails all (after the others settle). */
export const mapLimit = async <A, B>(items: readonly A[], n: number, fn: (a: A, i: number) => Promise<B>): Promise<B[]> => {
  const out: B[] = new Array(items.length);
  let next = 0;
  let failed: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as A, i);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed) throw failed.e;
  return out;
};

const MAX_CONFIG = 8 * 1024 * 1024;

export const pullImage = async (store: Store, userRef: string, opts: PullOptions = {}): Promise<Image> => {
  const ref: Reference = parseReference(userRef);
  const name = formatReference({ domain: ref.domain, path: ref.path, ...(ref.tag !== undefined ? { tag: ref.tag } : {}), ...(ref.digest !== undefined ? { digest: ref.digest } : {}) });
  const platform = opts.platform ?? hostPlatform();
  const registry = await Registry.open(ref.domain, opts);
  const repo: Repository = registry.repository(ref.path, ['pull']);

  // what this pull published unsynced is written back after it, failed or not (settle.ts)
  try {
    return await pullLocked(store, ref, name, platform, registry, repo, opts);
  } finally {
    store.settle();
    trace('pull: write-back started');
  }
};

const pullLocked = (store: Store, ref: Reference, name: string, platform: Platform, registry: Registry, repo: Repository, opts: PullOptions): Promise<Image> => {
  const log = opts.log;
  return store.withLease(async () => {
    trace('pull: begin');
    const top = await repo.manifest(ref.digest ?? ref.tag ?? 'latest');
    const topDesc: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    let manifestBytes = top.bytes;
    let manifestDesc = topDesc;
    if (isIndexType(top.mediaType)) {
      const idx = decodeJson(Index, top.bytes, `index of ${name}`);
      const pick = choosePlatform(idx.manifests, platform);
      if (!pick) {
        const have = idx.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : '?')).join(', ');
        return fail(notFound('image platform', `${name} for ${formatPlatform(platform)}`, `the image has: ${have}`));
      }
      const child = await repo.manifest(pick.digest);
      manifestBytes = child.bytes;
      manifestDesc = { mediaType: child.mediaType, digest: child.digest, size: child.bytes.length, ...(pick.platform ? { platform: pick.platform } : {}) };
    }
    const manifest = decodeJson(Manifest, manifestBytes, `manifest of ${name} (${manifestDesc.digest})`);
    for (const [i, l] of manifest.layers.entries()) {
      if (!isLayerType(l.mediaType)) fail(invalidSpec(`manifest of ${name}`, [`layers[${i}]: unsupported layer media type ${l.mediaType}`]));
    }
    const configBytes = (await store.blobs.has(manifest.config.digest))
      ? await store.blobs.readAll(manifest.config.digest)
      : await repo.blobBytes(manifest.config.digest, MAX_CONFIG);
    const config = decodeJson(ImageConfig, configBytes, `config of ${name} (${manifest.config.digest})`);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      fail(invalidSpec(`image ${name}`, [`config lists ${config.rootfs.diff_ids.length} diff IDs but the manifest has ${manifest.layers.length} layers`]));
    }
    // index, manifest and config are stored (each fsynced) while the layers download; the
    // image is checked whole (store.load) before its name is set
    const metaWrites = Promise.all([
      ...(topDesc.digest !== manifestDesc.digest ? [store.blobs.put(top.bytes, top.digest, `index of ${name}`)] : []),
      store.blobs.put(configBytes, manifest.config.digest, `config of ${name}`),
      store.blobs.put(manifestBytes, manifestDesc.digest, `manifest of ${name}`),
    ]);
    metaWrites.catch(() => undefined); // awaited below; a failure must not be unhandled meanwhile
    opts.onProgress?.({ kind: 'resolved', reference: name, digest: topDesc.digest, layers: manifest.layers.length });

    const chain = chainIds(config.rootfs.diff_ids);
    trace('pull: manifest and config');
    log?.debug({ image: name, manifest: manifestDesc.digest, layers: manifest.layers.length }, 'pull: resolved');

    const pullLayer = async (layer: Descriptor, i: number): Promise<void> => {
      const chainId = chain[i] as Digest;
      const diffId = config.rootfs.diff_ids[i] as Digest;
      const parent = i > 0 ? chain[i - 1] : undefined;
      const label = `image ${name} layer ${layer.digest}`;
      const progress = (state: 'exists' | 'downloading' | 'unpacking' | 'done', current: number): void =>
        opts.onProgress?.({ kind: 'layer', digest: layer.digest, state, current, total: layer.size });
      const haveBlob = await store.blobs.has(layer.digest);
      const haveLayer = await store.layers.has(chainId);
      if (haveBlob && haveLayer) {
        progress('exists', layer.size);
        return;
      }
      // the native unpacker does sha256 only, and zstd only when built with libzstd
      const native = nativeUnpacker();
      if (native && !haveLayer && layer.digest.startsWith('sha256:') && (!/zstd/.test(layer.mediaType) || native.zstd())) {
        trace(`pull: layer ${i} begins`);
        await pullLayerNative(layer, chainId, diffId, parent, label, haveBlob, progress);
        trace(`pull: layer ${i} published`);
        return;
      }
      if (haveBlob) {
        progress('unpacking', layer.size);
        const res = await store.layers.unpack({ chainId, diffId, ...(parent !== undefined ? { parent } : {}), source: store.blobs.read(layer.digest), label });
        for (const w of res.warnings ?? []) log?.warn({ image: name, layer: layer.digest }, w);
        progress('done', layer.size);
        return;
      }
      const res = await repo.blob(layer.digest);
      let got = 0;
      let last = 0;
      // response -> (hash + blob file) -> unpacker, as one stream pipe: no per-chunk promise hops
      let writer: BlobWriter | undefined;
      const tee = new Transform({
        highWaterMark: 1 << 20,
        transform(chunk: Buffer, _enc, cb) {
          (writer as BlobWriter).write(chunk).then(() => {
            got += chunk.length;
            if (got - last > 256 * 1024 || got === layer.size) {
              last = got;
              progress('downloading', got);
            }
            cb(null, chunk);
          }, cb);
        },
      });
      tee.on('error', () => undefined); // the reader (unpacker or drain below) gets it; never an uncaught 'error'
      // a connection that breaks mid-layer is the registry's failure, not a bad layer
      res.body.on('error', (e) =>
        tee.destroy(new EngineFailure(remote(`${registry.host}/${ref.path}@${layer.digest}`, `download failed after ${got} of ${layer.size} bytes: ${e.message}`), { cause: e })),
      );
      const blob = await store.blobs.writer({ digest: layer.digest, size: layer.size }, label).catch((e: unknown) => {
        res.body.destroy();
        throw e;
      });
      writer = blob;
      res.body.pipe(tee);
      try {
        if (haveLayer) {
          // unpacked already (another image shares it) but the blob is missing: keep the blob for push/save
          for await (const _ of tee) void _;
          await blob.commit();
        } else {
          const res = await store.layers.unpack({
            chainId,
            diffId,
            ...(parent !== undefined ? { parent } : {}),
            source: tee,
            label,
            beforeCommit: async () => {
              await blob.commit();
            },
          });
          for (const w of res.warnings ?? []) log?.warn({ image: name, layer: layer.digest }, w);
        }
      } catch (e) {
        res.body.destroy();
        await blob.abort();
        throw e;
      }
      progress('done', layer.size);
      log?.debug({ layer: layer.digest, bytes: got }, 'pull: layer done');
    };

    /**
     * A layer through berth-unpack: the registry's socket is handed to it
     * (or the body piped in, for https), and it writes the blob file and the
     * unpacked tree in one pass; the digests it reports are checked here
     * before the blob and the layer are published. A blob already stored is
     * unpacked from its file (and verified again).
     */
    const pullLayerNative = async (
      layer: Descriptor,
      chainId: Digest,
      diffId: Digest,
      parent: Digest | undefined,
      label: string,
      haveBlob: boolean,
      progress: (state: 'exists' | 'downloading' | 'unpacking' | 'done', current: number) => void,
    ): Promise<void> => {
      const expected = { digest: layer.digest, size: layer.size };
      const base = { chainId, diffId, ...(parent !== undefined ? { parent } : {}), label, endpoint: `${registry.host}/${ref.path}@${layer.digest}` };
      if (haveBlob) {
        progress('unpacking', layer.size);
        const fh = await fsp.open(store.blobs.pathOf(layer.digest), 'r');
        try {
          await store.layers.unpackNative({
            ...base,
            input: { kind: 'fd', fd: fh.fd },
            beforeCommit: async (read) => {
              if (read.digest !== layer.digest) fail({ _tag: 'Corrupt', object: `blob ${layer.digest} on disk`, expected: layer.digest, actual: read.digest });
            },
          });
        } finally {
          await fh.close();
        }
        progress('done', layer.size);
        return;
      }
      const res = await repo.blob(layer.digest);
      const raw = res.detach?.();
      const input: NativeInput = raw ? { kind: 'socket', ...raw } : { kind: 'stream', stream: res.body };
      trace(`pull: layer ${layer.digest.slice(7, 19)} read by berth-unpack from ${raw ? 'the socket' : 'a pipe'}`);
      const blobFile = await store.blobs.ingestFile();
      progress('downloading', 0);
      try {
        await store.layers.unpackNative({
          ...base,
          input,
          blobFile,
          ...(opts.onProgress ? { onProgress: (n: number) => progress('downloading', n) } : {}),
          deferSync: true, // published now, written back by store.settle() when the pull ends
          beforeCommit: async (read) => {
            await store.blobs.adopt(blobFile, expected, { digest: read.digest, size: read.size }, label, { marked: store.layers.deferring });
          },
        });
      } catch (e) {
        if (!raw) res.body.destroy();
        await fsp.rm(blobFile, { force: true });
        throw e;
      }
      progress('done', layer.size);
      log?.debug({ layer: layer.digest, bytes: layer.size }, 'pull: layer done (native)');
    };

    // the layers this pull will download are marked unsettled now, while the disk is idle: each
    // publish then waits for no fsync (settle.ts; nothing when the store syncs before publishing)
    const missing: number[] = [];
    for (const [i, l] of manifest.layers.entries()) if (!(await store.layers.has(chain[i] as Digest)) || !(await store.blobs.has(l.digest))) missing.push(i);
    await store.markUnsettled(missing.map((i) => chain[i] as Digest), missing.map((i) => (manifest.layers[i] as Descriptor).digest));

    // a broken connection or a registry hiccup (Remote) is retried with backoff; a bad layer is not
    const attempts = opts.retries ?? 3;
    await mapLimit(manifest.layers, opts.concurrency ?? 3, async (layer, i) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await pullLayer(layer, i);
        } catch (e) {
          if (!(e instanceof EngineFailure) || e.error._tag !== 'Remote' || attempt >= attempts) throw e;
          const wait = 250 * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
          log?.warn({ layer: layer.digest, attempt, error: e.message }, `pull: retrying layer in ${Math.round(wait)} ms`);
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    });

    await metaWrites;
    await store.load(manifestDesc, [name], platform); // the stored image reads back whole before it is named
    trace('pull: layers done, image checked');

    // the commit point: the name now points at the complete image
    await store.names.set(name, topDesc);
    trace('pull: named');
    opts.onProgress?.({ kind: 'done', reference: name, digest: topDesc.digest });
    return store.load(topDesc, [name], platform);
  });
};
