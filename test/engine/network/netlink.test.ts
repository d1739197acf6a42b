// The helper's network requests (native/shim/netlink.c through
// `berth-shim helper`): a netns bound on a file with lo up, veth pairs with
// the host end on a bridge and the inner end named, addressed and routed,
// deletion, the bridge itself; bad input refused with the field named and
// nothing changed; kernel failures reported with errno and the object. Real
// kernel objects, checked with iproute2 from outside; all removed afterwards.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteLink, ensureBridge, hostRoutes, linkExists, plugVeths, removeNetns } from '../../../engine/network/host.js';
import { helperAvailable, helperDeleteLink, helperEnsureBridge, helperPlugVeths, type HelperVeth } from '../../../engine/runtime/helper.js';

const shim = path.resolve('native/build/berth-shim');
const busybox = path.resolve('test/fixtures/build/rootfs/bin/busybox'); // static: runs on the host, ping from inside the netns
const have = (tool: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const skipReason =
  process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(shim) ? 'needs native/build/berth-shim (make -C native)'
  : process.env['BERTH_HELPER'] === '0' ? 'BERTH_HELPER=0: the requests under test are the helper\'s' : !have('ip') ? 'needs iproute2 (to look)'
  : !fs.existsSync(busybox) ? 'needs the busybox fixture (test/fixtures/make-fixtures.sh)' : '';

const tag = String(process.pid % 100000);
const bridge = `bthnlb${tag}`;
const veth = (n: number): string => `bthnl${tag}v${n}`;
let dir = '';
let subnet = ''; // "172.31.K" (a /24 the host does not route)
const netnsFiles: string[] = [];
const hostLinks = new Set<string>([bridge]);

const mounted = (p: string): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
interface IpLink { ifname: string; address: string; flags: string[]; master?: string; operstate: string }
interface IpAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }
const ipJson = <T>(netns: string | undefined, args: string[]): T =>
  JSON.parse(execFileSync(netns ? 'nsenter' : 'ip', netns ? [`--net=${netns}`, 'ip', '-j', ...args] : ['-j', ...args], { encoding: 'utf8' }) || '[]') as T;
const linkIn = (netns: string | undefined, name: string): IpLink | undefined => ipJson<IpLink[]>(netns, ['link', 'show']).find((l) => l.ifname === name);

const plan = (n: number, file: string, extra: Partial<HelperVeth> = {}): HelperVeth => ({
  hostVeth: veth(n), bridge, ifname: `eth${n}`, mac: `02:42:ac:1f:00:0${n}`, cidr: `${subnet}.${10 + n}/24`, gateway: `${subnet}.1`, ...extra,
});

describe.skipIf(skipReason !== '')(`helper network requests (rtnetlink)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(async () => {
    expect(await helperAvailable()).toBe(true);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-netlink-'));
    const used = new Set((await hostRoutes()).map((s) => s.network));
    const k = Array.from({ length: 200 }, (_, i) => 20 + ((process.pid + i) % 200)).find((i) => !used.has(`172.31.${i}.0`));
    expect(k).toBeDefined();
    subnet = `172.31.${k}`;
  });
  afterAll(async () => {
    for (const f of netnsFiles) if (mounted(f)) execFileSync('umount', [f]);
    for (const l of hostLinks) if (await linkExists(l)) execFileSync('ip', ['link', 'del', 'dev', l]);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('makes a bridge with its address, up; a second call replaces the address and keeps the bridge', async () => {
    expect(await helperEnsureBridge(bridge, `${subnet}.1`, 24)).toBe(true);
    const br = linkIn(undefined, bridge)!;
    expect(br.flags).toContain('UP');
    const addrs = () => ipJson<IpAddr[]>(undefined, ['-4', 'addr', 'show', 'dev', bridge])[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    expect(addrs()).toEqual([`${subnet}.1/24`]);
    await ensureBridge(bridge, `${subnet}.1`, 24); // through host.ts: the same, plus route_localnet
    expect(addrs()).toEqual([`${subnet}.1/24`]);
    expect(fs.readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim()).toBe('1');
  });

  it('makes a netns bound on a file, lo up, with a veth pair: MAC, address, up, default route inside; master and up outside', async () => {
    const file = path.join(dir, 'ns1');
    netnsFiles.push(file);
    hostLinks.add(veth(1)).add(veth(2));
    expect(await helperPlugVeths(file, true, [plan(1, file)])).toBe(true);
    expect(mounted(file)).toBe(true);
    expect(linkIn(file, 'lo')!.flags).toContain('UP');
    const inner = linkIn(file, 'eth1')!;
    expect(inner.address).toBe('02:42:ac:1f:00:01');
    expect(inner.flags).toContain('UP');
    expect(ipJson<IpAddr[]>(file, ['-4', 'addr', 'show', 'dev', 'eth1'])[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${subnet}.11/24`]);
    expect(ipJson<{ dst: string; gateway?: string; dev: string }[]>(file, ['route', 'show', 'default'])).toEqual([
      expect.objectContaining({ dst: 'default', gateway: `${subnet}.1`, dev: 'eth1' }),
    ]);
    const outer = linkIn(undefined, veth(1))!;
    expect(outer.master).toBe(bridge);
    expect(outer.flags).toContain('UP');
    expect(linkIn(undefined, 'eth1')).toBeUndefined();
    // traffic across: the gateway (the bridge) answers from inside the namespace
    execFileSync('nsenter', [`--net=${file}`, busybox, 'ping', '-c', '1', '-W', '5', `${subnet}.1`], { stdio: 'ignore' });
    // IPv4 only, as Docker leaves IPv4 networks: IPv6 off on the inner end, lo keeps ::1, and the host end
    // makes no link-local address (no neighbour or multicast messages for the bridge to flood)
    if (fs.existsSync('/proc/sys/net/ipv6')) {
      const inside = (f: string): string => execFileSync('nsenter', [`--net=${file}`, 'cat', f], { encoding: 'utf8' }).trim();
      expect(inside('/proc/sys/net/ipv6/conf/eth1/disable_ipv6')).toBe('1');
      expect(inside('/proc/sys/net/ipv6/conf/lo/disable_ipv6')).toBe('0');
      expect(ipJson<IpAddr[]>(file, ['-6', 'addr', 'show', 'dev', 'lo'])[0]!.addr_info.map((a) => a.local)).toEqual(['::1']);
      expect(ipJson<IpAddr[]>(undefined, ['-6', 'addr', 'show', 'dev', veth(1)])).toEqual([]);
      expect(execFileSync('ip', ['-d', 'link', 'show', 'dev', veth(1)], { encoding: 'utf8' })).toContain('addrgenmode none');
    }

    // a second pair into the same (existing) netns, no gateway: no second default route
    expect(await helperPlugVeths(file, false, [plan(2, file, { gateway: undefined })])).toBe(true);
    expect(linkIn(file, 'eth2')!.flags).toContain('UP');
    expect(linkIn(undefined, veth(2))!.master).toBe(bridge);
    expect(ipJson<unknown[]>(file, ['route', 'show', 'default'])).toHaveLength(1);
  });

  it('reports a name already taken as EEXIST, naming the veth, and leaves what is there', async () => {
    const file = path.join(dir, 'ns1');
    const err = await helperPlugVeths(file, false, [plan(1, file, { ifname: 'eth9' })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EEXIST', message: expect.stringMatching(new RegExp(`create veth '${veth(1)}' \\(peer 'eth9'\\).*File exists`)) });
    expect(linkIn(file, 'eth9')).toBeUndefined();
    expect(linkIn(file, 'eth1')).toBeDefined();
    // through host.ts (plugVeths deletes a leftover of the same host name first, so take the inner name instead): a Kernel error
    const err2 = await plugVeths(file, [{ ...plan(3, file), ifname: 'eth1' }], false).catch((e: unknown) => e);
    hostLinks.add(veth(3));
    expect(err2).toMatchObject({ error: { _tag: 'Kernel', syscall: 'netlink', errno: 'EEXIST', path: `netns ${file}` } });
    expect(await linkExists(veth(3))).toBe(false); // the pair was not made
  });

  it('reports a missing bridge as ENODEV and leaves no namespace bound when the setup fails', async () => {
    const file = path.join(dir, 'ns-fail');
    netnsFiles.push(file);
    hostLinks.add(veth(4));
    const err = await helperPlugVeths(file, true, [plan(4, file, { bridge: `bthnlnone${tag}`.slice(0, 15) })]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENODEV', message: expect.stringMatching(/find link 'bthnlnone/) });
    expect(mounted(file)).toBe(false);
    expect(await linkExists(veth(4))).toBe(false);
  });

  it('refuses bad input, naming the field, and changes nothing', async () => {
    const file = path.join(dir, 'ns-bad');
    netnsFiles.push(file);
    const cases: [Partial<HelperVeth>, RegExp][] = [
      [{ hostVeth: 'eth7' }, /veth 0: host end 'eth7': not a Berth link name/],
      [{ bridge: 'docker0' }, /veth 0: bridge 'docker0': not a Berth link name/],
      [{ hostVeth: 'bth-much-too-long-name' }, /each must be 1-15 characters/],
      [{ mac: '02:42:zz:00:00:01' }, /veth 0: MAC '02:42:zz:00:00:01': expected six hex bytes/],
      [{ cidr: '10.0.0.300/24' }, /veth 0: address '10.0.0.300\/24': expected an IPv4 address\/prefix/],
      [{ cidr: `${subnet}.5` }, /expected an IPv4 address\/prefix/],
      [{ gateway: 'gw' }, /veth 0: gateway 'gw': expected an IPv4 address/],
    ];
    for (const [bad, msg] of cases) {
      await expect(helperPlugVeths(file, true, [plan(5, file, bad)])).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(msg) });
    }
    await expect(helperPlugVeths('relative/ns', true, [])).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/expected an absolute path/) });
    await expect(helperEnsureBridge('eth0', '10.0.0.1', 24)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/bridge 'eth0': not a Berth link name/) });
    await expect(helperEnsureBridge(bridge, '10.0.0.1', 33)).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/expected an IPv4 address and a prefix 0-32/) });
    await expect(helperDeleteLink('lo')).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/refusing to delete link 'lo': not a Berth link/) });
    expect(mounted(file)).toBe(false);
    expect(fs.existsSync(file)).toBe(false);
    expect(await linkExists(veth(5))).toBe(false);
    expect(await linkExists('lo')).toBe(true);
  });

  it('deletes a link (both ends of the pair), then reports ENODEV; host.ts deleteLink takes a missing link as done', async () => {
    const file = path.join(dir, 'ns1');
    expect(await helperDeleteLink(veth(2))).toBe(true);
    expect(await linkExists(veth(2))).toBe(false);
    expect(linkIn(file, 'eth2')).toBeUndefined();
    await expect(helperDeleteLink(veth(2))).rejects.toMatchObject({ code: 'ENODEV', message: expect.stringMatching(new RegExp(`delete link '${veth(2)}'`)) });
    await deleteLink(veth(2));
    await expect(deleteLink('eth0')).rejects.toThrow(/not a Berth link/);
  });

  it('falls back to unshare and ip with a berth-shim whose helper does not know the network requests (an older build), asking it once', async () => {
    // an older helper: says hello, runs programs, answers anything else "unknown operation" (as helper.c does)
    const native = path.join(dir, 'old-native');
    fs.mkdirSync(native);
    const opsLog = path.join(dir, 'old-ops');
    fs.writeFileSync(path.join(native, 'berth-shim'), `#!${process.execPath}
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const send = (id, code, errno, out, err) => {
  const o = Buffer.from(out), e = Buffer.from(err), b = Buffer.alloc(24 + o.length + e.length);
  b.writeUInt32LE(b.length - 4, 0); b.writeUInt32LE(id, 4); b.writeInt32LE(code, 8); b.writeInt32LE(errno, 12);
  b.writeUInt32LE(o.length, 16); o.copy(b, 20); b.writeUInt32LE(e.length, 20 + o.length); e.copy(b, 24 + o.length);
  process.stdout.write(b);
};
send(0, 0, 0, '', '');
let buf = Buffer.alloc(0);
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
    const f = buf.subarray(4, 4 + buf.readUInt32LE(0));
    buf = buf.subarray(4 + f.length);
    const id = f.readUInt32LE(0), op = f[4];
    fs.appendFileSync(${JSON.stringify(opsLog)}, op + '\\n');
    if (op !== 1) { send(id, -1, 22, '', 'unknown operation ' + op); continue; }
    let k = 5;
    const str = () => { const n = f.readUInt32LE(k); k += 4 + n; return f.subarray(k - n, k); };
    const argc = f.readUInt32LE(k); k += 4;
    const argv = Array.from({ length: argc }, () => str().toString());
    const r = spawnSync(argv[0], argv.slice(1), { input: str() });
    if (r.error) send(id, 127, 2, '', String(r.error)); else send(id, r.status ?? 255, 0, r.stdout, r.stderr);
  }
});
`, { mode: 0o755 });
    const file = path.join(dir, 'ns-old');
    netnsFiles.push(file);
    hostLinks.add(veth(6)).add(veth(7));
    const script = `
      const host = await import(${JSON.stringify(path.resolve('dist/engine/network/host.js'))});
      await host.plugVeths(${JSON.stringify(file)}, [${JSON.stringify({ ...plan(6, file), cidr: `${subnet}.16/24` })}], true);
      await host.plugVeths(${JSON.stringify(file)}, [${JSON.stringify({ ...plan(7, file), cidr: `${subnet}.17/24`, gateway: undefined })}], false);`;
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, BERTH_NATIVE_DIR: native }, stdio: 'pipe' });
    const ops = fs.readFileSync(opsLog, 'utf8').trim().split('\n');
    expect(ops.filter((o) => o === '6')).toHaveLength(1); // asked once, then straight to the programs
    expect(ops.filter((o) => o === '1').length).toBeGreaterThanOrEqual(3); // unshare + ip, nsenter + ip
    expect(mounted(file)).toBe(true);
    expect(linkIn(undefined, veth(6))!.master).toBe(bridge);
    expect(linkIn(undefined, veth(7))!.master).toBe(bridge);
    expect(linkIn(file, 'eth6')!.address).toBe('02:42:ac:1f:00:06');
    expect(ipJson<IpAddr[]>(file, ['-4', 'addr', 'show', 'dev', 'eth7'])[0]!.addr_info.map((a) => a.local)).toEqual([`${subnet}.17`]);
    if (fs.existsSync('/proc/sys/net/ipv6')) {
      // no IPv6 address on either end here too
      expect(ipJson<IpAddr[]>(file, ['-6', 'addr', 'show', 'dev', 'eth6'])).toEqual([]);
      expect(ipJson<IpAddr[]>(undefined, ['-6', 'addr', 'show', 'dev', veth(6)])).toEqual([]);
    }
    await removeNetns(file);
    await deleteLink(veth(6));
    await deleteLink(veth(7));
  }, 30_000);

  it('lets the kernel take the host end when the netns goes (removeNetns, no process inside)', async () => {
    const file = path.join(dir, 'ns1');
    expect(await linkExists(veth(1))).toBe(true);
    await removeNetns(file);
    expect(mounted(file)).toBe(false);
    // the namespace's cleanup runs in a kernel worker: the pair is unlisted there, without a request of ours
    for (let i = 0; i < 500 && (await linkExists(veth(1))); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await linkExists(veth(1))).toBe(false);
    await deleteLink(veth(1)); // and deleting it after is a no-op
  });
});
