/**
 * `berth commit`: a container's upper dir becomes one more layer on top of
 * its image. Overlay whiteouts (0/0 character devices, opaque directories)
 * become OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`). The layer is written
 * uncompressed (its digest is its diff ID) through the blob store, which
 * verifies it; the new config carries the container's command and env.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import type { ImageInfo } from '../engine.js';
import { conflict, fail } from '../errors.js';
import type { LocalEngine } from '../local.js';
import { imageInfo } from '../local-images.js';
import { digestOfHash, newHash, sha256, type Digest } from '../store/digest.js';
import { MediaType, type Descriptor } from '../store/oci.js';

const opaque = (dir: string): Promise<boolean> =>
  new Promise((resolve) => {
    execFile('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', dir], (err, out) => resolve(!err && out.trim() === 'y'));
  });

/** Write the upper dir as an OCI layer tar at `out`. */
const layerTar = async (upper: string, out: string): Promise<void> => {
  const pack = tarStream.pack();
  const done = pipeline(pack, createWriteStream(out));
  const entry = (h: Partial<tarStream.Header> & { name: string }, body: string | Buffer = ''): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry(h as tarStream.Header, body, (err) => (err ? reject(err) : resolve()));
    });
  const walk = async (rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(upper, rel))).sort();
    for (const n of names) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const p = path.join(upper, r);
      const st = await fsp.lstat(p);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isCharacterDevice() && st.rdev === 0) {
        await entry({ ...base, name: rel === '' ? `.wh.${n}` : `${rel}/.wh.${n}`, type: 'file', size: 0 }, '');
      } else if (st.isDirectory()) {
        await entry({ ...base, name: `${r}/`, type: 'directory' });
        if (await opaque(p)) await entry({ ...base, mode: 0o644, name: `${r}/.wh..wh..opq`, type: 'file', size: 0 }, '');
        await walk(r);
      } else if (st.isSymbolicLink()) {
        await entry({ ...base, name: r, type: 'symlink', linkname: await fsp.readlink(p) });
      } else if (st.isFile()) {
        await new Promise<void>((resolve, reject) => {
          const w = pack.entry({ ...base, name: r, type: 'file', size: st.size } as tarStream.Header, (err) => (err ? reject(err) : resolve()));
          createReadStream(p).on('error', reject).pipe(w);
        });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = BigInt(st.rdev);
        await entry({
          ...base, name: r, type: st.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: Number((rdev >> 8n) & 0xfffn), devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & 0xfff00n)),
        });
      } else if (st.isFIFO()) {
        await entry({ ...base, name: r, type: 'fifo' });
      }
    }
  };
  await walk('');
  pack.finalize();
  await done;
};

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
        await layerTar(c.paths.upper, tmp);
        const h = newHash('sha256');
        for await (const chunk of createReadStream(tmp)) h.update(chunk as Buffer);
        const digest: Digest = digestOfHash('sha256', h);
        const size = (await fsp.stat(tmp)).size;
        if (!(await store.blobs.has(digest))) {
          const w = await store.blobs.writer({ digest, size }, `commit of ${info.name}`);
          try {
            for await (const chunk of createReadStream(tmp)) await w.write(chunk as Buffer);
            await w.commit();
          } catch (e) {
            await w.abort();
            throw e;
          }
        }
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
        const created = new Date().toISOString();
        const config = {
          ...pc,
          created,
          ...(opts.author ? { author: opts.author } : {}),
          config: cfg,
          rootfs: { type: 'layers', diff_ids: [...pc.rootfs.diff_ids, digest] },
          history: [...(pc.history ?? []), { created, created_by: `berth commit ${info.name}`, ...(opts.message ? { comment: opts.message } : {}) }],
        };
        const cfgBytes = Buffer.from(JSON.stringify(config));
        const cfgBlob = await store.blobs.put(cfgBytes, sha256(cfgBytes), 'image config');
        const layers: Descriptor[] = [...parent.manifest.layers, { mediaType: MediaType.OciLayer, digest, size }];
        const manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfgBlob.digest, size: cfgBlob.size }, layers };
        const mBytes = Buffer.from(JSON.stringify(manifest));
        const m = await store.blobs.put(mBytes, sha256(mBytes), 'image manifest');
        const desc: Descriptor = { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size };
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
