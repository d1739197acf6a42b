// Networking on the real kernel: bridges, veths, network namespaces and
// Berth's nft table, with busybox httpd/nc processes standing in for
// containers (each "container" is the namespace setup() made).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNetworking, type Networking } from '../../../engine/network/networking.js';
import type { NetworkSetupRequest, NetworkSetupResult } from '../../../engine/services.js';
import { hasTag } from '../../../engine/errors.js';
import { compileNetworkWorker } from './worker.js';

const busybox = '/usr/bin/busybox';
const have = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const skipReason =
  process.getuid?.() !== 0 ? 'needs root' : !have('nft') ? 'needs nftables' : !have('ip') ? 'needs iproute2' : !fs.existsSync(busybox) ? 'needs busybox-static' : '';

let root = '';
let forwardBefore = '';
let nw: Networking;
const procs: ChildProcess[] = [];
const sockets: net.Server[] = [];
let seq = 0;

const containerIds: string[] = [];
const req = (name: string, over: Partial<NetworkSetupRequest> = {}): NetworkSetupRequest => ({
  containerId: remember(`${name}${(++seq).toString(16).padStart(4, '0')}${'0'.repeat(60)}`.slice(0, 64)),
  name, hostname: name, networkMode: 'bridge', networks: {}, ports: [], publishAll: false, exposedPorts: [], ...over,
});

/** busybox httpd in the namespace, answering `body` on `port`. */
const serve = async (netns: string, body: string, port = 80): Promise<void> => {
  const dir = fs.mkdtempSync(path.join(root, 'www-'));
  fs.writeFileSync(path.join(dir, 'index.html'), body + '\n');
  const p = spawn('nsenter', [`--net=${netns}`, busybox, 'httpd', '-f', '-p', String(port), '-h', dir], { stdio: 'ignore' });
  procs.push(p);
  for (let i = 0; i < 100; i++) {
    const r = execFileSync('nsenter', [`--net=${netns}`, busybox, 'netstat', '-ltn'], { encoding: 'utf8' });
    if (r.includes(`:${port} `)) return;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`httpd did not listen on ${port} in ${netns}`);
};

function remember(id: string): string {
  containerIds.push(id);
  return id;
}

const empty = () => path.join(root, 'empty-resolv.conf');

/**
 * An HTTP GET with busybox nc: from the host (netns undefined) or from a
 * namespace with its hosts file bind-mounted over /etc/hosts (a private
 * mount namespace), so names resolve as in the container. The resolv.conf
 * mounted is empty: a name not in the hosts file is asked of 127.0.0.1
 * inside the namespace and nothing leaves it.
 */
const get = (from: { netns?: string; hosts?: string } | undefined, host: string, port = 80): string => {
  const fetch = `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | ${busybox} nc -w 2 ${host} ${port} 2>/dev/null | tail -n 1`;
  const argv: string[] = [];
  if (from?.netns) argv.push('nsenter', `--net=${from.netns}`);
  if (from?.hosts) {
    argv.push('unshare', '--mount', 'sh', '-c', `mount --bind ${from.hosts} /etc/hosts && mount --bind ${empty()} /etc/resolv.conf && ${fetch}`);
  } else argv.push('sh', '-c', fetch);
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return '';
  }
};

const ipOf = (r: NetworkSetupResult, net: string): string => r.networks[net]!.ipv4Address!.split('/')[0]!;
const linksNamed = (re: RegExp): string[] =>
  (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname).filter((n) => re.test(n));

describe.skipIf(skipReason !== '')(`networking on the kernel${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const ourLinks = new Set<string>();
  const networkIds = new Set<string>();

  beforeAll(() => {
    forwardBefore = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-net-'));
    fs.writeFileSync(empty(), '');
    nw = openNetworking({ root, runRoot: path.join(root, 'run') });
    // note every network a container joined, for the leak check's veth names
    const setup = nw.setup;
    const connect = nw.connect;
    Object.assign(nw, {
      setup: async (r: NetworkSetupRequest) => {
        const res = await setup(r);
        for (const n of Object.values(res.networks)) networkIds.add(n.networkId);
        return res;
      },
      connect: async (c: string, n: string, a: object) => {
        const res = await connect(c, n, a);
        networkIds.add(res.networkId);
        return res;
      },
    });
  });

  afterEach(async () => {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.pid) p.kill('SIGKILL');
    for (const s of sockets.splice(0)) s.close();
    for (const n of await nw.listNetworks()) {
      if (n.bridge) ourLinks.add(n.bridge);
      networkIds.add(n.id);
    }
  });

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    try {
      await nw?.purge();
      // the leak check: nothing of this root is left on the host
      // every veth name this suite could have made (other people's containers may have theirs on the host)
      for (const c of containerIds) {
        for (const n of networkIds) ourLinks.add(`bth${createHash('sha256').update(`${c}/${n}`).digest('hex').slice(0, 12)}`);
      }
      const left = linksNamed(/^(berth|bth)/).filter((l) => ourLinks.has(l));
      const tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
      const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => root !== '' && l.includes(root));
      expect({ left, table: tables.includes(nw.table), mounts }).toEqual({ left: [], table: false, mounts: [] });
      // ip_forward goes back to what it was, unless someone else's Berth bridge still needs it
      if (forwardBefore === '0' && linksNamed(/^berth/).length === 0) {
        expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe('0');
      }
    } finally {
      if (root) fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('resolves containers by name and alias on a user network, also one started later, and their hosts files follow', async () => {
    await nw.createNetwork({ name: 'app' });
    const web = await nw.setup(req('web', { networkMode: 'app', networks: { app: { aliases: ['www'] } } }));
    await serve(web.netnsPath!, 'from-web');
    const client = await nw.setup(req('client', { networkMode: 'app' }));
    expect(get({ netns: client.netnsPath!, hosts: client.hostsFile }, 'web')).toBe('from-web');
    expect(get({ netns: client.netnsPath!, hosts: client.hostsFile }, 'www')).toBe('from-web');
    // a container started after web: web's own (bind-mounted) hosts file learns it in place
    const inode = fs.statSync(web.hostsFile).ino;
    const late = await nw.setup(req('late', { networkMode: 'app' }));
    await serve(late.netnsPath!, 'from-late');
    expect(fs.statSync(web.hostsFile).ino).toBe(inode);
    expect(get({ netns: web.netnsPath!, hosts: web.hostsFile }, 'late')).toBe('from-late');
    // its resolv.conf has no loopback resolver and the hostname file holds the hostname
    expect(fs.readFileSync(late.resolvConf, 'utf8')).not.toMatch(/nameserver\s+127\./);
    expect(fs.readFileSync(late.hostnameFile, 'utf8')).toBe('late\n');
    // gone again: the name leaves the others' files
    await nw.teardown(reqId(late));
    expect(fs.readFileSync(web.hostsFile, 'utf8')).not.toMatch(/\blate\b/);
    for (const r of [web, client]) await nw.teardown(reqId(r));
    await nw.removeNetwork('app');
  });

  it('keeps the record and the bind-mounted files under the run root, and takes over the endpoints older Berths kept under the root', async () => {
    await nw.createNetwork({ name: 'legacy' });
    const old = await nw.setup(req('old', { networkMode: 'legacy' }));
    const mid = await nw.setup(req('mid', { networkMode: 'legacy' }));
    const id = path.basename(old.netnsPath!);
    const midId = path.basename(mid.netnsPath!);
    const runDir = (c: string): string => path.join(root, 'run', 'networks', 'endpoints', c);
    const rootDir = (c: string): string => path.join(root, 'networks', 'endpoints', c);
    expect(path.dirname(old.hostsFile)).toBe(runDir(id));
    expect(fs.existsSync(path.join(runDir(id), 'endpoint.json'))).toBe(true);
    expect(fs.existsSync(rootDir(id))).toBe(false);
    // as the oldest Berth left one: record and files under the root, nothing under the run root
    fs.mkdirSync(rootDir(id), { recursive: true });
    for (const f of ['endpoint.json', 'hosts', 'resolv.conf', 'hostname']) fs.renameSync(path.join(runDir(id), f), path.join(rootDir(id), f));
    fs.rmdirSync(runDir(id));
    // as the next one left the other: the record under the root, the files under the run root
    fs.mkdirSync(rootDir(midId), { recursive: true });
    fs.renameSync(path.join(runDir(midId), 'endpoint.json'), path.join(rootDir(midId), 'endpoint.json'));
    fs.rmSync(path.join(root, 'run', 'networks', 'index.json')); // their index knew nothing of the run root's records

    const fresh = openNetworking({ root, runRoot: path.join(root, 'run') }); // another process: nothing remembered
    const newer = await fresh.setup(req('newer', { networkMode: 'legacy' }));
    // both records moved under the run root; the oldest one's files stay where its container has them
    expect(fs.existsSync(path.join(runDir(id), 'endpoint.json'))).toBe(true);
    expect(fs.existsSync(path.join(runDir(midId), 'endpoint.json'))).toBe(true);
    expect(fs.readdirSync(rootDir(id)).sort()).toEqual(['hostname', 'hosts', 'resolv.conf']);
    expect(fs.existsSync(rootDir(midId))).toBe(false);
    // their addresses are still taken, and everyone's hosts file hears of the newcomer
    expect(new Set([ipOf(old, 'legacy'), ipOf(mid, 'legacy'), ipOf(newer, 'legacy')]).size).toBe(3);
    expect(fs.readFileSync(path.join(rootDir(id), 'hosts'), 'utf8')).toContain(`${ipOf(newer, 'legacy')}\tnewer`);
    expect(fs.readFileSync(mid.hostsFile, 'utf8')).toContain(`${ipOf(newer, 'legacy')}\tnewer`);
    expect((await fresh.endpointInfo(id))!.hostsFile).toBe(path.join(rootDir(id), 'hosts'));
    await fresh.teardown(path.basename(newer.netnsPath!));
    expect(fs.existsSync(path.dirname(newer.hostsFile))).toBe(false);
    expect(fs.readFileSync(path.join(rootDir(id), 'hosts'), 'utf8')).not.toContain('newer');
    await fresh.teardown(id);
    await fresh.teardown(midId);
    expect(fs.existsSync(rootDir(id))).toBe(false);
    expect(fs.existsSync(runDir(id))).toBe(false);
    expect(fs.existsSync(runDir(midId))).toBe(false);
    await nw.removeNetwork('legacy');
  });

  it('keeps two networks apart and lets an internal network reach nothing outside it', async () => {
    await nw.createNetwork({ name: 'n1' });
    await nw.createNetwork({ name: 'n2' });
    await nw.createNetwork({ name: 'inside', internal: true });
    const a = await nw.setup(req('a', { networkMode: 'n1' }));
    await serve(a.netnsPath!, 'from-a');
    const a2 = await nw.setup(req('a2', { networkMode: 'n1' }));
    const b = await nw.setup(req('b', { networkMode: 'n2' }));
    const i = await nw.setup(req('i', { networkMode: 'inside' }));
    expect(get({ netns: a2.netnsPath! }, ipOf(a, 'n1'))).toBe('from-a');
    expect(get({ netns: b.netnsPath! }, ipOf(a, 'n1'))).toBe('');
    expect(get({ netns: i.netnsPath! }, ipOf(a, 'n1'))).toBe('');
    // no default route in the internal network's namespace, and no gateway reported
    const routes = execFileSync('nsenter', [`--net=${i.netnsPath!}`, 'ip', 'route'], { encoding: 'utf8' });
    expect(routes).not.toMatch(/^default/m);
    expect(i.networks['inside']!.gateway).toBeUndefined();
    // the host still reaches containers of every network, as Docker's
    expect(get(undefined, ipOf(a, 'n1'))).toBe('from-a');
    for (const r of [a, a2, b, i]) await nw.teardown(reqId(r));
    // a network in use cannot be removed; once empty it can
    const held = await nw.setup(req('held', { networkMode: 'n2' }));
    await expect(nw.removeNetwork('n2')).rejects.toThrow(/in use by held/);
    await nw.teardown(reqId(held));
    expect((await nw.pruneNetworks()).deleted.sort()).toEqual(['inside', 'n1', 'n2']);
  });

  it('publishes ports on 127.0.0.1 and on the bridge address, to the host and to other namespaces, and -P picks free ephemeral ports', async () => {
    const hp = await freePort();
    const lp = await freePort();
    const web = await nw.setup(req('pub', { ports: [{ containerPort: 80, protocol: 'tcp', hostPort: hp }, { containerPort: 80, protocol: 'tcp', hostPort: lp, hostIp: '127.0.0.1' }] }));
    await serve(web.netnsPath!, 'published');
    const gw = web.networks['bridge']!.gateway!;
    expect(get(undefined, '127.0.0.1', hp)).toBe('published');
    expect(get(undefined, '127.0.0.1', lp)).toBe('published');
    expect(get(undefined, gw, hp)).toBe('published');
    expect(get(undefined, gw, lp)).toBe(''); // bound to 127.0.0.1 only
    // the host's own other addresses (a local destination: the packets never leave the host)
    const hostAddrs = (JSON.parse(execFileSync('ip', ['-j', '-4', 'addr', 'show', 'scope', 'global'], { encoding: 'utf8' })) as { ifname: string; addr_info: { local: string }[] }[])
      .filter((l) => !/^(berth|bth)/.test(l.ifname)).flatMap((l) => l.addr_info.map((a) => a.local));
    for (const a of hostAddrs.slice(0, 1)) expect(get(undefined, a, hp)).toBe('published');
    const other = await nw.setup(req('other'));
    expect(get({ netns: other.netnsPath! }, gw, hp)).toBe('published');
    // and from a container of another network, through the host
    await nw.createNetwork({ name: 'far' });
    const far = await nw.setup(req('far', { networkMode: 'far' }));
    expect(get({ netns: far.netnsPath! }, far.networks['far']!.gateway!, hp)).toBe('published');

    const all = await nw.setup(req('all', { publishAll: true, exposedPorts: ['8080/tcp'] }));
    await serve(all.netnsPath!, 'exposed', 8080);
    expect(all.ports).toHaveLength(1);
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    expect(all.ports[0]!.hostPort).toBeGreaterThanOrEqual(lo!);
    expect(all.ports[0]!.hostPort).toBeLessThanOrEqual(hi!);
    expect(get(undefined, '127.0.0.1', all.ports[0]!.hostPort)).toBe('exposed');
    for (const r of [web, other, far, all]) await nw.teardown(reqId(r));
    expect(get(undefined, '127.0.0.1', hp)).toBe('');
    await nw.removeNetwork('far');
  });

  it('publishes UDP ports, and takes the first free port of a host range', async () => {
    const up = await freePort();
    const dns = await nw.setup(req('udp', { ports: [{ containerPort: 5353, protocol: 'udp', hostPort: up, hostIp: '127.0.0.1' }] }));
    // busybox nc has no UDP: a node UDP server in the namespace, a node client on the host
    const server = spawn('nsenter', [`--net=${dns.netnsPath!}`, process.execPath, '-e',
      "const s=require('dgram').createSocket('udp4');s.on('message',(m)=>process.stdout.write(m));s.bind(5353,()=>process.stdout.write('ready\\n'))"],
    { stdio: ['ignore', 'pipe', 'ignore'] });
    procs.push(server);
    let got = '';
    server.stdout!.on('data', (b: Buffer) => (got += b.toString()));
    const client = dgram.createSocket('udp4');
    for (let i = 0; i < 50 && !got.includes('ping'); i++) {
      if (got.includes('ready')) client.send('ping', up, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
    }
    client.close();
    expect(got).toContain('ping');
    await nw.teardown(reqId(dns));

    const lo = await freePort();
    const srv = net.createServer();
    sockets.push(srv);
    const taken = await new Promise<boolean>((r) => {
      srv.once('error', () => r(false));
      srv.listen(lo, '0.0.0.0', () => r(true));
    });
    if (!taken) return; // someone else took it meanwhile: nothing to learn from this run
    const ranged = await nw.setup(req('ranged', { ports: [{ containerPort: 80, protocol: 'tcp', hostPort: lo, hostPortEnd: lo + 20 } as never] }));
    expect(ranged.ports[0]!.hostPort).toBeGreaterThan(lo);
    expect(ranged.ports[0]!.hostPort).toBeLessThanOrEqual(lo + 20);
    await nw.teardown(reqId(ranged));
  });

  it('drops packets from a container to the host\'s 127.0.0.0/8 (route_localnet is on for the bridge)', async () => {
    const evil = await nw.setup(req('evil'));
    const gw = evil.networks['bridge']!.gateway!;
    const src = ipOf(evil, 'bridge');
    const counter = (): number => {
      const text = execFileSync('nft', ['list', 'chain', 'inet', nw.table, 'guard'], { encoding: 'utf8' });
      return Number(/counter packets (\d+)/.exec(text)?.[1] ?? -1);
    };
    const before = counter();
    // a root process in the container routes 127.0.0.1 to the gateway instead of its own lo
    execFileSync('nsenter', [`--net=${evil.netnsPath!}`, 'sh', '-c', [
      'ip route del 127.0.0.0/8 dev lo table local', 'ip route del local 127.0.0.1 dev lo table local',
      `ip route add 127.0.0.1/32 via ${gw} dev eth0 src ${src}`, 'sysctl -qw net.ipv4.conf.all.route_localnet=1',
      `sysctl -qw net.ipv4.conf.eth0.route_localnet=1`, `${busybox} nc -w 1 127.0.0.1 9 </dev/null || true`,
    ].join('; ')], { stdio: 'ignore', timeout: 10_000 });
    expect(counter()).toBeGreaterThan(before);
    await nw.teardown(reqId(evil));
  });

  it('refuses a host port that is taken, by any process or by another container, before changing anything', async () => {
    const port = await freePort();
    const srv = net.createServer();
    sockets.push(srv);
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
    const netsBefore = (await nw.listNetworks()).map((n) => n.name);
    const r1 = req('clash', { ports: [{ containerPort: 80, protocol: 'tcp', hostPort: port }] });
    const err = await nw.setup(r1).catch((e: unknown) => e);
    expect(hasTag(err, 'Conflict')).toBe(true);
    expect(String(err)).toMatch(new RegExp(`0\\.0\\.0\\.0:${port}/tcp.*already in use`));
    expect(await nw.endpointInfo(r1.containerId)).toBeUndefined();
    expect((await nw.listNetworks()).map((n) => n.name)).toEqual(netsBefore); // not even the default network was made
    const vethsOfR1 = (await nw.listNetworks()).map((n) => `bth${createHash('sha256').update(`${r1.containerId}/${n.id}`).digest('hex').slice(0, 12)}`);
    expect(linksNamed(/^bth/).filter((l) => vethsOfR1.includes(l))).toEqual([]);
    expect(fs.existsSync(path.join(root, 'run/netns', r1.containerId))).toBe(false);
    // published by a container (an nft rule, no socket): still taken
    const p2 = await freePort();
    const first = await nw.setup(req('first', { ports: [{ containerPort: 80, protocol: 'tcp', hostPort: p2 }] }));
    await expect(nw.setup(req('second', { ports: [{ containerPort: 81, protocol: 'tcp', hostPort: p2, hostIp: '127.0.0.1' }] }))).rejects.toThrow(/already in use/);
    await nw.teardown(reqId(first));
  });

  it('connects and disconnects a running container, and shares a namespace with container:', async () => {
    await nw.createNetwork({ name: 'late-net' });
    const svc = await nw.setup(req('svc'));
    await serve(svc.netnsPath!, 'svc');
    const peer = await nw.setup(req('peer', { networkMode: 'late-net' }));
    expect(get({ netns: peer.netnsPath!, hosts: peer.hostsFile }, 'db')).toBe('');
    const info = await nw.connect(reqId(svc), 'late-net', { aliases: ['db'] });
    expect(info.aliases).toEqual(['db']);
    expect(get({ netns: peer.netnsPath!, hosts: peer.hostsFile }, 'db')).toBe('svc');
    const ifs = execFileSync('nsenter', [`--net=${svc.netnsPath!}`, 'ip', '-br', 'link'], { encoding: 'utf8' });
    expect(ifs).toMatch(/^eth1@/m);
    await expect(nw.connect(reqId(svc), 'late-net', {})).rejects.toThrow(/already connected/);
    // NetworkApi verbs by container name
    await nw.disconnectNetwork('late-net', 'svc');
    expect(get({ netns: peer.netnsPath!, hosts: peer.hostsFile }, info.ipv4Address!.split('/')[0]!)).toBe('');
    expect(fs.readFileSync(peer.hostsFile, 'utf8')).not.toMatch(/\bdb\b/);
    expect(linksNamed(/^bth/).length).toBeGreaterThan(0);
    await nw.connectNetwork('late-net', 'svc');
    expect(Object.keys((await nw.inspectNetwork('late-net')).containers)).toContain(reqId(svc));
    await nw.disconnectNetwork('late-net', 'svc');

    const side = await nw.setup(req('side', { networkMode: `container:${reqId(svc)}` }));
    expect(side.netnsPath).toBe(svc.netnsPath);
    expect(side.hostsFile).toBe(svc.hostsFile);
    expect(get({ netns: side.netnsPath! }, '127.0.0.1')).toBe('svc');
    await expect(nw.setup(req('bad', { networkMode: 'container:nope' }))).rejects.toThrow(/not found/);
    for (const r of [side, peer, svc]) await nw.teardown(reqId(r));
    await nw.removeNetwork('late-net');
  });

  it('none and host modes: a namespace with only lo, or the host\'s network and files', async () => {
    const none = await nw.setup(req('nothing', { networkMode: 'none' }));
    const links = execFileSync('nsenter', [`--net=${none.netnsPath!}`, 'ip', '-br', 'link'], { encoding: 'utf8' }).trim().split('\n');
    expect(links.map((l) => l.split(/\s+/)[0])).toEqual(['lo']);
    const h = await nw.setup(req('onhost', { networkMode: 'host' }));
    expect(h.netnsPath).toBeUndefined();
    expect(fs.readFileSync(h.resolvConf, 'utf8')).toBe(fs.readFileSync('/etc/resolv.conf', 'utf8'));
    await nw.teardown(reqId(none));
    await nw.teardown(reqId(h));
    expect(fs.existsSync(none.netnsPath!)).toBe(false);
  });

  it('after a command is killed half way, the next one undoes it and the address comes back', async () => {
    const outDir = compileWorker();
    const first = await nw.setup(req('keeper'));
    const victim = req('victim');
    const expectedIp = await (async () => {
      const probe = await nw.setup(req('probe'));
      const ip = ipOf(probe, 'bridge');
      await nw.teardown(reqId(probe));
      return ip;
    })();
    const script = `import { openNetworking } from ${JSON.stringify(path.join(outDir, 'engine/network/networking.js'))};
      await openNetworking(${JSON.stringify({ root, runRoot: path.join(root, 'run') })}).setup(${JSON.stringify(victim)});`;
    const epFile = path.join(root, 'run/networks/endpoints', victim.containerId, 'endpoint.json');
    let killedHalfWay = false;
    for (let attempt = 0; attempt < 20 && !killedHalfWay; attempt++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
      // kill it once it has recorded its intent and changed the host (its netns is mounted), before it is done
      const nsFile = path.join(root, 'run/netns', victim.containerId);
      for (;;) {
        let text = '';
        try {
          text = fs.readFileSync(epFile, 'utf8');
        } catch {
          // not yet
        }
        if (text.includes('"phase": "creating"') && fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(nsFile)) {
          child.kill('SIGKILL');
          killedHalfWay = true;
          break;
        }
        if (text.includes('"phase": "ready"') || child.exitCode !== null) break;
        await new Promise((r) => setImmediate(r));
      }
      await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.on('exit', () => r())));
      if (!killedHalfWay) await nw.teardown(victim.containerId);
    }
    expect(killedHalfWay).toBe(true);
    // the next command finds the half-done setup and undoes it: the address is free again, nothing is left
    const next = await nw.setup(req('next'));
    expect(ipOf(next, 'bridge')).toBe(expectedIp);
    expect(await nw.endpointInfo(victim.containerId)).toBeUndefined();
    expect(fs.existsSync(path.join(root, 'run/netns', victim.containerId))).toBe(false);
    const victimVeth = `bth${createHash('sha256').update(`${victim.containerId}/${next.networks['bridge']!.networkId}`).digest('hex').slice(0, 12)}`;
    expect(linksNamed(/^bth/)).not.toContain(victimVeth);
    for (const r of [first, next]) await nw.teardown(reqId(r));
  });

  it('after a reboot (bridge, table and namespaces gone) the records bring the networks back and release the dead endpoints', async () => {
    const info = await nw.createNetwork({ name: 'rebooted' });
    const ep = await nw.setup(req('before-reboot', { networkMode: 'rebooted', ports: [{ containerPort: 80, protocol: 'tcp' }] }));
    const id = reqId(ep);
    // what a reboot takes away
    execFileSync('ip', ['link', 'del', info.bridge]);
    execFileSync('nft', ['delete', 'table', 'inet', nw.table]);
    execFileSync('umount', [ep.netnsPath!]);
    const after = await nw.inspectNetwork('rebooted');
    expect(after.containers).toEqual({});
    expect(linksNamed(/^berth/)).toContain(info.bridge);
    expect(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })).toContain(nw.table);
    expect(await nw.endpointInfo(id)).toBeUndefined();
    const again = await nw.setup(req('after-reboot', { networkMode: 'rebooted' }));
    expect(ipOf(again, 'rebooted')).toBe(ipOf(ep, 'rebooted'));
    await nw.teardown(reqId(again));
    await nw.removeNetwork('rebooted');
  });

  it('hands out distinct addresses to concurrent setups, in one process and across processes', async () => {
    const many = await Promise.all(Array.from({ length: 6 }, (_, k) => nw.setup(req(`c${k}`))));
    const ips = many.map((r) => ipOf(r, 'bridge'));
    expect(new Set(ips).size).toBe(6);
    const outDir = compileWorker();
    const reqs = Array.from({ length: 4 }, (_, k) => req(`p${k}`));
    const results = await Promise.all(reqs.map((r) => new Promise<string>((resolve, reject) => {
      const script = `import { openNetworking } from ${JSON.stringify(path.join(outDir, 'engine/network/networking.js'))};
        const res = await openNetworking(${JSON.stringify({ root, runRoot: path.join(root, 'run') })}).setup(${JSON.stringify(r)});
        process.stdout.write(res.networks.bridge.ipv4Address);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      child.on('exit', (code) => (code === 0 ? resolve(out.split('/')[0]!) : reject(new Error(`worker exited ${code}`))));
    })));
    expect(new Set([...ips, ...results]).size).toBe(10);
    for (const r of many) await nw.teardown(reqId(r));
    for (const r of reqs) await nw.teardown(r.containerId);
  });
});

const compileWorker = (): string => compileNetworkWorker(root);

const ids = new WeakMap<NetworkSetupResult, string>();
function reqId(r: NetworkSetupResult): string {
  const id = ids.get(r) ?? (r.netnsPath ? path.basename(r.netnsPath) : path.basename(path.dirname(r.hostsFile)));
  return id;
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
