// Teardown lets the kernel remove a container's veths with its netns (the
// netns is unmounted first; no explicit delete and its grace period), and
// still removes every veth when something else holds the namespace: a
// process left inside it, or a container: sharer known to the engine. Real
// kernel objects; the host ends are looked for right after teardown returns.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNetworking, type Networking } from '../../../engine/network/networking.js';
import type { NetworkSetupRequest } from '../../../engine/services.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const skipReason = process.getuid?.() !== 0 ? 'needs root' : !have('nft') ? 'needs nftables' : !have('ip') ? 'needs iproute2' : !have('nsenter') ? 'needs util-linux' : '';

let root = '';
let nw: Networking;
const holders: ChildProcess[] = [];
let seq = 0;

const req = (name: string): NetworkSetupRequest => {
  const containerId = `${name}${(++seq).toString(16).padStart(4, '0')}${'0'.repeat(60)}`.slice(0, 64);
  return { containerId, name, hostname: name, networkMode: 'bridge', networks: {}, ports: [], publishAll: false, exposedPorts: [] };
};
const vethOf = (containerId: string, networkId: string): string => `bth${createHash('sha256').update(`${containerId}/${networkId}`).digest('hex').slice(0, 12)}`;
const links = (): string[] => (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
const mounted = (p: string): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
const exited = (c: ChildProcess): Promise<void> =>
  new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.on('exit', () => r())));

describe.skipIf(skipReason !== '')(`network teardown and the kernel's netns cleanup${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-netteardown-'));
    nw = openNetworking({ root, runRoot: path.join(root, 'run') });
  });
  afterAll(async () => {
    for (const h of holders) h.kill('SIGKILL');
    await Promise.all(holders.map(exited));
    try {
      await nw?.purge();
    } finally {
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('removes the veth and the netns of a container with nothing left in its namespace', async () => {
    const r = req('plain');
    const res = await nw.setup(r);
    const veth = vethOf(r.containerId, (await nw.inspectNetwork('bridge')).id);
    expect(links()).toContain(veth);
    await nw.teardown(r.containerId);
    expect(mounted(res.netnsPath!)).toBe(false);
    expect(links()).not.toContain(veth);
  });

  it('still removes the veth when a process it does not know holds the namespace', async () => {
    const r = req('held');
    const res = await nw.setup(r);
    const veth = vethOf(r.containerId, (await nw.inspectNetwork('bridge')).id);
    // a process left in the namespace (as a leaked exec would be): the netns outlives its mount
    const holder = spawn('nsenter', [`--net=${res.netnsPath!}`, 'sleep', '60'], { stdio: 'ignore' });
    holders.push(holder);
    for (let i = 0; i < 500; i++) {
      const ns = fs.readlinkSync(`/proc/${holder.pid}/ns/net`, { encoding: 'utf8' });
      if (ns !== fs.readlinkSync('/proc/self/ns/net', { encoding: 'utf8' })) break;
      await new Promise((x) => setTimeout(x, 10));
    }
    expect(fs.readlinkSync(`/proc/${holder.pid}/ns/net`)).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
    await nw.teardown(r.containerId);
    expect(mounted(res.netnsPath!)).toBe(false);
    expect(links()).not.toContain(veth);
    // the holder's namespace has lost its eth0 with it
    const inside = execFileSync('nsenter', [`--net=/proc/${holder.pid}/ns/net`, 'ip', '-o', 'link'], { encoding: 'utf8' });
    expect(inside).not.toMatch(/eth0/);
    holder.kill('SIGKILL');
    await exited(holder);
  });
});
