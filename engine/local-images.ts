/**
 * The image verbs that need only the store (list, inspect, tag, untag,
 * import of uncompressed layer tarballs), which engine/image/api.ts builds
 * the whole ImageApi on (registry, archives, GC), and `importLayers`, which
 * tests use to make multi-layer images offline.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import type { ImageApi, ImageInfo, ImageRuntimeConfig } from './engine.js';
import { fail, notFound } from './errors.js';
import { newHash, digestOfHash, sha256, type Digest } from './store/digest.js';
import { MediaType, type Descriptor } from './store/oci.js';
import { hostPlatform } from './store/platform.js';
import { formatReference, parseReference } from './store/reference.js';
import type { Image, Store } from './store/store.js';
import { isoTime } from './time.js';

export const imageInfo = (img: Image): ImageInfo => {
  const c = img.config.config ?? {};
  const config: ImageRuntimeConfig = {
    ...(c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
    ...(c.Cmd ? { cmd: c.Cmd } : {}),
    ...(c.Env ? { env: c.Env } : {}),
    ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
    ...(c.User ? { user: c.User } : {}),
    ...(c.ExposedPorts ? { exposedPorts: Object.keys(c.ExposedPorts) } : {}),
    ...(c.Volumes ? { volumes: Object.keys(c.Volumes) } : {}),
    ...(c.StopSignal ? { stopSignal: c.StopSignal } : {}),
    ...(c.Labels ? { labels: c.Labels } : {}),
  };
  return {
    id: img.id,
    names: img.names,
    digest: img.target.digest,
    ...(img.config.created ? { created: img.config.created } : {}),
    size: img.size,
    architecture: img.config.architecture,
    os: img.config.os,
    config,
    labels: c.Labels ?? {},
  };
};

const toOciConfig = (c: Partial<ImageRuntimeConfig>): Record<string, unknown> => ({
  ...(c.entrypoint ? { Entrypoint: [...c.entrypoint] } : {}),
  ...(c.cmd ? { Cmd: [...c.cmd] } : {}),
  Env: [...(c.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'])],
  ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
  ...(c.user ? { User: c.user } : {}),
  ...(c.exposedPorts ? { ExposedPorts: Object.fromEntries(c.exposedPorts.map((p) => [p, {}])) } : {}),
  ...(c.volumes ? { Volumes: Object.fromEntries(c.volumes.map((v) => [v, {}])) } : {}),
  ...(c.stopSignal ? { StopSignal: c.stopSignal } : {}),
  ...(c.labels ? { Labels: { ...c.labels } } : {}),
  ...(c.healthcheck
    ? {
        Healthcheck: {
          Test: [...c.healthcheck.test],
          ...(c.healthcheck.intervalMs ? { Interval: c.healthcheck.intervalMs * 1e6 } : {}),
          ...(c.healthcheck.timeoutMs ? { Timeout: c.healthcheck.timeoutMs * 1e6 } : {}),
          ...(c.healthcheck.retries ? { Retries: c.healthcheck.retries } : {}),
          ...(c.healthcheck.startPeriodMs ? { StartPeriod: c.healthcheck.startPeriodMs * 1e6 } : {}),
        },
      }
    : {}),
});

/** Store the uncompressed layer tar at `tarPath` as a blob (unless it is there); its descriptor (digest = diff ID). */
export const storeLayer = async (store: Store, tarPath: string, label: string): Promise<Descriptor> => {
  const h = newHash('sha256');
  for await (const chunk of createReadStream(tarPath)) h.update(chunk as Buffer);
  const digest: Digest = digestOfHash('sha256', h);
  const size = (await fsp.stat(tarPath)).size;
  if (!(await store.blobs.has(digest))) {
    const w = await store.blobs.writer({ digest, size }, label);
    try {
      for await (const chunk of createReadStream(tarPath)) await w.write(chunk as Buffer);
      await w.commit();
    } catch (e) {
      await w.abort();
      throw e;
    }
  }
  return { mediaType: MediaType.OciLayer, digest, size };
};

/** Import uncompressed rootfs tarballs (bottom to top) as an image named `ref`. */
export const importLayers = async (store: Store, tarPaths: readonly string[], ref: string, changes: Partial<ImageRuntimeConfig> = {}): Promise<Image> =>
  store.withLease(async () => {
    const layers: Descriptor[] = [];
    const diffIds: Digest[] = [];
    for (const tarPath of tarPaths) {
      const layer = await storeLayer(store, tarPath, `layer ${tarPath}`);
      layers.push(layer);
      diffIds.push(layer.digest);
    }
    const p = hostPlatform();
    const config = {
      architecture: p.architecture, os: p.os, created: isoTime(),
      config: toOciConfig(changes),
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: tarPaths.map(() => ({ created_by: 'berth import' })),
    };
    const cfgBytes = Buffer.from(JSON.stringify(config));
    const cfg = await store.blobs.put(cfgBytes, sha256(cfgBytes), 'image config');
    const manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, layers };
    const mBytes = Buffer.from(JSON.stringify(manifest));
    const m = await store.blobs.put(mBytes, sha256(mBytes), 'image manifest');
    const target: Descriptor = { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size };
    const name = await store.tag(target, ref);
    const img = await store.load(target, [name]);
    await store.unpack(img);
    return img;
  });

/** The image verbs that need only the store; engine/image/api.ts adds the registry, archives and GC. */
export type LocalImageVerbs = Pick<ImageApi, 'listImages' | 'inspectImage' | 'removeImage' | 'tagImage' | 'importImage'>;

export const openLocalImages = (store: Store): LocalImageVerbs => ({
  async listImages() {
    return (await store.list()).map(imageInfo);
  },
  async inspectImage(ref) {
    return imageInfo(await store.resolve(ref));
  },
  async removeImage(ref) {
    const full = formatReference(parseReference(ref));
    const named = await store.names.get(full);
    if (!named) return fail(notFound('image', ref));
    await store.names.delete(full);
    return { untagged: [full], deleted: [] };
  },
  async tagImage(source, target) {
    const img = await store.resolve(source);
    await store.tag(img.target, target);
  },
  async importImage(tarPath, ref, opts) {
    return imageInfo(await importLayers(store, [tarPath], ref, opts?.changes ?? {}));
  },
});
