// Berth, podman and docker side by side for the benchmarks, each through its
// own CLI and each holding the same busybox image (the same image ID): the
// fixture rootfs imported into Berth, Berth's `save` of it loaded into docker
// (`docker load`) and into podman (`skopeo copy docker-archive:...
// containers-storage:[overlay@...]`).
//
// Where the engines' host side lives (network 'bridge'):
//   - docker: dockerd in a network namespace of its own (dockerd.ts), with
//     docker0, its iptables rules and docker-proxy only there; one daemon per
//     variant ('bridge' with the userland proxy, 'bridge-noproxy' without);
//   - podman: every command under `nsenter --net=` a namespace of its own
//     (podman.ts), so podman0 and netavark's rules live only there;
//   - Berth: the host's network namespace (its bridge and nft table are its
//     own, named berth-*, removed by it). Berth cannot run under
//     `nsenter --net` today: engine/network/host.ts checks links through
//     /sys/class/net, which shows the namespace that sysfs was mounted in
//     (the host's), so it tries to create its bridge twice and fails with
//     "File exists"; and `ip netns exec` hides the cgroup mounts. Its commands
//     still go through one `nsenter --net=/proc/self/ns/net` (a switch to the
//     namespace it is already in), so that each engine pays the same exec.
// Each engine's `argv` is the prefix before the verb; `env` holds
// CONTAINERS_CONF and DOCKER_CONFIG (each affects only its own engine).
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { cgroupDirs, dockerdMissing, mountRunStateTmpfs, startDockerd, unmountUnder, type Dockerd, type DockerdNetwork } from './dockerd.js';
import { makePodman, podmanMissing, type Podman } from './podman.js';

const run = promisify(execFile);

export interface EngineCli {
  /** berth, podman, docker, docker-noproxy */
  readonly name: string;
  /** argv before the verb, e.g. [nsenter, --net=..., podman, --root, ...] */
  readonly argv: string[];
  /** flags every `run` gets (podman: its cgroup parent) */
  readonly runFlags: string[];
  /** the network namespace the engine's host side lives in (its published ports answer there) */
  readonly hostNetns: string;
  cli(...args: string[]): Promise<string>;
}

export interface Engines {
  readonly engines: EngineCli[];
  readonly env: NodeJS.ProcessEnv;
  /** the busybox image's ID in every engine */
  readonly imageId: string;
  /** what was not run, and why */
  readonly skipped: string[];
  /** what peerLeftovers checks after cleanup: the peers' private dirs, their netns and
   *  cgroup names, and Berth's bridges on the host (known once cleanup has run) */
  readonly traces: PeerTraces;
  cleanup(): Promise<void>;
}

export interface EnginesOptions {
  repo: string;
  /** temp dir for Berth's root and the image tars (the caller removes it) */
  dir: string;
  network: 'none' | 'bridge';
  /** docker daemons to run (default: one, 'none' or 'bridge' by network) */
  docker?: DockerdNetwork[];
  podman?: boolean;
  node?: string;
  /** Berth's build (default <repo>/dist); Berth runs as users run it, <dist>/cli/berth (the launcher) */
  dist?: string;
  /** Each engine's runtime state on a tmpfs of its own, as under /run on a standard host
   *  (Berth's run root, podman's run root and tmp dir, docker's exec root); the rest of their
   *  state stays under dir, as under /var/lib. Without it all of it is under dir. */
  runStateOnTmpfs?: boolean;
}

/** Sets up the engines; on failure everything made so far is removed. */
export async function prepareEngines(opts: EnginesOptions): Promise<Engines> {
  const node = opts.node ?? process.execPath;
  const dist = opts.dist ?? path.join(opts.repo, 'dist');
  const main = path.join(dist, 'cli/main.js');
  const launcher = path.join(dist, 'cli/berth');
  const berthRoot = path.join(opts.dir, 'berth-root');
  // the runtime state: <root>/run by default, a tmpfs of its own when asked
  const berthRunRoot = path.join(opts.dir, opts.runStateOnTmpfs ? 'berth-run' : 'berth-root/run');
  const berthGlobals = ['--root', berthRoot, '--run-root', berthRunRoot];
  const bridged = opts.network === 'bridge';
  const dockerds: Dockerd[] = [];
  let podman: Podman | undefined;
  const skipped: string[] = [];
  const links: string[] = [];
  const cleanup = async (): Promise<void> => {
    try {
      const nets = JSON.parse((await run(node, [main, ...berthGlobals, '--json', 'network', 'ls'])).stdout) as { bridge?: string }[];
      for (const n of nets) if (n.bridge) links.push(n.bridge);
    } catch {
      // no Berth state yet
    }
    try {
      const ids = (await run(node, [main, ...berthGlobals, 'ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await run(node, [main, ...berthGlobals, 'rm', '-f', ...ids]);
    } catch {
      // no Berth state yet
    }
    // Berth's default bridge and nft table (a network outlives its containers)
    try {
      const { openNetworking } = (await import(pathToFileURL(path.join(dist, 'engine/network/networking.js')).href)) as {
        openNetworking: (r: { root: string; runRoot: string }) => { purge(): Promise<void> };
      };
      await openNetworking({ root: berthRoot, runRoot: berthRunRoot }).purge();
    } catch {
      // nothing was set up
    }
    unmountUnder(berthRunRoot);
    for (const d of dockerds) await d.stop();
    await podman?.cleanup();
  };
  try {
    fs.mkdirSync(opts.dir, { recursive: true });
    if (opts.runStateOnTmpfs) mountRunStateTmpfs(berthRunRoot);
    const env: NodeJS.ProcessEnv = { ...process.env };
    const rootfsTar = path.join(opts.dir, 'busybox-rootfs.tar');
    const saved = path.join(opts.dir, 'busybox-save.tar');
    execFileSync('tar', ['-C', path.join(opts.repo, 'test/fixtures/build/rootfs'), '--numeric-owner', '-cf', rootfsTar, '.']);
    const imageId = (await run(node, [main, ...berthGlobals, 'import', '--cmd', '["sh"]', rootfsTar, 'busybox:latest'])).stdout.trim();
    await run(node, [main, ...berthGlobals, 'save', '-o', saved, 'busybox:latest']);
    const berthArgv = ['nsenter', '--net=/proc/self/ns/net', ...(fs.existsSync(launcher) ? [launcher] : [node, main]), ...berthGlobals];
    const engines: EngineCli[] = [
      {
        name: 'berth',
        argv: berthArgv,
        runFlags: [],
        hostNetns: '/proc/self/ns/net',
        cli: async (...args) => (await run(berthArgv[0]!, [...berthArgv.slice(1), ...args], { env, maxBuffer: 16 << 20 })).stdout,
      },
    ];

    const pm = podmanMissing();
    if (opts.podman === false) skipped.push('podman: not asked for');
    else if (pm !== undefined) skipped.push(`podman: ${pm}`);
    else {
      podman = makePodman({ netns: bridged, storageDriver: 'overlay', runStateOnTmpfs: opts.runStateOnTmpfs === true });
      env['CONTAINERS_CONF'] = podman.conf;
      const p = podman;
      await run('skopeo', ['--insecure-policy', 'copy', '-q', `docker-archive:${saved}`, `containers-storage:[overlay@${path.join(p.dir, 'root')}+${path.join(p.dir, 'runroot')}]docker.io/library/busybox:latest`]);
      const id = (await p.podman('image', 'inspect', '--format', '{{.ID}}', 'busybox')).trim();
      if (`sha256:${id}` !== imageId) throw new Error(`podman's busybox is ${id}, Berth's ${imageId}`);
      engines.push({ name: 'podman', argv: p.argv, runFlags: p.runFlags, hostNetns: p.netnsPath ?? '/proc/self/ns/net', cli: (...args) => p.podman(...args) });
    }

    const dm = dockerdMissing();
    const variants = opts.docker ?? [bridged ? 'bridge' : 'none'];
    if (dm !== undefined) skipped.push(`docker: ${dm}`);
    else
      for (const v of variants) {
        const d = await startDockerd({ network: v, execRootOnTmpfs: opts.runStateOnTmpfs === true });
        dockerds.push(d);
        env['DOCKER_CONFIG'] ??= d.env['DOCKER_CONFIG']; // the same empty config.json in every instance
        await d.docker('load', '-q', '-i', saved);
        const id = (await d.docker('image', 'inspect', '--format', '{{.Id}}', 'busybox')).trim();
        if (id !== imageId) throw new Error(`docker's busybox is ${id}, Berth's ${imageId}`);
        const argv = bridged ? ['nsenter', `--net=${d.netnsPath}`, ...d.cli] : d.cli;
        engines.push({
          name: v === 'bridge-noproxy' ? 'docker-noproxy' : 'docker',
          argv,
          runFlags: [],
          hostNetns: d.netnsPath,
          cli: (...args) => d.docker(...args),
        });
      }
    const traces: PeerTraces = {
      dirs: [...dockerds.map((d) => d.dir), ...(podman ? [podman.dir] : []), berthRoot, berthRunRoot],
      names: [...dockerds.flatMap((d) => [d.netns, d.cgroupParent]), ...(podman ? [podman.cgroupParent, ...(podman.netns ? [podman.netns] : [])] : [])],
      links,
    };
    return { engines, env, imageId, skipped, cleanup, traces };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** What one run of peers made, to be checked for after its cleanup. Only these
 *  names count: a netns or cgroup of another run (a run killed earlier, or one
 *  beside this) is not this run's leftover. */
export interface PeerTraces {
  /** private dirs: mounts at or under them, processes naming them */
  dirs: string[];
  /** netns and cgroup names (berth-test-docker-<id>, berth-test-podman-<id>) */
  names: string[];
  /** network links (Berth's bridges) */
  links: string[];
}

/** The traces still on the host (netns, cgroups, mounts, processes, links), one line each. */
export function peerLeftovers({ dirs, names, links }: PeerTraces): string[] {
  const left: string[] = [];
  for (const l of links) if (fs.existsSync(`/sys/class/net/${l}`)) left.push(`link ${l}`);
  for (const n of new Set(names)) {
    if (fs.existsSync(`/run/netns/${n}`)) left.push(`netns ${n}`);
    for (const cg of cgroupDirs(n)) left.push(`cgroup ${path.relative('/sys/fs/cgroup', cg)}`);
  }
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  for (const d of dirs) {
    for (const m of mounts) if (m === d || m.startsWith(d + '/')) left.push(`mount ${m}`);
    for (const p of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        if (cmd.includes(d)) left.push(`process ${p} ${cmd.slice(0, 120)}`);
      } catch {
        // gone
      }
    }
  }
  return left;
}
