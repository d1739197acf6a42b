/**
 * Scaling of container network setup: BENCH_CONTAINERS (50) setups one
 * after another on one user network (names: every member's hosts file is
 * rewritten) with one published port each, the time of each; then as many
 * concurrent setups; then the teardowns, one after another and concurrent.
 * Run with bench/network/run.sh setups (root; iproute2, nftables).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openNetworking } from '../../engine/network/networking.js';
import type { NetworkSetupRequest } from '../../engine/services.js';

const n = Number(process.env['BENCH_CONTAINERS'] ?? 50);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-setups-'));
const nw = openNetworking({ root, runRoot: path.join(root, 'run') });
let seq = 0;
const req = (name: string): NetworkSetupRequest => ({
  containerId: `${name}${(++seq).toString(16).padStart(6, '0')}`.padEnd(64, '0'), name, hostname: name,
  networkMode: 'stack', networks: {}, ports: [{ containerPort: 80, protocol: 'tcp' }], publishAll: false, exposedPorts: [],
});
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]): string =>
  `first ${xs[0]!.toFixed(0)} ms, median ${median(xs).toFixed(0)}, last ${xs.at(-1)!.toFixed(0)}, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}`;
const timed = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

const main = async (): Promise<void> => {
  try {
    // a /16: 2n addresses (a /24 holds 253)
    await nw.createNetwork({ name: 'stack', subnet: process.env['BENCH_SUBNET'] ?? '10.213.0.0/16' });
    const seqReqs = Array.from({ length: n }, (_, i) => req(`s${i}`));
    const setupTimes: number[] = [];
    for (const r of seqReqs) setupTimes.push(await timed(() => nw.setup(r)));
    console.log(`${n} sequential setups (user network, 1 port each): ${fmt(setupTimes)}; total ${(setupTimes.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
    const conReqs = Array.from({ length: n }, (_, i) => req(`c${i}`));
    const con = await timed(() => Promise.all(conReqs.map((r) => nw.setup(r))));
    console.log(`${n} concurrent setups (on top of the ${n} above): ${(con / 1000).toFixed(2)} s`);
    const conDown = await timed(() => Promise.all(conReqs.map((r) => nw.teardown(r.containerId))));
    console.log(`${n} concurrent teardowns: ${(conDown / 1000).toFixed(2)} s`);
    const downTimes: number[] = [];
    for (const r of [...seqReqs].reverse()) downTimes.push(await timed(() => nw.teardown(r.containerId)));
    console.log(`${n} sequential teardowns (from ${n} down): ${fmt(downTimes)}`);
  } finally {
    await nw.purge();
    fs.rmSync(root, { recursive: true, force: true });
  }
};
await main();
