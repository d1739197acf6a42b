import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isoTime } from '../../engine/time.js';

describe('isoTime', () => {
  it('writes what toISOString writes, for every kind of year, and refuses an invalid date alike', () => {
    const times = [0, 1, -1, 999, Date.UTC(1969, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 10, 23, 20, 5, 7, 42), Date.now(),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1), Date.UTC(0, 0, 1) - 1, -8.64e15, 8.64e15];
    for (let i = 0; i < 2000; i++) times.push(Math.round((Math.random() * 2 - 1) * 8.64e15));
    for (const t of times) expect(isoTime(new Date(t)), String(t)).toBe(new Date(t).toISOString());
    expect(() => isoTime(new Date(NaN))).toThrow(RangeError);
  });

  it('never asks for the host time zone (no read of /etc/localtime), where toISOString does', () => {
    const mod = JSON.stringify(path.resolve('dist/engine/time.js'));
    /** Whether node, running expr, opens /etc/localtime (strace -P lists only that path's openat calls). */
    const readsZone = (expr: string): boolean => {
      const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat', '-P', '/etc/localtime', process.execPath, '--input-type=module', '-e', `const { isoTime } = await import(${mod}); ${expr};`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return /openat\(.*localtime/.test(r.stderr);
    };
    expect(readsZone('new Date().toISOString()')).toBe(true);
    expect(readsZone('isoTime(); isoTime(new Date(0))')).toBe(false);
  });
});
