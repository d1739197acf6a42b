/**
 * COPY and ADD's file operations on a mounted rootfs: sources found in the
 * context (or another rootfs), destinations resolved inside the rootfs
 * (engine/runtime/inroot.ts: a link in the image never leads out of it),
 * owners from the image's /etc/passwd and /etc/group, and ADD's archives
 * unpacked by the store's hardened unpacker into a staging dir first.
 */
import { spawn } from 'node:child_process';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, pipeline, type Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { fail, invalidSpec, toEngineError } from '../errors.js';
import { resolveInRoot } from '../runtime/inroot.js';
import { resolveUser } from '../runtime/user.js';
import { randomSuffix } from '../store/fsutil.js';
import { unpackLayer } from '../store/unpack.js';
import { cleanRel, globToRegExp, hasWildcard, walk, type BuildContext, type SourceItem } from './context.js';

export interface ResolvedSource extends SourceItem {
  /** For a directory: everything below it (relative to it); for a file: itself with rel ''. */
  readonly entries: readonly SourceItem[];
  readonly fromWildcard: boolean;
}

export const resolveSources = async (
  srcs: readonly string[], root: string, skip: (rel: string) => boolean, ctx: BuildContext | undefined, where: string, cmd: string,
): Promise<ResolvedSource[]> => {
  const out: ResolvedSource[] = [];
  const reincludes = ctx?.reincludes ?? false;
  for (const raw of srcs) {
    const norm = path.posix.normalize(raw.startsWith('/') ? raw.slice(1) || '.' : raw);
    if (norm === '..' || norm.startsWith('../')) {
      fail(invalidSpec(where, [`${raw} is outside the build context: ${cmd} can only take files from the context${ctx ? ` (${ctx.dir})` : ''}; move the file into it or build from a higher directory`]));
    }
    const rel = cleanRel(norm);
    let found: SourceItem[];
    if (hasWildcard(rel)) {
      const re = globToRegExp(rel);
      found = (await walk(root, '.', skip, reincludes)).filter((i) => re.test(i.rel) && !skip(i.rel));
      // a match inside a matched directory comes with it
      found = found.filter((i) => !found.some((o) => o !== i && o.stat.isDirectory() && i.rel.startsWith(`${o.rel}/`)));
      if (found.length === 0) fail(invalidSpec(where, [`no source files match ${raw}${ctx ? ' in the build context (or .dockerignore excludes them)' : ''}`]));
    } else {
      const abs = rel === '.' ? root : await resolveInRoot(root, rel);
      const st = await fsp.lstat(abs).catch(() => undefined);
      if (st === undefined || (rel !== '.' && skip(rel) && !(st.isDirectory() && reincludes))) {
        fail(invalidSpec(where, [ctx
          ? `${raw}: not found in the build context ${ctx.dir}${st ? ' (.dockerignore excludes it)' : ''}; check the path (it is relative to the context) and .dockerignore`
          : `${raw}: not found in the source stage or image`]));
      }
      found = [{ abs, rel, stat: st as Stats }];
    }
    for (const f of found) {
      const entries = f.stat.isDirectory() ? await walk(f.abs, '.', (r) => skip(f.rel === '.' ? r : `${f.rel}/${r}`), reincludes) : [{ abs: f.abs, rel: '', stat: f.stat }];
      out.push({ ...f, entries, fromWildcard: hasWildcard(rel) });
    }
  }
  return out;
};

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** `--chown=user[:group]`: names from the image's /etc/passwd and /etc/group; without a group, the gid is the uid (as Docker). */
export const resolveOwner = async (root: string, chown: string, where: string): Promise<Owner> => {
  const [u = '', g] = chown.split(':', 2);
  try {
    const user = await resolveUser(root, u);
    if (g === undefined || g === '') return { uid: user.uid, gid: user.uid };
    const grp = await resolveUser(root, `${u}:${g}`);
    return { uid: user.uid, gid: grp.gid };
  } catch (e) {
    return fail(invalidSpec(where, [`--chown=${chown}: ${toEngineError(e)._tag === 'InvalidSpec' ? (e as Error).message.replace(/^user: /, '') : String(e)}; use a uid:gid or a name from the image's /etc/passwd and /etc/group`]));
  }
};

/** mkdir -p inside the root (links resolved inside it); new directories 0755, owned by `owner` or root. */
export const mkdirIn = async (root: string, dir: string, owner: Owner | undefined): Promise<string> => {
  const parts = dir.split('/').filter((x) => x !== '');
  let cur = '/';
  for (const p of parts) {
    cur = path.posix.join(cur, p);
    const host = await resolveInRoot(root, cur);
    const st = await fsp.lstat(host).catch(() => undefined);
    if (st === undefined) {
      await fsp.mkdir(host, { mode: 0o755 });
      await fsp.chmod(host, 0o755);
      if (owner) await fsp.lchown(host, owner.uid, owner.gid);
    } else if (!st.isDirectory()) {
      fail(invalidSpec('destination', [`${cur} exists in the image and is not a directory`]));
    }
  }
  return resolveInRoot(root, dir);
};

export const isDirIn = async (root: string, p: string): Promise<boolean> => (await fsp.stat(await resolveInRoot(root, p)).catch(() => undefined))?.isDirectory() ?? false;

/** One file, link or directory from the host at `target` inside the root. */
export const copyEntry = async (root: string, abs: string, st: Stats, target: string, owner: Owner | undefined, mode: number | undefined): Promise<void> => {
  await mkdirIn(root, path.posix.dirname(target), owner);
  // the parent resolved inside the root; the last component itself is never followed
  const host = path.join(await resolveInRoot(root, path.posix.dirname(target)), path.posix.basename(target));
  const uid = owner?.uid ?? 0;
  const gid = owner?.gid ?? 0;
  const have = await fsp.lstat(host).catch(() => undefined);
  if (st.isDirectory()) {
    if (have && !have.isDirectory()) await fsp.rm(host, { force: true });
    if (!have || !have.isDirectory()) await fsp.mkdir(host);
    await fsp.lchown(host, uid, gid);
    await fsp.chmod(host, mode ?? st.mode & 0o7777);
    return;
  }
  if (have) {
    if (have.isDirectory()) fail(invalidSpec('destination', [`cannot replace the directory ${target} with a file`]));
    await fsp.rm(host, { force: true });
  }
  if (st.isSymbolicLink()) {
    await fsp.symlink(await fsp.readlink(abs), host);
    await fsp.lchown(host, uid, gid);
    return;
  }
  if (!st.isFile()) return; // sockets, fifos and devices are not copied
  await fsp.copyFile(abs, host);
  await fsp.chown(host, uid, gid);
  await fsp.chmod(host, mode ?? st.mode & 0o7777);
  await fsp.utimes(host, st.atime, st.mtime);
};

/** A directory's contents (not the directory itself) into `dest`. */
export const copyTree = async (root: string, src: ResolvedSource, dest: string, owner: Owner | undefined, mode: number | undefined): Promise<void> => {
  await mkdirIn(root, dest, owner);
  for (const e of src.entries) await copyEntry(root, e.abs, e.stat, path.posix.join(dest, e.rel), owner, mode);
  // directory times last: writing into them changed them
  for (const e of [...src.entries].reverse()) {
    if (!e.stat.isDirectory()) continue;
    const host = await resolveInRoot(root, path.posix.join(dest, e.rel));
    await fsp.utimes(host, e.stat.atime, e.stat.mtime).catch(() => undefined);
  }
};

export type ArchiveFormat = 'tar' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

/** A local file's archive format by its magic bytes (compression), before knowing whether a tar is inside. */
const compressionOf = (head: Buffer): ArchiveFormat => {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'tar';
};

/** The file's bytes, decompressed; xz and bzip2 through their programs (a failing one errors the stream). */
const decompressed = (abs: string, f: ArchiveFormat): Readable => {
  const file = createReadStream(abs);
  if (f === 'tar') return file;
  if (f === 'gzip' || f === 'zstd') {
    const z = f === 'gzip' ? zlib.createGunzip() : zlib.createZstdDecompress();
    return pipeline(file, z, () => undefined) as unknown as Readable;
  }
  file.destroy();
  const child = spawn(f, ['-dc', abs], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout.pipe(out, { end: false });
  child.on('error', (e) => out.destroy(e));
  child.on('close', (code) => {
    if (code === 0 || out.destroyed) out.end();
    else out.destroy(new Error(`${f} -dc ${path.basename(abs)}: ${err.trim() || `exit status ${code}`}`));
  });
  out.on('close', () => child.kill());
  return out;
};

/** A tar (plain, gzip, zstd, xz or bzip2) that ADD unpacks, as Docker does; undefined: copy it as a file. */
export const archiveFormat = async (abs: string): Promise<ArchiveFormat | undefined> => {
  const h = await fsp.open(abs, 'r');
  const magic = Buffer.alloc(6);
  try {
    await h.read(magic, 0, 6, 0);
  } finally {
    await h.close();
  }
  const f = compressionOf(magic);
  const s = decompressed(abs, f);
  let head = Buffer.alloc(0);
  try {
    for await (const chunk of s) {
      head = Buffer.concat([head, chunk as Buffer]);
      if (head.length >= 512) break;
    }
  } catch {
    return undefined; // not what its magic said: a plain file
  } finally {
    s.destroy();
  }
  return head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar' ? f : undefined;
};

/** ADD of a local archive: unpacked (with the store's hardened unpacker) into a staging dir, then copied in with its owners and modes. */
export const addArchive = async (root: string, abs: string, format: ArchiveFormat, dest: string, owner: Owner | undefined, tmp: string, where: string): Promise<void> => {
  const stage = path.join(tmp, `add-${randomSuffix()}`);
  await fsp.mkdir(stage);
  try {
    await unpackLayer(decompressed(abs, format), { dest: stage, label: `${where}: archive ${path.basename(abs)}` });
    const entries = await walk(stage, '.', () => false);
    await mkdirIn(root, dest, owner);
    for (const e of entries) {
      const target = path.posix.join(dest, e.rel);
      await copyEntry(root, e.abs, e.stat, target, owner ?? { uid: e.stat.uid, gid: e.stat.gid }, undefined);
    }
    for (const e of [...entries].reverse()) {
      if (!e.stat.isDirectory()) continue;
      await fsp.utimes(await resolveInRoot(root, path.posix.join(dest, e.rel)), e.stat.atime, e.stat.mtime).catch(() => undefined);
    }
  } finally {
    await fsp.rm(stage, { recursive: true, force: true });
  }
};
