/**
 * The blob store: content-addressed blobs in an OCI image layout
 * (<layout>/blobs/<alg>/<encoded>). Every write is verified against the
 * expected digest (and size, when known) before it becomes visible: bytes go
 * to <layout>/ingest/<pid>-<random>, are hashed while streaming, fsynced,
 * and renamed into place only when the digest matches. A crash leaves at
 * most an ingest file, which is garbage once its pid is gone.
 */
import { promises as fsp, createReadStream, readFileSync, rmSync, statSync, type ReadStream } from 'node:fs';
import * as path from 'node:path';
import type { Hash } from 'node:crypto';
import { corrupt, fail, notFound, sys, invalidSpec } from '../errors.js';
import { algorithmOf, digestOfHash, encodedOf, isDigest, newHash, type Digest } from './digest.js';
import { fsyncDir, pidAlive, PositionalWriter, randomSuffix } from './fsutil.js';
import type { Unsettled } from './settle.js';

export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** An open write of one blob. Feed it bytes, then commit (verifies) or abort. */
export interface BlobWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Verify digest and size, fsync and publish. Returns the blob's info. */
  commit(): Promise<BlobInfo>;
  /** Drop the partial write. Safe to call after commit or twice. */
  abort(): Promise<void>;
  readonly written: number;
}

export interface BlobStore {
  has(d: Digest): Promise<boolean>;
  stat(d: Digest): Promise<BlobInfo | undefined>;
  /** Path of a committed blob (for readers that need a file, e.g. mmap or tar). */
  pathOf(d: Digest): string;
  read(d: Digest): ReadStream;
  /** Read a small blob whole and verify it; for manifests and configs. */
  readAll(d: Digest, maxBytes?: number): Promise<Buffer>;
  /**
   * Start a write. With `expected.digest` the bytes are verified at commit;
   * without, the blob is stored under the sha256 of what was written.
   * `label` names the blob in errors.
   */
  writer(expected: { digest?: Digest; size?: number }, label?: string): Promise<BlobWriter>;
  /** Write a whole buffer; digest computed (sha256) unless given, and then verified. */
  put(data: Uint8Array, expected?: Digest, label?: string): Promise<BlobInfo>;
  delete(d: Digest): Promise<void>;
  list(): Promise<BlobInfo[]>;
  /** A fresh path under ingest/ for a write done elsewhere (berth-unpack); publish it with `adopt`. */
  ingestFile(): Promise<string>;
  /**
   * Publish an ingest file that another writer filled (and fsynced, when the
   * store is durable), given the digest and size that writer computed while
   * writing: they must equal `expected` or the file is removed and the blob
   * refused as corrupt. With `marked` the writer did not sync the file and
   * marked the blob unsettled before this (settle.ts): nothing here waits
   * for the disk either.
   */
  adopt(file: string, expected: BlobInfo, actual: BlobInfo, label?: string, opts?: { marked?: boolean }): Promise<BlobInfo>;
  /** Remove ingest files left by dead processes. Returns how many. */
  cleanIngest(): Promise<number>;
}

export const MAX_JSON_BLOB = 16 * 1024 * 1024;

/** Durable writes start writeback every 16 MiB (see PositionalWriter), not all at commit. */
export const SYNC_EVERY = 16 * 1024 * 1024;

export const openBlobStore = (layoutDir: string, opts: { durable?: boolean; unsettled?: Unsettled } = {}): BlobStore => {
  const durable = opts.durable ?? true;
  const unsettled = durable ? opts.unsettled : undefined;
  const blobsDir = path.join(layoutDir, 'blobs');
  const ingestDir = path.join(layoutDir, 'ingest');
  const pathOf = (d: Digest): string => path.join(blobsDir, algorithmOf(d), encodedOf(d));

  /** A blob published just before a crash and maybe not on disk whole is removed, so that a pull fetches it again. */
  const dropIfLost = (d: Digest): void => {
    const marker = `blob-${encodedOf(d)}`;
    if (!unsettled?.lost(marker)) return;
    rmSync(pathOf(d), { force: true });
    unsettled.forget(marker);
  };

  const stat = async (d: Digest): Promise<BlobInfo | undefined> => {
    dropIfLost(d);
    try {
      const st = await fsp.stat(pathOf(d));
      return { digest: d, size: st.size };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return fail({ _tag: 'Kernel', syscall: 'stat', errno: (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN', path: pathOf(d), message: (e as Error).message });
    }
  };

  const writer = async (expected: { digest?: Digest; size?: number }, label = `blob ${expected.digest ?? '(new)'}`): Promise<BlobWriter> => {
    await sys(ingestDir, () => fsp.mkdir(ingestDir, { recursive: true }));
    const tmp = path.join(ingestDir, `${process.pid}-${randomSuffix()}`);
    const handle = await sys(tmp, () => fsp.open(tmp, 'wx', 0o644));
    const out = new PositionalWriter(handle, tmp, 4, durable ? SYNC_EVERY : 0);
    const alg = expected.digest === undefined ? 'sha256' : algorithmOf(expected.digest);
    const hash: Hash = newHash(alg);
    let written = 0;
    let done = false;
    const abort = async (): Promise<void> => {
      if (done) return;
      done = true;
      await out.flush().catch(() => undefined); // already failing: let queued writes settle before closing
      await handle.close().catch(() => undefined); // already failing; the unlink below is what matters
      await fsp.rm(tmp, { force: true });
    };
    return {
      get written() {
        return written;
      },
      async write(chunk) {
        if (expected.size !== undefined && written + chunk.length > expected.size) {
          await abort();
          fail(corrupt(label, `${expected.size} bytes`, `more than ${expected.size} bytes`));
        }
        hash.update(chunk);
        written += chunk.length;
        await out.write(chunk);
      },
      async commit() {
        const actual = digestOfHash(alg, hash);
        if (expected.digest !== undefined && actual !== expected.digest) {
          await abort();
          return fail(corrupt(label, expected.digest, actual));
        }
        if (expected.size !== undefined && written !== expected.size) {
          await abort();
          return fail(corrupt(label, `${expected.size} bytes`, `${written} bytes`));
        }
        try {
          await out.flush();
          if (durable) await sys(tmp, () => handle.sync());
          await handle.close();
          done = true;
          const dest = pathOf(actual);
          await sys(path.dirname(dest), () => fsp.mkdir(path.dirname(dest), { recursive: true }));
          await sys(dest, () => fsp.rename(tmp, dest));
          if (durable) await fsyncDir(path.dirname(dest));
        } catch (e) {
          done = false;
          await abort();
          throw e;
        }
        return { digest: actual, size: written };
      },
      abort,
    };
  };

  const ingestFile = async (): Promise<string> => {
    await sys(ingestDir, () => fsp.mkdir(ingestDir, { recursive: true }));
    return path.join(ingestDir, `${process.pid}-${randomSuffix()}`);
  };

  const adopt = async (file: string, expected: BlobInfo, actual: BlobInfo, label = `blob ${expected.digest}`, o: { marked?: boolean } = {}): Promise<BlobInfo> => {
    try {
      if (actual.digest !== expected.digest) fail(corrupt(label, expected.digest, actual.digest));
      if (actual.size !== expected.size) fail(corrupt(label, `${expected.size} bytes`, `${actual.size} bytes`));
      const dest = pathOf(actual.digest);
      await sys(path.dirname(dest), () => fsp.mkdir(path.dirname(dest), { recursive: true }));
      await sys(dest, () => fsp.rename(file, dest));
      if (durable && o.marked !== true) await fsyncDir(path.dirname(dest));
      return actual;
    } catch (e) {
      await fsp.rm(file, { force: true });
      throw e;
    }
  };

  return {
    pathOf,
    stat,
    ingestFile,
    adopt,
    has: async (d) => (await stat(d)) !== undefined,
    read: (d) => {
      dropIfLost(d);
      return createReadStream(pathOf(d), { highWaterMark: 1 << 20 });
    },
    async readAll(d, maxBytes = MAX_JSON_BLOB) {
      // manifests, indexes and configs, read by every create: sync, one stat and one read (the promise API
      // takes a thread-pool round trip for each of stat, open, fstat, read and close)
      dropIfLost(d);
      const file = pathOf(d);
      const data = await sys(file, async () => {
        const st = statSync(file, { throwIfNoEntry: false });
        if (!st) return fail(notFound('blob', d, 'pull or load the image again'));
        if (st.size > maxBytes) return fail(invalidSpec(`blob ${d}`, [`${st.size} bytes is more than the ${maxBytes} allowed for this kind of blob`]));
        return readFileSync(file);
      });
      const h = newHash(algorithmOf(d)).update(data);
      const actual = digestOfHash(algorithmOf(d), h);
      if (actual !== d) fail(corrupt(`blob ${d} on disk`, d, actual));
      return data;
    },
    writer,
    async put(data, expectedDigest, label) {
      const d = expectedDigest ?? digestOfHash('sha256', newHash('sha256').update(data));
      if ((await stat(d))?.size === data.length) {
        // content addressed: same digest and size means same content; still verify what we were given
        const h = digestOfHash(algorithmOf(d), newHash(algorithmOf(d)).update(data));
        if (h !== d) fail(corrupt(label ?? `blob ${d}`, d, h));
        return { digest: d, size: data.length };
      }
      const w = await writer({ digest: d, size: data.length }, label);
      await w.write(data);
      return w.commit();
    },
    async delete(d) {
      await sys(pathOf(d), () => fsp.rm(pathOf(d), { force: true }));
    },
    async list() {
      const out: BlobInfo[] = [];
      for (const alg of ['sha256', 'sha512']) {
        let names: string[];
        try {
          names = await fsp.readdir(path.join(blobsDir, alg));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        for (const n of names) {
          const d = `${alg}:${n}`;
          if (!isDigest(d)) continue;
          const info = await stat(d);
          if (info) out.push(info);
        }
      }
      return out;
    },
    async cleanIngest() {
      let names: string[];
      try {
        names = await fsp.readdir(ingestDir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw e;
      }
      let n = 0;
      for (const name of names) {
        const pid = Number(name.split('-')[0]);
        if (pidAlive(pid) && pid !== process.pid) continue;
        if (pid === process.pid) continue; // our own writes in flight
        await fsp.rm(path.join(ingestDir, name), { force: true });
        n++;
      }
      return n;
    },
  };
};
