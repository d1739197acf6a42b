// Drives berth-shim in tests: temp dirs, starting shims, the fake runtime,
// attach and notify clients, and cleanup of every process started (by pid).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { repoRoot } from '../paths.js';

export const shimBinary = path.join(repoRoot, 'native/build/berth-shim');
export const fakeRuntime = path.join(repoRoot, 'test/helpers/shim/fake-runtime.sh');

/** Builds berth-shim through the Makefile (only that target). */
export function buildShim(): void {
  execFileSync('make', ['-C', path.join(repoRoot, 'native'), 'build/berth-shim'], { stdio: 'pipe' });
}

export interface Box {
  /** Short temp dir (unix socket paths must stay under 108 bytes). */
  dir: string;
  state: string;
  bundle: string;
  runtimeRoot: string;
  log: string;
  id: string;
  runtime: string;
  shimPid?: number;
  pid?: number;
}

const boxes: Box[] = [];
const extraPids = new Set<number>();

/** A temp dir with a fake-runtime bundle whose run.sh is script. */
export function fakeBox(script: string): Box {
  const dir = fs.mkdtempSync('/tmp/berth-test-shim-');
  const box: Box = {
    dir,
    state: path.join(dir, 'state'),
    bundle: path.join(dir, 'bundle'),
    runtimeRoot: path.join(dir, 'rt'),
    log: path.join(dir, 'ctr.log'),
    id: `berth-test-${path.basename(dir).slice(-6)}`,
    runtime: fakeRuntime,
  };
  fs.mkdirSync(box.bundle);
  fs.writeFileSync(path.join(box.bundle, 'run.sh'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  boxes.push(box);
  return box;
}

/** Registers a box made elsewhere (the runc bundle) for cleanup. */
export function trackBox(box: Box): Box {
  boxes.push(box);
  return box;
}

/** A pid the test started some other way, to be killed at cleanup. */
export function trackPid(pid: number): void {
  extraPids.add(pid);
}

export function shimArgs(box: Box, extra: string[] = []): string[] {
  return [
    '--id', box.id, '--state-dir', box.state, '--runtime', box.runtime,
    '--runtime-root', box.runtimeRoot, '--bundle', box.bundle, '--log-path', box.log, ...extra,
  ];
}

export interface ShimResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs berth-shim as the engine would and waits for its verdict. */
export function runShim(box: Box, extra: string[] = []): Promise<ShimResult> {
  return new Promise((resolve) => {
    execFile(shimBinary, shimArgs(box, extra), { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (code === 0) {
        const ready = JSON.parse(stdout) as { shimPid: number; pid: number };
        box.shimPid = ready.shimPid;
        box.pid = ready.pid;
      }
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a shim and expects the container to be created. */
export async function startShim(box: Box, extra: string[] = []): Promise<{ shimPid: number; pid: number }> {
  const r = await runShim(box, extra);
  if (r.code !== 0) throw new Error(`berth-shim failed (${r.code}): ${r.stderr}`);
  return { shimPid: box.shimPid as number, pid: box.pid as number };
}

/** The box's runtime with its --root. */
export function runtime(box: Box, ...args: string[]): string {
  return execFileSync(box.runtime, ['--root', box.runtimeRoot, ...args], { encoding: 'utf8', timeout: 20_000 });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** State letter from /proc/PID/stat, or undefined when the pid is gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

/** Fields of /proc/PID/stat after the command name, numbered as in proc(5). */
export function procStat(pid: number): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ['', '', '', ...rest]; // rest[0] is field 3 (state)
}

/** Children of pid as (pid, state) from /proc. */
export function childrenOf(ppid: number): Array<{ pid: number; state: string }> {
  const out: Array<{ pid: number; state: string }> = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const f = procStat(Number(name));
      if (Number(f[4]) === ppid) out.push({ pid: Number(name), state: f[3] ?? '?' });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export interface ExitRecord {
  pid: number;
  exitCode: number;
  signal: string | null;
  exitedAt: string;
  oomKilled?: boolean;
  cleanupError?: string;
}

export function readExit(box: Box): ExitRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(box.state, 'exit.json'), 'utf8')) as ExitRecord;
  } catch {
    return undefined;
  }
}

/** Waits until the shim has recorded the exit and gone. */
export async function waitShimGone(box: Box): Promise<ExitRecord> {
  const rec = await waitFor('exit.json', () => readExit(box));
  await waitFor('the shim to exit', () => box.shimPid === undefined || !alive(box.shimPid));
  return rec;
}

export interface LogRecord {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

export function readLog(file: string): LogRecord[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as LogRecord);
}

/** Connects to the exit socket; the promise inside resolves with what the
 *  shim sent before closing the connection. */
export function notifyClient(box: Box): Promise<{ line: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path.join(box.state, 'shim.sock'));
    let data = '';
    const line = new Promise<string>((res, rej) => {
      sock.on('data', (d) => (data += d.toString('utf8')));
      sock.on('end', () => res(data));
      sock.on('error', rej);
    });
    line.catch(() => {}); // a failed connect is reported through the outer promise
    sock.once('error', reject);
    sock.once('connect', () => resolve({ line }));
  });
}

export interface AttachFrame {
  stream: number;
  data: Buffer;
}

/** An attach client speaking the framed protocol of native/shim/README.md. */
export class AttachClient {
  readonly frames: AttachFrame[] = [];
  raw = Buffer.alloc(0);
  ended = false;
  private pending = Buffer.alloc(0);
  private constructor(private readonly sock: net.Socket, private readonly framed: boolean) {
    sock.on('data', (d: Buffer) => {
      this.raw = Buffer.concat([this.raw, d]);
      if (!this.framed) return;
      this.pending = Buffer.concat([this.pending, d]);
      while (this.pending.length >= 8) {
        const len = this.pending.readUInt32BE(4);
        if (this.pending.length < 8 + len) break;
        this.frames.push({ stream: this.pending[0] ?? 0, data: this.pending.subarray(8, 8 + len) });
        this.pending = this.pending.subarray(8 + len);
      }
    });
    sock.on('end', () => (this.ended = true));
    sock.on('close', () => (this.ended = true));
    sock.on('error', () => (this.ended = true));
  }

  static connect(box: Box, framed = true): Promise<AttachClient> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path.join(box.state, 'attach.sock'));
      sock.once('error', reject);
      sock.once('connect', () => resolve(new AttachClient(sock, framed)));
    });
  }

  text(stream?: number): string {
    if (!this.framed) return this.raw.toString('utf8');
    return this.frames
      .filter((f) => stream === undefined || f.stream === stream)
      .map((f) => f.data.toString('utf8'))
      .join('');
  }

  private frame(type: number, payload: Buffer): void {
    const hdr = Buffer.alloc(8);
    hdr[0] = type;
    hdr.writeUInt32BE(payload.length, 4);
    this.sock.write(Buffer.concat([hdr, payload]));
  }

  stdin(s: string): void {
    this.frame(0, Buffer.from(s, 'utf8'));
  }

  resize(rows: number, cols: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt16BE(rows, 0);
    p.writeUInt16BE(cols, 2);
    this.frame(1, p);
  }

  closeStdin(): void {
    this.frame(2, Buffer.alloc(0));
  }

  endInput(): void {
    this.sock.end();
  }

  close(): void {
    this.sock.destroy();
  }

  async waitText(what: string | RegExp, stream?: number, timeoutMs = 10_000): Promise<string> {
    return waitFor(`attach output ${String(what)} (have ${JSON.stringify(this.text(stream))})`, () => {
      const t = this.text(stream);
      return (typeof what === 'string' ? t.includes(what) : what.test(t)) ? t : undefined;
    }, timeoutMs);
  }

  waitEnd(timeoutMs = 10_000): Promise<boolean> {
    return waitFor('attach socket to close', () => this.ended, timeoutMs);
  }
}

/** VmRSS and Pss in KiB of a live process. */
export function memoryOf(pid: number): { vmRssKiB: number; pssKiB: number; privateDirtyKiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const num = (text: string, key: RegExp): number => Number(key.exec(text)?.[1] ?? NaN);
  return {
    vmRssKiB: num(status, /^VmRSS:\s+(\d+) kB/m),
    pssKiB: num(rollup, /^Pss:\s+(\d+) kB/m),
    privateDirtyKiB: num(rollup, /^Private_Dirty:\s+(\d+) kB/m),
  };
}

function killPid(pid: number | undefined): void {
  if (pid === undefined || pid <= 1 || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Removes every container (through its runtime), kills every shim and
 *  pid started, and deletes the temp dirs. */
export async function cleanupAll(): Promise<void> {
  for (const box of boxes.splice(0)) {
    spawnSync(box.runtime, ['--root', box.runtimeRoot, 'delete', '--force', box.id], { stdio: 'ignore', timeout: 20_000 });
    killPid(box.pid);
    if (box.shimPid !== undefined) {
      // A shim whose container is gone records the exit and leaves by itself.
      await waitFor('shim exit', () => !alive(box.shimPid as number), 5_000).catch(() => killPid(box.shimPid));
    }
    fs.rmSync(box.dir, { recursive: true, force: true });
  }
  for (const pid of extraPids) killPid(pid);
  extraPids.clear();
}
