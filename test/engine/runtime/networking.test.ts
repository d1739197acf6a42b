// Containers on Berth's networking, through the runtime: aliases and fixed
// addresses on a user network, refusals on the default bridge, published
// port ranges, --add-host, container:<ref> sharing, and inspect after
// connect/disconnect. Real bridges, veths and namespaces in a temporary
// root; traffic only to loopback and to the namespaces made here.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerSpec } from '../../../engine/engine.js';
import { EngineFailure, toEngineError } from '../../../engine/errors.js';
import { openLocalEngine } from '../../../engine/local.js';
import { openNetworking } from '../../../engine/network/networking.js';
import type { ContainerNetworking } from '../../../engine/services.js';
import { makeTestEngine, type TestEngine } from './helpers.js';

const skip = process.getuid?.() !== 0 ? 'needs root (bridges, veths, namespaces)' : '';

let t: TestEngine;
let subnetPrefix = ''; // "10.89.3." of the network "front"

beforeAll(async () => {
  if (skip) return;
  t = await makeTestEngine({ network: true });
  const front = await t.engine.createNetwork({ name: 'front' });
  subnetPrefix = (front.spec.subnet as string).replace(/\.0\/24$/, '.');
});
afterAll(async () => {
  await t?.cleanup();
});

type Spec = Omit<ContainerSpec, 'image'> & { image?: string };

/** create + start + wait; the output from the log. */
const runIt = async (spec: Spec): Promise<{ id: string; code: number; out: string }> => {
  const c = await t.engine.createContainer({ image: 'busybox', ...spec });
  await t.engine.startContainer(c.id);
  const { exitCode } = await t.engine.waitContainer(c.id);
  let out = '';
  for await (const l of t.engine.logs(c.id)) out += l.text;
  return { id: c.id, code: exitCode, out };
};

/** A detached container serving `text` by busybox httpd on `listen` ("8080" or "127.0.0.1:9090"), one dir per listener. */
const server = (listens: string[], text: string): string[] => [
  'sh', '-c',
  `${listens.map((l, i) => `mkdir -p /www${i} && echo ${text}-${i} > /www${i}/index.html && httpd -p ${l} -h /www${i}`).join(' && ')} && exec sleep 300`,
];

/** Shell: GET / from host:port by busybox nc (its wget crashes resolving in the static build), the body's last line; retried while the server comes up. */
const get = (host: string, port: number): string =>
  `for i in 1 2 3 4 5 6 7 8 9 10; do o=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} | tail -n 1); [ -n "$o" ] && echo "$o" && break; sleep 0.2; done`;

const errorOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return toEngineError(e);
  }
  throw new Error('expected a failure');
};

/** Two consecutive host ports that nothing listens on (checked by binding 127.0.0.1). */
const freePortPair = async (): Promise<number> => {
  const bindable = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * 20000);
    if ((await bindable(p)) && (await bindable(p + 1))) return p;
  }
  throw new Error('no free port pair');
};

/** GET http://127.0.0.1:port/ (retried while the server comes up). */
const fetchLocal = async (port: number): Promise<string> => {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
};

describe.skipIf(skip !== '')(`containers on networks${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('reaches a container by its --network-alias and by its --ip address', async () => {
    const ip = `${subnetPrefix}77`;
    await t.engine.createContainer({
      image: 'busybox', name: 'aliased', networkMode: 'front', networks: { front: { aliases: ['web', 'www.front'], ipv4Address: ip } },
      command: server(['8080'], 'aliased'),
    });
    await t.engine.startContainer('aliased');
    const info = await t.engine.inspectContainer('aliased');
    expect(info.networks['front']).toMatchObject({ ipv4Address: `${ip}/24`, aliases: ['web', 'www.front'] });
    const r = await runIt({
      networkMode: 'front',
      command: ['sh', '-c', `${get('web', 8080)}; ${get('www.front', 8080)}; ${get(ip, 8080)}`],
    });
    expect(r.out.trim().split('\n')).toEqual(['aliased-0', 'aliased-0', 'aliased-0']);
    expect(r.code).toBe(0);
    // the fixed address is taken: a second claim fails at start, and its container holds nothing
    const dup = await t.engine.createContainer({ image: 'busybox', networkMode: 'front', networks: { front: { ipv4Address: ip } }, command: ['true'] });
    expect((await errorOf(t.engine.startContainer(dup.id)))._tag).not.toBe('Internal');
    expect((await t.engine.inspectContainer(dup.id)).state.status).not.toBe('running');
    await t.engine.removeContainer(dup.id);
    await t.engine.removeContainer('aliased', { force: true });
    await t.engine.removeContainer(r.id);
  });

  it('refuses aliases and fixed addresses on the default bridge (and other special modes) with nothing created', async () => {
    const before = (await t.engine.listNetworks()).map((n) => n.name).sort();
    const containers = (await t.engine.listContainers({ all: true })).length;
    const cases: ContainerSpec[] = [
      { image: 'busybox', name: 'a1', networks: { bridge: { aliases: ['x'] } } },
      { image: 'busybox', name: 'a2', networkMode: 'bridge', networks: { bridge: { ipv4Address: '10.88.0.9' } } },
      { image: 'busybox', name: 'a3', networkMode: 'host', networks: { host: { aliases: ['x'] } } },
      { image: 'busybox', name: 'a4', networkMode: 'front', networks: { front: { ipv4Address: 'not-an-ip' } } },
      { image: 'busybox', name: 'a5', networkMode: 'container:whatever', ports: [{ containerPort: 80, protocol: 'tcp' }] },
      { image: 'busybox', name: 'a6', extraHosts: ['no-address'] },
    ];
    const msgs: string[] = [];
    for (const c of cases) {
      const e = await errorOf(t.engine.createContainer(c));
      expect(e._tag).toBe('InvalidSpec');
      if (e._tag === 'InvalidSpec') msgs.push(e.problems.join('; '));
    }
    expect(msgs[0]).toMatch(/aliases are supported only for containers on user-defined networks/);
    expect(msgs[1]).toMatch(/IP address is supported only on user-defined networks/);
    expect(msgs[4]).toMatch(/port publishing and the container network mode/);
    expect(msgs[5]).toMatch(/add-host: expected name:ip/);
    expect((await t.engine.listContainers({ all: true })).length).toBe(containers);
    expect((await t.engine.listNetworks()).map((n) => n.name).sort()).toEqual(before);
  });

  it('publishes a port range on 127.0.0.1, answering on each port; --add-host lands in /etc/hosts', async () => {
    const hp = await freePortPair();
    const c = await t.engine.createContainer({
      image: 'busybox', name: 'ranged', networkMode: 'front', extraHosts: ['db.example:10.9.8.7'],
      ports: [
        { containerPort: 8080, protocol: 'tcp', hostPort: hp, hostIp: '127.0.0.1' },
        { containerPort: 8081, protocol: 'tcp', hostPort: hp + 1, hostIp: '127.0.0.1' },
      ],
      command: server(['8080', '8081'], 'ranged'),
    });
    await t.engine.startContainer(c.id);
    expect((await t.engine.inspectContainer(c.id)).ports.map((p) => p.hostPort).sort()).toEqual([hp, hp + 1]);
    expect(await fetchLocal(hp)).toBe('ranged-0\n');
    expect(await fetchLocal(hp + 1)).toBe('ranged-1\n');
    const { pid } = (await t.engine.inspectContainer(c.id)).state;
    expect(fs.readFileSync(`/proc/${pid}/root/etc/hosts`, 'utf8')).toMatch(/^10\.9\.8\.7\s+db\.example$/m);
    await t.engine.removeContainer(c.id, { force: true });
    // the ports are free again: nothing answers
    await expect(new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: hp, timeout: 1000 }, () => resolve(s.destroy()));
      s.on('error', reject);
      s.on('timeout', () => reject(new Error('timeout')));
    })).rejects.toThrow();
  });

  it('container:<ref> shares the owner\'s network; the owner stays up after the joiner goes and cannot go while one runs', async () => {
    expect((await errorOf(t.engine.createContainer({ image: 'busybox', networkMode: 'container:nosuch', command: ['true'] })))._tag).toBe('NotFound');
    const owner = await t.engine.createContainer({ image: 'busybox', name: 'pod', networkMode: 'front', command: server(['127.0.0.1:9090'], 'pod') });
    // created, not running: a joiner cannot start yet
    const early = await t.engine.createContainer({ image: 'busybox', name: 'early', networkMode: 'container:pod', command: ['true'] });
    expect(early.spec.networkMode).toBe(`container:${owner.id}`);
    const notRunning = await errorOf(t.engine.startContainer('early'));
    expect(notRunning).toMatchObject({ _tag: 'Conflict' });
    expect(JSON.stringify(notRunning)).toMatch(/pod.*is not running/);
    await t.engine.removeContainer('early');

    await t.engine.startContainer('pod');
    const ownerInfo = await t.engine.inspectContainer('pod');
    const ownerIp = (ownerInfo.networks['front']?.ipv4Address as string).split('/')[0] as string;
    const ownerNs = fs.readlinkSync(`/proc/${ownerInfo.state.pid}/ns/net`);
    const r = await runIt({
      name: 'joiner', networkMode: 'container:pod',
      command: ['sh', '-c', `ip -4 -o addr show eth0; ${get('127.0.0.1', 9090)}; cat /etc/hostname`],
    });
    expect(r.code).toBe(0);
    expect(r.out).toContain(` inet ${ownerIp}/24 `);
    expect(r.out).toContain('pod-0\n');
    expect(r.out).toContain(`${owner.id.slice(0, 12)}\n`); // the owner's hostname file
    await t.engine.removeContainer('joiner');

    // a running sharer: the same netns; the owner cannot be removed meanwhile
    const sharer = await t.engine.createContainer({ image: 'busybox', name: 'sharer', networkMode: `container:${owner.id.slice(0, 12)}`, command: ['sleep', '300'] });
    await t.engine.startContainer(sharer.id);
    expect(fs.readlinkSync(`/proc/${(await t.engine.inspectContainer(sharer.id)).state.pid}/ns/net`)).toBe(ownerNs);
    const refused = await errorOf(t.engine.removeContainer('pod', { force: true }));
    expect(refused._tag).toBe('Conflict');
    expect(JSON.stringify(refused)).toMatch(/shared by running container sharer/);
    expect((await t.engine.inspectContainer('pod')).state.status).toBe('running');

    // rm -f of the sharer leaves the owner's network as it was
    await t.engine.removeContainer(sharer.id, { force: true });
    const after = await t.engine.inspectContainer('pod');
    expect(after.state.status).toBe('running');
    expect(after.networks['front']?.ipv4Address).toBe(`${ownerIp}/24`);
    const check = await t.engine.exec('pod', { command: ['sh', '-c', `ip -4 -o addr show eth0 | grep -q ' ${ownerIp}/24 ' && ${get('127.0.0.1', 9090)} | grep -q pod-0`] });
    expect(check.exitCode).toBe(0);
    const probe = await runIt({ networkMode: 'front', command: ['sh', '-c', `ping -c 1 -W 2 ${ownerIp} >/dev/null && echo reachable`] });
    expect(probe.out).toBe('reachable\n');
    await t.engine.removeContainer(probe.id);
    await t.engine.removeContainer('pod', { force: true });
  });

  it('an rm reads the records of its sharers only (a file each in the owner\'s dir); a root from before the files is indexed by one scan', async () => {
    const containers = path.join(t.engine.roots.root, 'containers');
    const owner = await t.engine.createContainer({ image: 'busybox', name: 'own', networkMode: 'none', command: ['sleep', '300'] });
    await t.engine.startContainer(owner.id);
    const sharer = await t.engine.createContainer({ image: 'busybox', name: 'shr', networkMode: 'container:own', command: ['sleep', '300'] });
    const files = path.join(containers, owner.id, 'sharers');
    expect(fs.readdirSync(files)).toEqual([sharer.id]);
    await t.engine.startContainer(sharer.id);
    // a root from before the files: neither the file nor the flag; the scan finds the sharer and makes both
    fs.rmSync(files, { recursive: true });
    fs.rmSync(path.join(containers, 'sharers-indexed'), { force: true });
    expect(JSON.stringify(await errorOf(t.engine.removeContainer('own', { force: true })))).toMatch(/shared by running container shr/);
    expect(fs.readdirSync(files)).toEqual([sharer.id]);
    expect(fs.existsSync(path.join(containers, 'sharers-indexed'))).toBe(true);
    // a file whose container is gone is ignored; the sharer's rm takes its own file
    const gone = 'f'.repeat(64);
    fs.writeFileSync(path.join(files, gone), '');
    await t.engine.removeContainer(sharer.id, { force: true });
    expect(fs.readdirSync(files)).toEqual([gone]);
    await t.engine.removeContainer('own', { force: true });
    expect(fs.existsSync(path.join(containers, owner.id))).toBe(false);
  });

  it('container:<ref> of an owner with network none or host: its namespace (or the host\'s) and its files', async () => {
    const lone = await t.engine.createContainer({ image: 'busybox', name: 'lone', networkMode: 'none', hostname: 'lonely', command: ['sleep', '300'] });
    await t.engine.startContainer(lone.id);
    const lonePid = (await t.engine.inspectContainer(lone.id)).state.pid as number;
    const j = await t.engine.createContainer({ image: 'busybox', networkMode: 'container:lone', command: ['sleep', '300'] });
    await t.engine.startContainer(j.id);
    const jPid = (await t.engine.inspectContainer(j.id)).state.pid as number;
    expect(fs.readlinkSync(`/proc/${jPid}/ns/net`)).toBe(fs.readlinkSync(`/proc/${lonePid}/ns/net`));
    expect(fs.readFileSync(`/proc/${jPid}/root/etc/hostname`, 'utf8')).toBe('lonely\n');
    // (no traffic here: berth-runtime leaves lo down in a namespace of its own, so "none" has no loopback to share)
    const r = await t.engine.exec(j.id, { command: ['sh', '-c', 'hostname | grep -qx lonely && [ "$(ls /sys/class/net)" = lo ]'] });
    expect(r.exitCode).toBe(0);
    expect((await errorOf(t.engine.removeContainer(lone.id, { force: true })))._tag).toBe('Conflict');
    await t.engine.removeContainer(j.id, { force: true });
    await t.engine.removeContainer(lone.id, { force: true });

    const h = await t.engine.createContainer({ image: 'busybox', networkMode: 'host', command: ['sleep', '300'] });
    await t.engine.startContainer(h.id);
    const hj = await t.engine.createContainer({ image: 'busybox', networkMode: `container:${h.id}`, command: ['sleep', '300'] });
    await t.engine.startContainer(hj.id);
    expect(fs.readlinkSync(`/proc/${(await t.engine.inspectContainer(hj.id)).state.pid}/ns/net`)).toBe(fs.readlinkSync('/proc/self/ns/net'));
    await t.engine.removeContainer(hj.id, { force: true });
    await t.engine.removeContainer(h.id, { force: true });
  });

  it('stopping the owner leaves the joiner running; restarted, the joiner joins the owner\'s new namespace', async () => {
    const owner = await t.engine.createContainer({ image: 'busybox', name: 'pod2', networkMode: 'front', command: ['sleep', '300'] });
    await t.engine.startContainer(owner.id);
    const j = await t.engine.createContainer({ image: 'busybox', networkMode: 'container:pod2', command: ['sleep', '300'] });
    await t.engine.startContainer(j.id);
    await t.engine.stopContainer(owner.id, { timeoutSeconds: 0 });
    expect((await t.engine.inspectContainer(j.id)).state.status).toBe('running');
    await t.engine.startContainer(owner.id);
    const ownerNs = fs.readlinkSync(`/proc/${(await t.engine.inspectContainer(owner.id)).state.pid}/ns/net`);
    expect(fs.readlinkSync(`/proc/${(await t.engine.inspectContainer(j.id)).state.pid}/ns/net`)).not.toBe(ownerNs);
    await t.engine.restartContainer(j.id, { timeoutSeconds: 0 });
    expect(fs.readlinkSync(`/proc/${(await t.engine.inspectContainer(j.id)).state.pid}/ns/net`)).toBe(ownerNs);
    await t.engine.removeContainer(j.id, { force: true });
    await t.engine.removeContainer(owner.id, { force: true });
  });

  it('inspect shows networks joined and left by connect/disconnect while running', async () => {
    await t.engine.createNetwork({ name: 'back' });
    const c = await t.engine.createContainer({ image: 'busybox', name: 'mover', networkMode: 'front', command: ['sleep', '300'] });
    await t.engine.startContainer(c.id);
    expect(Object.keys((await t.engine.inspectContainer(c.id)).networks)).toEqual(['front']);
    await t.engine.connectNetwork('back', 'mover', { aliases: ['m2'] });
    const joined = await t.engine.inspectContainer(c.id);
    expect(Object.keys(joined.networks).sort()).toEqual(['back', 'front']);
    expect(joined.networks['back']?.aliases).toEqual(['m2']);
    const backIp = joined.networks['back']?.ipv4Address?.split('/')[0];
    const seen = await t.engine.exec('mover', { command: ['sh', '-c', `ip -4 -o addr | grep -q ' ${backIp}/'`] });
    expect(seen.exitCode).toBe(0);
    await t.engine.disconnectNetwork('front', 'mover');
    expect(Object.keys((await t.engine.inspectContainer(c.id)).networks)).toEqual(['back']);
    expect((await t.engine.listContainers({ filters: { network: ['back'] } })).map((x) => x.name)).toContain('mover');
    await t.engine.removeContainer(c.id, { force: true });
    // stopped containers show what their last run had (networking holds nothing for them)
    await t.engine.removeNetwork('back');
  });

  it('a start whose rootfs cannot be mounted releases the network it set up meanwhile, and a later start works', async () => {
    // the network is set up alongside the rootfs mount (containers.ts startLocked): a failed mount must undo it
    const c = await t.engine.createContainer({ image: 'busybox', name: 'nolayer', networkMode: 'front', command: ['true'] });
    const layers = `${t.engine.roots.root}/layers`;
    fs.renameSync(layers, `${layers}.away`);
    try {
      await expect(t.engine.startContainer(c.id)).rejects.toThrow();
    } finally {
      fs.renameSync(`${layers}.away`, layers);
    }
    // nothing left, also by a setup that would still be finishing after the start gave up
    await new Promise((r) => setTimeout(r, 500));
    expect((await t.engine.inspectNetwork('front')).containers[c.id]).toBeUndefined();
    expect(fs.existsSync(`${t.engine.roots.runRoot}/netns/${c.id}`)).toBe(false);
    expect(fs.existsSync(`${t.engine.roots.runRoot}/networks/endpoints/${c.id}`)).toBe(false);
    const again = await runIt({ name: 'nolayer2', networkMode: 'front', command: ['true'] });
    expect(again.code).toBe(0);
    await t.engine.removeContainer(c.id, { force: true });
    await t.engine.removeContainer(again.id, { force: true });
  });

  it('a setup that fails after the container was created in its namespace leaves no container, shim or runtime state; a later start works', async () => {
    // the runtime creates the container in the namespace while the veths are made (containers.ts startLocked,
    // namespaceReady): a setup that fails after that point must take the created container with it. The failure
    // is Berth's real setup undone by its real teardown, reported as a failure at the interface.
    const real = openNetworking(t.engine.roots);
    let fail = true;
    let namespaceGiven = false;
    const failing: ContainerNetworking = {
      setup: async (req, opts) => {
        const r = await real.setup(req, {
          namespaceReady: (ns) => {
            namespaceGiven = true;
            opts?.namespaceReady?.(ns);
          },
        });
        if (!fail) return r;
        fail = false;
        await real.teardown(req.containerId);
        throw new EngineFailure({ _tag: 'Internal', message: 'network setup failed (injected after the namespace was ready)' });
      },
      teardown: (id) => real.teardown(id),
      connect: (...a) => real.connect(...a),
      disconnect: (...a) => real.disconnect(...a),
    };
    const e = openLocalEngine(t.engine.roots, { networking: { api: real, containers: failing } });
    const c = await e.createContainer({ image: 'busybox', name: 'latefail', networkMode: 'front', command: ['true'] });
    await expect(e.startContainer(c.id)).rejects.toThrow(/injected after the namespace was ready/);
    expect(namespaceGiven).toBe(true);
    const run = e.roots.runRoot;
    expect(fs.existsSync(`${run}/runtime/${c.id}`)).toBe(false);
    expect(fs.existsSync(`${run}/shims/${c.id}`)).toBe(false);
    expect(fs.existsSync(`${run}/netns/${c.id}`)).toBe(false);
    expect(fs.existsSync(`${run}/networks/endpoints/${c.id}`)).toBe(false);
    const after = await e.inspectContainer(c.id);
    expect(after.state.status).not.toBe('running');
    expect(after.state.error).toMatch(/injected/);
    // no process of it: its init never ran `true`, nothing of it is in the process table
    const mine = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(c.id);
      } catch {
        return false;
      }
    });
    expect(mine).toEqual([]);
    await e.startContainer(c.id);
    expect((await e.waitContainer(c.id)).exitCode).toBe(0);
    await e.removeContainer(c.id, { force: true });
  });

  it('when the namespace goes under the runtime\'s feet, the network\'s failure is the one reported', async () => {
    // the setup's undo can remove the namespace while the runtime is joining it: the runtime then fails too
    // ("join network namespace: Invalid argument"), but the cause is the network's. Here the namespace is
    // unmounted as soon as it is handed over, so both fail, always in that order.
    const real = openNetworking(t.engine.roots);
    const pulling: ContainerNetworking = {
      setup: (req, opts) => real.setup(req, {
        namespaceReady: (ns) => {
          execFileSync('umount', [ns.netnsPath]);
          opts?.namespaceReady?.(ns);
        },
      }),
      teardown: (id) => real.teardown(id),
      connect: (...a) => real.connect(...a),
      disconnect: (...a) => real.disconnect(...a),
    };
    const e = openLocalEngine(t.engine.roots, { networking: { api: real, containers: pulling } });
    const c = await e.createContainer({ image: 'busybox', name: 'pulled', networkMode: 'front', command: ['true'] });
    const err = await errorOf(e.startContainer(c.id));
    // the helper's netlink request into the namespace failed: that, not the runtime's create
    expect(err).toMatchObject({ _tag: 'Kernel', syscall: 'netlink', path: `netns ${t.engine.roots.runRoot}/netns/${c.id}` });
    const run = e.roots.runRoot;
    for (const left of [`${run}/runtime/${c.id}`, `${run}/shims/${c.id}`, `${run}/netns/${c.id}`, `${run}/networks/endpoints/${c.id}`]) {
      expect(fs.existsSync(left), left).toBe(false);
    }
    await t.engine.removeContainer(c.id, { force: true });
  });
});
