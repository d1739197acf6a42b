// Podman (Debian's 4.3) with private state for one test or benchmark, and
// everything it made removed again afterwards.
//
// Podman 4.3 fails on this host's default rlimits and wants crun, systemd and
// journald; it runs with a containers.conf of its own, given through
// CONTAINERS_CONF (the host's /etc/containers is never changed):
// default_ulimits nofile/nproc, runtime runc, cgroup_manager cgroupfs,
// events_logger file. Storage (--root, --runroot), libpod's tmp dir and the
// network config dir are under one temp dir; containers' cgroups go under a
// parent named after the instance (pass runFlags to `podman run`).
//
// With { netns: true } every podman command runs in a network namespace this
// helper creates (`nsenter --net=/run/netns/berth-test-podman-<id>`), so the
// podman0 bridge, veths and netavark's iptables rules live only there. (Not
// `ip netns exec`: its fresh sysfs on /sys hides the cgroup hierarchies.)
//
// cleanup() removes the containers, stops any conmon left (by pid), unmounts
// anything under the temp dir, removes its cgroups, deletes the netns and the
// temp dir. Also from another process: `node podman.js cleanup DIR`.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cgroupDirs, mountRunStateTmpfs, removeCgroupTree, unmountUnder } from './dockerd.js';

const run = promisify(execFile);

/** Why podman cannot run here, or undefined when it can. */
export function podmanMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root';
  for (const tool of ['podman', 'runc', 'conmon', 'ip', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is missing (scripts/setup.sh installs podman)`;
    }
  }
  return undefined;
}

export interface PodmanOptions {
  /** run podman inside a network namespace of its own (for bridge networking) */
  netns?: boolean;
  /** overlay (as docker's overlay2 and Berth) or vfs (no mounts: loads and saves only) */
  storageDriver?: 'overlay' | 'vfs';
  /** the run root and libpod's tmp dir on a tmpfs each, as /run/containers and /run/libpod are */
  runStateOnTmpfs?: boolean;
}

interface PodmanState {
  id: string;
  netns?: string;
  cgroupParent: string;
  createdLibpodParent: boolean;
}

export interface Podman {
  readonly dir: string;
  readonly netns?: string;
  readonly netnsPath?: string;
  /** the instance's cgroup parent (a group of that name in every hierarchy) */
  readonly cgroupParent: string;
  /** argv prefix: [nsenter --net=..., ] podman --root ... (the global flags) */
  readonly argv: string[];
  /** flags for `podman run`/`create`: the instance's cgroup parent */
  readonly runFlags: string[];
  /** environment with CONTAINERS_CONF */
  readonly env: NodeJS.ProcessEnv;
  /** the containers.conf file */
  readonly conf: string;
  podman(...args: string[]): Promise<string>;
  cleanup(): Promise<void>;
}

const stateFile = (dir: string): string => path.join(dir, 'berth-podman.json');

const confText = `# written by berth test/helpers/podman.ts for one private podman instance
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

function argvFor(dir: string, state: PodmanState, storageDriver: string): string[] {
  return [
    ...(state.netns !== undefined ? ['nsenter', `--net=/run/netns/${state.netns}`] : []),
    'podman',
    '--root', path.join(dir, 'root'),
    '--runroot', path.join(dir, 'runroot'),
    '--tmpdir', path.join(dir, 'tmp'),
    '--network-config-dir', path.join(dir, 'networks'),
    '--storage-driver', storageDriver,
  ];
}

export function makePodman(opts: PodmanOptions = {}): Podman {
  const missing = podmanMissing();
  if (missing !== undefined) throw new Error(`cannot run podman: ${missing}`);
  const id = randomBytes(4).toString('hex');
  const dir = fs.mkdtempSync('/tmp/berth-test-podman-');
  const state: PodmanState = {
    id,
    ...(opts.netns ? { netns: `berth-test-podman-${id}` } : {}),
    cgroupParent: `berth-test-podman-${id}`,
    createdLibpodParent: cgroupDirs('libpod_parent').length === 0,
  };
  const storageDriver = opts.storageDriver ?? 'overlay';
  fs.writeFileSync(stateFile(dir), JSON.stringify({ ...state, storageDriver }));
  for (const d of ['networks', 'tmp']) fs.mkdirSync(path.join(dir, d));
  if (opts.runStateOnTmpfs) {
    try {
      for (const d of ['runroot', 'tmp']) mountRunStateTmpfs(path.join(dir, d));
    } catch (e) {
      void cleanupPodmanAt(dir);
      throw e;
    }
  }
  const conf = path.join(dir, 'containers.conf');
  fs.writeFileSync(conf, confText);
  if (state.netns !== undefined) {
    try {
      execFileSync('ip', ['netns', 'add', state.netns], { stdio: 'pipe' });
      execFileSync('ip', ['-n', state.netns, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
    } catch (e) {
      void cleanupPodmanAt(dir);
      throw e;
    }
  }
  const argv = argvFor(dir, state, storageDriver);
  const env = { ...process.env, CONTAINERS_CONF: conf };
  return {
    dir,
    ...(state.netns !== undefined ? { netns: state.netns, netnsPath: `/run/netns/${state.netns}` } : {}),
    cgroupParent: state.cgroupParent,
    argv,
    runFlags: [`--cgroup-parent=/${state.cgroupParent}`],
    env,
    conf,
    podman: async (...args: string[]) => (await run(argv[0]!, [...argv.slice(1), ...args], { env, maxBuffer: 64 << 20, timeout: 300_000 })).stdout,
    cleanup: () => cleanupPodmanAt(dir),
  };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Removes everything the podman instance in dir made. Safe to call twice. */
export async function cleanupPodmanAt(dir: string): Promise<void> {
  let state: PodmanState & { storageDriver: string };
  try {
    state = JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as PodmanState & { storageDriver: string };
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const argv = argvFor(dir, state, state.storageDriver);
  const env = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf') };
  if (state.netns === undefined || fs.existsSync(`/run/netns/${state.netns}`)) {
    try {
      await run(argv[0]!, [...argv.slice(1), 'rm', '-fa', '-t', '0'], { env, timeout: 120_000 });
    } catch {
      // podman failing: the processes and mounts below still go
    }
  }
  // conmon and container processes of this instance (their command lines name its dir)
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!cmdline.includes(dir + '/')) continue;
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // gone
    }
    for (let t = 0; t < 5000 && alive(Number(p)); t += 50) await new Promise((r) => setTimeout(r, 50));
  }
  unmountUnder(dir);
  for (const cg of cgroupDirs(state.cgroupParent)) removeCgroupTree(cg);
  if (state.createdLibpodParent) for (const cg of cgroupDirs('libpod_parent')) removeCgroupTree(cg);
  if (state.netns !== undefined) {
    try {
      execFileSync('ip', ['netns', 'del', state.netns], { stdio: 'ignore' });
    } catch {
      // gone
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// command line, for the benchmarks' shell scripts:
//   node podman.js make [netns]   -> prints {"dir","argv","runFlags","conf","netns"}
//   node podman.js cleanup DIR
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [verb, arg] = process.argv.slice(2);
  if (verb === 'make' && (arg === undefined || arg === 'netns')) {
    const p = makePodman({ netns: arg === 'netns' });
    process.stdout.write(JSON.stringify({ dir: p.dir, argv: p.argv, runFlags: p.runFlags, conf: p.conf, netns: p.netns }) + '\n');
  } else if (verb === 'cleanup' && arg !== undefined) {
    await cleanupPodmanAt(arg);
  } else {
    process.stderr.write('usage: podman.js make [netns] | cleanup DIR\n');
    process.exit(2);
  }
}
