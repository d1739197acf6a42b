/**
 * Stack benchmarks (issue 6):
 *   apply N   time to apply a stack of N containers from empty on the local
 *             engine (temporary root; one stack network; the image imported
 *             beforehand), then to destroy it
 *   noop      a no-op plan over 1,000 declared resources: decode the YAML
 *             file, build the desired state, and plan against an actual
 *             state that already matches (the pure part of `berth plan`)
 * Run as root from the repository root after `npx tsc`:
 *   node dist/bench/stack/bench.js noop apply:50 apply:200 apply:50:none
 * (`apply:N:none`: containers with networkMode none, to separate networking's share)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { ContainerInfo, ImageInfo, NetworkInfo, VolumeInfo } from '../../engine/engine.js';
import { openLocalEngine } from '../../engine/local.js';
import { loadStack } from '../../provider/model/load.js';
import { apply } from '../../provider/reconcile/apply.js';
import { desiredState, type Desired } from '../../provider/reconcile/desired.js';
import { planFor } from '../../provider/reconcile/observe.js';
import { isEmpty, plan, type Observed } from '../../provider/reconcile/plan.js';

const repo = process.cwd();
const rootfsTar = path.join(repo, 'examples/web/build/busybox-rootfs.tar');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
};

/** An actual state that matches `d`, as the engine reports it (defaults filled in). */
const matchingState = (d: Desired): Observed => {
  const img: ImageInfo = { id: 'sha256:' + 'a'.repeat(64), names: ['bench/img:1'], digest: 'sha256:' + 'b'.repeat(64), size: 1, architecture: 'amd64', os: 'linux', config: {}, labels: {} };
  const networks: NetworkInfo[] = Object.values(d.networks).map((n, i) => ({
    id: `net${i}`, name: n.spec.name, created: '', spec: { ...n.spec, subnet: `10.${i >> 8}.${i & 255}.0/24`, gateway: `10.${i >> 8}.${i & 255}.1` }, bridge: `berth${i}`, containers: {},
  }));
  const byName = new Map(networks.map((n) => [n.name, n.id]));
  const volumes: VolumeInfo[] = Object.values(d.volumes).map((v) => ({ name: v.spec.name, created: '', spec: v.spec, mountpoint: `/v/${v.spec.name}`, usedBy: [] }));
  const containers: ContainerInfo[] = Object.values(d.containers).map((c, i) => ({
    id: `c${i}`.padEnd(64, '0'), name: c.spec.name!, created: '', image: c.imageRef, imageId: img.id,
    spec: { ...c.spec, resources: { cpuShares: 1024, ...c.resources }, env: ['PATH=/bin', ...(c.spec.env ?? [])] },
    state: { status: 'running', pid: 1000 + i, restartCount: 0 },
    networks: Object.fromEntries(Object.entries(c.networks).map(([n, a]) => [n, { networkId: byName.get(n)!, aliases: [...a.aliases, c.spec.name!] }])),
    ports: c.spec.ports ?? [],
  }));
  return { containers, networks, volumes, images: [img], refs: { 'bench/img:1': img } };
};

const noop = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-noop-'));
  try {
    const nNet = 100;
    const nVol = 100;
    const nCtr = 800;
    const lines = ['stack: bench', 'networks:'];
    for (let i = 0; i < nNet; i++) lines.push(`  n${i}: { labels: { tier: t${i % 5} } }`);
    lines.push('volumes:');
    for (let i = 0; i < nVol; i++) lines.push(`  v${i}: {}`);
    lines.push('containers:');
    for (let i = 0; i < nCtr; i++) {
      lines.push(`  c${i}:`, '    image: bench/img:1', `    command: [sh, -c, "sleep ${i}"]`, `    env: { INDEX: ${i}, MODE: bench }`,
        `    networks: { n${i % nNet}: { aliases: [a${i}] } }`, `    mounts: ["v${i % nVol}:/data", { type: tmpfs, target: /tmp, size: 8m }]`,
        '    ports: ["80"]', '    resources: { memory: 32m, cpus: 0.25 }', '    restart: always', '    labels: { app: bench }',
        ...(i > 0 ? [`    dependsOn: [c${i - 1}]`] : []));
    }
    const file = path.join(dir, 'stack.yaml');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const first = loadStack(file);
    if (E.isLeft(first)) throw new Error(JSON.stringify(first.left));
    const observed = matchingState(desiredState(first.right));
    const total: number[] = [];
    const decode: number[] = [];
    const planOnly: number[] = [];
    for (let run = 0; run < 30; run++) {
      const t0 = performance.now();
      const s = loadStack(file);
      const t1 = performance.now();
      if (E.isLeft(s)) throw new Error('decode failed');
      const p = plan(desiredState(s.right), observed);
      const t2 = performance.now();
      if (!isEmpty(p) || p.conflicts.length > 0) throw new Error(`plan is not empty: ${JSON.stringify(p.changes.find((c) => c.action !== 'noop'))}`);
      if (run >= 3) { total.push(t2 - t0); decode.push(t1 - t0); planOnly.push(t2 - t1); }
    }
    const f = (x: number): string => x.toFixed(1);
    return [
      `no-op plan over ${nNet + nVol + nCtr} declared resources (${nCtr} containers, ${nNet} networks, ${nVol} volumes; ${(fs.statSync(file).size / 1024).toFixed(0)} KiB of YAML), ${total.length} runs after 3 warm-up:`,
      `  file -> plan, median ${f(median(total))} ms, p95 ${f(pct(total, 0.95))} ms (decode+validate ${f(median(decode))} ms, desired+plan ${f(median(planOnly))} ms)`,
    ].join('\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

/** Host-wide busy CPU time (all cores, ms) from /proc/stat: the engine's process, its children, shims, containers, the kernel's work. */
const hostBusyMs = (): number => {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return ((user + nice + system + irq + softirq + steal) * 1000) / 100; // USER_HZ = 100
};
/**
 * CPU of this process's cgroup (cgroup v1 cpuacct), when it runs in one of its own
 * (bench/stack/run.sh puts it in one): this process, the helper, every runtime,
 * shim, ip, nft it starts, the shims after they detach; not the containers' own
 * cgroups nor the kernel's workers. Host-wide figures count other users of the host too.
 */
const cgroupUsageFile = ((): string | undefined => {
  try {
    const line = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => /:(cpu,)?cpuacct(,cpu)?:/.test(l));
    const rel = line?.split(':')[2];
    if (!rel || rel === '/') return undefined;
    for (const dir of ['cpuacct', 'cpu,cpuacct', 'cpuacct,cpu']) {
      const f = path.join('/sys/fs/cgroup', dir, rel, 'cpuacct.usage');
      if (fs.existsSync(f)) return f;
    }
  } catch {
    // no cgroup v1 cpuacct
  }
  return undefined;
})();
const cgroupMs = (): number => (cgroupUsageFile ? Number(fs.readFileSync(cgroupUsageFile, 'utf8')) / 1e6 : NaN);
const cpuNow = (): { host: number; self: number; group: number } => {
  const u = process.cpuUsage();
  return { host: hostBusyMs(), self: (u.user + u.system) / 1000, group: cgroupMs() };
};
const cpuSince = (a: { host: number; self: number; group: number }): string => {
  const b = cpuNow();
  const group = Number.isNaN(b.group) ? '' : `, ${((b.group - a.group) / 1000).toFixed(2)} s in its cgroup (with its helper, runtimes, shims, tools)`;
  return `CPU ${((b.host - a.host) / 1000).toFixed(2)} s host-wide, ${((b.self - a.self) / 1000).toFixed(2)} s in this process${group}`;
};

/**
 * PROFILE_DIR=<dir>: a V8 CPU profile of each timed phase (apply, destroy) of
 * this process, written there as <phase>-<n>.cpuprofile (open in Chrome's
 * DevTools or speedscope).
 */
const profileDir = process.env['PROFILE_DIR'];
/**
 * BENCH_MARKS=1: each phase's start and end on stderr in CLOCK_MONOTONIC
 * seconds (process.hrtime), to cut a `perf record -k CLOCK_MONOTONIC` of the
 * run to one phase (`perf script --time START,END`).
 */
const mark = (what: string): void => {
  if (process.env['BENCH_MARKS'] === '1') process.stderr.write(`mark ${what} ${(Number(process.hrtime.bigint()) / 1e9).toFixed(6)}\n`);
};
let inspector: import('node:inspector/promises').Session | undefined;
const profileStart = async (): Promise<void> => {
  if (profileDir === undefined) return;
  if (!inspector) {
    const { Session } = await import('node:inspector/promises');
    inspector = new Session();
    inspector.connect();
    await inspector.post('Profiler.enable');
  }
  await inspector.post('Profiler.start');
};
const profileStop = async (name: string): Promise<void> => {
  if (profileDir === undefined || !inspector) return;
  const { profile } = await inspector.post('Profiler.stop');
  fs.mkdirSync(profileDir, { recursive: true });
  fs.writeFileSync(path.join(profileDir, `${name}.cpuprofile`), JSON.stringify(profile));
};

/**
 * The Berth root goes under BENCH_ROOT_BASE (default: the temp dir, as
 * before) and the run root under BENCH_RUN_BASE (default: /run when it is a
 * tmpfs, as on a standard host where an installed Berth keeps /run/berth;
 * else /dev/shm). BENCH_RUN_BASE=inroot keeps the run root inside the root's
 * directory (this bench's layout before 2026-11-22 23:40).
 *
 * Why it matters here: this VM's root file system is ext4 without a journal
 * and /run is not a tmpfs. Without a journal, ext4 skips inodes freed in the
 * last seconds when it allocates one (recently_deleted() in perf: ~55% of the
 * time of a create), so while the host churns through files (the other
 * engineers' test suites, and apply's own temp files) every file or directory
 * created costs 0.2-1.5 ms of system CPU (measured with 200-1500 creates in a
 * fresh directory of /tmp, /var/tmp and /run, 2026-11-22 23:35-23:40),
 * against ~13 us on /dev/shm.
 */
const TMPFS_MAGIC = 0x01021994;
const rootBase = process.env['BENCH_ROOT_BASE'] ?? os.tmpdir();
const runBase = ((): string | undefined => {
  const env = process.env['BENCH_RUN_BASE'];
  if (env === 'inroot') return undefined;
  if (env !== undefined) return env;
  return fs.statfsSync('/run').type === TMPFS_MAGIC ? '/run' : '/dev/shm';
})();

const applyN = async (n: number, concurrency: number, net: 'stack' | 'none'): Promise<string> => {
  if (!fs.existsSync(rootfsTar)) execFileSync(path.join(repo, 'examples/web/make-rootfs.sh'));
  // where the roots go: see rootBase below
  const dir = fs.mkdtempSync(path.join(rootBase, 'berth-bench-stack-'));
  const runDir = runBase === undefined ? path.join(dir, 'run') : fs.mkdtempSync(path.join(runBase, 'berth-bench-stack-'));
  const engine = openLocalEngine({ root: path.join(dir, 'root'), runRoot: runDir }, { runtime: path.join(repo, 'native/build/berth-runtime') });
  try {
    await engine.importImage(rootfsTar, 'bench/img:1', { changes: { cmd: ['sh'] } });
    const lines = ['stack: bench', ...(net === 'stack' ? ['networks:', '  net: {}'] : []), 'containers:'];
    const attach = net === 'stack' ? 'networks: [net]' : 'networkMode: none';
    for (let i = 0; i < n; i++) lines.push(`  c${i}: { image: bench/img:1, command: [sleep, "3600"], ${attach}, stopTimeout: 1 }`);
    const file = path.join(dir, 'stack.yaml');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const s = loadStack(file);
    if (E.isLeft(s)) throw new Error(JSON.stringify(s.left));
    await profileStart();
    mark('apply-begin');
    const c0 = cpuNow();
    const t0 = performance.now();
    const p = await planFor(engine, s.right);
    const t1 = performance.now();
    const r = await apply(engine, p, { concurrency });
    const t2 = performance.now();
    const applyCpu = cpuSince(c0);
    mark('apply-end');
    await profileStop(`apply-${n}-${net}`);
    if (!r.ok) throw new Error(`apply failed: ${JSON.stringify(r.results.filter((x) => x.status !== 'done').slice(0, 3))}`);
    const running = (await engine.listContainers()).filter((c) => c.state.status === 'running').length;
    const t3 = performance.now();
    const again = await planFor(engine, s.right);
    const t4 = performance.now();
    await profileStart();
    mark('destroy-begin');
    const c4 = cpuNow();
    const d = await planFor(engine, { ...s.right, containers: {}, networks: {} }, { prune: true });
    const rd = await apply(engine, d, { concurrency });
    const t5 = performance.now();
    const destroyCpu = cpuSince(c4);
    mark('destroy-end');
    await profileStop(`destroy-${n}-${net}`);
    if (!rd.ok) throw new Error('destroy failed');
    return [
      `apply of ${n} containers from empty (concurrency ${concurrency}, ${net === 'stack' ? 'one stack network' : 'networkMode none'}; root under ${rootBase}, run root under ${runBase ?? 'the root dir'}): ${((t2 - t0) / 1000).toFixed(2)} s (plan ${((t1 - t0) / 1000).toFixed(2)} s, apply ${((t2 - t1) / 1000).toFixed(2)} s, ${((t2 - t1) / n).toFixed(0)} ms per container); ${running}/${n} running; ${applyCpu}`,
      `  second plan: ${isEmpty(again) ? 'empty' : 'NOT EMPTY'} in ${((t4 - t3) / 1000).toFixed(2)} s; destroy: ${((t5 - t4) / 1000).toFixed(2)} s; ${destroyCpu}`,
    ].join('\n');
  } finally {
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.removeContainer(c.id, { force: true }).catch(() => undefined);
    const { openNetworking } = await import('../../engine/network/networking.js');
    await openNetworking(engine.roots).purge().catch(() => undefined);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && (m.startsWith(dir) || m.startsWith(runDir)));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(runDir, { recursive: true, force: true });
  }
};

const main = async (): Promise<void> => {
  const args = process.argv.slice(2);
  const concurrency = Number(process.env['CONCURRENCY'] ?? 8);
  for (const a of args.length > 0 ? args : ['noop', 'apply:50', 'apply:200']) {
    if (a === 'noop') process.stdout.write(`${noop()}\n`);
    else if (a.startsWith('apply:')) {
      const [, n, net] = a.split(':');
      process.stdout.write(`${await applyN(Number(n), concurrency, net === 'none' ? 'none' : 'stack')}\n`);
    }
    else throw new Error(`unknown benchmark ${a}`);
  }
};

await main();
