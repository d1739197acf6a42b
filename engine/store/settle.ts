/**
 * Deferred durability for pulled layers and their blobs.
 *
 * A pull publishes a layer (and its compressed blob) as soon as both digests
 * check out, without waiting for the disk; one detached `sync -f` of the
 * store's filesystem then writes everything back, and only after it returns
 * are the layer's markers removed. A marker is a small file written and
 * durable before the content it names is published: an empty file whose
 * name says what, in which boot and by which process,
 *
 *   <root>/unsettled/layer-<chain hex>@<boot id>@<pid>
 *   <root>/unsettled/blob-<digest hex>@<boot id>@<pid>
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
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, constants as C } from 'node:fs';
import * as path from 'node:path';
import { sys } from '../errors.js';
import { fsyncDir, pidAlive } from './fsutil.js';

let currentBoot: string | undefined;
/** This boot's id (changes on every boot, so a marker from before a crash is told apart). */
export const bootId = (): string => (currentBoot ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());

export interface Unsettled {
  readonly dir: string;
  /**
   * Before publishing content that is not on disk yet: its markers, made
   * durable (one fsync of the directory). Names this process marked already
   * cost nothing, so a pull marks all its layers at its start (while the
   * disk is idle) and each layer's publish finds its marks there.
   */
  mark(names: readonly string[]): Promise<void>;
  /**
   * After publishing: a detached `sync -f` of the store's filesystems, then
   * removal of this process's markers and those left in this boot by
   * processes that are gone. Returns the marker files it will remove.
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
 * A marker is an empty file named `<name>@<boot id>@<pid>`: everything it
 * says is in its name, so only the directory needs to reach the disk.
 */
const parseMarker = (file: string): { name: string; boot: string; pid: number } | undefined => {
  const [name, boot, pid] = file.split('@');
  if (!name || !boot || pid === undefined || !/^\d+$/.test(pid)) return undefined;
  return { name, boot, pid: Number(pid) };
};

/**
 * Markers under `dir`; `syncPaths` are the directories whose filesystems the
 * settle syncs (the layers and the blobs).
 */
export const openUnsettled = (dir: string, syncPaths: readonly string[]): Unsettled => {
  const mine = new Set<string>();
  let lostFiles: Map<string, string[]> | undefined; // name -> marker files from earlier boots

  const list = (): string[] => {
    try {
      return readdirSync(dir);
    } catch {
      return []; // no markers: nothing was ever deferred here
    }
  };

  const scan = (): Map<string, string[]> => {
    if (lostFiles) return lostFiles;
    lostFiles = new Map();
    const boot = bootId();
    for (const f of list()) {
      const m = parseMarker(f);
      if (m && m.boot !== boot) lostFiles.set(m.name, [...(lostFiles.get(m.name) ?? []), f]);
    }
    return lostFiles;
  };

  return {
    dir,
    async mark(names) {
      const boot = bootId();
      const fresh = names.map((n) => `${n}@${boot}@${process.pid}`).filter((f) => !mine.has(f)); // marked already: durable already
      if (fresh.length === 0) return;
      await sys(dir, async () => {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        for (const f of fresh) closeSync(openSync(path.join(dir, f), C.O_WRONLY | C.O_CREAT, 0o600));
      });
      await fsyncDir(dir);
      for (const f of fresh) mine.add(f);
    },
    settle() {
      const files = new Set(mine);
      mine.clear();
      const boot = bootId();
      for (const f of list()) {
        const m = parseMarker(f);
        if (m && m.boot === boot && m.pid !== process.pid && !pidAlive(m.pid)) files.add(f); // a command killed before it settled
      }
      if (files.size === 0) return [];
      const paths = [...files].map((f) => path.join(dir, f));
      // detached: the command returns now; the sync and the removal finish without it
      const script = `sync -f -- ${syncPaths.map((_, i) => `"$${i + 1}"`).join(' ')} && shift ${syncPaths.length} && exec rm -f -- "$@"`;
      const child = spawn('sh', ['-c', script, 'berth-settle', ...syncPaths, ...paths], { detached: true, stdio: 'ignore' });
      child.on('error', () => undefined); // no sh: the markers stay, and the content counts as lost after a crash only
      child.unref();
      return paths;
    },
    lost(name) {
      const files = scan().get(name);
      if (files === undefined) return false;
      // another process of this boot may have removed the content and its marks meanwhile (and pulled it again)
      const left = files.filter((f) => existsSync(path.join(dir, f)));
      if (left.length > 0) lostFiles?.set(name, left);
      else lostFiles?.delete(name);
      return left.length > 0;
    },
    forget(name) {
      for (const f of lostFiles?.get(name) ?? []) rmSync(path.join(dir, f), { force: true });
      lostFiles?.delete(name);
    },
    lostNames: () => [...scan().keys()],
  };
};
