// Drives an OCI runtime CLI (berth-runtime, runc: same command line) for
// tests, and remembers everything a test made (containers, bundles, cgroups,
// helper processes) so that cleanup() removes it all, even after a failure.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { baseSpec, makeBundle, type Bundle } from './bundle.js';
import { decodeJson, State, type Spec } from './oci.js';
import { berthRuntimeBinary } from './paths.js';

export interface RuntimeUnderTest {
  name: string;
  path: string;
}

function which(cmd: string): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return cmd;
}

/** The runtimes the conformance suite runs over: all known ones, or those
 *  named in BERTH_RUNTIMES (comma or space separated). */
export function runtimesUnderTest(): RuntimeUnderTest[] {
  const all: RuntimeUnderTest[] = [
    { name: 'berth-runtime', path: berthRuntimeBinary },
    { name: 'runc', path: which('runc') },
  ];
  const wanted = process.env.BERTH_RUNTIMES?.split(/[\s,]+/).filter((s) => s !== '');
  if (!wanted || wanted.length === 0) return all;
  const unknown = wanted.filter((w) => !all.some((r) => r.name === w));
  if (unknown.length > 0) throw new Error(`BERTH_RUNTIMES names unknown runtimes: ${unknown.join(', ')}`);
  return all.filter((r) => wanted.includes(r.name));
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  input?: string;
  timeoutMs?: number;
  /** Extra fds handed to the child as fd 3, 4, ... (inherited, no CLOEXEC). */
  extraFds?: number[];
  /** Send the child's stdout/stderr to these fds instead of collecting them;
   *  then only the child's exit is awaited (a detached container may keep
   *  the fds open). */
  stdoutFd?: number;
  stderrFd?: number;
  /** Holds the child while it runs (so a cleanup can stop it). */
  running?: Set<ChildProcess>;
}

/** Runs a command and collects its output; never throws on a non-zero exit. */
export function runCommand(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Result> {
  const toFiles = opts.stdoutFd !== undefined;
  const stdio: StdioOptions = [
    opts.input !== undefined ? 'pipe' : 'ignore',
    toFiles ? opts.stdoutFd : 'pipe',
    toFiles ? (opts.stderrFd ?? opts.stdoutFd) : 'pipe',
    ...(opts.extraFds ?? []),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio });
    opts.running?.add(child);
    child.once('exit', () => opts.running?.delete(child));
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit after ${opts.timeoutMs ?? 30_000} ms (killed)\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on(toFiles ? 'exit' : 'close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` returns a value other than undefined, or fails. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

const cgroupMount = '/sys/fs/cgroup';

/** True when /sys/fs/cgroup is one cgroup2 hierarchy (no v1 controllers). */
export function isCgroup2Only(): boolean {
  return fs.existsSync(path.join(cgroupMount, 'cgroup.controllers'));
}

/** The host directory of a container's cgroup for a controller: the v1
 *  hierarchy of that controller, or the unified one on a v2 host. */
export function hostCgroupDir(controller: string, cgroupsPath: string): string {
  if (isCgroup2Only()) return path.join(cgroupMount, cgroupsPath);
  return path.join(cgroupMount, controller, cgroupsPath);
}

/** Every host directory where a cgroup of this path may exist (all hierarchies). */
export function allCgroupDirs(cgroupsPath: string): string[] {
  if (isCgroup2Only()) return [path.join(cgroupMount, cgroupsPath)];
  return fs.readdirSync(cgroupMount).map((h) => path.join(cgroupMount, h, cgroupsPath));
}

/** Processes whose root directory is `rootfs` (a container's processes). */
export function processesRootedAt(rootfs: string): number[] {
  const pids: number[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (fs.readlinkSync(`/proc/${pid}/root`) === rootfs) pids.push(Number(pid));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** Mount points at or under `dir` in the host's mount table. */
export function mountsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'));
}

export interface CreateOptions {
  consoleSocket?: string;
  pidFile?: string;
  extraArgs?: string[];
}

/** One test's view of a runtime: a private --root, a temp dir, and a list of
 *  what to remove afterwards. */
export class Harness {
  readonly dir: string;
  readonly root: string;
  private readonly ids = new Set<string>();
  private readonly cgroupPaths = new Set<string>();
  private readonly helpers: ChildProcess[] = [];
  private readonly running = new Set<ChildProcess>();
  private bundles = 0;

  constructor(readonly rt: RuntimeUnderTest) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
    // Traversable by every uid: a user namespace's mapped root must reach the rootfs.
    fs.chmodSync(this.dir, 0o755);
    this.root = path.join(this.dir, 'state');
    fs.mkdirSync(this.root);
  }

  /** A unique container id (and the cgroup path used with it). */
  newId(): string {
    const id = `berth-t-${randomBytes(4).toString('hex')}`;
    this.ids.add(id);
    return id;
  }

  /** A bundle running `args`, with a unique cgroup; `mutate` edits the spec. */
  bundle(args: string[], mutate?: (spec: Spec, bundleDir: string) => void): Bundle {
    const cgroupsPath = `/berth-test-${randomBytes(4).toString('hex')}`;
    this.cgroupPaths.add(cgroupsPath);
    const spec = baseSpec(args, cgroupsPath);
    const dir = path.join(this.dir, `bundle${this.bundles++}`);
    const b = makeBundle(dir, spec);
    if (mutate) {
      mutate(b.spec, dir);
      b.write();
    }
    return b;
  }

  /** `<runtime> --root R ARGS...` */
  cli(args: string[], opts: SpawnOptions = {}): Promise<Result> {
    return runCommand(this.rt.path, ['--root', this.root, ...args], { running: this.running, ...opts });
  }

  /** `run` in the foreground; stdout is the container's. */
  run(b: Bundle, id = this.newId(), opts: SpawnOptions & { extraArgs?: string[] } = {}): Promise<Result> {
    this.ids.add(id);
    return this.cli(['run', ...(opts.extraArgs ?? []), '--bundle', b.dir, id], opts);
  }

  /** `create` with the container's stdout and stderr sent to files
   *  (read them with output()); resolves when the runtime exits. */
  async create(b: Bundle, id: string, opts: CreateOptions = {}): Promise<Result> {
    this.ids.add(id);
    const out = fs.openSync(path.join(this.dir, `${id}.out`), 'a');
    const err = fs.openSync(path.join(this.dir, `${id}.err`), 'a');
    try {
      const args = ['create', '--bundle', b.dir];
      if (opts.consoleSocket) args.push('--console-socket', opts.consoleSocket);
      if (opts.pidFile) args.push('--pid-file', opts.pidFile);
      const r = await this.cli([...args, ...(opts.extraArgs ?? []), id], { stdoutFd: out, stderrFd: err });
      return { ...r, stderr: this.output(id).stderr };
    } finally {
      fs.closeSync(out);
      fs.closeSync(err);
    }
  }

  /** What a created container wrote to stdout and stderr so far. */
  output(id: string): { stdout: string; stderr: string } {
    const read = (ext: string) => {
      try {
        return fs.readFileSync(path.join(this.dir, `${id}.${ext}`), 'utf8');
      } catch {
        return '';
      }
    };
    return { stdout: read('out'), stderr: read('err') };
  }

  /** Creates and starts; fails the test if either step fails. */
  async createAndStart(b: Bundle, id = this.newId(), opts: CreateOptions = {}): Promise<string> {
    const c = await this.create(b, id, opts);
    if (c.code !== 0) throw new Error(`${this.rt.name} create ${id} exited ${c.code}: ${c.stderr}`);
    const s = await this.cli(['start', id]);
    if (s.code !== 0) throw new Error(`${this.rt.name} start ${id} exited ${s.code}: ${s.stderr}`);
    return id;
  }

  async state(id: string): Promise<State> {
    const r = await this.cli(['state', id]);
    if (r.code !== 0) throw new Error(`${this.rt.name} state ${id} exited ${r.code}: ${r.stderr}`);
    return decodeJson(State, r.stdout, `${this.rt.name} state ${id}`);
  }

  /** Polls `state` until the status is reached (a container that does not
   *  exist yet counts as not there yet). */
  waitStatus(id: string, status: State['status'], timeoutMs = 10_000): Promise<State> {
    let last = 'no answer';
    return waitFor(`${id} to be ${status}`, async () => {
      try {
        const s = await this.state(id);
        last = s.status;
        return s.status === status ? s : undefined;
      } catch (e) {
        last = (e as Error).message;
        return undefined;
      }
    }, timeoutMs).catch((e: Error) => {
      throw new Error(`${e.message} (last: ${last})`);
    });
  }

  /** The state directory a runtime keeps for a container under --root. */
  stateDir(id: string): string {
    return path.join(this.root, id);
  }

  /** Starts a helper process on the host (killed by pid in cleanup). */
  helper(cmd: string, args: string[]): ChildProcess {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.helpers.push(child);
    return child;
  }

  /** Removes every container, cgroup, helper and file this test made. */
  async cleanup(): Promise<void> {
    const problems: string[] = [];
    // A runtime command still running (a test failed while awaiting it):
    // stop it first, so that it cannot create anything after the deletes.
    for (const child of [...this.running]) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    for (const id of this.ids) {
      if (!fs.existsSync(this.stateDir(id))) continue;
      const r = await this.cli(['delete', '--force', id]).catch((e: Error) => ({ code: -1, stderr: e.message }));
      if (r.code !== 0) problems.push(`delete --force ${id}: ${r.stderr.trim()}`);
    }
    for (const child of this.helpers) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    }
    for (const cg of this.cgroupPaths) {
      for (const dir of allCgroupDirs(cg).reverse()) {
        try {
          fs.rmdirSync(dir);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`rmdir ${dir}: ${(e as Error).message}`);
        }
      }
    }
    // Never delete through a mount a runtime may have left (it could be a
    // bind of a host directory): unmount first, and name it as a problem.
    for (const m of mountsUnder(this.dir).reverse()) {
      problems.push(`mount left at ${m}`);
      await runCommand('umount', ['-l', m]);
    }
    const rm = await runCommand('rm', ['-rf', '--one-file-system', this.dir]);
    if (rm.code !== 0 || fs.existsSync(this.dir)) problems.push(`could not remove ${this.dir}: ${rm.stderr.trim()}`);
    if (problems.length > 0) throw new Error(`cleanup of ${this.rt.name} test found:\n  ${problems.join('\n  ')}`);
  }
}
