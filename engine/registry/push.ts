/**
 * Push: local image -> registry. Blobs the registry has (HEAD) are skipped;
 * a blob that another local image on the same registry also uses is first
 * offered as a cross-repository mount; the rest upload monolithically.
 * Manifests go last (children before an index), with their stored bytes,
 * so digests stay the same on both sides.
 */
import type { Logger } from 'pino';
import { Transform, pipeline, type Readable } from 'node:stream';
import { fail, unsupported } from '../errors.js';
import type { Digest } from '../store/digest.js';
import { isIndexType, type Descriptor } from '../store/oci.js';
import { formatReference, parseReference } from '../store/reference.js';
import type { Image, Store } from '../store/store.js';
import { Registry, type RegistryOptions, type Repository } from './client.js';
import { mapLimit } from './pull.js';
import type { ProgressSink } from './progress.js';

export interface PushOptions extends RegistryOptions {
  readonly concurrency?: number;
  readonly onProgress?: ProgressSink;
  readonly log?: Logger;
}

export interface PushResult {
  readonly reference: string;
  readonly digest: Digest;
  readonly uploaded: number;
  readonly skipped: number;
  readonly mounted: number;
}

/** Repositories on `domain` (other than `path`) whose local images use `digest`. */
const mountSources = async (store: Store, domain: string, path: string): Promise<Map<string, string[]>> => {
  const sources = new Map<string, string[]>();
  for (const img of await store.list()) {
    for (const n of img.names) {
      const r = parseReference(n);
      if (r.domain !== domain || r.path === path) continue;
      for (const d of [img.manifest.config.digest, ...img.manifest.layers.map((l) => l.digest)]) {
        const list = sources.get(d) ?? [];
        if (!list.includes(r.path)) list.push(r.path);
        sources.set(d, list);
      }
    }
  }
  return sources;
};

/**
 * Push the local image `source` (any local name or ID) as `dest` (defaults
 * to `source`'s name).
 */
export const pushImage = async (store: Store, source: string, dest?: string, opts: PushOptions = {}): Promise<PushResult> => {
  const img: Image = await store.resolve(source);
  let sourceName: string | undefined;
  try {
    sourceName = formatReference(parseReference(source));
  } catch {
    sourceName = undefined; // an image ID, not a name
  }
  const fallback = sourceName !== undefined && img.names.includes(sourceName) ? sourceName : img.names[0];
  if (dest === undefined && fallback === undefined) fail(unsupported(`pushing ${source}: the image has no name; give a destination`));
  const target = parseReference(dest ?? (fallback as string));
  if (target.digest !== undefined && target.tag === undefined) fail(unsupported('pushing to a digest reference; give a tag'));
  const tag = target.tag ?? 'latest';
  const registry = await Registry.open(target.domain, opts);
  const repo: Repository = registry.repository(target.path, ['pull', 'push']);
  const sources = await mountSources(store, target.domain, target.path);
  let uploaded = 0;
  let skipped = 0;
  let mounted = 0;

  const pushBlob = async (d: Descriptor): Promise<void> => {
    const progress = (state: 'exists' | 'uploading' | 'mounted' | 'done', current: number): void =>
      opts.onProgress?.({ kind: 'layer', digest: d.digest, state, current, total: d.size });
    if (await repo.hasBlob(d.digest)) {
      skipped++;
      progress('exists', d.size);
      return;
    }
    for (const from of sources.get(d.digest) ?? []) {
      if (await repo.mountBlob(d.digest, from)) {
        mounted++;
        progress('mounted', d.size);
        opts.log?.debug({ blob: d.digest, from }, 'push: mounted from another repository');
        return;
      }
    }
    progress('uploading', 0);
    const info = await store.blobs.stat(d.digest);
    if (!info) return fail({ _tag: 'NotFound', kind: 'blob', name: d.digest, hint: 'the local image is incomplete; pull or load it again' });
    await repo.uploadBlob(d.digest, info.size, () => {
      let sent = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          sent += chunk.length;
          progress('uploading', sent);
          cb(null, chunk);
        },
      });
      return pipeline(store.blobs.read(d.digest), counter, () => undefined) as unknown as Readable;
    });
    uploaded++;
    progress('done', d.size);
  };

  // settle auth with a body-less request before streaming uploads
  await repo.hasBlob(img.manifest.config.digest);
  await mapLimit([img.manifest.config, ...img.manifest.layers], opts.concurrency ?? 3, pushBlob);

  const putStored = async (d: Descriptor, reference: string): Promise<Digest> =>
    repo.putManifest(reference, await store.blobs.readAll(d.digest), d.mediaType);

  let digest: Digest;
  if (isIndexType(img.target.mediaType)) {
    const idx = await store.readIndex(img.target);
    const complete = (await Promise.all(idx.manifests.map((m) => store.blobs.has(m.digest)))).every(Boolean);
    if (complete && idx.manifests.length === 1) {
      await putStored(img.manifestDescriptor, img.manifestDescriptor.digest);
      digest = await putStored(img.target, tag);
    } else {
      // only this platform's manifest is here: push it alone under the tag
      digest = await putStored(img.manifestDescriptor, tag);
    }
  } else {
    digest = await putStored(img.manifestDescriptor, tag);
  }
  const reference = formatReference({ domain: target.domain, path: target.path, tag });
  opts.onProgress?.({ kind: 'done', reference, digest });
  return { reference, digest, uploaded, skipped, mounted };
};
