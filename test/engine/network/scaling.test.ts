// What a networking verb costs as containers are added, and the crash
// safety of the short critical sections: counts of records read, full scans
// and lock acquisitions (not times), on the real kernel; killed and stopped
// owners of half-done work in worker processes.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockCounters } from '../../../engine/network/lock.js';
import { openNetworking, type Networking } from '../../../engine/network/networking.js';
import { nftCounters } from '../../../engine/network/nft.js';
import type { NetworkSetupRequest, NetworkSetupResult } from '../../../engine/services.js';
import { compileNetworkWorker } from './worker.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const skipReason = process.getuid?.() !== 0 ? 'needs root' : !have('nft') ? 'needs nftables' : !have('ip') ? 'needs iproute2' : !have('flock') ? 'needs util-linux' : '';

let root = '';
let runRoot = '';
let nw: Networking;
const children: ChildProcess[] = [];
const containerIds: string[] = [];
const networkIds = new Set<string>();
let seq = 0;

const req = (name: string, over: Partial<NetworkSetupRequest> = {}): NetworkSetupRequest => {
  const containerId = `${name}${(++seq).toString(16).padStart(4, '0')}${'0'.repeat(60)}`.slice(0, 64);
  containerIds.push(containerId);
  return { containerId, name, hostname: name, networkMode: 'bridge', networks: {}, ports: [], publishAll: false, exposedPorts: [], ...over };
};
const ipOf = (r: NetworkSetupResult, net: string): string => r.networks[net]!.ipv4Address!.split('/')[0]!;
const vethOf = (containerId: string, networkId: string): string => `bth${createHash('sha256').update(`${containerId}/${networkId}`).digest('hex').slice(0, 12)}`;
const links = (): string[] => (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
const mounted = (p: string): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
const epFile = (id: string): string => path.join(runRoot, 'networks/endpoints', id, 'endpoint.json');
const phaseOf = (id: string): string => {
  try {
    return (JSON.parse(fs.readFileSync(epFile(id), 'utf8')) as { phase: string }).phase;
  } catch {
    return '';
  }
};
const exited = (c: ChildProcess): Promise<void> =>
  new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.on('exit', () => r())));

const compileWorker = (): string => compileNetworkWorker(root);
/** A worker process running one verb on our root. */
const worker = (call: string): ChildProcess => {
  const script = `import { openNetworking } from ${JSON.stringify(path.join(compileWorker(), 'engine/network/networking.js'))};
    const nw = openNetworking(${JSON.stringify({ root, runRoot })});
    ${call}`;
  const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  children.push(c);
  return c;
};
/** Whether nobody holds the networking lock now. */
const lockFree = (): boolean => spawnSync('flock', ['-n', '-x', path.join(root, 'networks/lock'), 'true']).status === 0;

describe.skipIf(skipReason !== '')(`networking cost and crash safety${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-netscale-'));
    runRoot = path.join(root, 'run');
    nw = openNetworking({ root, runRoot });
  });

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(children.map(exited));
    try {
      await nw?.purge();
      for (const n of (await nw.listNetworks()).filter((x) => x.bridge !== '')) networkIds.add(n.id);
      const ours = new Set(containerIds.flatMap((c) => [...networkIds].map((n) => vethOf(c, n))));
      const left = links().filter((l) => ours.has(l));
      const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => root !== '' && l.includes(root));
      expect({ left, table: execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes(nw.table), mounts }).toEqual({ left: [], table: false, mounts: [] });
    } finally {
      await nw?.purge().catch(() => undefined);
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('reads no more records and takes the lock no more often for the 40th setup and teardown than for the first', async () => {
    const net = await nw.createNetwork({ name: 'many' });
    networkIds.add(net.id);
    const cost = async (f: () => Promise<unknown>): Promise<{ records: number; scans: number; locks: number }> => {
      const c0 = { ...nw.counters };
      const l0 = lockCounters.acquisitions;
      await f();
      return { records: nw.counters.endpointRecordsRead - c0.endpointRecordsRead, scans: nw.counters.fullScans - c0.fullScans, locks: lockCounters.acquisitions - l0 };
    };
    const reqs = Array.from({ length: 40 }, (_, i) => req(`m${i}`, { networkMode: 'many', ports: [{ containerPort: 80, protocol: 'tcp' }] }));
    const results: NetworkSetupResult[] = [];
    const setupCosts = [];
    const n0 = { ...nftCounters };
    for (const r of reqs) {
      setupCosts.push(await cost(async () => results.push(await nw.setup(r))));
    }
    // every setup: no endpoint record read (the index instead), no full scan, at most two lock acquisitions
    // (intent, commit: one when the commit is queued while the intent's table rebuild still holds the lock)
    for (const c of setupCosts) expect({ ...c, locks: c.locks >= 1 && c.locks <= 2 }).toEqual({ records: 0, scans: 0, locks: true });
    // and all of them are there: the table's port map has 40 elements, the last hosts file names the first container
    const table = execFileSync('nft', ['list', 'table', 'inet', nw.table], { encoding: 'utf8' });
    // each setup's port went in as a map element: the table was never rebuilt whole
    expect({ rebuilds: nftCounters.rebuilds - n0.rebuilds, changes: nftCounters.elementChanges - n0.elementChanges }).toEqual({ rebuilds: 0, changes: 40 });
    const dnats = (text: string): number => text.match(/\d+ : \d+\.\d+\.\d+\.\d+ \. 80\b/g)?.length ?? 0;
    expect(dnats(table)).toBe(40);
    expect(fs.readFileSync(results[39]!.hostsFile, 'utf8')).toContain(`${ipOf(results[0]!, 'many')}\tm0 `);
    // and the first one's file (appended to by each newcomer) names all 39 others, once each
    const first = fs.readFileSync(results[0]!.hostsFile, 'utf8');
    for (let i = 1; i < 40; i++) expect(first.split(`${ipOf(results[i]!, 'many')}\tm${i} `).length).toBe(2);
    expect(new Set(results.map((r) => ipOf(r, 'many'))).size).toBe(40);
    const teardownCosts = [];
    for (const r of reqs) teardownCosts.push(await cost(() => nw.teardown(r.containerId)));
    // one record read (is there anything to tear down?), no scan, the lock at most twice (intent, release)
    expect(nftCounters.rebuilds - n0.rebuilds).toBe(0);
    for (const c of teardownCosts) expect({ ...c, locks: c.locks >= 1 && c.locks <= 2 }).toEqual({ records: 1, scans: 0, locks: true });
    expect(dnats(execFileSync('nft', ['list', 'table', 'inet', nw.table], { encoding: 'utf8' }))).toBe(0);
    // an explicit recover is a full scan
    expect((await cost(() => nw.recover())).scans).toBe(1);
    await nw.removeNetwork('many');
  });

  it('commits concurrent setups of one process together: distinct addresses, every name in every hosts file, fewer lock acquisitions', async () => {
    const net = await nw.createNetwork({ name: 'together' });
    networkIds.add(net.id);
    const l0 = lockCounters.acquisitions;
    const reqs = Array.from({ length: 12 }, (_, i) => req(`t${i}`, { networkMode: 'together' }));
    const results = await Promise.all(reqs.map((r) => nw.setup(r)));
    expect(lockCounters.acquisitions - l0).toBeLessThan(2 * reqs.length);
    expect(new Set(results.map((r) => ipOf(r, 'together'))).size).toBe(12);
    for (const [i, r] of results.entries()) {
      const hosts = fs.readFileSync(r.hostsFile, 'utf8');
      for (const [j, o] of results.entries()) if (j !== i) expect(hosts).toContain(`${ipOf(o, 'together')}\tt${j} `);
    }
    await Promise.all(reqs.map((r) => nw.teardown(r.containerId)));
    for (const r of results) expect(mounted(r.netnsPath!)).toBe(false);
    await nw.removeNetwork('together');
  });

  it('leaves alone the half-done setup of an owner that is alive (stopped), and undoes it once that owner is killed', async () => {
    const first = await nw.setup(req('anchor'));
    networkIds.add(first.networks['bridge']!.networkId);
    let caught: NetworkSetupRequest | undefined;
    let child: ChildProcess | undefined;
    for (let attempt = 0; attempt < 20 && !caught; attempt++) {
      const r = req('stopped');
      child = worker(`await nw.setup(${JSON.stringify(r)});`);
      const ns = path.join(runRoot, 'netns', r.containerId);
      for (;;) {
        const phase = phaseOf(r.containerId);
        if (phase === 'creating' && mounted(ns)) {
          child.kill('SIGSTOP');
          if (lockFree()) caught = r;
          else {
            // stopped while holding the lock: not the case this test is about
            child.kill('SIGKILL');
            await exited(child);
            await nw.recover();
          }
          break;
        }
        if (phase === 'ready' || child.exitCode !== null) break;
        await new Promise((res) => setImmediate(res));
      }
      if (!caught) {
        await exited(child);
        await nw.teardown(r.containerId);
      }
    }
    expect(caught).toBeDefined();
    const victim = caught!;
    // another command (here a full scan, the most thorough) does not undo what a live owner is doing
    await nw.recover();
    expect(phaseOf(victim.containerId)).toBe('creating');
    expect(mounted(path.join(runRoot, 'netns', victim.containerId))).toBe(true);
    // nor tears it down under its owner's feet
    await expect(nw.teardown(victim.containerId)).rejects.toThrow(/under way in another command/);
    expect(phaseOf(victim.containerId)).toBe('creating');
    child!.kill('SIGKILL');
    await exited(child!);
    // now its owner is dead: the next command, on its cheap path, undoes it
    const c0 = { ...nw.counters };
    const next = await nw.setup(req('after-stop'));
    expect(nw.counters.fullScans - c0.fullScans).toBe(0);
    expect(phaseOf(victim.containerId)).toBe('');
    expect(mounted(path.join(runRoot, 'netns', victim.containerId))).toBe(false);
    expect(links()).not.toContain(vethOf(victim.containerId, first.networks['bridge']!.networkId));
    expect(fs.readdirSync(path.join(runRoot, 'networks/pending'))).toEqual([]); // the pending marks live under the run root
    for (const r of [first, next]) await nw.teardown(path.basename(r.netnsPath!));
  });

  it('notices a record written behind the index\'s back (an older Berth) and scans before handing out addresses', async () => {
    const a = await nw.setup(req('indexed'));
    const aId = path.basename(a.netnsPath!);
    const next = ipOf(a, 'bridge').split('.').map(Number);
    next[3]! += 1;
    // a second record, as a writer that keeps no index would leave it: it holds the next address, in a live namespace
    const rec = JSON.parse(fs.readFileSync(epFile(aId), 'utf8')) as { containerId: string; networks: Record<string, { ipv4: string; hostVeth: string }> };
    const ghost = req('ghost').containerId;
    rec.containerId = ghost;
    rec.networks['bridge']!.ipv4 = next.join('.');
    rec.networks['bridge']!.hostVeth = vethOf(ghost, a.networks['bridge']!.networkId);
    fs.mkdirSync(path.dirname(epFile(ghost)));
    fs.writeFileSync(epFile(ghost), JSON.stringify(rec));
    const c0 = { ...nw.counters };
    const b = await nw.setup(req('after-ghost'));
    expect(nw.counters.fullScans - c0.fullScans).toBe(1);
    expect(ipOf(b, 'bridge')).not.toBe(next.join('.'));
    fs.rmSync(path.dirname(epFile(ghost)), { recursive: true }); // not through teardown: the namespace is a's
    for (const r of [a, b]) await nw.teardown(path.basename(r.netnsPath!));
  });

  it('finishes the teardown of a killed command, and after a reboot (scan mark gone) releases endpoints whose namespace is gone', async () => {
    const bridgeId = (await nw.inspectNetwork('bridge')).id;
    networkIds.add(bridgeId);
    let killed: NetworkSetupResult | undefined;
    for (let attempt = 0; attempt < 20 && !killed; attempt++) {
      const r = req('doomed');
      const res = await nw.setup(r);
      const child = worker(`await nw.teardown(${JSON.stringify(r.containerId)});`);
      for (;;) {
        if (phaseOf(r.containerId) === 'removing') {
          child.kill('SIGKILL');
          killed = res;
          break;
        }
        if (phaseOf(r.containerId) === '' || child.exitCode !== null) break;
        await new Promise((res2) => setImmediate(res2));
      }
      await exited(child);
      if (!killed) await nw.teardown(r.containerId);
    }
    expect(killed).toBeDefined();
    const id = path.basename(killed!.netnsPath!);
    await nw.listNetworks(); // any command finishes it
    expect(phaseOf(id)).toBe('');
    expect(mounted(killed!.netnsPath!)).toBe(false);
    expect(links()).not.toContain(vethOf(id, bridgeId));

    // a reboot: runRoot's scan mark is gone with the namespaces; the records still stand
    const stale = await nw.setup(req('stale'));
    execFileSync('umount', [stale.netnsPath!]);
    fs.rmSync(path.join(runRoot, 'network-scanned'));
    const c0 = { ...nw.counters };
    const fresh = await nw.setup(req('fresh'));
    expect(nw.counters.fullScans - c0.fullScans).toBe(1);
    expect(await nw.endpointInfo(path.basename(stale.netnsPath!))).toBeUndefined();
    expect(ipOf(fresh, 'bridge')).toBe(ipOf(stale, 'bridge')); // its address came back
    await nw.teardown(path.basename(fresh.netnsPath!));
  });
});
