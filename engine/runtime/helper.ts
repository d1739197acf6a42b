/**
 * The engine's process helper: `berth-shim helper` (native/shim/helper.h),
 * one per engine process, started on first use, or taken over from the
 * launcher, which starts it before Node for `run`, `start` and `restart`
 * (`berth-shim launch`: inheritedChannel below).
 *
 * Why: every program the engine runs (the OCI runtime, the shim, ip, nft,
 * unshare...) used to be a fork of this Node process, and fork copies the
 * page tables of a process this size: 2-5 ms of this process's CPU each, the
 * largest single cost of starting a container. The helper is a small static
 * process whose forks cost a fraction of that. It also performs mount(2),
 * umount2(2) and flock(2) itself (no mount(8), umount(8), flock(1) at all).
 *
 * Lifetime: its stdin is our pipe; it exits when that reaches EOF (this
 * process is gone) or when this process dies (PR_SET_PDEATHSIG), and the
 * locks it holds go with it, as they went with our own descriptors before.
 * It keeps this process alive only while a request is in flight.
 *
 * The programs it runs get the environment this process had when the helper
 * started. BERTH_HELPER=0, or a berth-shim that is missing, makes every
 * call here fall back to this process's own spawn.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { nativeDir } from './layout.js';
import { trace, tracing } from './trace.js';

const OP_NAMES = ['', 'exec', 'mount', 'umount', 'lock', 'unlock', 'net-plug', 'link-del', 'bridge', 'seal'];

const OP_EXEC = 1;
const OP_MOUNT = 2;
const OP_UMOUNT = 3;
const OP_LOCK = 4;
const OP_UNLOCK = 5;
const OP_NET_PLUG = 6;
const OP_LINK_DEL = 7;
const OP_BRIDGE = 8;
const OP_SEAL = 9;

export interface HelperReply {
  /** Exit status for exec (128 + signal when killed); 0 or -1 for the others. */
  readonly code: number;
  /** errno of the helper's own failure (exec: the program could not be started), else 0. */
  readonly errno: number;
  readonly out: Buffer;
  readonly err: Buffer;
}

/** A failure of the helper's own syscall, shaped like Node's (code 'ENOENT'...). */
export class HelperSyscallError extends Error {
  readonly code: string;
  constructor(message: string, readonly errno: number) {
    super(message);
    this.code = errnoName(errno);
  }
}

let errnoNames: Map<number, string> | undefined;
/** 'ENOENT' for 2; libuv's names first, then the OS's table (EDEADLK and others libuv does not name). */
export const errnoName = (n: number): string => {
  try {
    const name = getSystemErrorName(-n);
    if (!name.startsWith('Unknown')) return name;
  } catch {
    // not a number libuv knows
  }
  errnoNames ??= new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
  return errnoNames.get(n) ?? `E${n}`;
};

const str = (parts: Buffer[], s: string | Buffer): void => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(b.length);
  parts.push(len, b);
};
const u32 = (parts: Buffer[], v: number): void => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  parts.push(b);
};

/** The helper's pipes (our ends) and how we learn that it is gone. */
interface HelperChannel {
  readonly pid: number | undefined;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Calls `gone` once the helper has exited, or for an error starting it; keeps nothing alive. */
  watch(gone: (e: Error) => void, stderrText: () => string): void;
}

/** A helper this process spawns. */
const spawnedChannel = (file: string): HelperChannel => {
  const child = spawn(file, ['helper'], { argv0: 'berth-helper', stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    pid: child.pid, stdin: child.stdin, stdout: child.stdout, stderr: child.stderr,
    watch(gone, stderrText) {
      child.on('error', gone);
      child.on('exit', (code, sig) => gone(new Error(`berth-shim helper exited (${sig ?? `status ${code}`})${stderrText() ? `: ${stderrText().trim()}` : ''}`)));
      child.unref();
    },
  };
};

/** The parent pid of `pid` (/proc/PID/stat), or undefined. */
const parentOf = (pid: number): number | undefined => {
  try {
    // the command name (in parentheses) may hold spaces: the fields after it are the ones counted
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ')[1]);
  } catch {
    return undefined;
  }
};

/**
 * The helper that the launcher started before this process (`berth-shim
 * launch`, native/shim/launch.h): BERTH_HELPER_FDS="pid,stdin,stdout,stderr"
 * names it and our ends of its pipes. Taken once, and the variable dropped,
 * so that nothing this process starts sees it. The descriptors reach no
 * program this process spawns: Node marks what it inherited close-on-exec
 * when it starts (libuv's uv_disable_stdio_inheritance). Undefined when
 * there is none or they are not pipes (the engine spawns its own then).
 */
const inheritedChannel = (): HelperChannel | undefined => {
  const v = process.env['BERTH_HELPER_FDS'];
  if (v === undefined) return undefined;
  delete process.env['BERTH_HELPER_FDS'];
  const [pid, inFd, outFd, errFd, ...extra] = v.split(',').map(Number);
  const all = [pid, inFd, outFd, errFd];
  if (extra.length > 0 || !all.every((n) => n !== undefined && Number.isInteger(n) && n > 2)) return undefined;
  // the launcher's helper is our child (the launcher became this process): anything else is not ours to talk to
  if (parentOf(pid!) !== process.pid) return undefined;
  const made: net.Socket[] = [];
  try {
    // each a pipe (net.Socket refuses a descriptor that is none, or not open)
    const stdin = new net.Socket({ fd: inFd!, readable: false, writable: true });
    made.push(stdin);
    const stdout = new net.Socket({ fd: outFd!, readable: true, writable: false });
    made.push(stdout);
    const stderr = new net.Socket({ fd: errFd!, readable: true, writable: false });
    return {
      pid, stdin, stdout, stderr,
      watch(gone, stderrText) {
        // not our child: the end of its stdout is its exit
        stdout.on('close', () => gone(new Error(`berth-shim helper exited${stderrText() ? `: ${stderrText().trim()}` : ''}`)));
        stdout.on('error', gone);
      },
    };
  } catch {
    for (const s of made) s.destroy();
    return undefined;
  }
};

class Helper {
  private readonly pending = new Map<number, { resolve: (r: HelperReply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private stderr = '';
  dead = false;
  get pid(): number | undefined {
    return this.child.pid;
  }
  /** True once the helper said hello (a reply with id 0); false if it went away before. */
  readonly ready: Promise<boolean>;
  private sayReady: (ok: boolean) => void = () => undefined;

  constructor(private readonly child: HelperChannel, private readonly onDead: (neverReady: boolean) => void) {
    this.ready = new Promise((r) => (this.sayReady = r));
    child.watch((e) => this.fail(e), () => this.stderr);
    this.child.stdout.on('data', (b: Buffer) => this.onData(b));
    this.child.stderr.on('data', (b: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += b.toString('utf8');
    });
    this.child.stdin.on('error', (e) => this.fail(e));
    for (const s of [this.child.stdin, this.child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
    this.idle(false); // until it says hello
  }

  /** Our end of its stdout keeps the event loop alive only while we wait for replies. */
  private idle(yes: boolean): void {
    const s = this.child.stdout as unknown as { ref?: () => void; unref?: () => void };
    if (yes) s.unref?.();
    else s.ref?.();
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.onDead(!this.helloSeen);
    this.sayReady(false); // nothing when it said hello already
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.idle(true);
  }
  private helloSeen = false;

  private onData(b: Buffer): void {
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (this.buf.length < 4 + len) break;
      const f = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      const id = f.readUInt32LE(0);
      const code = f.readInt32LE(4);
      const errno = f.readInt32LE(8);
      const outLen = f.readUInt32LE(12);
      const out = Buffer.from(f.subarray(16, 16 + outLen));
      const errLen = f.readUInt32LE(16 + outLen);
      const err = Buffer.from(f.subarray(20 + outLen, 20 + outLen + errLen));
      if (id === 0 && !this.helloSeen) {
        this.helloSeen = true;
        if (this.pending.size === 0) this.idle(true);
        this.sayReady(true);
        continue;
      }
      const p = this.pending.get(id);
      if (!p) continue;
      this.pending.delete(id);
      if (this.pending.size === 0) this.idle(true);
      p.resolve({ code, errno, out, err });
    }
  }

  request(op: number, fields: (parts: Buffer[]) => void): Promise<HelperReply> {
    // BERTH_TRACE=1: each request and how long it took, on stderr (bench/containers/ENGINE-PATH.md)
    if (!tracing()) return this.send(op, fields);
    const t0 = performance.now();
    const parts: Buffer[] = [];
    fields(parts);
    const what = `${OP_NAMES[op]} ${Buffer.concat(parts).toString('latin1').replace(/[\x00-\x1f]+/g, ' ').trim().slice(0, 60)}`;
    return this.send(op, fields).finally(() => process.stderr.write(`trace helper ${what} ${(performance.now() - t0).toFixed(1)}ms\n`));
  }

  private send(op: number, fields: (parts: Buffer[]) => void): Promise<HelperReply> {
    if (this.dead) return Promise.reject(new Error('berth-shim helper is gone'));
    const id = this.nextId++ >>> 0;
    const parts: Buffer[] = [];
    u32(parts, 0);
    u32(parts, id);
    parts.push(Buffer.from([op]));
    fields(parts);
    const frame = Buffer.concat(parts);
    frame.writeUInt32LE(frame.length - 4, 0);
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.idle(false);
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(frame);
    });
  }
}

let current: Helper | undefined;
let unavailable = false;

/**
 * The helper, started if need be, once it has said hello; undefined when it
 * cannot be had (callers spawn themselves then): BERTH_HELPER=0, no
 * berth-shim, or one that went away before saying hello (a build without
 * the helper mode), which is not tried again in this process.
 */
const helper = async (): Promise<Helper | undefined> => {
  if (!current || current.dead) {
    if (unavailable) return undefined;
    const launched = current === undefined ? inheritedChannel() : undefined;
    const file = path.join(nativeDir(), 'berth-shim');
    if (!launched && (process.env['BERTH_HELPER'] === '0' || !existsSync(file))) {
      unavailable = true;
      return undefined;
    }
    if (launched) trace(`helper: started by the launcher (pid ${launched.pid})`);
    const h: Helper = new Helper(launched ?? spawnedChannel(file), (neverReady) => {
      if (current === h) current = undefined;
      if (neverReady) unavailable = true;
    });
    current = h;
  }
  const h = current;
  return (await h.ready) ? h : undefined;
};

export const helperAvailable = async (): Promise<boolean> => (await helper()) !== undefined;

/**
 * Starts the helper now, without waiting for it: for a caller that knows a
 * container start is coming (`berth run`), so that the helper's fork, exec
 * and hello overlap the create instead of delaying the start.
 */
export const startHelper = (): void => {
  void helper().catch(() => undefined);
};

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs argv to completion (argv[0] looked up in PATH) with `input` on its
 * stdin; resolves whatever the exit status; rejects like spawn does (an
 * error with code 'ENOENT'...) when the program cannot be started.
 */
export const execProgram = async (argv: readonly string[], input?: string): Promise<ExecResult> => {
  const h = await helper();
  if (!h) return spawnProgram(argv, input);
  const r = await h.request(OP_EXEC, (parts) => {
    u32(parts, argv.length);
    for (const a of argv) str(parts, a);
    str(parts, input ?? '');
  });
  if (r.errno !== 0) throw new HelperSyscallError(`spawn ${argv[0]} ${errnoName(r.errno)}: ${r.err.toString('utf8')}`, r.errno);
  return { code: r.code, stdout: r.out.toString('utf8'), stderr: r.err.toString('utf8') };
};

/**
 * A path that executes a sealed copy of `file` held by the helper
 * (`/proc/<helper pid>/fd/<n>`, made once per version of the file): a
 * runtime started from it finds itself sealed and skips its own copy and
 * re-exec (native/src/exe_seal.h), 2 MB and an exec less per container.
 * undefined without a helper or when it cannot make one (the caller runs
 * the file itself, which seals itself).
 */
export const helperSealedExe = (file: string): Promise<string | undefined> => {
  const ahead = prefetched.get(file);
  prefetched.delete(file);
  return ahead && fresh(ahead) ? ahead.answer : requestSealedExe(file);
};

const requestSealedExe = async (file: string): Promise<string | undefined> => {
  const h = await helper();
  if (!h) return undefined;
  const r = await h.request(OP_SEAL, (parts) => str(parts, file));
  const fd = r.out.toString('utf8');
  return r.code === 0 && /^\d+$/.test(fd) ? `/proc/${h.pid}/fd/${fd}` : undefined;
};

/** Sealed copies asked for ahead of a start, each taken by the next helperSealedExe of its file. */
const prefetched = new Map<string, { answer: Promise<string | undefined>; at: number; helper: Helper }>();
/** How long a prefetched answer is used: a `run`'s create and start, not a container started much later. */
const PREFETCH_FRESH_MS = 10_000;
/** Young enough and from the helper that runs now: the helper replaces a copy (and its descriptor) when the file changes. */
const fresh = (p: { at: number; helper: Helper }): boolean => p.helper === current && Date.now() - p.at < PREFETCH_FRESH_MS;

/**
 * Asks for `file`'s sealed copy now, where a helper was started already
 * (startHelper: `berth run`), so that the copy (a fresh 2 MB memfd, 8 ms
 * here) is made while the container is created, not during its start. The
 * answer is taken by the next start once, within PREFETCH_FRESH_MS and from
 * the same helper: a later start asks again, and the helper checks the
 * file's version each time.
 */
export const prefetchSealedExe = (file: string): void => {
  const ahead = prefetched.get(file);
  if (!current || current.dead || (ahead && fresh(ahead))) return;
  prefetched.set(file, { answer: requestSealedExe(file).catch(() => undefined), at: Date.now(), helper: current });
};

/** The same through this process's own spawn (no helper). */
export const spawnProgram = (argv: readonly string[], input?: string): Promise<ExecResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'),
        code: code ?? (signal ? 128 + (signalNumbers[signal] ?? 9) : 1),
      }),
    );
    child.stdin.on('error', () => undefined); // a program that exits early closes its stdin
    child.stdin.end(input ?? '');
  });

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

/** mount(2) flags by option name (what mount(8) turns into flags rather than passing as data). */
const MS: Record<string, number> = {
  ro: 1, nosuid: 2, nodev: 4, noexec: 8, sync: 16, remount: 32, mand: 64, dirsync: 128, noatime: 1024, nodiratime: 2048,
  bind: 4096, rbind: 4096 | 16384, relatime: 1 << 21, strictatime: 1 << 24, lazytime: 1 << 25,
};
const MS_PRIVATE = 1 << 18;

export interface MountRequest {
  readonly type: string;
  readonly source: string;
  readonly target: string;
  /** mount(8)-style options: flags (ro, nosuid, bind...) and filesystem data (lowerdir=...). */
  readonly options: readonly string[];
  /** Make the new mount private (mount --make-private). */
  readonly makePrivate?: boolean;
}

/** mount(2) through the helper; false when there is no helper (the caller runs mount(8)). Throws HelperSyscallError. */
export const helperMount = async (m: MountRequest): Promise<boolean> => {
  const h = await helper();
  if (!h) return false;
  let flags = 0;
  const data: string[] = [];
  for (const o of m.options) {
    if (o === 'rw' || o === 'defaults') continue;
    const f = MS[o];
    if (f !== undefined) flags |= f;
    else data.push(o);
  }
  const r = await h.request(OP_MOUNT, (parts) => {
    str(parts, m.type);
    str(parts, m.source);
    str(parts, m.target);
    str(parts, data.join(','));
    u32(parts, flags);
    u32(parts, m.makePrivate ? MS_PRIVATE : 0);
  });
  if (r.code !== 0) throw new HelperSyscallError(r.err.toString('utf8'), r.errno);
  return true;
};

/** umount2(2) through the helper (MNT_DETACH when `lazy`); false when there is no helper. Throws HelperSyscallError. */
export const helperUmount = async (target: string, lazy: boolean): Promise<boolean> => {
  const h = await helper();
  if (!h) return false;
  const r = await h.request(OP_UMOUNT, (parts) => {
    str(parts, target);
    u32(parts, lazy ? 2 : 0);
  });
  if (r.code !== 0) throw new HelperSyscallError(r.err.toString('utf8'), r.errno);
  return true;
};

/** An exclusive flock(2) on `file`, held by the helper until helperUnlock (or until this process dies). */
export const helperLock = async (file: string, timeoutSec: number): Promise<void> => {
  const h = await helper();
  if (!h) throw new Error('no helper');
  const r = await h.request(OP_LOCK, (parts) => {
    str(parts, file);
    u32(parts, Math.max(1, Math.ceil(timeoutSec)));
  });
  if (r.code !== 0) throw new HelperSyscallError(r.err.toString('utf8'), r.errno);
};

export const helperUnlock = async (file: string): Promise<void> => {
  const h = await helper();
  if (!h) throw new Error('no helper');
  const r = await h.request(OP_UNLOCK, (parts) => str(parts, file));
  if (r.code !== 0) throw new HelperSyscallError(r.err.toString('utf8'), r.errno);
};

/* ------------------------------------------------------------ networks */

/** Operations an older berth-shim answered "unknown operation" to: not asked again in this process. */
const unknownOps = new Set<number>();
const EINVAL = 22;

/**
 * A network request: false when there is no helper or it does not know the
 * operation (the caller runs iproute2 then); throws HelperSyscallError with
 * the kernel's errno and a message naming the object otherwise.
 */
const netRequest = async (op: number, fields: (parts: Buffer[]) => void): Promise<boolean> => {
  if (unknownOps.has(op)) return false;
  const h = await helper();
  if (!h) return false;
  const r = await h.request(op, fields);
  if (r.code === 0) return true;
  const msg = r.err.toString('utf8');
  if (r.errno === EINVAL && msg.startsWith('unknown operation')) {
    unknownOps.add(op);
    return false;
  }
  throw new HelperSyscallError(msg, r.errno);
};

/** One veth pair of helperPlugVeths: `hostVeth` on `bridge` in our netns, `ifname` in the container's. */
export interface HelperVeth {
  readonly hostVeth: string;
  readonly bridge: string;
  readonly ifname: string;
  /** "02:42:0a:58:00:02" */
  readonly mac: string;
  /** "10.88.0.2/16" */
  readonly cidr: string;
  /** The default route's gateway; undefined for none. */
  readonly gateway?: string | undefined;
}

/**
 * Through rtnetlink, in a child of the helper: when `create`, a new netns
 * bound on `netns` (a file, made if missing) with lo up, else the one bound
 * there; then each veth pair, the host end on its bridge and up, the inner
 * end with its MAC, address, up, and default route. A new netns is bound
 * only once all of it is done, so a failure leaves none (its inner ends go
 * with it; host ends of the pairs made go too, asynchronously). False when
 * the helper cannot do it (the caller runs unshare and ip).
 */
export const helperPlugVeths = (netns: string, create: boolean, veths: readonly HelperVeth[]): Promise<boolean> =>
  netRequest(OP_NET_PLUG, (parts) => {
    str(parts, netns);
    u32(parts, create ? 1 : 0);
    u32(parts, veths.length);
    for (const v of veths) {
      str(parts, v.hostVeth);
      str(parts, v.bridge);
      str(parts, v.ifname);
      str(parts, v.mac);
      str(parts, v.cidr);
      str(parts, v.gateway ?? '');
    }
  });

/** Deletes a Berth link (berth*, bth*; others are refused with EINVAL) through rtnetlink; ENODEV when it is not there. */
export const helperDeleteLink = (name: string): Promise<boolean> => netRequest(OP_LINK_DEL, (parts) => str(parts, name));

/** Makes the bridge if missing, replaces its address with gateway/prefix, sets it up. */
export const helperEnsureBridge = (name: string, gateway: string, prefix: number): Promise<boolean> =>
  netRequest(OP_BRIDGE, (parts) => {
    str(parts, name);
    str(parts, gateway);
    u32(parts, prefix);
  });
