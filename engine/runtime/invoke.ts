/**
 * Running the native parts: the OCI runtime (berth-runtime, runc: one
 * command line), the per-container shim, and the mount and detach of the
 * container's overlay rootfs, all through the engine's process helper
 * (helper.ts: forks of a small static process, mount(2) and umount2(2)
 * themselves); mount(8)/umount(8) and this process's own spawn without it.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { EngineFailure, fail } from '../errors.js';
import type { Mount } from '../store/mount.js';
import { execProgram, helperMount, helperUmount } from './helper.js';

export interface Exec {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a program to completion; never throws on a non-zero exit. */
export const run = (file: string, args: readonly string[], opts: { input?: string } = {}): Promise<Exec> => execProgram([file, ...args], opts.input);

const firstLine = (s: string): string => s.trim().split('\n').filter((l) => l !== '').slice(-3).join('; ');

export interface RuntimeCli {
  readonly path: string;
  readonly root: string;
  /** Runs `runtime --root R args...`; throws a Kernel-less Internal error naming the verb on failure. */
  call(args: readonly string[], what: string): Promise<string>;
  /** Same, but returns the result even when it failed. */
  try(args: readonly string[]): Promise<Exec>;
}

export const runtimeCli = (path: string, root: string): RuntimeCli => {
  const tryRun = (args: readonly string[]): Promise<Exec> => run(path, ['--root', root, ...args]);
  return {
    path,
    root,
    try: tryRun,
    async call(args, what) {
      const r = await tryRun(args);
      if (r.code !== 0) fail({ _tag: 'Internal', message: `${what}: runtime ${path} ${args[0]} failed (exit status ${r.code}): ${firstLine(r.stderr) || firstLine(r.stdout)}` });
      return r.stdout;
    },
  };
};

/** Mount an overlay (or any Mount value) privately: the container's mount
 *  namespace gets a copy with no propagation tie to the host's one, so the
 *  host side can be unmounted as soon as the container exists. */
export const mountPrivate = async (m: Mount): Promise<void> => {
  try {
    if (await helperMount({ ...m, makePrivate: true })) return;
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'EIO';
    return fail({ _tag: 'Kernel', syscall: 'mount', errno: code, path: m.target, message: (e as Error).message });
  }
  const r = await run('mount', ['-t', m.type, '-o', m.options.join(','), '--make-private', m.source, m.target]);
  if (r.code !== 0) fail({ _tag: 'Kernel', syscall: 'mount', errno: 'EIO', path: m.target, message: firstLine(r.stderr) });
};

/** A directory whose device differs from its parent's is a mount point (an
 *  overlay always has its own); a bind of the same filesystem needs mountinfo. */
export const isMountPoint = async (p: string, thorough = false): Promise<boolean> => {
  try {
    // a missing path is the usual answer (a container's rootfs before its start): no exception for it
    const a = statSync(p, { throwIfNoEntry: false });
    if (!a) return false;
    if (a.dev !== statSync(`${p}/..`).dev) return true;
    if (!thorough) return false;
  } catch {
    return false;
  }
  const info = readFileSync('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === p);
};

/** Detach `p` without waiting: a helper process finishes on its own (the
 *  next command that finds the mount still there removes it). */
export const unmountSoon = (p: string): void => {
  void helperUmount(p, true).then(
    (done) => {
      if (!done) spawn('umount', ['-l', p], { stdio: 'ignore', detached: true }).unref();
    },
    () => undefined,
  );
};

/** Unmount `p` (lazily) if it is a mount point. Idempotent. */
export const unmountIfMounted = async (p: string): Promise<void> => {
  for (let i = 0; i < 8 && (await isMountPoint(p)); i++) {
    const viaHelper = await helperUmount(p, true).catch((e: unknown) => (e as { code?: string }).code !== 'EINVAL' ? e : true);
    if (viaHelper === true) continue;
    if (viaHelper !== false) {
      if (await isMountPoint(p)) fail({ _tag: 'Kernel', syscall: 'umount', errno: (viaHelper as { code?: string }).code ?? 'EBUSY', path: p, message: (viaHelper as Error).message });
      continue;
    }
    const r = await run('umount', ['-l', p]);
    if (r.code !== 0 && (await isMountPoint(p))) fail({ _tag: 'Kernel', syscall: 'umount', errno: 'EBUSY', path: p, message: firstLine(r.stderr) });
  }
};

export interface ShimOptions {
  readonly shim: string;
  readonly id: string;
  readonly stateDir: string;
  readonly runtime: string;
  /** What the shim's `runtime create` executes instead of `runtime` (helperSealedExe). */
  readonly runtimeExec?: string;
  readonly runtimeRoot: string;
  readonly bundle: string;
  readonly logPath: string;
  readonly logMaxSize?: string;
  readonly terminal: boolean;
  readonly stdin: boolean;
  readonly stdinOnce: boolean;
  /** Run when the container has exited (berth-shim --exit-command; native/shim/exit_command.h). */
  readonly exitCommand?: readonly string[];
}

/** Start the shim; resolves once the container is created (its init waits for `start`). */
export const startShim = async (o: ShimOptions): Promise<{ shimPid: number; pid: number }> => {
  const args = ['--id', o.id, '--state-dir', o.stateDir, '--runtime', o.runtime, '--runtime-root', o.runtimeRoot, '--bundle', o.bundle,
    '--log-path', o.logPath, '--log-max-size', o.logMaxSize ?? '32m', '--log-max-files', '2', '--rm'];
  if (o.runtimeExec !== undefined) args.push('--runtime-exec', o.runtimeExec);
  if (o.terminal) args.push('--terminal');
  if (o.stdin) args.push('--stdin');
  if (o.stdin && o.stdinOnce) args.push('--stdin-once');
  const [exitProgram, ...exitArgs] = o.exitCommand ?? [];
  if (exitProgram !== undefined) args.push('--exit-command', exitProgram, ...exitArgs.flatMap((a) => ['--exit-command-arg', a]));
  const r = await execProgram([o.shim, ...args]);
  if (r.code === 0) {
    try {
      return JSON.parse(r.stdout.trim()) as { shimPid: number; pid: number };
    } catch {
      throw new Error(`berth-shim printed no readiness record: ${r.stdout}`);
    }
  }
  const msg = r.stderr.trim().replace(/^berth-shim: /, '');
  throw new EngineFailure({ _tag: 'Internal', message: `container ${o.id.slice(0, 12)}: ${msg || `berth-shim exited with status ${r.code}`}` });
};
