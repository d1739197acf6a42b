// A private Docker daemon (Debian's docker.io, dockerd 20.10) for one test or
// one benchmark, and everything it made removed again afterwards.
//
// The daemon runs inside a network namespace this helper creates
// (`ip netns add berth-test-docker-<id>`), so its bridge, veths and iptables
// rules live only there; the host's interfaces and firewall are never touched.
// It is started with `nsenter --net=/run/netns/<ns>`, not `ip netns exec`:
// `ip netns exec` also gives the command a mount namespace with a fresh sysfs
// on /sys, which hides the cgroup v1 hierarchies mounted under /sys/fs/cgroup,
// and dockerd (and runc under it) cannot run without them.
//
// Everything else is private too: --data-root, --exec-root, --pidfile and the
// API socket under one temp dir, its own containerd (the one dockerd starts and
// manages, state under the exec root), the trust key (`deprecated-key-path` in
// a private daemon.json, so /etc/docker/key.json is not created), the CLI's
// config dir (DOCKER_CONFIG), and the containers' cgroups under a parent named
// after the instance (`--cgroup-parent=/berth-test-docker-<id>`, so the suite's
// leak check sees any left behind).
//
// stop() removes the containers, stops dockerd by its pid (SIGTERM, wait,
// SIGKILL), waits for its containerd and shims to go (by their pids), unmounts
// anything left under its dir, removes its cgroups (and /sys/fs/cgroup/*/docker,
// /run/containerd, /run/docker if it created them and they are empty), deletes
// the netns and the temp dir. The same is available from another process by
// the instance's dir (stopDockerdAt), which is what the benchmarks' shell
// scripts use through this file's command line:
//   node dockerd.js start none|bridge|bridge-noproxy   -> prints {"dir","socket","netns","pid"}
//   node dockerd.js stop DIR
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const dockerdBinary = '/usr/sbin/dockerd';
/** The CLI that comes with docker.io (a newer CLI may be on PATH first; this one matches the daemon). */
export const dockerBinary = '/usr/bin/docker';

/** Why a private dockerd cannot run here, or undefined when it can. */
export function dockerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!fs.existsSync(dockerdBinary)) return `${dockerdBinary} is missing (apt-get install docker.io, or scripts/setup.sh)`;
  if (!fs.existsSync(dockerBinary)) return `${dockerBinary} is missing (it comes with docker.io)`;
  for (const tool of ['ip', 'nsenter', 'umount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is missing`;
    }
  }
  return undefined;
}

/** none: no bridge, no iptables (what tests that need no network use);
 *  bridge: docker0 and iptables rules inside the netns, with the userland proxy on or off. */
export type DockerdNetwork = 'none' | 'bridge' | 'bridge-noproxy';

export interface DockerdOptions {
  network?: DockerdNetwork;
  /** how long to wait for the API to answer (ms) */
  startTimeoutMs?: number;
  /** the exec root (containerd's and runc's state, netns files) on a tmpfs, as /run/docker is */
  execRootOnTmpfs?: boolean;
}

/** What stop needs, saved in the instance's dir so another process can stop it. */
interface DockerdState {
  id: string;
  netns: string;
  cgroupParent: string;
  /** host paths that did not exist before this daemon started (removed again when empty) */
  createdHostDirs: string[];
}

export interface Dockerd {
  readonly dir: string;
  readonly socket: string;
  readonly netns: string;
  /** /run/netns/<netns> */
  readonly netnsPath: string;
  readonly pid: number;
  readonly cgroupParent: string;
  /** argv prefix for the docker CLI: [dockerBinary, '-H', 'unix://...'] */
  readonly cli: string[];
  /** environment for the docker CLI (its own DOCKER_CONFIG) */
  readonly env: NodeJS.ProcessEnv;
  docker(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const readPid = (file: string): number | undefined => {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
};

/** SIGTERM, wait up to graceMs, then SIGKILL and wait for it to go. */
async function stopPid(pid: number, graceMs: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let t = 0; t < graceMs && alive(pid); t += 50) await sleep(50);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  for (let t = 0; t < 10_000 && alive(pid); t += 50) await sleep(50);
}

/** Processes whose command line names this instance's dir (its containerd and shims). */
function processesOf(dir: string): number[] {
  const found: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir + '/')) found.push(Number(p));
    } catch {
      // exited
    }
  }
  return found;
}

/** Mount points at or under dir, deepest first. */
export function mountsUnder(dir: string): string[] {
  const points: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4]?.replace(/\\040/g, ' ');
    if (mp !== undefined && (mp === dir || mp.startsWith(dir + '/'))) points.push(mp);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** Makes dir (under an instance's temp dir) a tmpfs of its own: where an engine keeps its
 *  runtime state (docker's exec root, podman's run root and tmp dir, Berth's run root), as
 *  under /run, which is a tmpfs on standard hosts and ext4 on the VM the benchmarks ran on.
 *  Unmounted with the rest by unmountUnder. */
export function mountRunStateTmpfs(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755,size=1g', 'berth-test-run', dir], { stdio: 'pipe' });
}

export function unmountUnder(dir: string): void {
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return;
    for (const mp of points) {
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch {
        // already gone with a parent
      }
    }
  }
}

const cgroupRoot = '/sys/fs/cgroup';

/** Every hierarchy's copy of the group named rel (e.g. 'berth-test-docker-1a2b'). */
export function cgroupDirs(rel: string): string[] {
  const dirs: string[] = [];
  let hierarchies: string[] = [];
  try {
    hierarchies = fs.readdirSync(cgroupRoot);
  } catch {
    return dirs;
  }
  for (const h of hierarchies) {
    const d = path.join(cgroupRoot, h, rel);
    try {
      if (fs.statSync(d).isDirectory() && !fs.lstatSync(path.join(cgroupRoot, h)).isSymbolicLink()) dirs.push(d);
    } catch {
      // not in this hierarchy
    }
  }
  return dirs;
}

/** rmdir a cgroup and its child groups, deepest first; groups that still hold tasks stay. */
export function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // busy: reported by the caller's leak check
  }
}

/** rmdir p when it is empty. */
function rmdirEmpty(p: string): void {
  try {
    fs.rmdirSync(p);
  } catch {
    // not empty or gone
  }
}

const hostDirsDockerMayCreate = ['/run/containerd/s', '/run/containerd', '/run/docker/plugins', '/run/docker'];

const stateFile = (dir: string): string => path.join(dir, 'berth-dockerd.json');

/** Waits until the API answers /_ping on the socket. */
async function waitForApi(socket: string, pid: number, log: string, timeoutMs: number): Promise<void> {
  const ping = (): Promise<boolean> =>
    new Promise((resolve) => {
      const req = http.get({ socketPath: socket, path: '/_ping', timeout: 2000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => {
        req.destroy();
        resolve(false);
      });
    });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fs.existsSync(socket) && (await ping())) return;
    if (!alive(pid)) {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`dockerd (pid ${pid}) exited before answering on ${socket}; its log ends:\n${tail}`);
    }
    await sleep(100);
  }
  throw new Error(`dockerd (pid ${pid}) did not answer on ${socket} within ${timeoutMs} ms (log: ${log})`);
}

function handle(dir: string, state: DockerdState, pid: number): Dockerd {
  const socket = path.join(dir, 'docker.sock');
  const cli = [dockerBinary, '-H', `unix://${socket}`];
  const env = { ...process.env, DOCKER_CONFIG: path.join(dir, 'cli') };
  return {
    dir,
    socket,
    netns: state.netns,
    netnsPath: `/run/netns/${state.netns}`,
    pid,
    cgroupParent: state.cgroupParent,
    cli,
    env,
    docker: async (...args: string[]) => (await run(cli[0]!, [...cli.slice(1), ...args], { env, maxBuffer: 64 << 20, timeout: 300_000 })).stdout,
    stop: () => stopDockerdAt(dir),
  };
}

/** Starts a private dockerd; the caller must stop() it (in afterAll / finally). */
export async function startDockerd(opts: DockerdOptions = {}): Promise<Dockerd> {
  const missing = dockerdMissing();
  if (missing !== undefined) throw new Error(`cannot start dockerd: ${missing}`);
  const network = opts.network ?? 'none';
  const id = randomBytes(4).toString('hex');
  const dir = fs.mkdtempSync('/tmp/berth-test-docker-');
  const state: DockerdState = {
    id,
    netns: `berth-test-docker-${id}`,
    cgroupParent: `berth-test-docker-${id}`,
    createdHostDirs: [...hostDirsDockerMayCreate, ...cgroupDirs('docker').length === 0 ? ['cgroup:docker'] : []].filter(
      (p) => p.startsWith('cgroup:') || !fs.existsSync(p),
    ),
  };
  fs.writeFileSync(stateFile(dir), JSON.stringify(state));
  let pid = 0;
  try {
    execFileSync('ip', ['netns', 'add', state.netns], { stdio: 'pipe' });
    execFileSync('ip', ['-n', state.netns, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'deprecated-key-path': path.join(dir, 'key.json') }));
    // the CLI's own config dir (DOCKER_CONFIG): some verbs stat config.json there
    fs.mkdirSync(path.join(dir, 'cli'));
    fs.writeFileSync(path.join(dir, 'cli', 'config.json'), '{}\n');
    if (opts.execRootOnTmpfs) mountRunStateTmpfs(path.join(dir, 'exec'));
    const args = [
      `--net=/run/netns/${state.netns}`,
      dockerdBinary,
      '--config-file', path.join(dir, 'daemon.json'),
      '--data-root', path.join(dir, 'data'),
      '--exec-root', path.join(dir, 'exec'),
      '--pidfile', path.join(dir, 'docker.pid'),
      '-H', `unix://${path.join(dir, 'docker.sock')}`,
      '--storage-driver=overlay2',
      `--cgroup-parent=/${state.cgroupParent}`,
      ...(network === 'none'
        ? ['--bridge=none', '--iptables=false', '--ip6tables=false']
        : ['--iptables=true', '--ip6tables=false', `--userland-proxy=${network === 'bridge' ? 'true' : 'false'}`]),
    ];
    const log = path.join(dir, 'dockerd.log');
    const out = fs.openSync(log, 'a');
    // nsenter execs dockerd in place (no fork for a network namespace): the child's pid is dockerd's
    const child = spawn('nsenter', args, { detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    child.unref();
    if (child.pid === undefined) throw new Error('could not spawn nsenter dockerd');
    pid = child.pid;
    fs.writeFileSync(path.join(dir, 'launched.pid'), String(pid));
    await waitForApi(path.join(dir, 'docker.sock'), pid, log, opts.startTimeoutMs ?? 60_000);
  } catch (e) {
    await stopDockerdAt(dir);
    throw e;
  }
  return handle(dir, state, pid);
}

/** Stops the dockerd whose instance dir is dir and removes everything it made. Safe to call twice. */
export async function stopDockerdAt(dir: string): Promise<void> {
  let state: DockerdState;
  try {
    state = JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as DockerdState;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const pid = readPid(path.join(dir, 'docker.pid')) ?? readPid(path.join(dir, 'launched.pid'));
  const socket = path.join(dir, 'docker.sock');
  const env = { ...process.env, DOCKER_CONFIG: path.join(dir, 'cli') };
  if (pid !== undefined && alive(pid) && fs.existsSync(socket)) {
    // containers first, so their shims and mounts go the ordinary way
    try {
      const ids = (await run(dockerBinary, ['-H', `unix://${socket}`, 'ps', '-aq'], { env, timeout: 60_000 })).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await run(dockerBinary, ['-H', `unix://${socket}`, 'rm', '-f', ...ids], { env, timeout: 120_000 });
    } catch {
      // the daemon is failing: the pids and mounts below still go
    }
  }
  const containerdPid = readPid(path.join(dir, 'exec/containerd/containerd.pid'));
  if (pid !== undefined) await stopPid(pid, 20_000);
  if (containerdPid !== undefined) await stopPid(containerdPid, 10_000);
  // shims (containerd-shim-runc-v2 -address <dir>/exec/containerd/...) of containers that were left
  for (const p of processesOf(dir)) await stopPid(p, 5_000);
  unmountUnder(dir);
  for (const cg of cgroupDirs(state.cgroupParent)) removeCgroupTree(cg);
  if (state.createdHostDirs.includes('cgroup:docker')) for (const cg of cgroupDirs('docker')) removeCgroupTree(cg);
  for (const p of state.createdHostDirs) if (!p.startsWith('cgroup:')) rmdirEmpty(p);
  try {
    execFileSync('ip', ['netns', 'del', state.netns], { stdio: 'ignore' });
  } catch {
    // never made, or already gone
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// command line, for the benchmarks' shell scripts
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [verb, arg] = process.argv.slice(2);
  if (verb === 'start' && (arg === undefined || arg === 'none' || arg === 'bridge' || arg === 'bridge-noproxy')) {
    const d = await startDockerd({ network: arg ?? 'none' });
    process.stdout.write(JSON.stringify({ dir: d.dir, socket: d.socket, netns: d.netns, pid: d.pid, cgroupParent: d.cgroupParent }) + '\n');
  } else if (verb === 'stop' && arg !== undefined) {
    await stopDockerdAt(arg);
  } else {
    process.stderr.write('usage: dockerd.js start [none|bridge|bridge-noproxy] | stop DIR\n');
    process.exit(2);
  }
}
