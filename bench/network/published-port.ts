/**
 * Networking benchmark: iperf3 throughput from the host into a container's
 * network namespace through a published port on 127.0.0.1 (nft DNAT +
 * masquerade), through the same port on the bridge address, straight to
 * the container address (veth + bridge, no NAT), against plain loopback;
 * and the time of one setup()+teardown() on the default bridge (what
 * `berth run --rm` pays for networking). Run with bench/network/run.sh.
 *
 * Then the same published-port path through each engine's CLI, Berth vs
 * docker 20.10 (userland proxy, and --userland-proxy=false) vs podman 4.3,
 * in one run, interleaved: each engine runs `run -d -p
 * 127.0.0.1:15201:5201 busybox sleep`, iperf3 -s runs in that container's
 * network namespace (nsenter --net=/proc/<pid>/ns/net; busybox has no
 * iperf3) and the client in the namespace where that engine's host side
 * lives (test/helpers/peers.ts: docker and podman in namespaces made for
 * them, Berth in the host's), to 127.0.0.1:15201. BENCH_PEERS=0 skips it.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { openNetworking } from '../../engine/network/networking.js';
import { peerLeftovers, prepareEngines } from '../../test/helpers/peers.js';

const seconds = Number(process.env['BENCH_SECONDS'] ?? 5);
const repeats = Number(process.env['BENCH_REPEATS'] ?? 3);
const cycles = Number(process.env['BENCH_CYCLES'] ?? 30);

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-net-'));
const nw = openNetworking({ root, runRoot: path.join(root, 'run') });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const iperf = async (netns: string | undefined, serverPort: number, host: string, port: number, clientNetns?: string): Promise<number> => {
  const argv = [...(netns ? ['nsenter', `--net=${netns}`] : []), 'iperf3', '-s', '-1', '-p', String(serverPort)];
  const server = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      const ss = execFileSync(netns ? 'nsenter' : 'sh', netns ? [`--net=${netns}`, 'ss', '-ltn'] : ['-c', 'ss -ltn'], { encoding: 'utf8' });
      if (ss.includes(`:${serverPort} `)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const client = [...(clientNetns ? ['nsenter', `--net=${clientNetns}`] : []), 'iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'];
    const out = execFileSync(client[0]!, client.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
};

const main = async (): Promise<void> => {
  const lines: string[] = [];
  const log = (s: string): void => {
    lines.push(s);
    process.stdout.write(s + '\n');
  };
  try {
    // setup + teardown latency on the default bridge (first call creates the bridge: not counted)
    const warm = await nw.setup({ containerId: 'warm'.padEnd(64, '0'), name: 'warm', hostname: 'warm', networkMode: 'bridge', networks: {}, ports: [], publishAll: false, exposedPorts: [] });
    const setupMs: number[] = [];
    const teardownMs: number[] = [];
    for (let i = 0; i < cycles; i++) {
      const id = `c${i}`.padEnd(64, '0');
      let t = performance.now();
      await nw.setup({ containerId: id, name: `c${i}`, hostname: `c${i}`, networkMode: 'bridge', networks: {}, ports: [{ containerPort: 80, protocol: 'tcp' }], publishAll: false, exposedPorts: [] });
      setupMs.push(performance.now() - t);
      t = performance.now();
      await nw.teardown(id);
      teardownMs.push(performance.now() - t);
    }
    await nw.teardown('warm'.padEnd(64, '0'));
    void warm;
    log(`setup (netns, veth, address, route, one published port, files) median ${median(setupMs).toFixed(1)} ms, min ${Math.min(...setupMs).toFixed(1)} ms over ${cycles}`);
    log(`teardown median ${median(teardownMs).toFixed(1)} ms, min ${Math.min(...teardownMs).toFixed(1)} ms`);

    const hostPort = 15201;
    const srv = await nw.setup({
      containerId: 'iperf'.padEnd(64, '0'), name: 'iperf', hostname: 'iperf', networkMode: 'bridge', networks: {},
      ports: [{ containerPort: 5201, protocol: 'tcp', hostPort }], publishAll: false, exposedPorts: [],
    });
    const ns = srv.netnsPath!;
    const ip = srv.networks['bridge']!.ipv4Address!.split('/')[0]!;
    const gw = srv.networks['bridge']!.gateway!;
    const modes: [string, string | undefined, string, number][] = [
      ['plain loopback (host 127.0.0.1 -> host)', undefined, '127.0.0.1', 5201],
      ['published port on 127.0.0.1 (DNAT + masquerade)', ns, '127.0.0.1', hostPort],
      [`published port on the bridge address ${gw} (DNAT)`, ns, gw, hostPort],
      [`container address ${ip} (veth + bridge, no NAT)`, ns, ip, 5201],
    ];
    log(`iperf3 TCP, ${seconds} s per run, median of ${repeats} runs, Gbit/s received:`);
    const results: number[] = [];
    for (const [label, netns, host, port] of modes) {
      const runs: number[] = [];
      for (let r = 0; r < repeats; r++) runs.push(await iperf(netns, 5201, host, port));
      results.push(median(runs));
      log(`  ${label}: ${median(runs).toFixed(2)} (runs ${runs.map((x) => x.toFixed(2)).join(', ')}), ${(median(runs) / results[0]!).toFixed(2)}x loopback`);
    }
    await nw.teardown('iperf'.padEnd(64, '0'));
  } finally {
    await nw.purge();
    fs.rmSync(root, { recursive: true, force: true });
  }
  if (process.env['BENCH_PEERS'] !== '0') await peers(log);
  if (process.env['BENCH_OUT']) fs.writeFileSync(process.env['BENCH_OUT'], lines.join('\n') + '\n');
};

const load = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** A free TCP port on the host's 127.0.0.1 (for Berth, whose host side is the host's namespace). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });

const peers = async (log: (s: string) => void): Promise<void> => {
  const repo = process.env['BERTH_REPO'] ?? process.cwd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-ports-'));
  const e = await prepareEngines({ repo, ...(process.env['BERTH_DIST'] ? { dist: process.env['BERTH_DIST'] } : {}), dir, network: 'bridge', runStateOnTmpfs: process.env['BENCH_RUN_STATE'] !== 'disk', docker: ['bridge', 'bridge-noproxy'] });
  try {
    for (const s of e.skipped) log(`not run: ${s}`);
    const berthPort = await freePort();
    const targets: { name: string; pid: number; clientNetns: string; port: number }[] = [];
    for (const x of e.engines) {
      const port = x.name === 'berth' ? berthPort : 15201;
      const id = (await x.cli('run', '-d', ...x.runFlags, '-p', `127.0.0.1:${port}:5201`, 'busybox', 'sleep', '3600')).trim().split('\n').pop()!;
      const pid = Number((await x.cli('inspect', '-f', '{{.State.Pid}}', id)).trim());
      if (!(pid > 0)) throw new Error(`${x.name}: no pid for container ${id}`);
      targets.push({ name: x.name, pid, clientNetns: x.hostNetns, port });
    }
    log(`published port on 127.0.0.1 through each engine's CLI (iperf3 TCP, ${seconds} s per run, median of ${repeats}, interleaved; load before ${load()}), Gbit/s:`);
    const runs = new Map<string, number[]>();
    const loopPort = await freePort();
    for (let r = 0; r < repeats; r++) {
      runs.set('plain loopback', [...(runs.get('plain loopback') ?? []), await iperf(undefined, loopPort, '127.0.0.1', loopPort)]);
      for (const t of targets) {
        runs.set(t.name, [...(runs.get(t.name) ?? []), await iperf(`/proc/${t.pid}/ns/net`, 5201, '127.0.0.1', t.port, t.clientNetns)]);
      }
    }
    const base = median(runs.get('plain loopback')!);
    for (const [k, v] of runs) {
      log(`  ${k.padEnd(15)} ${median(v).toFixed(2)} (runs ${v.map((x) => x.toFixed(2)).join(', ')}), ${(median(v) / base).toFixed(2)}x loopback${k === 'berth' || k === 'plain loopback' ? '' : `, berth ${(median(runs.get('berth') ?? [NaN]) / median(v)).toFixed(2)}x`}`);
    }
    log(`load after ${load()}`);
  } finally {
    await e.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
    const left = peerLeftovers({ ...e.traces, dirs: [...e.traces.dirs, dir] });
    log(left.length ? `left on the host after cleanup:\n  ${left.join('\n  ')}` : 'after cleanup: nothing left (no peer netns, with the bridges, veths and iptables rules that were in them; no cgroups, mounts or processes of the peers; no Berth bridge)');
  }
};

await main();
