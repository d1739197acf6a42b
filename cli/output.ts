/**
 * Output for humans (aligned tables, short IDs, sizes like 1.2MB) or for
 * machines (--json: one JSON document on stdout). Only CLI files print.
 */
import type { CliContext } from './context.js';

export interface Column<R> {
  readonly header: string;
  readonly get: (row: R) => string;
}

export const table = <R>(rows: readonly R[], columns: readonly Column<R>[]): string => {
  const cells = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => c.get(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('').trimEnd()).join('\n');
};

/** Print `data` as JSON with --json, else whatever `human` renders. */
export const emit = (ctx: CliContext, data: unknown, human: () => string): void => {
  if (ctx.opts.json) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else {
    const text = human();
    if (text !== '') process.stdout.write(`${text}\n`);
  }
};

/** Docker-style sizes: 1.23MB (powers of 1000). */
export const humanSize = (n: number): string => {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[u]}`;
};

/** "3 days ago", "About an hour ago" — like Docker's created column. */
export const since = (iso: string | undefined): string => {
  if (!iso) return 'N/A';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (!Number.isFinite(s)) return 'N/A';
  const fmt = (n: number, unit: string): string => `${Math.floor(n)} ${unit}${Math.floor(n) === 1 ? '' : 's'} ago`;
  if (s < 60) return 'Less than a minute ago';
  if (s < 3600) return fmt(s / 60, 'minute');
  if (s < 86400) return fmt(s / 3600, 'hour');
  if (s < 86400 * 14) return fmt(s / 86400, 'day');
  if (s < 86400 * 60) return fmt(s / 604800, 'week');
  if (s < 86400 * 730) return fmt(s / 2592000, 'month');
  return fmt(s / 31536000, 'year');
};
