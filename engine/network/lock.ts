/**
 * The networking lock: one exclusive flock(2) on <root>/networks/lock.
 *
 * The engine's process helper (engine/runtime/helper.ts) takes it with
 * flock(2) on a descriptor of its own and holds it until we let go, or until
 * this process dies (the helper dies with it, and the kernel drops the lock
 * with its descriptor, even under SIGKILL). No process per acquisition.
 *
 * Without the helper: we open the lock file and hand that open file
 * description to flock(1) as its fd 3 (`flock -x -w N 3`): flock(1) locks it
 * and exits, and the lock, which belongs to the open file description, stays
 * with us until we close our descriptor. A pid-file lock cannot give that
 * without a race when two processes take over a dead holder's lock at once.
 *
 * Within one process, callers queue on a promise chain rather than each
 * taking the lock from the kernel; when one is done and others of this
 * process wait, the held lock passes straight to the next one (up to
 * HANDOFFS times in a row, then it is released so that other processes get
 * their turn).
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { conflict, EngineFailure, sys } from '../errors.js';
import { helperAvailable, helperLock, helperUnlock } from '../runtime/helper.js';

const HANDOFFS = 16;

interface Held {
  /** Lets the lock go. */
  readonly release: () => Promise<void>;
  handoffs: number;
}

interface LockState {
  held: Held | undefined;
  readonly queue: (() => void)[];
  busy: boolean;
}

const locks = new Map<string, LockState>();

/** Counts for tests: how many times the lock was taken from the kernel. */
export const lockCounters = { acquisitions: 0, handoffs: 0 };

const busy = (lockFile: string, detail: string): EngineFailure =>
  new EngineFailure(conflict('lock', lockFile, `could not take the networking lock (${detail}); another berth command holds it`));

const acquire = async (lockFile: string, timeoutSec: number): Promise<Held> => {
  if (await helperAvailable()) {
    lockCounters.acquisitions++;
    try {
      await helperLock(lockFile, timeoutSec);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EWOULDBLOCK' || code === 'EAGAIN') throw busy(lockFile, (e as Error).message);
      throw new EngineFailure({ _tag: 'Kernel', syscall: 'flock', errno: code ?? 'EUNKNOWN', path: lockFile, message: (e as Error).message });
    }
    // a helper that died took the lock with it: nothing left to let go then
    return { release: () => helperUnlock(lockFile).catch(() => undefined), handoffs: 0 };
  }
  const handle = await sys(lockFile, () => fsp.open(lockFile, 'a', 0o600));
  try {
    lockCounters.acquisitions++;
    const child = spawn('flock', ['-x', '-w', String(timeoutSec), '3'], { stdio: ['ignore', 'ignore', 'pipe', handle.fd] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number>((resolve, reject) => {
      child.on('error', (e) =>
        reject(new EngineFailure({ _tag: 'Kernel', syscall: 'execve', errno: (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN', path: 'flock', message: e.message })),
      );
      child.on('close', (c) => resolve(c ?? 1));
    });
    if (code !== 0) throw busy(lockFile, `flock exit ${code}${stderr ? `: ${stderr.trim()}` : ''}`);
    return { release: () => handle.close(), handoffs: 0 }; // the lock goes with our open file description
  } catch (e) {
    await handle.close();
    throw e;
  }
};

export const withFlock = async <A>(lockFile: string, fn: () => Promise<A>, timeoutSec = 60): Promise<A> => {
  let st = locks.get(lockFile);
  if (!st) {
    st = { held: undefined, queue: [], busy: false };
    locks.set(lockFile, st);
  }
  const state = st;
  if (state.busy) await new Promise<void>((r) => state.queue.push(r));
  state.busy = true;
  let ok = false;
  try {
    if (!state.held) state.held = await acquire(lockFile, timeoutSec);
    ok = true;
  } finally {
    if (!ok) {
      // could not take it: let the next in-process caller try its own luck
      const next = state.queue.shift();
      if (next) next();
      else state.busy = false;
    }
  }
  try {
    return await fn();
  } finally {
    const next = state.queue.shift();
    if (next && state.held!.handoffs < HANDOFFS) {
      state.held!.handoffs++;
      lockCounters.handoffs++;
      next();
    } else {
      const h = state.held!;
      state.held = undefined;
      try {
        await h.release();
      } finally {
        // a caller may have queued while the descriptor was being closed
        const after = next ?? state.queue.shift();
        if (after) after();
        else state.busy = false;
      }
    }
  }
};
