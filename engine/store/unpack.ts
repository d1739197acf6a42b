/**
 * Unpacking an untrusted layer tar into an overlay lower directory.
 *
 * Rules (the tar is hostile until proven otherwise):
 * - Entry names are paths inside the layer: absolute names and any `..`
 *   component are refused. Every parent directory is resolved inside the
 *   destination without following symlinks (lstat each component; a
 *   symlinked or non-directory parent is refused; a missing one is created
 *   0755). Files are created with O_EXCL after removing what was there, so
 *   the final component is never followed either.
 * - Hardlink targets obey the same rules and must already exist in this
 *   layer as a non-directory.
 * - OCI whiteouts become overlay whiteouts: `.wh.NAME` -> character device
 *   0/0 named NAME; `.wh..wh..opq` -> xattr trusted.overlay.opaque=y on its
 *   directory; other `.wh..wh.*` entries (aufs bookkeeping) are dropped.
 * - Kept: uid/gid (lchown), mode including setuid/setgid/sticky (chmod after
 *   chown, which would clear them), mtimes (directories last), PAX
 *   SCHILY.xattr.* extended attributes, hardlinks, device nodes and fifos.
 *
 * Node has no mknod(2) or setxattr(2): device nodes are made with
 * coreutils `mknod`, extended attributes applied in one `setfattr -h
 * --restore=-` run (package `attr`) at the end.
 *
 * xattr values are binary (security.capability holds a struct). tar-stream
 * decodes every PAX record as UTF-8, which would mangle them, so its
 * decodePax is wrapped (`keepBinaryXattrs`) to give `SCHILY.xattr.*` values
 * as latin1 strings (one char per byte) that become the exact bytes again.
 *
 * berth-unpack (native/unpack/, used by pulls when it is built) applies the
 * same rules in C; test/engine/store/unpack.test.ts runs both.
 */
import { promises as fsp } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { EngineFailure, fail, invalidSpec, kernel } from '../errors.js';
import { PositionalWriter } from './fsutil.js';

const run = promisify(execFile);

const XATTR_KEY = 'SCHILY.xattr.';

/**
 * tar-stream's PAX decoding with xattr values kept byte for byte (latin1
 * strings). tar-stream calls `headers.decodePax` through its module object,
 * so replacing that one function (once per process) is enough; other keys
 * are decoded exactly as before (UTF-8).
 */
const keepBinaryXattrs = (() => {
  let done = false;
  return (): void => {
    if (done) return;
    done = true;
    const req = createRequire(import.meta.url);
    const headersPath = path.join(path.dirname(req.resolve('tar-stream')), 'headers.js');
    const headers = req(headersPath) as { decodePax: (buf: Buffer) => Record<string, string> };
    headers.decodePax = (buf: Buffer): Record<string, string> => {
      const out: Record<string, string> = {};
      let b = buf;
      while (b.length > 0) {
        const sp = b.indexOf(0x20);
        const len = sp > 0 ? Number.parseInt(b.subarray(0, sp).toString('latin1'), 10) : NaN;
        if (!Number.isSafeInteger(len) || len <= sp + 1 || len > b.length) return out;
        const rec = b.subarray(sp + 1, len - 1); // without the trailing newline
        const eq = rec.indexOf(0x3d);
        if (eq < 0) return out;
        const key = rec.subarray(0, eq).toString('utf8');
        out[key] = rec.subarray(eq + 1).toString(key.startsWith(XATTR_KEY) ? 'latin1' : 'utf8');
        b = b.subarray(len);
      }
      return out;
    };
  };
})();

export interface UnpackResult {
  readonly entries: number;
  /** Sum of regular file sizes written. */
  readonly bytes: number;
  /** What was kept only in part (nothing today; kept for callers that log them). */
  readonly warnings: readonly string[];
}

export interface UnpackOptions {
  /** An existing, empty directory that becomes the layer's diff. */
  readonly dest: string;
  /** Names the layer in errors, e.g. `image docker.io/library/x:1 layer sha256:ab..`. */
  readonly label: string;
  /** Start writeback of a large file every this many bytes (0 = never); the caller still syncs at the end. */
  readonly syncEvery?: number;
}

interface Xattr {
  readonly file: string;
  readonly name: string;
  readonly value: Buffer;
}

type Refuse = (entry: string, why: string) => never;

/** Split a tar name into safe components, or refuse it. */
export const safeComponents = (name: string, refuse: (why: string) => never): string[] => {
  if (name.includes('\0')) refuse('name contains a NUL byte');
  if (name.startsWith('/')) refuse('absolute path');
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) refuse("path contains '..'");
  return parts;
};

const octalEscape = (p: string): string => {
  let out = '';
  for (const b of Buffer.from(p, 'utf8')) {
    if (b <= 0x20 || b >= 0x7f || b === 0x5c) out += `\\${b.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return out;
};

const XATTR_NAME = /^(user|trusted|security)\.[\x21-\x7e]+$/;

/** Apply xattrs in a single setfattr run (no per-file process). */
const applyXattrs = async (xattrs: readonly Xattr[], label: string): Promise<void> => {
  if (xattrs.length === 0) return;
  let dump = '';
  for (const x of xattrs) dump += `# file: ${octalEscape(x.file)}\n${x.name}=0x${x.value.toString('hex')}\n\n`;
  await new Promise<void>((resolve, reject) => {
    const child = execFile('setfattr', ['-h', '--restore=-'], (err, _out, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') reject(new EngineFailure(invalidSpec(label, ['extended attributes need the `setfattr` program (Debian package attr)'])));
        else reject(new EngineFailure(invalidSpec(label, [`setting extended attributes failed: ${String(stderr).trim() || e.message}`])));
      } else resolve();
    });
    child.stdin?.end(dump);
  });
};

const mknod = async (file: string, kind: 'c' | 'b' | 'p', major: number, minor: number, label: string): Promise<void> => {
  const args = kind === 'p' ? ['-m', '0600', '--', file, 'p'] : ['-m', '0600', '--', file, kind, String(major), String(minor)];
  try {
    await run('mknod', args);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    fail(invalidSpec(label, [`mknod ${file}: ${(err.stderr ?? '').trim() || err.message}`]), e);
  }
};

/**
 * Extract `tarStream` (uncompressed tar bytes) into `opts.dest`. On any
 * refusal or failure it throws; the caller owns `dest` and removes it.
 */
export const unpackLayer = async (tarStream: Readable, opts: UnpackOptions): Promise<UnpackResult> => {
  const root = path.resolve(opts.dest);
  const refuse: Refuse = (entry, why) => fail(invalidSpec(opts.label, [`refused entry ${JSON.stringify(entry)}: ${why}`]));
  /** Directories known to be real directories inside root (relative keys). */
  const dirs = new Set<string>(['']);
  const dirTimes: Array<{ rel: string; mtime: Date }> = [];
  const xattrs: Xattr[] = [];
  let entries = 0;
  let bytes = 0;
  const warnings: string[] = [];

  const abs = (rel: string): string => (rel === '' ? root : path.join(root, rel));

  const forgetUnder = (rel: string): void => {
    dirs.delete(rel);
    const prefix = `${rel}/`;
    for (const d of dirs) if (d.startsWith(prefix)) dirs.delete(d);
  };

  /** Make sure every component of `parts` is a real directory inside root. */
  const ensureDir = async (parts: readonly string[], entry: string, create: boolean): Promise<void> => {
    let rel = '';
    for (const c of parts) {
      rel = rel === '' ? c : `${rel}/${c}`;
      if (dirs.has(rel)) continue;
      let st;
      try {
        st = await fsp.lstat(abs(rel));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new EngineFailure(kernel(e as NodeJS.ErrnoException, abs(rel)));
        if (!create) refuse(entry, `parent ${JSON.stringify(rel)} does not exist in this layer`);
        await fsp.mkdir(abs(rel), 0o755);
        dirs.add(rel);
        continue;
      }
      if (st.isSymbolicLink()) refuse(entry, `parent ${JSON.stringify(rel)} is a symlink`);
      if (!st.isDirectory()) refuse(entry, `parent ${JSON.stringify(rel)} is not a directory`);
      dirs.add(rel);
    }
  };

  /** Remove whatever is at rel, unless it is a directory and keepDir. Returns true if a directory was kept. */
  const clear = async (rel: string, keepDir: boolean): Promise<boolean> => {
    let st;
    try {
      st = await fsp.lstat(abs(rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new EngineFailure(kernel(e as NodeJS.ErrnoException, abs(rel)));
    }
    if (st.isDirectory()) {
      if (keepDir) return true;
      await fsp.rm(abs(rel), { recursive: true, force: true });
      forgetUnder(rel);
      return false;
    }
    await fsp.unlink(abs(rel));
    return false;
  };

  const drain = async (s: AsyncIterable<unknown>): Promise<void> => {
    for await (const _ of s) void _;
  };

  keepBinaryXattrs();
  const extract = tar.extract();
  const feed = new Promise<void>((resolve, reject) => {
    tarStream.on('error', (e) => {
      extract.destroy(e);
      reject(e);
    });
    extract.on('error', reject);
    tarStream.on('end', resolve);
    tarStream.pipe(extract as unknown as NodeJS.WritableStream);
  });
  feed.catch(() => undefined); // observed below through the iterator or awaited at the end

  try {
    for await (const entryStream of extract) {
      const h = entryStream.header;
      const name = h.name;
      entries++;
      const parts = safeComponents(name, (why) => refuse(name, why));
      const base = parts[parts.length - 1];
      const parentParts = parts.slice(0, -1);
      const rel = parts.join('/');

      if (base === undefined) {
        // the layer root itself ("./"): keep its metadata
        if (h.type === 'directory') {
          await fsp.lchown(root, h.uid ?? 0, h.gid ?? 0);
          await fsp.chmod(root, (h.mode ?? 0o755) & 0o7777);
          if (h.mtime) dirTimes.push({ rel: '', mtime: h.mtime });
        }
        await drain(entryStream);
        continue;
      }

      if (base.startsWith('.wh.')) {
        await drain(entryStream);
        await ensureDir(parentParts, name, true);
        const parentRel = parentParts.join('/');
        if (base === '.wh..wh..opq') {
          xattrs.push({ file: abs(parentRel), name: 'trusted.overlay.opaque', value: Buffer.from('y') });
        } else if (!base.startsWith('.wh..wh.')) {
          const target = base.slice(4);
          if (target === '' || target === '.' || target === '..') refuse(name, 'whiteout of an invalid name');
          const targetRel = parentRel === '' ? target : `${parentRel}/${target}`;
          await clear(targetRel, false);
          await mknod(abs(targetRel), 'c', 0, 0, opts.label);
        }
        continue;
      }

      await ensureDir(parentParts, name, true);
      const file = abs(rel);
      const mode = (h.mode ?? 0o644) & 0o7777;
      const uid = h.uid ?? 0;
      const gid = h.gid ?? 0;

      switch (h.type) {
        case 'file':
        case 'contiguous-file': {
          await clear(rel, false);
          const fh = await fsp.open(file, 'wx', 0o600);
          const out = new PositionalWriter(fh, file, 4, opts.syncEvery ?? 0);
          try {
            for await (const chunk of entryStream as AsyncIterable<Buffer>) {
              await out.write(chunk);
              bytes += chunk.length;
            }
            await out.flush();
          } finally {
            await out.flush().catch(() => undefined); // on failure: let queued writes settle before closing
            await fh.close();
          }
          break;
        }
        case 'directory': {
          await drain(entryStream);
          const kept = await clear(rel, true);
          if (!kept) await fsp.mkdir(file, 0o755);
          dirs.add(rel);
          break;
        }
        case 'symlink': {
          await drain(entryStream);
          if (!h.linkname) refuse(name, 'symlink without a target');
          await clear(rel, false);
          await fsp.symlink(h.linkname as string, file);
          break;
        }
        case 'link': {
          await drain(entryStream);
          const ln = h.linkname ?? '';
          const lparts = safeComponents(ln, (why) => refuse(name, `hardlink target ${JSON.stringify(ln)}: ${why}`));
          if (lparts.length === 0) refuse(name, 'hardlink to the layer root');
          await ensureDir(lparts.slice(0, -1), name, false);
          const lrel = lparts.join('/');
          let lst;
          try {
            lst = await fsp.lstat(abs(lrel));
          } catch {
            return refuse(name, `hardlink target ${JSON.stringify(ln)} does not exist in this layer`);
          }
          if (lst.isDirectory()) refuse(name, `hardlink target ${JSON.stringify(ln)} is a directory`);
          if (lrel === rel) break; // a link to itself: nothing to do
          await clear(rel, false);
          await fsp.link(abs(lrel), file);
          // a hardlink shares the inode: its metadata is the target's
          continue;
        }
        case 'character-device':
        case 'block-device':
        case 'fifo': {
          await drain(entryStream);
          await clear(rel, false);
          const kind = h.type === 'fifo' ? 'p' : h.type === 'character-device' ? 'c' : 'b';
          await mknod(file, kind, h.devmajor ?? 0, h.devminor ?? 0, opts.label);
          break;
        }
        default:
          await drain(entryStream);
          refuse(name, `unsupported tar entry type ${JSON.stringify(h.type)}`);
      }

      await fsp.lchown(file, uid, gid);
      if (h.type !== 'symlink') await fsp.chmod(file, mode);
      if (h.pax) {
        for (const [k, v] of Object.entries(h.pax)) {
          if (!k.startsWith(XATTR_KEY)) continue;
          const xname = k.slice(XATTR_KEY.length);
          if (!XATTR_NAME.test(xname)) refuse(name, `xattr name ${JSON.stringify(xname)} not allowed`);
          if (xname.startsWith('trusted.overlay.')) refuse(name, `xattr ${xname} would change overlayfs behaviour`);
          xattrs.push({ file, name: xname, value: Buffer.from(v, 'latin1') }); // latin1: see keepBinaryXattrs
        }
      }
      if (h.type === 'directory') {
        if (h.mtime) dirTimes.push({ rel, mtime: h.mtime });
      } else if (h.mtime) {
        await fsp.lutimes(file, h.mtime, h.mtime);
      }
    }
    await feed;
  } catch (e) {
    extract.destroy();
    tarStream.destroy();
    if (e instanceof EngineFailure) throw e;
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && typeof err.syscall === 'string') throw new EngineFailure(kernel(err), { cause: e });
    throw new EngineFailure(invalidSpec(opts.label, [`not a valid tar stream: ${(e as Error).message}`]), { cause: e });
  }

  await applyXattrs(xattrs, opts.label);
  // a directory may have been removed or replaced since (by a file, or by a symlink that could point
  // anywhere, the host included): its time is set only if every component is still a real directory
  const stillDir = async (rel: string): Promise<boolean> => {
    let sub = '';
    for (const c of rel === '' ? [] : rel.split('/')) {
      sub = sub === '' ? c : `${sub}/${c}`;
      const st = await fsp.lstat(abs(sub)).catch(() => undefined);
      if (!st?.isDirectory()) return false;
    }
    return true;
  };
  for (const d of dirTimes) if (await stillDir(d.rel)) await fsp.utimes(abs(d.rel), d.mtime, d.mtime);
  return { entries, bytes, warnings };
};
