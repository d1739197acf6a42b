/**
 * The container runtime: ContainerApi over records, OCI bundles, one
 * berth-shim per running container, and the OCI runtime's CLI.
 *
 * Start, in order (each step can be found and undone by the next command
 * after a crash, see `recover`):
 *   1. network setup (idempotent per container)
 *   2. overlay of the image chain + upper/work mounted privately at rootfs
 *   3. user lookup, volumes (copy-up), config.json
 *   4. berth-shim runs `runtime create` (the container's mount namespace now
 *      holds its own copy of the rootfs mount)
 *   5. the host's rootfs mount is detached: no mount stays on the host while
 *      the container runs, and none needs undoing when it exits
 *   6. record written (running), `runtime start`
 * The shim is started with --rm: at exit it deletes the runtime state (and
 * the cgroup), writes exit.json, and goes away. The next command that looks
 * at the container collects the exit into the record (`collect`).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync, chownSync, closeSync, existsSync, linkSync, fsyncSync, lstatSync, mkdirSync, openSync, promises as fsp, readdirSync, readFileSync, renameSync, rmSync,
  statSync, utimesSync, writeFileSync, type Stats,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type {
  ContainerApi, ContainerFilter, ContainerInfo, ContainerSpec, ContainerState, ContainerStats, EngineEvent, EngineRoots,
  ExecSpec, HealthcheckSpec, LogLine, MountSpec, ResourceSpec, RestartPolicy,
} from '../engine.js';
import { conflict, EngineFailure, fail, invalidSpec, notFound, toEngineError, unsupported } from '../errors.js';
import type { ContainerNetworking, NetworkNamespaceReady, NetworkSetupResult } from '../services.js';
import type { Digest } from '../store/digest.js';
import { pathUnder, withLock } from '../store/fsutil.js';
import type { Store } from '../store/store.js';
import type { VolumeStore } from '../volume/volumes.js';
import { attach, waitExitLine, type AttachSession, type AttachStreams } from './attach.js';
import { resolveInRoot } from './inroot.js';
import { mountPrivate, runtimeCli, startShim, unmountIfMounted, unmountSoon, type RuntimeCli } from './invoke.js';
import { startFromFifo } from './fifo-start.js';
import { execProgram, helperSealedExe, prefetchSealedExe } from './helper.js';
import { layoutOf, nativeDir, type ContainerPaths } from './layout.js';
import type { LogOptions } from './logs.js';
import { buildOciConfig, signalNumber, type OciDevice, type OciMount } from './oci-spec.js';
import { readRecord, writeRecord, writeRunningRecord, type ImageDefaults, type Record as CRecord, type RunState } from './record.js';
import { checkSpec } from './spec-check.js';
import { trace } from './trace.js';
import type { RuntimeStats } from './stats.js';
import { resolveUser } from './user.js';
import { isoTime } from '../time.js';

export interface ContainerRuntimeOptions {
  readonly roots: EngineRoots;
  readonly images: Store;
  readonly volumes: VolumeStore;
  readonly networking?: ContainerNetworking;
  /** The container's current network endpoint (after connect/disconnect), for inspect; absent: the record's, from start. */
  readonly networkInfo?: (containerId: string) => Promise<NetworkSetupResult | undefined>;
  /** OCI runtime executable (runc's CLI). Default: berth-runtime. */
  readonly runtime?: string;
  readonly shim?: string;
  readonly init?: string;
  readonly emit?: (ev: EngineEvent) => void;
  /**
   * The berth command for these roots (argv before the verb), asked for at a start without attach:
   * that container's shim runs it with `container cleanup <id>` when the container exits, so that
   * its network and mounts go then, not at the next command. Absent or undefined: they go then.
   */
  readonly exitCommand?: () => readonly string[] | undefined;
}

export interface ExitInfo {
  readonly exitCode: number;
  readonly exitedAt?: string;
  readonly oomKilled?: boolean;
  readonly signal?: string | null;
}

export interface ContainerRuntime extends ContainerApi {
  /** Start and attach before the process runs (Docker's `run` without -d, `start -a`). */
  startAttached(ref: string, streams: AttachStreams): Promise<{ session: AttachSession; id: string }>;
  attachContainer(ref: string, streams: AttachStreams): Promise<AttachSession>;
  /** Processes of a running container (pids in the host's pid namespace). */
  topContainer(ref: string): Promise<number[]>;
  /** The container's upper dir and rootfs access for diff/cp/export/commit. */
  pathsOf(ref: string): Promise<{ id: string; paths: ContainerPaths; running: boolean; pid?: number; chain: readonly string[] }>;
  /** Ids of containers using each named volume. */
  volumeUsers(): Promise<Map<string, string[]>>;
  /** Chain IDs of every container's image (their layers are the containers' lowers). */
  chainsInUse(): Promise<string[]>;
}

const now = (): string => isoTime();


/** A process exists and is not a zombie (an exited shim waits for its reaper, pid 1, which may be slow). */
const pidAlive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Entries up to which a tree is removed with one sync call (removeTree). */
const SMALL_TREE = 64;

/** Whether `dir` holds at most `limit` entries, all levels counted (reads at most limit + 1 of them). */
const smallTree = (dir: string, limit: number): boolean => {
  let seen = 0;
  const walk = (d: string): boolean => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return true; // gone or unreadable: the removal reports what matters
    }
    for (const e of entries) {
      if (++seen > limit) return false;
      if (e.isDirectory() && !walk(pathUnder(d, e.name))) return false;
    }
    return true;
  };
  return walk(path.normalize(dir));
};

/**
 * Removes a container's dir. One that the container wrote little into (its
 * upper dir, a few mount points and the engine's files: `run --rm` of a
 * short command) goes with one sync call, ~1 ms; the promise API's
 * recursive removal takes a thread-pool round trip per entry, ~15 ms for
 * the same tree with a process's start-up beside it. A bigger tree goes
 * through the promise API, so that other work (apply's other containers)
 * is not held up while it is removed.
 */
const removeTree = async (dir: string): Promise<void> => {
  if (smallTree(dir, SMALL_TREE)) rmSync(dir, { recursive: true, force: true });
  else await fsp.rm(dir, { recursive: true, force: true });
};
/**
 * A small file's text, or `fallback` when it cannot be read (sync: the hot
 * path reads many of these). A missing file is found with a stat that does
 * not throw: a failed read makes an Error with its stack, ~10x the syscall.
 */
const readTextOr = <F>(file: string, fallback: F): string | F => {
  if (!statSync(file, { throwIfNoEntry: false })) return fallback;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
};
const newId = (): string => randomBytes(32).toString('hex');

const readJson = async <A>(file: string): Promise<A | undefined> => {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as A; // small state files: sync (a promise read costs ~25x the CPU)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || e instanceof SyntaxError) return undefined;
    throw e;
  }
};

/**
 * Marks a new directory as a top of hierarchy for the ext2/3/4 allocator
 * (`chattr +T`), so that each directory made in it starts in a block group
 * of its own choosing (Orlov) instead of the parent's. Without a journal,
 * ext4 skips every inode freed in the last 60-300 s when it allocates one,
 * scanning past them one by one; with every container's directories in the
 * one group of <root>/containers, each create paid for all the containers
 * removed before it (apply of 50 after a few others: 0.94 -> 0.78 s median,
 * bench/stack/RESULTS-section.md). A hint only: other file systems, or no
 * chattr, leave the directory as it is.
 */
const spreadSubdirectories = async (dir: string): Promise<void> => {
  await execProgram(['chattr', '+T', dir]).catch(() => undefined);
};

const envKey = (e: string): string => e.split('=', 1)[0] as string;
const mergeEnv = (base: readonly string[], over: readonly string[]): string[] => {
  const out = new Map<string, string>();
  for (const e of [...base, ...over]) out.set(envKey(e), e);
  return [...out.values()];
};

/** The image's HEALTHCHECK (Docker's config: durations in nanoseconds) as a spec. */
const imageHealthcheck = (h: unknown): HealthcheckSpec | undefined => {
  if (typeof h !== 'object' || h === null) return undefined;
  const o = h as { Test?: unknown; Interval?: unknown; Timeout?: unknown; Retries?: unknown; StartPeriod?: unknown };
  if (!Array.isArray(o.Test) || !o.Test.every((x) => typeof x === 'string') || o.Test.length === 0) return undefined;
  const ms = (v: unknown): number | undefined => (typeof v === 'number' && v > 0 ? Math.round(v / 1e6) : undefined);
  const interval = ms(o.Interval);
  const timeout = ms(o.Timeout);
  const start = ms(o.StartPeriod);
  return {
    test: o.Test as string[],
    ...(interval !== undefined ? { intervalMs: interval } : {}),
    ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
    ...(typeof o.Retries === 'number' && o.Retries > 0 ? { retries: o.Retries } : {}),
    ...(start !== undefined ? { startPeriodMs: start } : {}),
  };
};


export const openContainerRuntime = (o: ContainerRuntimeOptions): ContainerRuntime => {
  const L = layoutOf(o.roots);
  const native = nativeDir();
  const runtimePath = o.runtime ?? path.join(native, 'berth-runtime');
  const shimPath = o.shim ?? path.join(native, 'berth-shim');
  const initPath = o.init ?? path.join(native, 'berth-init');
  const runtimes = new Map<string, RuntimeCli>();
  /** The runtime a container was created with (runc's CLI: berth-runtime, runc). */
  const rtOf = (rec: { runtime: string }): RuntimeCli => {
    let r = runtimes.get(rec.runtime);
    if (!r) runtimes.set(rec.runtime, (r = runtimeCli(rec.runtime, L.runtimeRoot)));
    return r;
  };
  const emit = (ev: EngineEvent): void => o.emit?.(ev);
  const cEvent = (action: Extract<EngineEvent, { type: 'container' }>['action'], rec: CRecord, exitCode?: number): void =>
    emit({ type: 'container', action, id: rec.id, name: rec.name, time: now(), ...(exitCode !== undefined ? { exitCode } : {}) });

  let dirsReady = false;
  const ensureDirs = async (): Promise<void> => {
    if (dirsReady) return;
    // sync: they exist but for a root's first container (a failed mkdir each; the thread pool's first use: ~0.5 ms)
    if (mkdirSync(L.containersDir, { recursive: true, mode: 0o711 }) !== undefined) await spreadSubdirectories(L.containersDir);
    for (const d of [L.namesDir, L.shimsDir, L.runtimeRoot, L.locksDir, L.bundlesDir]) mkdirSync(d, { recursive: true, mode: 0o711 });
    dirsReady = true;
  };
  const locked = async <A>(id: string, fn: () => Promise<A>): Promise<A> => {
    await ensureDirs();
    return withLock(L.container(id).lock, `container ${id.slice(0, 12)}`, fn);
  };

  /* ---------------------------------------------------------------- lookup */

  const listIds = async (): Promise<string[]> => {
    try {
      return (await fsp.readdir(L.containersDir)).filter((n) => /^[0-9a-f]{64}$/.test(n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  };

  /**
   * The container a name entry names. An entry is the ID as text (rename, and
   * every entry before 2026-11-23), or a hard link to the file of the
   * container's first record (create: a name that costs no inode of its own,
   * see reserveName): its `id`. Undefined: no entry, or one that names nothing.
   */
  const nameOwner = async (name: string): Promise<string | undefined> => {
    let text: string;
    try {
      text = readFileSync(path.join(L.namesDir, name), 'utf8');
    } catch {
      return undefined;
    }
    if (!text.startsWith('{')) return text.trim();
    try {
      const id = (JSON.parse(text) as { id?: unknown }).id;
      return typeof id === 'string' ? id : undefined;
    } catch {
      return undefined;
    }
  };

  /** Full ID for a ref: exact ID, name, or unique ID prefix. */
  const resolveId = async (ref: string): Promise<string> => {
    const r = ref.replace(/^\//, '');
    if (/^[0-9a-f]{64}$/.test(r) && existsSync(L.container(r).record)) return r; // else maybe a name
    const owner = await nameOwner(r);
    // (a name whose container has no record: a stale entry from an interrupted create or rm)
    if (owner !== undefined && existsSync(L.container(owner).record)) return owner;
    if (/^[0-9a-f]+$/.test(r)) {
      const hits = (await listIds()).filter((id) => id.startsWith(r));
      if (hits.length > 1) fail(conflict('container', ref, `ambiguous ID prefix matches ${hits.length} containers; give more characters`));
      if (hits[0] !== undefined) return hits[0];
    }
    return fail(notFound('container', ref, 'see `berth ps -a`'));
  };

  /* ----------------------------------------------------------------- state */

  /** A socket in the shim's state dir, by a path short enough for sun_path:
   *  through the shim's cwd (which is its state dir) when the real one is too long. */
  const shimSock = (p: ContainerPaths, shimPid: number | undefined, name: 'shim.sock' | 'attach.sock'): string => {
    const full = path.join(p.shimDir, name);
    return full.length < 100 || shimPid === undefined ? full : `/proc/${shimPid}/cwd/${name}`;
  };

  const exitOf = async (p: ContainerPaths): Promise<ExitInfo | undefined> => readJson<ExitInfo>(p.exitFile);

  const shimAlive = async (p: ContainerPaths, rec: CRecord): Promise<boolean> =>
    rec.state.shimPid !== undefined && pidAlive(rec.state.shimPid) && existsSync(path.join(p.shimDir, 'shim.pid'));

  /** The truth about a record: its own state plus the shim's exit record. */
  const observe = async (rec: CRecord): Promise<{ state: ContainerState; exit?: ExitInfo }> => {
    const s = rec.state;
    const base = { restartCount: s.restartCount, ...(s.startedAt ? { startedAt: s.startedAt } : {}), ...(s.error ? { error: s.error } : {}) };
    if (!s.running) {
      const status = s.startedAt !== undefined || s.finishedAt !== undefined ? 'exited' : 'created';
      return {
        state: {
          ...base, status,
          ...(s.exitCode !== undefined ? { exitCode: s.exitCode } : {}),
          ...(s.finishedAt ? { finishedAt: s.finishedAt } : {}),
          ...(s.oomKilled !== undefined ? { oomKilled: s.oomKilled } : {}),
        },
      };
    }
    const p = L.container(rec.id);
    let exit = await exitOf(p);
    if (!exit) {
      const alive = (s.pid !== undefined && pidAlive(s.pid)) || (await shimAlive(p, rec));
      if (alive) return { state: { ...base, status: s.paused ? 'paused' : 'running', ...(s.pid !== undefined ? { pid: s.pid } : {}) } };
      exit = await exitOf(p);
      if (!exit) return { state: { ...base, status: 'dead', exitCode: 255, error: 'the container\'s shim is gone and left no exit record' }, exit: { exitCode: 255 } };
    }
    return {
      state: { ...base, status: 'exited', exitCode: exit.exitCode, ...(exit.exitedAt ? { finishedAt: exit.exitedAt } : {}), oomKilled: exit.oomKilled === true },
      exit,
    };
  };

  /** Until `pid` is gone (at most `ms`): the shim exits a moment after it sent the exit line, so the first polls come fast. */
  const waitPidGone = async (pid: number, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    for (let wait = 1; pidAlive(pid) && Date.now() < deadline; wait = Math.min(wait * 2, 20)) await sleep(wait);
  };

  const waitShimGone = async (rec: CRecord, ms = 3000): Promise<void> => {
    if (rec.state.shimPid !== undefined) await waitPidGone(rec.state.shimPid, ms);
  };

  /** Under the lock: fold an observed exit into the record and release what the run held. */
  const collect = async (rec: CRecord, persist = true): Promise<CRecord> => {
    if (!rec.state.running) return rec;
    const { state, exit } = await observe(rec);
    if (!exit) return rec;
    const p = L.container(rec.id);
    // the shim reports the exit before it deletes the runtime state: the network goes meanwhile
    const network = o.networking && needsNetworking(rec.spec) ? o.networking.teardown(rec.id) : Promise.resolve();
    const runtime = (async () => {
      await waitShimGone(rec);
      trace('collect: shim gone');
      if (await hasRuntimeState(rec.id)) await rtOf(rec).try(['delete', '--force', rec.id]); // normally done by the shim (--rm)
    })();
    const failed = (await Promise.allSettled([runtime, network])).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    trace('collect: network released');
    await unmountIfMounted(p.rootfs);
    const next: CRecord = {
      ...rec,
      state: {
        running: false, restartCount: rec.state.restartCount,
        ...(rec.state.startedAt ? { startedAt: rec.state.startedAt } : {}),
        finishedAt: state.finishedAt ?? now(), exitCode: exit.exitCode,
        ...(exit.oomKilled ? { oomKilled: true } : {}),
        ...(state.error ? { error: state.error } : {}),
      },
    };
    if (persist) await writeRecord(p.record, next); // not when the record is about to go (rm)
    await removeShimDir(p);
    if (exit.oomKilled) cEvent('oom', rec);
    cEvent('die', rec, exit.exitCode);
    return next;
  };

  /** The runtime keeps state for the container (runc and berth-runtime: <root>/<id>). */
  const hasRuntimeState = async (id: string): Promise<boolean> => existsSync(pathUnder(L.runtimeRoot, id));

  const needsNetworking = (spec: ContainerSpec): boolean => {
    const m = spec.networkMode ?? 'bridge';
    return m !== 'none' && m !== 'host';
  };

  /** The shim's state dir, once its shim (if any) is gone: a shim still
   *  finishing writes into it (exit.json, then removes shim.pid). */
  const removeShimDir = async (p: ContainerPaths): Promise<void> => {
    if (!existsSync(p.shimDir)) return; // never started, or collected: the usual case before a start
    const pid = Number(readTextOr(path.join(p.shimDir, 'shim.pid'), '').trim());
    if (Number.isInteger(pid) && pid > 0) await waitPidGone(pid, 3000);
    for (let attempt = 0; ; attempt++) {
      try {
        rmSync(p.shimDir, { recursive: true, force: true });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || attempt >= 20) throw e;
        await sleep(20);
      }
    }
  };

  /** The rootfs mount point of a container started by an older Berth (in its dir, see layout.ts), if mounted. */
  const unmountLegacy = async (p: ContainerPaths): Promise<void> => {
    if (existsSync(p.legacyRootfs)) await unmountIfMounted(p.legacyRootfs);
  };

  /** Remove everything of a container (record last but one, name last). */
  const destroy = async (rec: CRecord, removeVolumes: boolean): Promise<void> => {
    const p = L.container(rec.id);
    trace('rm: destroy');
    if (await hasRuntimeState(rec.id)) await rtOf(rec).try(['delete', '--force', rec.id]);
    if (o.networking && needsNetworking(rec.spec)) await o.networking.teardown(rec.id);
    trace('rm: runtime state, networking');
    await unmountIfMounted(p.rootfs);
    await unmountLegacy(p);
    rmSync(p.bundle, { recursive: true, force: true });
    await removeShimDir(p);
    trace('rm: rootfs, shim dir');
    // the record goes first: a crash after it leaves a dir that listIds finds without a record, and rm cleans
    rmSync(p.record, { force: true });
    const mode = rec.spec.networkMode ?? 'bridge';
    if (mode.startsWith('container:')) forgetSharer(mode.slice('container:'.length), rec.id);
    await removeTree(p.dir); // the upper dir: as big as what the container wrote
    trace('rm: container dir');
    if ((await nameOwner(rec.name)) === rec.id) rmSync(path.join(L.namesDir, rec.name), { force: true });
    if (removeVolumes) for (const v of rec.anonymousVolumes ?? []) await o.volumes.removeVolume(v, { force: true }).catch(() => undefined);
    cEvent('destroy', rec);
  };

  /** A running container's networks and ports as networking has them now (connect/disconnect change
   *  them after start); the record's start-time copy when networking has none. */
  const currentNetworks = async (rec: CRecord): Promise<CRecord> => {
    if (!o.networkInfo || !needsNetworking(rec.spec)) return rec;
    const now = await o.networkInfo(rec.id).catch(() => undefined);
    return now ? { ...rec, networks: now.networks, ports: now.ports } : rec;
  };

  const info = (rec: CRecord, state: ContainerState): ContainerInfo => ({
    id: rec.id,
    name: rec.name,
    created: rec.created,
    image: rec.image,
    imageId: rec.imageId,
    spec: rec.spec,
    state,
    networks: rec.networks ?? {},
    ports: rec.ports ?? [],
  });

  /* ---------------------------------------------------------------- create */

  /** Whether `file` was last changed before this boot (mtime older than the boot time, with a second's slack). */
  const fromEarlierBoot = (file: string): boolean => {
    try {
      return statSync(file).mtimeMs < Date.now() - os.uptime() * 1000 - 1000;
    } catch {
      return false;
    }
  };

  /**
   * Takes `name` for `id`: an entry made with O_EXCL, or, with `linkFrom`, a
   * hard link to that file (the new container's record, complete and synced:
   * link(2) fails with EEXIST like O_EXCL, and allocates no inode; on this
   * host's ext4 each new inode costs 0.2-1.2 ms of system CPU while the host
   * churns through files). The linked record keeps its inode when the record
   * is replaced later; the entry goes at rm.
   */
  const reserveName = async (name: string, id: string, linkFrom?: string): Promise<void> => {
    const file = path.join(L.namesDir, name);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        if (linkFrom !== undefined) linkSync(linkFrom, file);
        else writeFileSync(file, id, { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const owner = await nameOwner(name);
        const hasRecord = owner !== undefined && /^[0-9a-f]{64}$/.test(owner) && existsSync(L.container(owner).record);
        // a create in progress holds its container's lock until the record is written
        const lockHolder = owner ? Number(readTextOr(L.container(owner).lock, '').trim()) : NaN;
        const creating = Number.isInteger(lockHolder) && lockHolder > 0 && pidAlive(lockHolder);
        // empty: a create writing it now, unless it is from before this boot (what a power loss
        // can leave of an --rm container's create, which is not fsynced)
        const emptyInUse = owner === '' && !fromEarlierBoot(file);
        if (hasRecord || creating || emptyInUse) {
          fail(conflict('container name', `/${name}`, `already in use by container ${owner?.slice(0, 12)}; remove or rename that container, or choose another name`));
        }
        // a stale entry: its container is gone, or its create was interrupted before the record
        if (owner && /^[0-9a-f]{64}$/.test(owner)) await fsp.rm(L.container(owner).dir, { recursive: true, force: true });
        await fsp.rm(file, { force: true });
      }
    }
    fail(conflict('container name', `/${name}`, 'could not be reserved'));
  };

  const ADJ = ['brave', 'calm', 'eager', 'fond', 'keen', 'lucid', 'merry', 'quiet', 'swift', 'wise', 'bold', 'jolly'];
  const NOUN = ['otter', 'heron', 'lynx', 'finch', 'orca', 'ibis', 'wren', 'puffin', 'tern', 'seal', 'gull', 'skua'];
  const randomName = (): string => `${ADJ[randomBytes(1)[0]! % ADJ.length]}_${NOUN[randomBytes(1)[0]! % NOUN.length]}_${randomBytes(2).toString('hex')}`;

  const imageDefaultsOf = (cfg: NonNullable<Awaited<ReturnType<Store['resolve']>>['config']['config']>): ImageDefaults => ({
    ...(cfg.Entrypoint ? { entrypoint: [...cfg.Entrypoint] } : {}),
    ...(cfg.Cmd ? { cmd: [...cfg.Cmd] } : {}),
    ...(cfg.Env ? { env: [...cfg.Env] } : {}),
    ...(cfg.WorkingDir ? { workingDir: cfg.WorkingDir } : {}),
    ...(cfg.User ? { user: cfg.User } : {}),
    ...(cfg.Volumes ? { volumes: Object.keys(cfg.Volumes) } : {}),
    ...(cfg.ExposedPorts ? { exposedPorts: Object.keys(cfg.ExposedPorts) } : {}),
    ...(cfg.StopSignal ? { stopSignal: cfg.StopSignal } : {}),
  });

  /**
   * The container whose network a `container:<ref>` container shares: it
   * must exist (create) and run (start), with a network namespace of
   * Berth's networking (bridge or a user-defined network).
   */
  const networkOwner = async (ref: string, mustRun: boolean): Promise<{ rec: CRecord; pid?: number }> => {
    const id = await resolveId(ref).catch((e: unknown) => {
      const te = toEngineError(e);
      return te._tag === 'NotFound' ? fail(notFound('container', ref, `named in --network container:${ref}; see \`berth ps -a\``)) : Promise.reject(e);
    });
    const owner = await readRecord(L.container(id).record, id);
    const m = owner.spec.networkMode ?? 'bridge';
    if (m.startsWith('container:')) fail(conflict('container', owner.name, `shares the network of another container (${m}); join that one instead`));
    if (!mustRun) return { rec: owner };
    const st = (await observe(owner)).state;
    if ((st.status !== 'running' && st.status !== 'paused') || st.pid === undefined)
      fail(conflict('container', owner.name, `is not running (${st.status}): start it before a container that shares its network (--network container:${ref})`));
    return { rec: owner, pid: st.pid };
  };

  /** Top chain IDs whose layers this process saw unpacked, until when it need not look again (createContainer). */
  const unpackedChains = new Map<string, number>();

  /*
   * Who shares whose network (--network container:<id>) is kept as an empty
   * file per sharer in the owner's dir, `<owner>/sharers/<sharer>`, made
   * before the sharer's record and removed after it: every sharer has its
   * file, and a file whose record is gone is ignored. An rm then reads the
   * records of its sharers only, instead of every container's record (~0.1
   * ms each: 97 ms of a `run --rm` among 1,000 containers). A root from
   * before the files (no `sharers-indexed` in the containers dir) gets them
   * from one scan of every record, the first time an rm asks.
   */
  const sharersDir = (owner: string): string => pathUnder(L.container(owner).dir, 'sharers');
  const sharersIndexed = (): string => pathUnder(L.containersDir, 'sharers-indexed');
  /** False when the owner's dir is gone (removed meanwhile): its dir is not made again. */
  const noteSharer = (owner: string, sharer: string): boolean => {
    try {
      mkdirSync(sharersDir(owner), { mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code !== 'EEXIST') throw e;
    }
    writeFileSync(pathUnder(sharersDir(owner), sharer), '');
    return true;
  };
  const forgetSharer = (owner: string, sharer: string): void => rmSync(pathUnder(sharersDir(owner), sharer), { force: true });
  const indexSharers = async (): Promise<void> => {
    if (existsSync(sharersIndexed())) return;
    for (const other of await listIds()) {
      const mode = (await readRecord(L.container(other).record, other).catch(() => undefined))?.spec.networkMode;
      if (mode?.startsWith('container:')) noteSharer(mode.slice('container:'.length), other);
    }
    try {
      writeFileSync(sharersIndexed(), '');
    } catch {
      // not written (no containers dir yet): the next rm scans again
    }
  };

  /** Running containers sharing the network of `id` (--network container:<id>), other than itself. */
  const networkSharers = async (id: string): Promise<CRecord[]> => {
    await indexSharers();
    const out: CRecord[] = [];
    const want = `container:${id}`;
    let ids: string[] = [];
    try {
      ids = readdirSync(sharersDir(id));
    } catch {
      // none
    }
    for (const other of ids) {
      if (other === id) continue;
      const rec = await readRecord(L.container(other).record, other).catch(() => undefined);
      if (rec?.spec.networkMode !== want) continue;
      const st = (await observe(rec)).state.status;
      if (st === 'running' || st === 'paused') out.push(rec);
    }
    return out;
  };

  const createContainer = async (input: ContainerSpec): Promise<ContainerInfo> => {
    trace('create: begin');
    const spec = checkSpec(input);
    if (spec.security?.seccomp && !['default', 'unconfined'].includes(spec.security.seccomp)) {
      const prof = await readJson<unknown>(spec.security.seccomp);
      if (prof === undefined || typeof prof !== 'object') fail(invalidSpec('security-opt', [`seccomp profile ${spec.security.seccomp}: not a readable JSON file`]));
    }
    const mode = spec.networkMode ?? 'bridge';
    if (needsNetworking(spec) && !o.networking) fail(unsupported(`network mode ${JSON.stringify(mode)}: this engine has no networking; use --network none or host`));
    const sharedWith = mode.startsWith('container:') ? (await networkOwner(mode.slice('container:'.length), false)).rec : undefined;
    // `berth run` started the helper: the start's sealed runtime is made while this create runs
    if (path.basename(runtimePath) === 'berth-runtime') prefetchSealedExe(runtimePath);
    const img = await o.images.resolve(spec.image);
    // looked at once a minute per chain (an apply's creates share one look: each is a promise read per
    // layer): a named image's layers stay (GC keeps them), lost ones are found by a process's first look
    // after a reboot (the store's settle marks), and a start whose layer went anyway fails naming it
    const top = img.chain[img.chain.length - 1];
    if (top === undefined || (unpackedChains.get(top) ?? 0) < Date.now()) {
      await o.images.unpack(img);
      if (top !== undefined) {
        if (unpackedChains.size >= 1024) unpackedChains.clear();
        unpackedChains.set(top, Date.now() + 60_000);
      }
    }
    trace('create: image resolved');
    const defaults = imageDefaultsOf(img.config.config ?? {});
    const healthcheck = spec.healthcheck ?? imageHealthcheck(img.config.config?.Healthcheck);
    const entry = spec.entrypoint ?? defaults.entrypoint ?? [];
    const cmd = spec.command ?? (spec.entrypoint !== undefined ? [] : defaults.cmd ?? []);
    const args = [...entry, ...cmd];
    if (args.length === 0) fail(invalidSpec('container spec', ['no command specified: the image has no CMD or ENTRYPOINT; give one']));
    await ensureDirs();
    const id = newId();
    const name = spec.name ?? randomName();
    const p = L.container(id);
    return locked(id, async () => {
      let reserved = false;
      try {
        // in the thread pool: a new inode costs 0.5-2 ms of kernel work on a churned ext4, which the
        // main thread would otherwise wait out while every other container's work waits with it
        await fsp.mkdir(p.dir, { mode: 0o710 });
        await Promise.all([p.upper, p.work].map((d) => fsp.mkdir(d, { mode: 0o755 }))); // the rootfs mount point is the bundle's (start)
        // before the record: every sharer has its file
        if (sharedWith && !noteSharer(sharedWith.id, id)) fail(notFound('container', sharedWith.name, 'it was removed meanwhile; the network to share is gone'));
        const rec: CRecord = {
          id, name, created: now(), image: spec.image, imageId: img.id, chain: [...img.chain],
          spec: { ...spec, name, ...(healthcheck ? { healthcheck } : {}), ...(sharedWith ? { networkMode: `container:${sharedWith.id}` } : {}) }, imageDefaults: defaults, runtime: runtimePath, args,
          state: { running: false, restartCount: 0 },
        };
        // the name is taken by linking the record's temp file (synced, not yet named): see reserveName
        await writeRecord(p.record, rec, async (tmp) => {
          await reserveName(name, id, tmp);
          reserved = true;
        }, spec.autoRemove !== true);
        trace('create: record written');
        cEvent('create', rec);
        return info(rec, (await observe(rec)).state);
      } catch (e) {
        await fsp.rm(p.dir, { recursive: true, force: true });
        if (reserved) await fsp.rm(path.join(L.namesDir, name), { force: true });
        if (sharedWith) forgetSharer(sharedWith.id, id);
        throw e;
      }
    });
  };

  /* ------------------------------------------------------------ init layer */

  /**
   * Every start binds files over /etc/hosts, /etc/hostname and
   * /etc/resolv.conf, and the runtime creates the mount targets an image
   * lacks. In the container's upper dir, that is a copy-up of /etc and three
   * files: four inodes on the root's file system per container, ~1 ms each
   * on this host's ext4 while the host churns through files (a quarter of
   * the container init's CPU in an apply of 50). Like Docker's init layer,
   * but one per image chain, shared by its containers: a read-only lower
   * above the image's layers holding /etc (owner, mode and times of the
   * image's) and the missing targets, empty.
   *
   * <root>/layers/<top chain ID hex>/init/etc/{hosts,hostname,resolv.conf}
   *
   * beside the chain's unpacked layer (`diff/`), so that it goes when the
   * layer store removes the chain (image removal, prune): nothing to
   * collect of its own. (Berth before 2026-11-23 kept it in
   * <root>/containers/.init/, which nothing removes: `system reset` does.)
   *
   * Built the second time this process starts a container of a chain (a
   * chain started once, such as a build step's, gets none), from the layer
   * dirs (no mount), synced, then renamed into place; used by every start
   * from then on, in any process. What it holds is a cache of the image's
   * content: getting an entry wrong either way only puts back the old
   * behaviour (the runtime creates a target) or an empty file that the
   * bind mount covers anyway.
   */
  const INIT_TARGETS = ['hosts', 'hostname', 'resolv.conf'] as const;
  const chainsStarted = new Set<string>();
  /** Chains whose image needs no init layer (has every target, or no /etc directory). */
  const noInitLayer = new Set<string>();

  const isWhiteout = (st: Stats): boolean => st.isCharacterDevice() && st.rdev === 0;

  /** The image's /etc (its top-most entry), if a directory, and the targets missing from it. */
  const imageEtc = (chain: readonly Digest[]): { etc: Stats; missing: string[] } | undefined => {
    const dirs = [...chain].reverse().map((c) => o.images.layers.diffPath(c));
    let etc: Stats | undefined;
    for (const d of dirs) {
      const st = lstatSync(path.join(d, 'etc'), { throwIfNoEntry: false });
      if (!st) continue;
      if (!st.isDirectory()) return undefined; // a whiteout, a symlink: leave /etc to the runtime
      etc = st;
      break;
    }
    if (!etc) return undefined;
    const missing = INIT_TARGETS.filter((f) => {
      for (const d of dirs) {
        const parent = lstatSync(path.join(d, 'etc'), { throwIfNoEntry: false });
        if (parent && !parent.isDirectory()) return true;
        const st = lstatSync(path.join(d, 'etc', f), { throwIfNoEntry: false });
        if (st) return isWhiteout(st);
      }
      return true;
    });
    return { etc, missing };
  };

  const syncPath = (p: string): void => {
    const fd = openSync(p, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };

  /** The chain's init layer dir, made now if this is the chain's second start here; undefined: none (yet). */
  const initLayer = (chain: readonly Digest[]): string | undefined => {
    const top = chain[chain.length - 1];
    if (top === undefined || noInitLayer.has(top)) return undefined;
    const chainDir = path.dirname(o.images.layers.diffPath(top));
    const dir = path.join(chainDir, 'init');
    if (existsSync(dir)) return dir;
    if (!chainsStarted.has(top)) {
      chainsStarted.add(top);
      return undefined;
    }
    const img = imageEtc(chain);
    if (!img || img.missing.length === 0) {
      noInitLayer.add(top);
      return undefined;
    }
    const tmp = path.join(chainDir, `.init-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      const etc = path.join(tmp, 'etc');
      mkdirSync(etc, { recursive: true, mode: 0o755 });
      for (const f of img.missing) {
        writeFileSync(path.join(etc, f), '', { mode: 0o644 });
        syncPath(path.join(etc, f));
      }
      // the image's owner and mode (chmod after chown, which may clear set-id bits; mkdir's mode went
      // through the umask), and its times last (chmod and chown change only ctime)
      chownSync(etc, img.etc.uid, img.etc.gid);
      chmodSync(etc, img.etc.mode & 0o7777);
      utimesSync(etc, img.etc.atime, img.etc.mtime);
      syncPath(etc);
      syncPath(tmp);
      // a lower dir must not come back half written after a power loss: on disk before it is named
      renameSync(tmp, dir);
      syncPath(chainDir);
      return dir;
    } catch {
      return existsSync(dir) ? dir : undefined; // another process made it first, or we cannot: the runtime makes the targets
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  };

  /* ----------------------------------------------------------------- start */

  const etcFilesIn = (dir: string): { hosts: string; resolvConf: string; hostname: string } =>
    ({ hosts: path.join(dir, 'hosts'), resolvConf: path.join(dir, 'resolv.conf'), hostname: path.join(dir, 'hostname') });

  const writeEtcFiles = async (rec: CRecord): Promise<{ hosts: string; resolvConf: string; hostname: string }> => {
    const p = L.container(rec.id);
    const host = rec.spec.networkMode === 'host';
    const hostname = rec.spec.hostname ?? rec.id.slice(0, 12);
    const files = etcFilesIn(p.bundle);
    const hosts = host
      ? readTextOr('/etc/hosts', '127.0.0.1\tlocalhost\n')
      : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`;
    const resolv = readTextOr('/etc/resolv.conf', '');
    writeFileSync(files.hosts, hosts);
    writeFileSync(files.resolvConf, resolv);
    writeFileSync(files.hostname, `${hostname}\n`);
    return files;
  };

  /** User mounts as OCI mounts; volumes created (and filled from the image) as needed. */
  const userMounts = async (rec: CRecord, rootfs: string): Promise<{ mounts: OciMount[]; anonymous: string[] }> => {
    const mounts: OciMount[] = [];
    const anonymous = [...(rec.anonymousVolumes ?? [])];
    const specMounts: MountSpec[] = [...(rec.spec.mounts ?? [])];
    // the image's VOLUMEs that the spec does not cover become anonymous volumes
    const covered = new Set(specMounts.map((m) => path.posix.normalize(m.target)));
    const imageVolumes = (rec.imageDefaults.volumes ?? []).filter((v) => !covered.has(path.posix.normalize(v)));
    for (const [i, v] of imageVolumes.entries()) {
      const known = anonymous[i];
      specMounts.push({ type: 'volume', target: v, ...(known ? { source: known } : {}) });
    }
    let anonIndex = 0;
    for (const m of specMounts) {
      if (m.type === 'bind') {
        const st = await fsp.stat(m.source).catch(() => undefined);
        if (!st) fail(invalidSpec('mount', [`bind source path does not exist: ${m.source}`]));
        const opts = ['rbind', m.readOnly ? 'ro' : 'rw', m.propagation ?? 'rprivate'];
        mounts.push({ destination: m.target, type: 'bind', source: m.source, options: opts });
      } else if (m.type === 'tmpfs') {
        const opts = ['nosuid', 'nodev', 'noexec'];
        if (m.sizeBytes) opts.push(`size=${m.sizeBytes}`);
        opts.push(`mode=${(m.mode ?? 0o1777).toString(8)}`);
        if (m.readOnly) opts.push('ro');
        mounts.push({ destination: m.target, type: 'tmpfs', source: 'tmpfs', options: opts });
      } else {
        const isAnon = m.source === undefined;
        const v = await o.volumes.ensure(m.source, isAnon ? { 'berth.anonymous': 'true' } : undefined);
        if (isAnon && !anonymous.includes(v.name)) anonymous.splice(anonIndex, 0, v.name);
        if (isAnon) anonIndex++;
        if (!m.noCopy) await o.volumes.copyUp(v.name, await resolveInRoot(rootfs, m.target));
        mounts.push({ destination: m.target, type: 'bind', source: v.dataDir, options: ['rbind', m.readOnly ? 'ro' : 'rw', 'rprivate'] });
      }
    }
    return { mounts, anonymous };
  };

  const hostDevices = async (spec: ContainerSpec): Promise<OciDevice[]> => {
    const out: OciDevice[] = [];
    for (const d of spec.devices ?? []) {
      const st = await fsp.stat(d.hostPath).catch(() => undefined);
      if (!st || !(st.isCharacterDevice() || st.isBlockDevice())) return fail(invalidSpec('device', [`${d.hostPath} is not a device node`]));
      const rdev = st.rdev;
      out.push({
        path: d.containerPath, type: st.isCharacterDevice() ? 'c' : 'b',
        major: Number((BigInt(rdev) >> 8n) & 0xfffn), minor: Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n)),
        fileMode: st.mode & 0o777, permissions: d.permissions,
      });
    }
    return out;
  };

  /** Clear what an interrupted earlier start may have left. Under the lock. */
  const recover = async (rec: CRecord): Promise<CRecord> => {
    const p = L.container(rec.id);
    const r = await collect(rec);
    if (r.state.running) return r;
    await unmountIfMounted(p.rootfs);
    await unmountLegacy(p);
    if (existsSync(p.shimDir)) {
      const stale = readTextOr(path.join(p.shimDir, 'shim.pid'), undefined);
      if (stale !== undefined && pidAlive(Number(stale))) {
        // a shim whose container never got started (crash between create and start)
        await rtOf(rec).try(['delete', '--force', rec.id]);
        await waitExitLine(shimSock(p, Number(stale), 'shim.sock'));
      }
      await removeShimDir(p);
    }
    // runtime state of a create that never got its start recorded
    if (await hasRuntimeState(rec.id)) await rtOf(rec).try(['delete', '--force', rec.id]);
    // the record as collect left it (it wrote it if it folded an exit in): nothing above changes it
    return r;
  };

  const startLocked = async (id: string, beforeStart?: (p: ContainerPaths, rec: CRecord) => Promise<void>): Promise<void> => {
    const p = L.container(id);
    trace('start: begin');
    let rec = await recover(await readRecord(p.record, id));
    trace('start: record read, recovered');
    if (rec.state.running) {
      if (beforeStart) fail(conflict('container', rec.name, 'is already running'));
      return;
    }
    const spec = rec.spec;
    let net: NetworkSetupResult | undefined;
    let netSetup: Promise<NetworkSetupResult> | undefined;
    /** The namespace and /etc files of a setup under way, as soon as they exist (the runtime creates the container in it meanwhile). */
    let netNamespace: Promise<NetworkNamespaceReady | NetworkSetupResult> | undefined;
    let mounted = false;
    /** The container exists in the runtime, but `runtime start` has not run. */
    let createdOnly = false;
    // asked now, answered while the network and rootfs are set up
    const sealedRuntime = path.basename(rec.runtime) === 'berth-runtime' ? helperSealedExe(rec.runtime).catch(() => undefined) : undefined;
    try {
      const mode = spec.networkMode ?? 'bridge';
      // container:<ref>: the owner must run. Its namespace, /etc files and host name are the container's:
      // from networking for an owner on a bridge network, from the owner itself for one with "none" or "host".
      const owner = mode.startsWith('container:') ? await networkOwner(mode.slice('container:'.length), true) : undefined;
      const ownerMode = owner ? owner.rec.spec.networkMode ?? 'bridge' : undefined;
      const ownNet = ownerMode === 'host' || ownerMode === 'none';
      const hostname = owner ? owner.rec.spec.hostname ?? owner.rec.id.slice(0, 12) : spec.hostname ?? id.slice(0, 12);
      if (o.networking && needsNetworking(spec) && !ownNet) {
        trace('start: network setup begins');
        // alongside the rootfs mount below: neither needs the other
        let namespaceReady: ((ns: NetworkNamespaceReady) => void) | undefined;
        const early = new Promise<NetworkNamespaceReady>((resolve) => {
          namespaceReady = resolve;
        });
        netSetup = o.networking.setup({
          containerId: id, name: rec.name, hostname,
          ...(spec.domainname ? { domainname: spec.domainname } : {}),
          networkMode: owner ? `container:${owner.rec.id}` : mode, networks: spec.networks ?? {}, ports: spec.ports ?? [],
          publishAll: spec.publishAll === true, exposedPorts: rec.imageDefaults.exposedPorts ?? [],
          ...(spec.extraHosts && spec.extraHosts.length > 0 ? { extraHosts: spec.extraHosts } : {}),
        }, { namespaceReady });
        netSetup.catch(() => undefined); // awaited below, or in the catch after a failed mount
        // whichever comes first: a setup that makes no namespace of its own (host, container:) just finishes
        netNamespace = Promise.race([early, netSetup]);
      }
      mkdirSync(p.bundle, { recursive: true, mode: 0o710 });
      mkdirSync(p.rootfs, { recursive: true, mode: 0o755 });
      const image = await o.images.layers.mount(rec.chain as never, p.upper, p.work, p.rootfs);
      const init = initLayer(rec.chain as Digest[]);
      const overlay = init === undefined ? image
        : { ...image, options: image.options.map((x) => (x.startsWith('lowerdir=') ? `lowerdir=${init}:${x.slice('lowerdir='.length)}` : x)) };
      await mountPrivate(overlay);
      mounted = true;
      trace('start: rootfs mounted');
      const ns = netNamespace ? await netNamespace : undefined;
      if (ns) trace('start: network namespace ready');
      const user = await resolveUser(p.rootfs, spec.user ?? rec.imageDefaults.user);
      const cwd = spec.workingDir ?? rec.imageDefaults.workingDir ?? '/';
      const cwdHost = await resolveInRoot(p.rootfs, cwd);
      mkdirSync(cwdHost, { recursive: true });
      const { mounts, anonymous } = await userMounts(rec, p.rootfs);
      // an owner started by an older Berth has its files in its container dir
      const ownerPaths = owner && ownNet ? L.container(owner.rec.id) : undefined;
      const ownerDir = ownerPaths ? (existsSync(path.join(ownerPaths.bundle, 'hosts')) ? ownerPaths.bundle : ownerPaths.dir) : undefined;
      const etcFiles = ns
        ? { hosts: ns.hostsFile, resolvConf: ns.resolvConf, hostname: ns.hostnameFile }
        : ownerDir
          ? etcFilesIn(ownerDir)
          : await writeEtcFiles(rec);
      const baseEnv = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
      const env = mergeEnv(mergeEnv(baseEnv, rec.imageDefaults.env ?? []), [
        `HOSTNAME=${hostname}`, ...(spec.tty ? ['TERM=xterm'] : []), `HOME=${user.home}`,
      ]);
      const finalEnv = mergeEnv(env, spec.env ?? []);
      let seccompProfile: unknown;
      if (spec.security?.seccomp && !['default', 'unconfined'].includes(spec.security.seccomp)) seccompProfile = await readJson<unknown>(spec.security.seccomp);
      if (spec.init) await fsp.access(initPath).catch(() => fail(unsupported(`--init: ${initPath} is missing; build it with make -C native`)));
      const config = buildOciConfig({
        id, spec: { ...spec, hostname }, args: rec.args ?? [], env: finalEnv, cwd, user, mounts, etcFiles,
        ...(ns?.netnsPath ? { netnsPath: ns.netnsPath } : ownerMode === 'none' ? { netnsPath: `/proc/${owner?.pid}/ns/net` } : {}),
        hostNetwork: mode === 'host' || ownerMode === 'host', initPath, devices: await hostDevices(spec),
        ...(seccompProfile !== undefined ? { seccompProfile } : {}),
      });
      writeFileSync(p.config, JSON.stringify(config));
      trace('start: user, volumes, config.json');
      await removeShimDir(p);
      const runtimeExec = await sealedRuntime;
      const started = await startShim({
        shim: shimPath, id, stateDir: p.shimDir, runtime: rec.runtime, ...(runtimeExec ? { runtimeExec } : {}), runtimeRoot: L.runtimeRoot, bundle: p.bundle, logPath: p.log,
        terminal: spec.tty === true, stdin: spec.openStdin === true, stdinOnce: spec.openStdin === true,
        ...exitCommandFor(id, beforeStart === undefined),
      }).catch(async (e: unknown): Promise<never> => {
        // a network setup that failed meanwhile undid itself, namespace included, maybe under the runtime's feet
        // (it then fails to join it): the network's failure is the cause to report
        const netFailure = netSetup ? await netSetup.then(() => undefined, (x: unknown) => x ?? new Error('network setup failed')) : undefined;
        if (netFailure !== undefined) {
          await removeShimDir(p).catch(() => undefined); // its shim goes with the failed create
          throw netFailure;
        }
        const te = toEngineError(e);
        const raw = te._tag === 'Internal' ? te.message : JSON.stringify(te);
        const execErr = /exec: .*$/m.exec(raw)?.[0];
        const code = execErr ? (await import('./exec.js')).startFailureCode(execErr) : 125;
        const msg = execErr ?? raw;
        await writeRecord(p.record, { ...rec, state: { ...rec.state, exitCode: code, error: msg } });
        throw new EngineFailure({ _tag: 'Internal', message: `container ${rec.name}: cannot start: ${msg}` }, { cause: { exitCode: code } });
      });
      trace('start: shim + runtime create');
      // the container's mount namespace holds the rootfs now: the host's copy goes
      unmountSoon(p.rootfs);
      mounted = false;
      trace('start: host rootfs unmounted');
      if (netSetup) {
        // the veths, addresses and records, made while the runtime created the container
        try {
          net = await netSetup;
        } catch (e) {
          // the created container goes (its init never ran the user's process); the failed setup undid itself
          await rtOf(rec).try(['delete', '--force', id]);
          await waitExitLine(shimSock(p, started.shimPid, 'shim.sock')).catch(() => undefined);
          await removeShimDir(p); // waits for the shim to be gone first
          throw e;
        }
        trace('start: network set up');
      }
      const state: RunState = { running: true, restartCount: rec.state.restartCount, startedAt: now(), pid: started.pid, shimPid: started.shimPid };
      rec = {
        ...rec, state, anonymousVolumes: anonymous,
        ...(net ? { networks: net.networks, ports: net.ports } : {}),
      };
      createdOnly = true;
      await writeRunningRecord(p.record, rec); // live state: no fsync (record.ts)
      trace('start: record written');
      if (beforeStart) await beforeStart(p, rec);
      createdOnly = false;
      // berth-runtime's start, here (fifo-start.ts): Berth's configs carry no hooks for it to run
      const r = path.basename(rec.runtime) === 'berth-runtime'
        ? await startFromFifo(L.runtimeRoot, id, () => pidAlive(started.pid))
        : await rtOf(rec).try(['start', id]);
      if (r.code !== 0) {
        const msg = r.stderr.trim() || r.stdout.trim();
        await rtOf(rec).try(['delete', '--force', id]);
        await waitExitLine(shimSock(p, started.shimPid, 'shim.sock'));
        const code = (await import('./exec.js')).startFailureCode(msg);
        await waitShimGone(rec);
        await writeRecord(p.record, { ...rec, state: { running: false, restartCount: rec.state.restartCount, startedAt: state.startedAt as string, finishedAt: now(), exitCode: code, error: msg } });
        await removeShimDir(p);
        throw new EngineFailure({ _tag: 'Internal', message: `container ${rec.name}: cannot start: ${msg}` }, { cause: { exitCode: code } });
      }
      trace('start: runtime start');
      cEvent('start', rec);
    } catch (e) {
      // a network set up while the mount failed is torn down below (a failed setup undid itself)
      if (netSetup && !net) net = await netSetup.catch(() => undefined);
      if (mounted) await unmountIfMounted(p.rootfs).catch(() => undefined);
      if (createdOnly) {
        // e.g. attach failed: the created container must not wait for a start forever
        await rtOf(rec).try(['delete', '--force', id]);
        await waitExit(rec, 5000);
        await collect(await readRecord(p.record, id)).catch(() => undefined);
      }
      const cur = await readRecord(p.record, id).catch(() => rec);
      if (!cur.state.running && net && o.networking) await o.networking.teardown(id).catch(() => undefined);
      if (!cur.state.running && cur.state.error === undefined) {
        const te = toEngineError(e);
        await writeRecord(p.record, { ...cur, state: { ...cur.state, error: te._tag === 'Internal' ? te.message : JSON.stringify(te) } }).catch(() => undefined);
      }
      throw e;
    }
  };

  /* ------------------------------------------------------------------ stop */

  /** Wait until the shim has recorded the exit (exit.json), at most `timeoutMs`. */
  const waitExit = async (rec: CRecord, timeoutMs: number): Promise<boolean> => {
    const p = L.container(rec.id);
    const deadline = Date.now() + timeoutMs;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      await waitExitLine(shimSock(p, rec.state.shimPid, 'shim.sock'), ac.signal);
    } catch {
      // timed out
    } finally {
      clearTimeout(timer);
    }
    // a refused connection also ends the wait: the shim may be gone, or not listening yet
    while ((await exitOf(p)) === undefined) {
      if (Date.now() >= deadline || (rec.state.shimPid !== undefined && !pidAlive(rec.state.shimPid))) return (await exitOf(p)) !== undefined;
      await sleep(20);
    }
    return true;
  };

  /** The shim's exit command for a start; none for an attached one, whose caller collects the exit itself. */
  const exitCommandFor = (id: string, detached: boolean): { exitCommand?: readonly string[] } => {
    const berth = detached ? o.exitCommand?.() : undefined;
    return berth ? { exitCommand: [...berth, 'container', 'cleanup', id] } : {};
  };

  /** Tells the shim that this command collects the exit it is about to cause: no exit command then
   *  (the file the shim looks for, EXIT_COMMAND_SKIP_FILE in native/shim/exit_command.h). */
  const claimExit = (rec: CRecord): void => {
    try {
      writeFileSync(path.join(L.container(rec.id).shimDir, 'collecting'), '');
    } catch {
      // no shim dir: no shim to tell
    }
  };

  const stopLocked = async (rec: CRecord, timeoutSeconds?: number): Promise<CRecord> => {
    rec = await collect(rec);
    if (!rec.state.running) return rec;
    claimExit(rec);
    const sigName = rec.spec.stopSignal ?? rec.imageDefaults.stopSignal ?? 'SIGTERM';
    const sig = signalNumber(sigName) ?? 15;
    const timeout = timeoutSeconds ?? rec.spec.stopTimeoutSeconds ?? 10;
    if (rec.state.paused) await rtOf(rec).try(['resume', rec.id]);
    await rtOf(rec).try(['kill', rec.id, String(sig)]);
    if (!(await waitExit(rec, Math.max(0, timeout) * 1000))) {
      await rtOf(rec).try(['kill', '--all', rec.id, '9']);
      await rtOf(rec).try(['kill', rec.id, '9']);
      await waitExit(rec, 10_000);
    }
    const after = await collect(rec);
    cEvent('stop', rec);
    return after;
  };

  /* ------------------------------------------------------------------ logs */

  const logs = async function* (ref: string, opts: LogOptions = {}): AsyncGenerator<LogLine> {
    const id = await resolveId(ref);
    const p = L.container(id);
    const { readLogs } = await import('./logs.js'); // node:readline only for logs
    yield* readLogs(p.log, opts, async () => {
      const rec = await readRecord(p.record, id).catch(() => undefined);
      return rec !== undefined && (await observe(rec)).state.status === 'running';
    });
  };

  /* ------------------------------------------------------------------ exec */

  const exec = async (ref: string, e: ExecSpec): Promise<{ exitCode: number }> => {
    const id = await resolveId(ref);
    const rec = await readRecord(L.container(id).record, id);
    const st = (await observe(rec)).state;
    if (st.status !== 'running') fail(conflict('container', rec.name, st.status === 'paused' ? 'is paused; unpause it first' : 'is not running'));
    if (e.command.length === 0) fail(invalidSpec('exec', ['no command given']));
    const root = `/proc/${st.pid}/root`;
    const user = await resolveUser(root, e.user ?? rec.spec.user ?? rec.imageDefaults.user);
    const cp = L.container(id);
    // a container started by an older Berth has its config.json in its dir
    const cfg = JSON.parse(readFileSync(existsSync(cp.config) ? cp.config : cp.legacyConfig, 'utf8')) as { process: { env: string[]; capabilities: unknown; cwd: string; rlimits?: unknown } };
    const caps = e.privileged ? (await import('./security.js')).hostCaps() : undefined;
    const proc = {
      terminal: e.tty === true,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length > 0 ? { additionalGids: [...user.additionalGids] } : {}) },
      args: [...e.command],
      env: mergeEnv(cfg.process.env.filter((x) => !x.startsWith('HOME=')).concat(`HOME=${user.home}`), e.env ?? []),
      cwd: e.workingDir ?? cfg.process.cwd,
      capabilities: caps ? { bounding: caps, effective: caps, permitted: caps } : cfg.process.capabilities,
      noNewPrivileges: rec.spec.security?.noNewPrivileges ?? false,
      ...(cfg.process.rlimits ? { rlimits: cfg.process.rlimits } : {}),
    };
    // in the bundle (run root: a tmpfs file, not one on the root's file system per exec or health check)
    const procFile = path.join(existsSync(cp.bundle) ? cp.bundle : cp.dir, `exec-${randomBytes(6).toString('hex')}.json`);
    await fsp.writeFile(procFile, JSON.stringify(proc));
    try {
      const { runtimeExec } = await import('./exec.js');
      return await runtimeExec({
        runtime: rec.runtime, runtimeRoot: L.runtimeRoot, id, name: rec.name, processFile: procFile,
        tty: e.tty === true, stdin: e.stdin === true, detach: e.detach === true,
      });
    } finally {
      await fsp.rm(procFile, { force: true });
    }
  };

  /* ----------------------------------------------------------------- stats */

  const statsContainer = async (ref: string): Promise<ContainerStats> => {
    const id = await resolveId(ref);
    const rec = await readRecord(L.container(id).record, id);
    const st = (await observe(rec)).state;
    if (st.status !== 'running' && st.status !== 'paused') fail(conflict('container', rec.name, 'is not running'));
    const { containerStats, parseRuntimeStats } = await import('./stats.js');
    const sample = async (): Promise<{ data: RuntimeStats; t: bigint }> => ({
      data: parseRuntimeStats(await rtOf(rec).call(['events', '--stats', id], `stats of ${rec.name}`)),
      t: process.hrtime.bigint(),
    });
    const a = await sample();
    await sleep(100);
    const b = await sample();
    return containerStats(a.data, b.data, Number(b.t - a.t));
  };

  /* ----------------------------------------------------------------- facade */

  const withRecord = async <A>(ref: string, fn: (rec: CRecord) => Promise<A>): Promise<A> => {
    const id = await resolveId(ref);
    return locked(id, async () => fn(await readRecord(L.container(id).record, id)));
  };

  /** Under the lock: an exit that nobody collected folded in (network and mounts released), and an --rm container removed. */
  const finishExited = async (id: string): Promise<void> => {
    const cur = await collect(await readRecord(L.container(id).record, id));
    if (!cur.state.running && cur.spec.autoRemove) await destroy(cur, true);
  };

  const listContainers = async (filter: ContainerFilter = {}): Promise<ContainerInfo[]> => {
    const out: ContainerInfo[] = [];
    const f = filter.filters ?? {};
    for (const id of await listIds()) {
      let rec: CRecord;
      try {
        rec = await readRecord(L.container(id).record, id);
      } catch {
        continue; // an interrupted create or rm: `rm` of the ID cleans it
      }
      const { state } = await observe(rec);
      if (rec.state.running && state.status !== 'running' && state.status !== 'paused' && rec.spec.autoRemove) {
        // an --rm container that exited while nobody watched (and its exit command did not run): finish its removal now
        try {
          await locked(id, () => finishExited(id));
          continue;
        } catch {
          // leave it for the next command
        }
      }
      const running = state.status === 'running' || state.status === 'paused';
      if (!filter.all && !running) continue;
      if (running && (f['network']?.length ?? 0) > 0) rec = await currentNetworks(rec);
      const match = (key: string, test: (v: string) => boolean): boolean => !f[key] || f[key]!.length === 0 || f[key]!.some(test);
      const ok =
        match('name', (v) => rec.name.includes(v.replace(/^\//, ''))) &&
        match('id', (v) => id.startsWith(v)) &&
        match('status', (v) => state.status === v) &&
        match('ancestor', (v) => rec.image === v || rec.imageId === v || rec.imageId.slice(7).startsWith(v)) &&
        match('label', (v) => {
          const [k, val] = v.split('=', 2) as [string, string | undefined];
          const have = rec.spec.labels?.[k];
          return have !== undefined && (val === undefined || have === val);
        }) &&
        match('network', (v) => (rec.spec.networkMode ?? 'bridge') === v || Object.keys(rec.networks ?? {}).includes(v));
      if (ok) out.push(info(rec, state));
    }
    return out.sort((a, b) => (a.created < b.created ? 1 : -1));
  };

  const api: ContainerRuntime = {
    createContainer,
    async startContainer(ref) {
      const id = await resolveId(ref);
      await locked(id, () => startLocked(id));
    },
    async startAttached(ref, streams) {
      const id = await resolveId(ref);
      let session: AttachSession | undefined;
      await locked(id, () =>
        startLocked(id, async (p, rec) => {
          session = await attach(shimSock(p, rec.state.shimPid, 'attach.sock'), streams);
        }),
      );
      return { session: session as AttachSession, id };
    },
    async attachContainer(ref, streams) {
      const id = await resolveId(ref);
      const rec = await readRecord(L.container(id).record, id);
      const st = (await observe(rec)).state;
      if (st.status !== 'running' && st.status !== 'paused') fail(conflict('container', rec.name, 'is not running; start it with `berth start -a`'));
      return attach(shimSock(L.container(id), rec.state.shimPid, 'attach.sock'), streams);
    },
    async stopContainer(ref, opts) {
      await withRecord(ref, (rec) => stopLocked(rec, opts?.timeoutSeconds));
    },
    async restartContainer(ref, opts) {
      const id = await resolveId(ref);
      await locked(id, async () => {
        const rec = await stopLocked(await readRecord(L.container(id).record, id), opts?.timeoutSeconds);
        await writeRecord(L.container(id).record, { ...rec, state: { ...rec.state, restartCount: rec.state.restartCount + 1 } });
        await startLocked(id);
      });
    },
    async killContainer(ref, signal = 'SIGKILL') {
      const sig = signalNumber(signal);
      if (sig === undefined) fail(invalidSpec('kill', [`unknown signal ${JSON.stringify(signal)}`]));
      await withRecord(ref, async (rec) => {
        const st = (await observe(rec)).state;
        if (st.status !== 'running' && st.status !== 'paused') fail(conflict('container', rec.name, 'is not running'));
        await rtOf(rec).call(['kill', rec.id, String(sig)], `kill ${rec.name}`);
        cEvent('kill', rec);
      });
    },
    async removeContainer(ref, opts) {
      const id = await resolveId(ref).catch(async (e) => {
        // a dir without a record (interrupted create or rm): remove by full ID
        const r = ref.replace(/^\//, '');
        if (/^[0-9a-f]{64}$/.test(r) && (await fsp.access(L.container(r).dir).then(() => true, () => false))) return r;
        throw e;
      });
      await locked(id, async () => {
        const p = L.container(id);
        let rec: CRecord;
        try {
          rec = await readRecord(p.record, id);
        } catch {
          await unmountIfMounted(p.rootfs);
          await unmountLegacy(p);
          rmSync(p.bundle, { recursive: true, force: true });
          await fsp.rm(p.dir, { recursive: true, force: true });
          await removeShimDir(p);
          return;
        }
        trace('rm: locked, record read');
        rec = await collect(rec, false);
        trace('rm: exit collected');
        const sharers = (rec.spec.networkMode ?? 'bridge').startsWith('container:') ? [] : await networkSharers(id);
        if (sharers.length > 0) {
          fail(conflict('container', rec.name, `its network is shared by running container${sharers.length > 1 ? 's' : ''} ${sharers.map((x) => x.name).join(', ')} (--network container:); stop or remove ${sharers.length > 1 ? 'them' : 'it'} first`));
        }
        if (rec.state.running) {
          if (!opts?.force) fail(conflict('container', rec.name, 'is running: stop it first, or remove it with -f'));
          claimExit(rec);
          if (rec.state.paused) await rtOf(rec).try(['resume', id]);
          await rtOf(rec).try(['kill', '--all', id, '9']);
          await rtOf(rec).try(['kill', id, '9']);
          await waitExit(rec, 10_000);
          rec = await collect(rec, false);
        }
        await destroy(rec, opts?.volumes === true || rec.spec.autoRemove === true);
      });
    },
    async cleanupContainer(id) {
      const p = L.container(id);
      // by full ID, and without creating anything: the container (or its whole root) may be gone already
      if (!/^[0-9a-f]{64}$/.test(id)) fail(invalidSpec('container cleanup', [`${JSON.stringify(id)}: expected a full container ID (64 hex digits)`]));
      if (!existsSync(p.record)) return;
      await withLock(p.lock, `container ${id.slice(0, 12)}`, async () => {
        if (existsSync(p.record)) await finishExited(id);
      });
    },
    listContainers,
    async inspectContainer(ref) {
      const id = await resolveId(ref);
      const rec = await readRecord(L.container(id).record, id);
      const state = (await observe(rec)).state;
      return info(state.status === 'running' || state.status === 'paused' ? await currentNetworks(rec) : rec, state);
    },
    logs,
    exec,
    async waitContainer(ref, opts) {
      const id = await resolveId(ref);
      const p = L.container(id);
      const rec = await readRecord(p.record, id);
      const obs = await observe(rec);
      if (obs.state.status === 'running' || obs.state.status === 'paused') {
        const line = await waitExitLine(shimSock(p, rec.state.shimPid, 'shim.sock'), opts?.signal);
        const ex = line ? (JSON.parse(line) as ExitInfo) : await exitOf(p);
        if (ex) return { exitCode: ex.exitCode };
        if (await waitExit(rec, 5000)) return { exitCode: ((await exitOf(p)) as ExitInfo).exitCode };
        const again = await readRecord(p.record, id).catch(() => undefined);
        return { exitCode: again?.state.exitCode ?? 255 };
      }
      return { exitCode: obs.state.exitCode ?? 0 };
    },
    async pauseContainer(ref) {
      await withRecord(ref, async (rec) => {
        const st = (await observe(rec)).state;
        if (st.status !== 'running') fail(conflict('container', rec.name, st.status === 'paused' ? 'is already paused' : 'is not running'));
        await rtOf(rec).call(['pause', rec.id], `pause ${rec.name}`);
        await writeRecord(L.container(rec.id).record, { ...rec, state: { ...rec.state, paused: true } });
        cEvent('pause', rec);
      });
    },
    async resumeContainer(ref) {
      await withRecord(ref, async (rec) => {
        const st = (await observe(rec)).state;
        if (st.status !== 'paused') fail(conflict('container', rec.name, 'is not paused'));
        await rtOf(rec).call(['resume', rec.id], `unpause ${rec.name}`);
        const { paused: _p, ...rest } = rec.state;
        await writeRecord(L.container(rec.id).record, { ...rec, state: rest });
        cEvent('unpause', rec);
      });
    },
    async updateContainer(ref, update: { resources?: ResourceSpec; restartPolicy?: RestartPolicy }) {
      await withRecord(ref, async (rec) => {
        const resources = { ...(rec.spec.resources ?? {}), ...(update.resources ?? {}) };
        const spec = checkSpec({ ...rec.spec, resources, ...(update.restartPolicy ? { restartPolicy: update.restartPolicy } : {}) });
        const st = (await observe(rec)).state;
        if ((st.status === 'running' || st.status === 'paused') && update.resources) {
          const r = update.resources;
          const args = ['update'];
          if (r.memory !== undefined) args.push('--memory', String(r.memory));
          if (r.memorySwap !== undefined) args.push('--memory-swap', String(r.memorySwap));
          else if (r.memory) args.push('--memory-swap', String(Math.max(r.memory * 2, rec.spec.resources?.memorySwap ?? 0)));
          if (r.memoryReservation !== undefined) args.push('--memory-reservation', String(r.memoryReservation));
          if (r.cpus !== undefined) args.push('--cpu-period', '100000', '--cpu-quota', String(Math.round(r.cpus * 100000)));
          if (r.cpuShares !== undefined) args.push('--cpu-share', String(r.cpuShares));
          if (r.cpusetCpus !== undefined) args.push('--cpuset-cpus', r.cpusetCpus);
          if (r.cpusetMems !== undefined) args.push('--cpuset-mems', r.cpusetMems);
          if (r.pidsLimit !== undefined) args.push('--pids-limit', String(r.pidsLimit));
          if (r.blkioWeight !== undefined) args.push('--blkio-weight', String(r.blkioWeight));
          args.push(rec.id);
          await rtOf(rec).call(args, `update ${rec.name}`);
        }
        await writeRecord(L.container(rec.id).record, { ...rec, spec });
        cEvent('update', rec);
      });
    },
    async renameContainer(ref, newName) {
      const n = newName.replace(/^\//, '');
      checkSpec({ image: 'x', name: n });
      await withRecord(ref, async (rec) => {
        if (rec.name === n) fail(conflict('container name', `/${n}`, 'is already the container\'s name'));
        await reserveName(n, rec.id);
        await writeRecord(L.container(rec.id).record, { ...rec, name: n, spec: { ...rec.spec, name: n } });
        await fsp.rm(path.join(L.namesDir, rec.name), { force: true });
        cEvent('rename', { ...rec, name: n });
      });
    },
    statsContainer,
    async topContainer(ref) {
      const id = await resolveId(ref);
      const rec = await readRecord(L.container(id).record, id);
      const st = (await observe(rec)).state;
      if (st.status !== 'running' && st.status !== 'paused') fail(conflict('container', rec.name, 'is not running'));
      const out = await rtOf(rec).call(['ps', '--format', 'json', id], `top ${rec.name}`);
      return JSON.parse(out) as number[];
    },
    async pathsOf(ref) {
      const id = await resolveId(ref);
      const rec = await readRecord(L.container(id).record, id);
      const st = (await observe(rec)).state;
      const running = st.status === 'running' || st.status === 'paused';
      return { id, paths: L.container(id), running, ...(st.pid !== undefined ? { pid: st.pid } : {}), chain: rec.chain };
    },
    async chainsInUse() {
      const out = new Set<string>();
      for (const id of await listIds()) {
        const rec = await readRecord(L.container(id).record, id).catch(() => undefined);
        for (const c of rec?.chain ?? []) out.add(c);
      }
      return [...out];
    },
    async volumeUsers() {
      const users = new Map<string, string[]>();
      for (const id of await listIds()) {
        const rec = await readRecord(L.container(id).record, id).catch(() => undefined);
        if (!rec) continue;
        const names = new Set<string>(rec.anonymousVolumes ?? []);
        for (const m of rec.spec.mounts ?? []) if (m.type === 'volume' && m.source) names.add(m.source);
        for (const n of names) users.set(n, [...(users.get(n) ?? []), id]);
      }
      return users;
    },
  };
  return api;
};
