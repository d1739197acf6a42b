/**
 * Small filesystem helpers for crash-safe metadata: atomic writes (temp
 * file, fsync, rename, fsync of the directory) and an inter-process lock
 * file that the CLI and the agent share.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, fsync, lstatSync, open, openSync, readFileSync, renameSync, rmSync, writeSync, constants as C,
} from 'node:fs';
import * as path from 'node:path';
import { conflict, fail, sys } from '../errors.js';

export const randomSuffix = (): string => randomBytes(6).toString('hex');

/**
 * path.join(dir, ...names) for a dir that is already normal (made by
 * path.join, path.resolve or path.normalize) and names that are one plain
 * component each (IDs, fixed file names): by concatenation. path.join
 * normalizes its whole result character by character, ~19 us a call in V8's
 * interpreter (the container commands run without the JIT, cli/berth.sh),
 * and a `berth run` asks for ~130 paths. Anything else goes to path.join.
 */
export const pathUnder = (dir: string, ...names: string[]): string => {
  let out = dir;
  for (const n of names) {
    if (n === '' || n === '.' || n === '..' || n.includes('/') || dir === '.') return path.join(dir, ...names);
    out = out.endsWith('/') ? out + n : `${out}/${n}`;
  }
  return out;
};

/**
 * fsync of a descriptor in the thread pool (the one step here that waits for
 * the disk); every other step of these helpers is a sync call on the calling
 * thread: a promise open/write/close/rename costs a thread-pool round trip
 * and a promise each (~0.1-0.4 ms of CPU), a sync one ~10-20 us.
 */
const fsyncFd = (fd: number): Promise<void> => new Promise((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
const openFd = (file: string, flags: number, mode: number): Promise<number> =>
  new Promise((resolve, reject) => open(file, flags, mode, (e, fd) => (e ? reject(e) : resolve(fd))));

export const fsyncDir = async (dir: string): Promise<void> => {
  await sys(dir, async () => {
    const fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
  });
};

const writeAll = (fd: number, data: string | Uint8Array): void => {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
};

/**
 * Replace `file` with `data` so that a crash leaves either the old or the new content.
 * `beforeRename` runs once the temp file is complete and on disk, before it takes the
 * name (e.g. to hard-link it elsewhere too); a failure there removes it and changes nothing.
 * `durable: false`: no fsync of the file and its directory. Still atomic if this process
 * dies; after a power loss the file may be missing, or new and empty.
 */
export const writeFileAtomic = async (
  file: string, data: string | Uint8Array, mode = 0o644, beforeRename?: (tmp: string) => Promise<void>, durable = true,
): Promise<void> => {
  const dir = path.dirname(file);
  const tmp = pathUnder(dir, `.${path.basename(file)}.${process.pid}.${randomSuffix()}.tmp`);
  let created = false;
  try {
    await sys(tmp, async () => {
      // the create in the thread pool with the fsync: a new inode is 0.5-2 ms of kernel work on a churned ext4
      const fd = await openFd(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
      created = true;
      try {
        writeAll(fd, data);
        if (durable) await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
    });
    if (beforeRename) await beforeRename(tmp);
    await sys(file, async () => renameSync(tmp, file));
  } catch (e) {
    if (created) rmSync(tmp, { force: true });
    throw e;
  }
  if (durable) await fsyncDir(dir);
};

export const exists = async (p: string): Promise<boolean> => {
  try {
    lstatSync(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
};

export const pidAlive = (pid: number): boolean => {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Hold an exclusive lock file (holding our pid) while `fn` runs. A lock
 * left by a dead process is taken over. Not reentrant.
 */
export const withLock = async <A>(lockFile: string, what: string, fn: () => Promise<A>, timeoutMs = 60_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs;
  // sync calls: each is a few microseconds on a local file system, and a locked operation makes at least two
  for (;;) {
    try {
      const fd = openSync(lockFile, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
      try {
        writeAll(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(lockFile, 'utf8').trim());
      } catch (re) {
        if ((re as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw re;
      }
      // an empty file is a lock being written right now: wait for it
      if (!Number.isNaN(holder) && holder !== 0 && !pidAlive(holder)) {
        // take over a stale lock atomically: rename it away, then retry
        const stale = `${lockFile}.stale.${randomSuffix()}`;
        try {
          renameSync(lockFile, stale);
          rmSync(stale, { force: true });
        } catch (re) {
          if ((re as NodeJS.ErrnoException).code !== 'ENOENT') throw re;
        }
        continue;
      }
      if (Date.now() > deadline) fail(conflict('lock', what, `held by pid ${holder} (${lockFile}); retry when it finishes`));
      await sleep(15 + Math.random() * 20);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
};

/**
 * Sequential bytes written with positional writes, up to `max` in flight,
 * so that a stream's producer does not wait for each write to land. Chunks
 * must not be reused by the caller after `write` (stream chunks are not).
 */
export class PositionalWriter {
  private pos = 0;
  private readonly inflight = new Set<Promise<void>>();
  private error: unknown;

  private synced = 0;

  /**
   * `syncEvery` (bytes, 0 = never): after that much more has landed, a write
   * slot also runs fdatasync, so that writeback of a large file proceeds while
   * it streams instead of all at the final fsync/syncfs (which the caller
   * still does: this only moves the disk work earlier).
   */
  constructor(
    private readonly handle: import('node:fs/promises').FileHandle,
    private readonly file: string,
    private readonly max = 4,
    private readonly syncEvery = 0,
  ) {}

  get position(): number {
    return this.pos + this.pendingBytes;
  }

  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  /** Queue bytes; small chunks are gathered into writes of about 1 MiB (fewer syscalls). */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.error !== undefined) await sys(this.file, () => Promise.reject(this.error));
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= PositionalWriter.GATHER) await this.issue();
  }

  private static readonly GATHER = 1 << 20;

  private async issue(): Promise<void> {
    if (this.pendingBytes === 0) return;
    // writev gathers the chunks without copying them into one buffer (less GC pressure)
    const bufs = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    const at = this.pos;
    this.pos += total;
    const p: Promise<void> = (async () => {
      let done = (await this.handle.writev(bufs, at)).bytesWritten;
      // a short write is rare (disk full, signals): finish it chunk by chunk
      let skip = done;
      for (const b of bufs) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        let off = skip;
        skip = 0;
        while (off < b.length) {
          const n = (await this.handle.write(b, off, b.length - off, at + done)).bytesWritten;
          off += n;
          done += n;
        }
      }
      if (this.syncEvery > 0 && at + total - this.synced >= this.syncEvery) {
        this.synced = at + total;
        await this.handle.datasync();
      }
    })().then(
      () => {
        this.inflight.delete(p);
      },
      (e: unknown) => {
        this.inflight.delete(p);
        this.error ??= e;
      },
    );
    this.inflight.add(p);
    if (this.inflight.size >= this.max) await Promise.race(this.inflight);
    if (this.error !== undefined) await sys(this.file, () => Promise.reject(this.error));
  }

  /** Wait for every write; throws the first failure as a Kernel error. */
  async flush(): Promise<void> {
    if (this.error === undefined) await this.issue();
    await Promise.all(this.inflight);
    if (this.error !== undefined) await sys(this.file, () => Promise.reject(this.error));
  }
}
