/**
 * `berth commit`: a container's upper dir becomes one more layer on top of
 * its image. Overlay whiteouts (0/0 character devices, opaque directories)
 * become OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`); the empty mount
 * points the runtime made (/etc/hosts, ...) are left out, as the builder
 * leaves them out of a RUN step's layer. The layer is written
 * uncompressed (its digest is its diff ID) through the blob store, which
 * verifies it; the new config carries the container's command and env.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { storeImage, writeLayerTar } from '../build/layer.js';
import type { ImageInfo } from '../engine.js';
import { conflict, fail } from '../errors.js';
import type { LocalEngine } from '../local.js';
import { imageInfo, storeLayer } from '../local-images.js';
import { isoTime } from '../time.js';

export interface CommitOptions {
  readonly author?: string;
  readonly message?: string;
  readonly pause?: boolean;
}

export const commitContainer = async (engine: LocalEngine, ref: string, target: string, opts: CommitOptions = {}): Promise<ImageInfo> => {
  const info = await engine.inspectContainer(ref);
  const c = await engine.containers.pathsOf(info.id);
  const paused = opts.pause !== false && info.state.status === 'running';
  if (paused) await engine.pauseContainer(info.id);
  try {
    const store = engine.store;
    const parent = await store.resolve(info.imageId);
    if (parent.chain.join() !== c.chain.join()) fail(conflict('container', info.name, 'its image changed since it was created'));
    return await store.withLease(async () => {
      const tmp = path.join(c.paths.dir, `commit-${process.pid}.tar`);
      try {
        await writeLayerTar(c.paths.upper, tmp, true);
        const layer = await storeLayer(store, tmp, `commit of ${info.name}`);
        const pc = parent.config;
        const spec = info.spec;
        const cfg = { ...(pc.config ?? {}) } as Record<string, unknown>;
        if (spec.entrypoint) cfg['Entrypoint'] = [...spec.entrypoint];
        if (spec.command) cfg['Cmd'] = [...spec.command];
        if (spec.env) {
          const env = new Map<string, string>();
          for (const e of [...((cfg['Env'] as string[] | undefined) ?? []), ...spec.env]) env.set(e.split('=', 1)[0] as string, e);
          cfg['Env'] = [...env.values()];
        }
        if (spec.workingDir) cfg['WorkingDir'] = spec.workingDir;
        if (spec.user) cfg['User'] = spec.user;
        const created = isoTime();
        const config = {
          ...pc,
          created,
          ...(opts.author ? { author: opts.author } : {}),
          config: cfg,
          rootfs: { type: 'layers', diff_ids: [...pc.rootfs.diff_ids, layer.digest] },
          history: [...(pc.history ?? []), { created, created_by: `berth commit ${info.name}`, ...(opts.message ? { comment: opts.message } : {}) }],
        };
        const desc = await storeImage(store, Buffer.from(JSON.stringify(config)), [...parent.manifest.layers, layer]);
        const name = await store.tag(desc, target);
        const img = await store.load(desc, [name]);
        await store.unpack(img);
        return imageInfo(img);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
    });
  } finally {
    if (paused) await engine.resumeContainer(info.id);
  }
};
