import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { EngineFailure } from '../../../engine/errors.js';
import { exists, pathUnder, withLock, writeFileAtomic } from '../../../engine/store/fsutil.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-fsutil-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('pathUnder', () => {
  it('gives what path.join gives, for every normal dir and any names', () => {
    const dirs = ['/', '/var/lib/berth', '/var/lib/berth/', '/run/berth/containers', 'rel', 'rel/deeper/', '.', '..', '../up', '../../x/y', 'a b/c'];
    const names = ['containers', 'a'.repeat(64), 'container.json', '.hidden', '..x', 'x..', 'with space', 'ünï', '', '.', '..', 'a/b', '/abs', 'trail/', 'x//y'];
    let compared = 0;
    for (const d of dirs) {
      expect(path.normalize(d), `${d} is normal`).toBe(d);
      expect(pathUnder(d)).toBe(path.join(d));
      for (const a of names) {
        expect(pathUnder(d, a), `${d} + ${a}`).toBe(path.join(d, a));
        for (const b of names) {
          expect(pathUnder(d, a, b), `${d} + ${a} + ${b}`).toBe(path.join(d, a, b));
          compared++;
        }
      }
    }
    expect(compared).toBe(dirs.length * names.length * names.length);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the content, keeps the mode, and leaves no temp file', async () => {
    const f = path.join(dir, 'rec.json');
    await writeFileAtomic(f, 'one', 0o600);
    await writeFileAtomic(f, new Uint8Array([0x74, 0x77, 0x6f]), 0o600);
    expect(readFileSync(f, 'utf8')).toBe('two');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['rec.json']);
  });

  it('fails as a Kernel error naming the path when the directory is missing, and writes nothing', async () => {
    const f = path.join(dir, 'missing', 'rec.json');
    const err = await writeFileAtomic(f, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineFailure);
    expect((err as EngineFailure).error).toMatchObject({ _tag: 'Kernel', errno: 'ENOENT' });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes its temp file when the rename fails (a directory in the way)', async () => {
    const f = path.join(dir, 'taken');
    mkdirSync(path.join(f, 'sub'), { recursive: true });
    const err = await writeFileAtomic(f, 'x').catch((e: unknown) => e);
    expect((err as EngineFailure).error).toMatchObject({ _tag: 'Kernel' });
    expect(readdirSync(dir)).toEqual(['taken']);
  });
});

describe('withLock', () => {
  it('holds the lock file with our pid while fn runs, removes it after, also when fn throws', async () => {
    const lock = path.join(dir, 'lock');
    const seen = await withLock(lock, 'thing', async () => readFileSync(lock, 'utf8'));
    expect(seen).toBe(String(process.pid));
    expect(await exists(lock)).toBe(false);
    await expect(withLock(lock, 'thing', async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await exists(lock)).toBe(false);
  });

  it('serializes callers: the second runs after the first has let go', async () => {
    const lock = path.join(dir, 'lock');
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = withLock(lock, 'thing', async () => {
      order.push('a in');
      await gate;
      order.push('a out');
    });
    await new Promise((r) => setTimeout(r, 5));
    const b = withLock(lock, 'thing', async () => {
      order.push('b in');
    });
    await new Promise((r) => setTimeout(r, 60));
    expect(order).toEqual(['a in']);
    release();
    await Promise.all([a, b]);
    expect(order).toEqual(['a in', 'a out', 'b in']);
  });

  it('takes over a lock left by a dead process', async () => {
    const lock = path.join(dir, 'lock');
    const dead = spawnSync('true').pid!; // exited and reaped: its pid names no live process (barring reuse)
    writeFileSync(lock, String(dead));
    expect(await withLock(lock, 'thing', async () => readFileSync(lock, 'utf8'))).toBe(String(process.pid));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('gives up with a Conflict naming the holder when a live process keeps it', async () => {
    const lock = path.join(dir, 'lock');
    writeFileSync(lock, '1'); // init: alive
    const err = await withLock(lock, 'thing', async () => 'never', 50).catch((e: unknown) => e);
    expect((err as EngineFailure).error).toMatchObject({ _tag: 'Conflict' });
    expect(String((err as EngineFailure).message)).toContain('held by pid 1');
    expect(readFileSync(lock, 'utf8')).toBe('1');
  });
});
