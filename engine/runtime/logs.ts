/**
 * Reading the shim's JSON-lines log (Docker's json-file format): the
 * rotated file first, then the current one; --tail, --since, and --follow
 * until the container is no longer running (a rotation starts over).
 */
import { promises as fsp } from 'node:fs';
import type { LogLine } from '../engine.js';

export interface LogOptions {
  readonly follow?: boolean;
  readonly tail?: number;
  readonly since?: Date;
  readonly signal?: AbortSignal;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Records of one file from `fromByte`, each with the offset after it. */
const readLogFile = async function* (file: string, fromByte = 0): AsyncGenerator<LogLine & { end: number }> {
  let fd;
  try {
    fd = await fsp.open(file, 'r');
  } catch {
    return;
  }
  try {
    // node:readline on first use: left out of berth's start-up snapshot, which every command deserializes
    const rl = process.getBuiltinModule('node:readline').createInterface({ input: fd.createReadStream({ start: fromByte, autoClose: false }), crlfDelay: Infinity });
    let pos = fromByte;
    for await (const l of rl) {
      pos += Buffer.byteLength(l) + 1;
      if (l === '') continue;
      let v: { log?: unknown; stream?: unknown; time?: unknown };
      try {
        v = JSON.parse(l) as typeof v;
      } catch {
        return; // a partly written last line: stop here, a follower reads it again
      }
      if (typeof v.log !== 'string' || typeof v.time !== 'string' || (v.stream !== 'stdout' && v.stream !== 'stderr')) continue;
      yield { stream: v.stream, time: v.time, text: v.log, end: pos };
    }
  } finally {
    await fd.close();
  }
};

export const readLogs = async function* (logPath: string, opts: LogOptions, running: () => Promise<boolean>): AsyncGenerator<LogLine> {
  const sinceIso = opts.since?.toISOString();
  const keep = (l: LogLine): boolean => sinceIso === undefined || l.time >= sinceIso;
  const line = (l: LogLine): LogLine => ({ stream: l.stream, time: l.time, text: l.text });
  const all: LogLine[] = [];
  let end = 0;
  for await (const l of readLogFile(`${logPath}.1`)) if (keep(l)) all.push(line(l));
  for await (const l of readLogFile(logPath)) {
    end = l.end;
    if (keep(l)) all.push(line(l));
  }
  const start = opts.tail !== undefined && opts.tail >= 0 ? Math.max(0, all.length - opts.tail) : 0;
  for (const l of all.slice(start)) yield l;
  if (!opts.follow) return;
  for (;;) {
    if (opts.signal?.aborted) return;
    // checked before reading: output written before the exit is read in this round
    const alive = await running();
    const size = await fsp.stat(logPath).then((s) => s.size, () => 0);
    if (size < end) end = 0; // rotated
    if (size > end) {
      for await (const l of readLogFile(logPath, end)) {
        end = l.end;
        if (keep(l)) yield line(l);
      }
    }
    if (!alive) return;
    await sleep(100);
  }
};
