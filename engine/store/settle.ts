/**
 * Deferred durability for pulled layers and their blobs.
 *
 * A pull publishes a layer (and its compressed blob) as soon as both digests
 * check out, without waiting for the disk; one detached `sync -f` of the
 * store's filesystem then writes everything back, and only after it returns
 * are the layer's markers removed. A marker is a small file written and
 * fsynced before the content it names is published:
 *
 *   <root>/unsettled/layer-<chain hex>   "<boot id> <pid>\n"
 *   <root>/unsettled/blob-<digest hex>
 *
 * So after a power loss or a kernel crash, content that may not have reached
 * the disk is known: its marker names an earlier boot. The first command
 * that looks at the store in the new boot removes that content and its
 * marker (the image then needs a pull again, which says so), instead of
 * mounting a layer whose files may be empty. A killed command loses nothing
 * (the page cache still holds the data): its markers carry this boot's id
 * and a dead pid, and the next pull's settle takes them over.
 *
 * containerd, Docker and Podman publish unpacked layers without any sync
 * (containerd has `image_pull_with_sync_fs` to opt in); this keeps their
 * speed and adds the guarantee that nothing half-written is ever used.
 * BERTH_DURABLE=sync syncs before publishing instead (the pull waits for the
 * disk); BERTH_DURABLE=0 neither syncs nor marks.
 */
import { spawn } from 'node:child_process';
import { closeSync, fsync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync, constants as C } from 'node:fs';
import * as path from 'node:path';
import { sys } from '../errors.js';
import { fsyncDir, pidAlive } from './fsutil.js';

let currentBoot: string | undefined;
/** This boot's id (changes on every boot, so a marker from before a crash is told apart). */
export const bootId = (): string => (currentBoot ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());

export interface Unsettled {
  readonly dir: string;
  /** Before publishing content that is not on disk yet: its marker, fsynced (file and directory). */
  mark(name: string): Promise<void>;
  /**
   * After publishing: a detached `sync -f` of the store's filesystems, then
   * removal of this process's markers and those left in this boot by
   * processes that are gone. Returns the markers it will remove.
   */
  settle(): string[];
  /**
   * Whether content was published in an earlier boot and never settled: it
   * may be incomplete on disk. Content found lost must be removed, then
   * `forget` called.
   */
  lost(name: string): boolean;
  /** Drops the marker of lost content once the content is removed. */
  forget(name: string): void;
  /** The names of every lost marker still there (GC drops those whose content is gone). */
  lostNames(): string[];
}

/**
 * Markers under `dir`; `syncPaths` are the directories whose filesystems the
 * settle syncs (the layers and the blobs).
 */
export const openUnsettled = (dir: string, syncPaths: readonly string[]): Unsettled => {
  const mine = new Set<string>();
  let lostNames: Set<string> | undefined;

  const scan = (): Set<string> => {
    if (lostNames) return lostNames;
    lostNames = new Set();
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return lostNames; // no markers: nothing was ever deferred here
    }
    const boot = bootId();
    for (const n of names) {
      if (n.startsWith('.')) continue;
      let content: string;
      try {
        content = readFileSync(path.join(dir, n), 'utf8');
      } catch {
        continue; // settled meanwhile
      }
      // an empty marker is one whose write did not reach the disk: its content was never published after it
      if (content.split(' ')[0] !== boot) lostNames.add(n);
    }
    return lostNames;
  };

  return {
    dir,
    async mark(name) {
      const file = path.join(dir, name);
      await sys(file, async () => {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const fd = openSync(file, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
        try {
          writeSync(fd, `${bootId()} ${process.pid}\n`);
          await new Promise<void>((resolve, reject) => fsync(fd, (e) => (e ? reject(e) : resolve())));
        } finally {
          closeSync(fd);
        }
      });
      await fsyncDir(dir);
      mine.add(name);
    },
    settle() {
      const names = new Set(mine);
      mine.clear();
      let all: string[] = [];
      try {
        all = readdirSync(dir);
      } catch {
        // none
      }
      const boot = bootId();
      for (const n of all) {
        if (names.has(n) || n.startsWith('.')) continue;
        try {
          const [b, pid] = readFileSync(path.join(dir, n), 'utf8').trim().split(' ');
          if (b === boot && !pidAlive(Number(pid))) names.add(n); // a command killed before it settled
        } catch {
          // settled meanwhile
        }
      }
      if (names.size === 0) return [];
      const files = [...names].map((n) => path.join(dir, n));
      // detached: the command returns now; the sync and the removal finish without it
      const script = `sync -f -- ${syncPaths.map((_, i) => `"$${i + 1}"`).join(' ')} && shift ${syncPaths.length} && exec rm -f -- "$@"`;
      const child = spawn('sh', ['-c', script, 'berth-settle', ...syncPaths, ...files], {
        detached: true,
        stdio: 'ignore',
      });
      child.on('error', () => undefined); // no sh: the markers stay, and the content counts as lost after a crash only
      child.unref();
      return files;
    },
    lost: (name) => scan().has(name),
    lostNames: () => [...scan()],
    forget(name) {
      lostNames?.delete(name);
      try {
        unlinkSync(path.join(dir, name));
      } catch {
        // gone already
      }
    },
  };
};

/** Removes a directory tree now (recovery of lost content; rare, so synchronous). */
export const removeTree = (p: string): void => rmSync(p, { recursive: true, force: true });
