/**
 * Running the native parts: the OCI runtime (berth-runtime, runc: one
 * command line), the per-container shim, and mount(8)/umount(8) for the
 * container's overlay rootfs.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { EngineFailure, fail } from '../errors.js';
import type { Mount } from '../store/mount.js';

export interface Exec {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a program to completion; never throws on a non-zero exit. */
export const run = (file: string, args: readonly string[], opts: { input?: string } = {}): Promise<Exec> =>
  new Promise((resolve, reject) => {
    const child = execFile(file, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        reject(err);
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 128 + 9) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });

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
  const r = await run('mount', ['-t', m.type, '-o', m.options.join(','), '--make-private', m.source, m.target]);
  if (r.code !== 0) fail({ _tag: 'Kernel', syscall: 'mount', errno: 'EIO', path: m.target, message: firstLine(r.stderr) });
};

/** A directory whose device differs from its parent's is a mount point (an
 *  overlay always has its own); a bind of the same filesystem needs mountinfo. */
export const isMountPoint = async (p: string, thorough = false): Promise<boolean> => {
  try {
    const [a, b] = await Promise.all([fsp.stat(p), fsp.stat(`${p}/..`)]);
    if (a.dev !== b.dev) return true;
    if (!thorough) return false;
  } catch {
    return false;
  }
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === p);
};

/** Detach `p` without waiting: a helper process finishes on its own (the
 *  next command that finds the mount still there removes it). */
export const unmountSoon = (p: string): void => {
  spawn('umount', ['-l', p], { stdio: 'ignore', detached: true }).unref();
};

/** Unmount `p` (lazily) if it is a mount point. Idempotent. */
export const unmountIfMounted = async (p: string): Promise<void> => {
  for (let i = 0; i < 8 && (await isMountPoint(p)); i++) {
    const r = await run('umount', ['-l', p]);
    if (r.code !== 0 && (await isMountPoint(p))) fail({ _tag: 'Kernel', syscall: 'umount', errno: 'EBUSY', path: p, message: firstLine(r.stderr) });
  }
};

export interface ShimOptions {
  readonly shim: string;
  readonly id: string;
  readonly stateDir: string;
  readonly runtime: string;
  readonly runtimeRoot: string;
  readonly bundle: string;
  readonly logPath: string;
  readonly logMaxSize?: string;
  readonly terminal: boolean;
  readonly stdin: boolean;
  readonly stdinOnce: boolean;
}

/** Start the shim; resolves once the container is created (its init waits for `start`). */
export const startShim = (o: ShimOptions): Promise<{ shimPid: number; pid: number }> =>
  new Promise((resolve, reject) => {
    const args = ['--id', o.id, '--state-dir', o.stateDir, '--runtime', o.runtime, '--runtime-root', o.runtimeRoot, '--bundle', o.bundle,
      '--log-path', o.logPath, '--log-max-size', o.logMaxSize ?? '32m', '--log-max-files', '2', '--rm'];
    if (o.terminal) args.push('--terminal');
    if (o.stdin) args.push('--stdin');
    if (o.stdin && o.stdinOnce) args.push('--stdin-once');
    const child = spawn(o.shim, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) {
        try {
          const v = JSON.parse(out.trim()) as { shimPid: number; pid: number };
          resolve(v);
        } catch {
          reject(new Error(`berth-shim printed no readiness record: ${out}`));
        }
        return;
      }
      const msg = err.trim().replace(/^berth-shim: /, '');
      reject(new EngineFailure({ _tag: 'Internal', message: `container ${o.id.slice(0, 12)}: ${msg || `berth-shim exited with status ${code}`}` }));
    });
  });
