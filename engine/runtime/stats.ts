/**
 * ContainerStats from two samples of the runtime's `events --stats` (runc's
 * format, which berth-runtime prints for cgroup v1 and v2 alike), taken
 * `elapsedNanos` apart for the CPU percentage.
 */
import type { ContainerStats } from '../engine.js';

/** The parts of runc's stats record that Berth reads. */
export interface RuntimeStats {
  readonly cpu?: { readonly usage?: { readonly total?: number } };
  readonly memory?: { readonly usage?: { readonly usage?: number; readonly limit?: number } };
  readonly pids?: { readonly current?: number };
  readonly blkio?: { readonly ioServiceBytesRecursive?: ReadonlyArray<{ readonly op: string; readonly value: number }> };
}

/** The `data` of the first line of `events --stats` output. */
export const parseRuntimeStats = (out: string): RuntimeStats => {
  const first = out.trim().split('\n')[0] ?? '{}';
  const v = JSON.parse(first) as { data?: unknown };
  return typeof v.data === 'object' && v.data !== null ? (v.data as RuntimeStats) : {};
};

export const containerStats = (before: RuntimeStats, after: RuntimeStats, elapsedNanos: number): ContainerStats => {
  const cpu = (d: RuntimeStats): number => Number(d.cpu?.usage?.total ?? 0);
  const limit = Number(after.memory?.usage?.limit ?? 0);
  const blk = (op: string): number => (after.blkio?.ioServiceBytesRecursive ?? []).filter((x) => x.op.toLowerCase() === op).reduce((s, x) => s + x.value, 0);
  return {
    cpuUsageNanos: cpu(after),
    cpuPercent: elapsedNanos > 0 ? ((cpu(after) - cpu(before)) / elapsedNanos) * 100 : 0,
    memoryUsageBytes: Number(after.memory?.usage?.usage ?? 0),
    // "unlimited" reads as a huge number on cgroup v1
    ...(limit > 0 && limit < 2 ** 60 ? { memoryLimitBytes: limit } : {}),
    pids: Number(after.pids?.current ?? 0),
    blockReadBytes: blk('read'),
    blockWriteBytes: blk('write'),
  };
};
