// The networking lock: mutual exclusion within a process and across
// processes, and no caller left waiting when callers arrive while the lock
// is being let go.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockCounters, withFlock } from '../../../engine/network/lock.js';

const skipReason = spawnSync('sh', ['-c', 'command -v flock'], { stdio: 'ignore' }).status !== 0 ? 'needs flock(1) (util-linux)' : '';
let dir = '';

describe.skipIf(skipReason !== '')(`networking lock${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-lock-'));
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs 300 callers arriving at scattered moments one at a time, every one of them, with few flock(1) runs', async () => {
    const file = path.join(dir, 'lock');
    let inside = 0;
    let most = 0;
    let done = 0;
    const a0 = lockCounters.acquisitions;
    const calls = Array.from({ length: 300 }, async (_, i) => {
      // arrive during other callers' sections and during the release of the lock (its close is asynchronous)
      for (let k = 0; k < i % 7; k++) await new Promise((r) => setImmediate(r));
      await withFlock(file, async () => {
        inside++;
        most = Math.max(most, inside);
        if (i % 3 === 0) await new Promise((r) => setImmediate(r));
        inside--;
        done++;
      }, 20);
    });
    await Promise.all(calls);
    expect({ done, most }).toEqual({ done: 300, most: 1 });
    expect(lockCounters.acquisitions - a0).toBeLessThan(300);
  }, 60_000);

  it('wakes a caller that arrives while the lock is being let go (its descriptor closed)', async () => {
    const file = path.join(dir, 'lock3');
    for (let i = 0; i < 50; i++) {
      let late: Promise<string> | undefined;
      await withFlock(file, async () => {
        // runs once our fn has returned, while the release closes the descriptor
        setImmediate(() => (late = withFlock(file, async () => 'late', 5)));
      });
      await new Promise((r) => setImmediate(r));
      const timeout = new Promise<string>((r) => setTimeout(() => r('stuck'), 3000));
      expect(await Promise.race([late!, timeout])).toBe('late');
    }
  }, 60_000);

  it('excludes another process, and is free again the moment its holder is SIGKILLed', async () => {
    const file = path.join(dir, 'lock2');
    fs.writeFileSync(file, '');
    // another process holds it (flock(1) running sleep; -o: sleep does not inherit the locked descriptor)
    const holder = spawn('flock', ['-x', '-o', file, 'sleep', '30'], { stdio: 'ignore' });
    for (let i = 0; i < 200 && spawnSync('flock', ['-n', '-x', file, 'true']).status === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await expect(withFlock(file, async () => 'never', 1)).rejects.toThrow(/networking lock/);
    holder.kill('SIGKILL');
    await new Promise((r) => holder.on('exit', r));
    expect(await withFlock(file, async () => 'ours', 5)).toBe('ours');
    // while we hold it, nobody else gets it
    await withFlock(file, async () => {
      expect(spawnSync('flock', ['-n', '-x', file, 'true']).status).not.toBe(0);
    });
  }, 30_000);
});
