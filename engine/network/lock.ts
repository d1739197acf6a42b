/**
 * The networking lock: one exclusive flock(2) on <root>/networks/lock, held
 * by a flock(1) child for as long as an operation runs. flock(1) runs `cat`,
 * which echoes a byte back once the lock is ours and exits on end of stdin,
 * so the lock goes away with the process that held it, even under SIGKILL
 * (its pipe closes). A pid-file lock cannot give that without a race when
 * two processes take over a dead holder's lock at once.
 */
import { spawn } from 'node:child_process';
import { conflict, EngineFailure } from '../errors.js';

export const withFlock = async <A>(lockFile: string, fn: () => Promise<A>, timeoutSec = 60): Promise<A> => {
  const child = spawn('flock', ['-x', '-w', String(timeoutSec), lockFile, 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin.on('error', () => undefined);
  const acquired = new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.on('error', (e) =>
      reject(new EngineFailure({ _tag: 'Kernel', syscall: 'execve', errno: (e as NodeJS.ErrnoException).code ?? 'EUNKNOWN', path: 'flock', message: e.message })),
    );
    child.on('close', (code) =>
      reject(new EngineFailure(conflict('lock', lockFile, `could not take the networking lock (flock exit ${code}${stderr ? `: ${stderr.trim()}` : ''}); another berth command holds it`))),
    );
  });
  child.stdin.write('\n');
  try {
    await acquired;
  } catch (e) {
    child.kill();
    throw e;
  }
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  child.removeAllListeners('error');
  child.on('error', () => undefined);
  try {
    return await fn();
  } finally {
    child.stdin.end();
    await closed;
  }
};

