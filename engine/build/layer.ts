/**
 * One build step's filesystem change as an image layer: the overlay upper
 * dir written as an uncompressed OCI layer tar (overlay whiteouts -> OCI
 * whiteouts; `berth commit`, engine/runtime/commit.ts, writes its layer here
 * too), stored as a blob by local-images.ts's storeLayer (its digest is its
 * diff ID), and images written as config + manifest blobs so that the store
 * (and containers) can load them by manifest digest, named or not.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { sha256 } from '../store/digest.js';
import { MediaType, type Descriptor } from '../store/oci.js';
import type { Store } from '../store/store.js';

/** getfattr's octal escapes (`\012`) back to bytes. */
const unescapeOctal = (s: string): string =>
  Buffer.from(s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');

/** Directories under `dir` (and itself) marked opaque by overlayfs (one getfattr run for the whole tree). */
export const opaqueDirs = (dir: string): Promise<Set<string>> =>
  new Promise((resolve) => {
    execFile('getfattr', ['-R', '-P', '--absolute-names', '-d', '-m', '^trusted\\.overlay\\.opaque$', dir], { maxBuffer: 64 << 20 }, (_err, out) => {
      const set = new Set<string>();
      let file: string | undefined;
      for (const l of out.split('\n')) {
        if (l.startsWith('# file: ')) file = unescapeOctal(l.slice(8));
        else if (file !== undefined && /^trusted\.overlay\.opaque="y"$/.test(l)) set.add(file);
      }
      resolve(set);
    });
  });

/**
 * The mount points the runtime makes in a container's rootfs when the image
 * lacks them (`/proc`, `/sys`, `/dev`, and the targets of the /etc/hosts,
 * /etc/hostname and /etc/resolv.conf binds), as they stay in its upper
 * dir: empty. They are no change the container made, as Docker's init
 * layer keeps them out of its `diff` and `commit`: a RUN step's layer,
 * `berth commit`'s and `berth diff` leave them out.
 */
const RUNTIME_MOUNT_POINTS = new Set(['proc', 'sys', 'dev', 'etc/hosts', 'etc/hostname', 'etc/resolv.conf']);

/** Whether `rel` (relative to an upper dir, no leading slash) is an empty mount point the runtime made. */
export const isRuntimeMountPoint = (rel: string, st: Stats): boolean =>
  RUNTIME_MOUNT_POINTS.has(rel) && ((st.isFile() && st.size === 0) || st.isDirectory());

/** The directories the runtime's mount points are made in (etc): the only ones it may copy up for them. */
const RUNTIME_MOUNT_POINT_PARENTS = new Set([...RUNTIME_MOUNT_POINTS].filter((m) => m.includes('/')).map((m) => m.slice(0, m.lastIndexOf('/'))));

/**
 * Whether the directory `rel` of `upper` is there only because overlayfs
 * copied it up for the runtime's mount points in it (etc/ for etc/hosts):
 * it holds them and nothing else. An opaque directory is a change of its
 * own: the caller checks that.
 */
export const copiedUpForMountPoints = async (upper: string, rel: string): Promise<boolean> => {
  if (!RUNTIME_MOUNT_POINT_PARENTS.has(rel)) return false;
  const names = await fsp.readdir(path.join(upper, rel));
  for (const k of names) if (!isRuntimeMountPoint(`${rel}/${k}`, await fsp.lstat(path.join(upper, rel, k)))) return false;
  return names.length > 0;
};

/**
 * Write the upper dir `upper` as a layer tar at `out`; with
 * `leaveOutMountPoints`, without the runtime's mount points and a
 * directory copied up only for them (a container's upper dir).
 */
export const writeLayerTar = async (upper: string, out: string, leaveOutMountPoints = false): Promise<void> => {
  const opaque = await opaqueDirs(upper);
  const pack = tarStream.pack();
  const done = pipeline(pack, createWriteStream(out));
  const entry = (h: Partial<tarStream.Header> & { name: string }, body?: string): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry(h as tarStream.Header, body ?? '', (err) => (err ? reject(err) : resolve()));
    });
  const visit = async (rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(upper, rel))).sort();
    for (const n of names) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const p = path.join(upper, r);
      const st = await fsp.lstat(p);
      if (leaveOutMountPoints && isRuntimeMountPoint(r, st)) continue;
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
      if (st.isCharacterDevice() && st.rdev === 0) {
        await entry({ ...base, name: rel === '' ? `.wh.${n}` : `${rel}/.wh.${n}`, type: 'file', size: 0 });
      } else if (st.isDirectory()) {
        if (leaveOutMountPoints && !opaque.has(p) && (await copiedUpForMountPoints(upper, r))) continue;
        await entry({ ...base, name: `${r}/`, type: 'directory' });
        if (opaque.has(p)) await entry({ ...base, mode: 0o644, name: `${r}/.wh..wh..opq`, type: 'file', size: 0 });
        await visit(r);
      } else if (st.isSymbolicLink()) {
        await entry({ ...base, name: r, type: 'symlink', linkname: await fsp.readlink(p) });
      } else if (st.isFile()) {
        await new Promise<void>((resolve, reject) => {
          const w = pack.entry({ ...base, name: r, type: "file", size: st.size } as tarStream.Header, (err) => (err ? reject(err) : resolve()));
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
  await visit('');
  pack.finalize();
  await done;
};

/** Config bytes + layers as blobs; the manifest's descriptor. Idempotent (same bytes, same digests). */
export const storeImage = async (store: Store, configBytes: Buffer, layers: readonly Descriptor[]): Promise<Descriptor> => {
  const cfg = await store.blobs.put(configBytes, sha256(configBytes), 'image config');
  const manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, layers };
  const mBytes = Buffer.from(JSON.stringify(manifest));
  const m = await store.blobs.put(mBytes, sha256(mBytes), 'image manifest');
  return { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size };
};
