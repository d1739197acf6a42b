// The container runtime on real kernel objects: berth-shim, berth-runtime
// (and runc), overlay rootfs, cgroups, volumes. Each test checks what the
// container sees from the inside and what the host holds afterwards.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerSpec } from '../../../engine/engine.js';
import { hasTag, toEngineError } from '../../../engine/errors.js';
import { openLocalEngine } from '../../../engine/local.js';
import { makeTestEngine, type TestEngine } from './helpers.js';

let t: TestEngine;
beforeAll(async () => {
  t = await makeTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

const none = (spec: Omit<ContainerSpec, 'image'> & { image?: string }): ContainerSpec => ({ image: 'busybox', networkMode: 'none', ...spec });

/** create + start + wait; the output from the log. */
const runIt = async (spec: Omit<ContainerSpec, 'image'> & { image?: string }): Promise<{ id: string; code: number; out: string; err: string }> => {
  const c = await t.engine.createContainer(none(spec));
  await t.engine.startContainer(c.id);
  const { exitCode } = await t.engine.waitContainer(c.id);
  let out = '';
  let err = '';
  for await (const l of t.engine.logs(c.id)) {
    if (l.stream === 'stdout') out += l.text;
    else err += l.text;
  }
  return { id: c.id, code: exitCode, out, err };
};

const sh = (script: string, extra: Omit<ContainerSpec, 'image' | 'command'> = {}) => runIt({ command: ['sh', '-c', script], ...extra });

const mountsUnder = (dir: string): string[] =>
  fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir));

const errorOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return toEngineError(e);
  }
  throw new Error('expected a failure');
};

describe('lifecycle', () => {
  it('runs a command and records its exit code, stdout and stderr', async () => {
    const r = await sh('echo out; echo err >&2; exit 3');
    expect(r).toMatchObject({ code: 3, out: 'out\n', err: 'err\n' });
    const info = await t.engine.inspectContainer(r.id);
    expect(info.state.status).toBe('exited');
    expect(info.state.exitCode).toBe(3);
    expect(info.state.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('marks a new root\'s containers dir as a top of hierarchy (chattr +T) where the file system knows it', async () => {
    await sh('true');
    const dir = path.join(t.engine.roots.root, 'containers');
    let attrs: string;
    try {
      attrs = execFileSync('lsattr', ['-d', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(' ')[0] ?? '';
    } catch {
      return; // a file system without ext2 attributes (tmpfs, overlay): nothing to check
    }
    // each container's dir then starts in a block group of its own instead of the parent's (containers.ts)
    expect(attrs).toContain('T');
  });

  it('merges entrypoint, cmd, env and workdir as Docker does', async () => {
    const r = await runIt({ entrypoint: ['sh', '-c'], command: ['echo "$A $B $PWD $HOSTNAME"'], env: ['A=1', 'B=two'], workingDir: '/tmp/new/dir', hostname: 'box1' });
    expect(r.out).toBe('1 two /tmp/new/dir box1\n');
  });

  it('gives 127 for a missing command and 126 for one that cannot run; nothing stays mounted', async () => {
    const a = await errorOf(runIt({ command: ['nosuchcmd'] }));
    expect(a._tag).toBe('Internal');
    const list = await t.engine.listContainers({ all: true });
    const created = list.find((c) => c.spec.command?.[0] === 'nosuchcmd');
    expect(created?.state.exitCode).toBe(127);
    const b = await runIt({ command: ['/etc/passwd'] }).catch((e) => e);
    const info = (await t.engine.listContainers({ all: true })).find((c) => c.spec.command?.[0] === '/etc/passwd');
    expect(b instanceof Error ? 126 : b.code).toBe(126);
    expect(info?.state.exitCode).toBe(126);
    expect(mountsUnder(t.dir)).toEqual([]);
  });

  it('keeps a detached container running after its engine is gone, and a fresh engine sees it', async () => {
    const c = await t.engine.createContainer(none({ name: 'sleeper', command: ['sleep', '300'] }));
    await t.engine.startContainer('sleeper');
    const fresh = openLocalEngine(t.engine.roots, { networking: null });
    const seen = await fresh.inspectContainer('sleeper');
    expect(seen.state.status).toBe('running');
    expect(seen.state.pid).toBeGreaterThan(1);
    expect(fs.readlinkSync(`/proc/${seen.state.pid}/ns/pid`)).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
    // no rootfs mount on the host while it runs: the container's namespace holds it
    for (let i = 0; i < 100 && mountsUnder(t.dir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(mountsUnder(t.dir)).toEqual([]);
    expect((await fresh.listContainers()).map((x) => x.name)).toContain('sleeper');
    // sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout
    const t0 = Date.now();
    await fresh.stopContainer(c.id, { timeoutSeconds: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    const after = await t.engine.inspectContainer(c.id);
    expect(after.state).toMatchObject({ status: 'exited', exitCode: 137 });
    expect(fs.existsSync(`/sys/fs/cgroup/pids/berth/${c.id}`)).toBe(false);
  });

  it('kill delivers a signal; the exit code is the container\'s', async () => {
    const c = await t.engine.createContainer(none({ command: ['sh', '-c', "trap 'exit 42' USR1; echo ready; while :; do sleep 0.05; done"] }));
    await t.engine.startContainer(c.id);
    for (let i = 0; i < 100; i++) {
      let ready = false;
      for await (const l of t.engine.logs(c.id)) if (l.text === 'ready\n') ready = true;
      if (ready) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await t.engine.killContainer(c.id, 'USR1');
    expect((await t.engine.waitContainer(c.id)).exitCode).toBe(42);
    const d = await t.engine.createContainer(none({ command: ['sleep', '100'] }));
    await t.engine.startContainer(d.id);
    await t.engine.killContainer(d.id, 'SIGKILL');
    expect((await t.engine.waitContainer(d.id)).exitCode).toBe(137);
    expect((await errorOf(t.engine.killContainer(d.id)))._tag).toBe('Conflict');
    expect((await errorOf(t.engine.killContainer(c.id, 'SIGNOPE')))._tag).toBe('InvalidSpec');
  });

  it('restarts a container, counting restarts, and starts an exited one again', async () => {
    const r = await sh('echo run');
    await t.engine.startContainer(r.id);
    await t.engine.waitContainer(r.id);
    const lines: string[] = [];
    for await (const l of t.engine.logs(r.id)) lines.push(l.text);
    expect(lines).toEqual(['run\n', 'run\n']);
    await t.engine.restartContainer(r.id, { timeoutSeconds: 1 });
    await t.engine.waitContainer(r.id);
    expect((await t.engine.inspectContainer(r.id)).state.restartCount).toBe(1);
  });

  it('refuses to remove a running container without force; rm -f removes everything', async () => {
    const c = await t.engine.createContainer(none({ name: 'busy', command: ['sleep', '100'] }));
    await t.engine.startContainer(c.id);
    const e = await errorOf(t.engine.removeContainer('busy'));
    expect(e._tag).toBe('Conflict');
    expect((await t.engine.inspectContainer('busy')).state.status).toBe('running');
    const pid = (await t.engine.inspectContainer('busy')).state.pid as number;
    await t.engine.removeContainer('busy', { force: true });
    expect(hasTag(await t.engine.inspectContainer('busy').catch((x) => x), 'NotFound')).toBe(true);
    expect(fs.existsSync(path.join(t.engine.roots.root, 'containers', c.id))).toBe(false);
    expect(fs.existsSync(path.join(t.engine.roots.runRoot, 'shims', c.id))).toBe(false);
    expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
    expect(fs.existsSync(`/sys/fs/cgroup/memory/berth/${c.id}`)).toBe(false);
  });

  it('rm removes the container dir whether the container wrote a little or a lot (one sync call up to 64 entries, the promise API beyond)', async () => {
    const small = await sh('echo x > /a');
    const big = await sh('mkdir -p /d/e && for i in $(seq 1 150); do echo $i > /d/e/f$i; done; ln -s /nowhere /d/link');
    expect([small.code, big.code]).toEqual([0, 0]);
    const dirOf = (id: string): string => path.join(t.engine.roots.root, 'containers', id);
    expect(fs.readdirSync(path.join(dirOf(big.id), 'upper/d/e')).length).toBe(150);
    for (const r of [small, big]) {
      await t.engine.removeContainer(r.id);
      expect(fs.existsSync(dirOf(r.id))).toBe(false);
      expect(mountsUnder(dirOf(r.id))).toEqual([]);
    }
  });

  it('pauses and resumes through the freezer', async () => {
    const c = await t.engine.createContainer(none({ command: ['sleep', '100'] }));
    await t.engine.startContainer(c.id);
    await t.engine.pauseContainer(c.id);
    expect((await t.engine.inspectContainer(c.id)).state.status).toBe('paused');
    expect(fs.readFileSync(`/sys/fs/cgroup/freezer/berth/${c.id}/freezer.state`, 'utf8').trim()).toBe('FROZEN');
    expect((await errorOf(t.engine.exec(c.id, { command: ['true'] })))._tag).toBe('Conflict');
    await t.engine.resumeContainer(c.id);
    expect((await t.engine.inspectContainer(c.id)).state.status).toBe('running');
    await t.engine.pauseContainer(c.id);
    await t.engine.removeContainer(c.id, { force: true });
  });

  it('renames, keeping the old name free and refusing a taken one', async () => {
    const a = await t.engine.createContainer(none({ name: 'first', command: ['true'] }));
    await t.engine.createContainer(none({ name: 'second', command: ['true'] }));
    expect((await errorOf(t.engine.renameContainer('first', 'second')))._tag).toBe('Conflict');
    await t.engine.renameContainer('first', 'third');
    expect((await t.engine.inspectContainer('third')).id).toBe(a.id);
    await t.engine.createContainer(none({ name: 'first', command: ['true'] }));
  });
});

describe('bad input changes nothing', () => {
  it('unknown image, name conflict, bad values', async () => {
    const before = (await t.engine.listContainers({ all: true })).length;
    expect(await errorOf(t.engine.createContainer(none({ image: 'nosuch:1' })))).toMatchObject({ _tag: 'NotFound', kind: 'image' });
    await t.engine.createContainer(none({ name: 'taken', command: ['true'] }));
    expect(await errorOf(t.engine.createContainer(none({ name: 'taken', command: ['true'] })))).toMatchObject({ _tag: 'Conflict' });
    const bad = await errorOf(t.engine.createContainer(none({ name: 'bad name!', resources: { memory: 1024, cpus: -1 }, capAdd: ['CAP_BOGUS'], mounts: [{ type: 'bind', source: 'rel', target: 'x' }] })));
    expect(bad._tag).toBe('InvalidSpec');
    expect(bad._tag === 'InvalidSpec' && bad.problems.length).toBeGreaterThanOrEqual(5);
    expect((await t.engine.listContainers({ all: true })).length).toBe(before + 1);
    await t.engine.removeContainer('taken');
  });
});

describe('users, security defaults, limits', () => {
  it('resolves users and groups by name in the image', async () => {
    expect((await sh('id -u; id -g; id -G', { user: 'test' })).out).toBe('1000\n1000\n1000 1001\n');
    expect((await sh('id -u; id -g', { user: 'test:extra' })).out).toBe('1000\n1001\n');
    expect((await sh('id -u; id -g', { user: '4242:4343' })).out).toBe('4242\n4343\n');
    const e = await errorOf(sh('true', { user: 'nobody-here' }));
    expect(JSON.stringify(e)).toMatch(/unable to find user nobody-here/);
  });

  it('has Docker\'s 14 capabilities, seccomp filtering, masked and read-only paths', async () => {
    const r = await sh('grep -E "^(CapEff|CapBnd|Seccomp|NoNewPrivs):" /proc/self/status; wc -c < /proc/interrupts; echo 1 > /proc/sys/kernel/panic_on_oops 2>/dev/null && echo wrote || echo refused');
    expect(r.out).toContain('CapEff:\t00000000a80425fb');
    expect(r.out).toContain('CapBnd:\t00000000a80425fb');
    expect(r.out).toContain('Seccomp:\t2');
    expect(r.out).toContain('refused');
    expect(r.out).toMatch(/\n0\n/);
    const blocked = await sh('unshare -U true 2>&1; echo "rc=$?"');
    expect(blocked.out).toMatch(/rc=1/);
    // the cap-dependent group: with CAP_SYS_ADMIN, unshare/mount are allowed
    const admin = await sh('unshare -m true 2>&1; echo "rc=$?"', { capAdd: ['SYS_ADMIN'] });
    expect(admin.out).toBe('rc=0\n');
    // a profile from a file
    const prof = path.join(t.dir, 'no-mkdir.json');
    fs.writeFileSync(prof, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] }));
    const custom = await sh('mkdir /tmp/x 2>&1; echo "rc=$?"', { security: { seccomp: prof } });
    expect(custom.out).toMatch(/Permission denied\nrc=1\n$/);
    expect((await errorOf(sh('true', { security: { seccomp: path.join(t.dir, 'missing.json') } })))._tag).toBe('InvalidSpec');
    const unconfined = await sh('grep Seccomp: /proc/self/status', { security: { seccomp: 'unconfined' } });
    expect(unconfined.out).toBe('Seccomp:\t0\n');
    const nnp = await sh('grep NoNewPrivs: /proc/self/status', { security: { noNewPrivileges: true } });
    expect(nnp.out).toBe('NoNewPrivs:\t1\n');
    const caps = await sh('grep CapEff: /proc/self/status', { capDrop: ['ALL'], capAdd: ['NET_ADMIN'] });
    expect(caps.out).toBe('CapEff:\t0000000000001000\n');
    const priv = await sh('grep -E "^(CapEff|Seccomp):" /proc/self/status; wc -c < /proc/interrupts', { privileged: true });
    const hostBnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
    expect(priv.out).toContain(`CapEff:\t${hostBnd}`);
    expect(priv.out).toContain('Seccomp:\t0');
    expect(priv.out).not.toMatch(/\n0\n$/);
  });

  it('read-only rootfs, tmpfs, labels, restart policy and healthcheck stored', async () => {
    const r = await sh('touch /x 2>/dev/null && echo rw || echo ro; touch /scratch/y && echo tmpfs-rw; grep " /scratch " /proc/mounts', {
      readOnlyRootfs: true, mounts: [{ type: 'tmpfs', target: '/scratch', sizeBytes: 1024 * 1024, mode: 0o700 }],
      labels: { team: 'a' }, restartPolicy: { name: 'on-failure', maximumRetryCount: 3 },
      healthcheck: { test: ['CMD-SHELL', 'true'], intervalMs: 5000 },
    });
    expect(r.out).toMatch(/^ro\ntmpfs-rw\ntmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=700/);
    const info = await t.engine.inspectContainer(r.id);
    expect(info.spec.restartPolicy).toEqual({ name: 'on-failure', maximumRetryCount: 3 });
    expect(info.spec.healthcheck?.test).toEqual(['CMD-SHELL', 'true']);
    expect((await t.engine.listContainers({ all: true, filters: { label: ['team=a'] } })).map((c) => c.id)).toEqual([r.id]);
  });

  it('inherits the image\'s HEALTHCHECK unless the spec has one', async () => {
    const { importLayers } = await import('../../../engine/local-images.js');
    const { busyboxLayer } = await import('./helpers.js');
    await importLayers(t.engine.store, [busyboxLayer(t.dir)], 'healthy:1', { cmd: ['sh'], healthcheck: { test: ['CMD', 'true'], intervalMs: 3000, retries: 2 } });
    const a = await t.engine.createContainer(none({ image: 'healthy:1' }));
    expect(a.spec.healthcheck).toEqual({ test: ['CMD', 'true'], intervalMs: 3000, retries: 2 });
    const b = await t.engine.createContainer(none({ image: 'healthy:1', healthcheck: { test: ['NONE'] } }));
    expect(b.spec.healthcheck).toEqual({ test: ['NONE'] });
  });

  it('applies memory, pids and cpu limits, and updates them in place', async () => {
    const c = await t.engine.createContainer(none({ command: ['sleep', '100'], resources: { memory: 64 * 1024 * 1024, pidsLimit: 50, cpus: 0.5 } }));
    await t.engine.startContainer(c.id);
    const cg = (ctl: string, f: string): string => fs.readFileSync(`/sys/fs/cgroup/${ctl}/berth/${c.id}/${f}`, 'utf8').trim();
    expect(cg('memory', 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
    expect(cg('pids', 'pids.max')).toBe('50');
    expect(cg('cpu', 'cpu.cfs_quota_us')).toBe('50000');
    await t.engine.updateContainer(c.id, { resources: { memory: 128 * 1024 * 1024, pidsLimit: 80 } });
    expect(cg('memory', 'memory.limit_in_bytes')).toBe(String(128 * 1024 * 1024));
    expect(cg('pids', 'pids.max')).toBe('80');
    expect((await t.engine.inspectContainer(c.id)).spec.resources?.memory).toBe(128 * 1024 * 1024);
    const s = await t.engine.statsContainer(c.id);
    expect(s.pids).toBeGreaterThanOrEqual(1);
    expect(s.memoryUsageBytes).toBeGreaterThan(0);
    expect(s.memoryLimitBytes).toBe(128 * 1024 * 1024);
    expect(await t.engine.containers.topContainer(c.id)).toHaveLength(1);
    await t.engine.removeContainer(c.id, { force: true });
  });
});

describe('devices, sysctls, ulimits, OOM', () => {
  it('adds a host device, sets namespaced sysctls and ulimits', async () => {
    const r = await sh('head -c 5 /dev/myzero | wc -c; cat /proc/sys/net/ipv4/ip_forward; ulimit -n; ulimit -Hn; hostname; cat /proc/sys/kernel/domainname', {
      devices: [{ hostPath: '/dev/zero', containerPath: '/dev/myzero', permissions: 'rwm' }],
      sysctls: { 'net.ipv4.ip_forward': '1' },
      ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }],
      hostname: 'devbox', domainname: 'example.org',
    });
    expect(r.out).toBe('5\n1\n1024\n2048\ndevbox\nexample.org\n');
    expect((await errorOf(sh('true', { sysctls: { 'kernel.panic': '1' } })))._tag).toBe('InvalidSpec');
    expect((await errorOf(sh('true', { devices: [{ hostPath: '/etc/passwd', containerPath: '/dev/x', permissions: 'r' }] })))._tag).toBe('InvalidSpec');
  });

  it('records an OOM kill', async () => {
    const r = await sh('x=a; while :; do x="$x$x"; done', { resources: { memory: 8 * 1024 * 1024, memorySwap: 8 * 1024 * 1024 } });
    expect(r.code).toBe(137);
    expect((await t.engine.inspectContainer(r.id)).state.oomKilled).toBe(true);
  });
});

describe('exec', () => {
  it('runs processes in a running container with user, env, workdir and exit code', async () => {
    const c = await t.engine.createContainer(none({ command: ['sleep', '100'], env: ['FROM=container'] }));
    await t.engine.startContainer(c.id);
    expect((await t.engine.exec(c.id, { command: ['sh', '-c', 'exit 5'] })).exitCode).toBe(5);
    const out = path.join(t.dir, 'exec-out');
    // write inside the container, read back through /proc/<pid>/root
    await t.engine.exec(c.id, { command: ['sh', '-c', 'echo "$(id -u) $FROM $X $PWD" > /tmp/o'], user: 'test', env: ['X=y'], workingDir: '/home/test' });
    const pid = (await t.engine.inspectContainer(c.id)).state.pid as number;
    expect(fs.readFileSync(`/proc/${pid}/root/tmp/o`, 'utf8')).toBe('1000 container y /home/test\n');
    expect((await t.engine.exec(c.id, { command: ['nosuchcmd'] })).exitCode).toBe(127);
    expect((await t.engine.exec(c.id, { command: ['sleep', '100'], detach: true })).exitCode).toBe(0);
    expect((await t.engine.containers.topContainer(c.id)).length).toBe(2);
    void out;
    await t.engine.removeContainer(c.id, { force: true });
  });
});

describe('volumes and mounts', () => {
  it('keeps named volume data across containers, and refuses to remove a volume in use', async () => {
    await sh('echo kept > /v/file', { mounts: [{ type: 'volume', source: 'keep', target: '/v' }] });
    const again = await sh('cat /v/file', { mounts: [{ type: 'volume', source: 'keep', target: '/v' }] });
    expect(again.out).toBe('kept\n');
    const v = await t.engine.inspectVolume('keep');
    expect(v.usedBy).toHaveLength(2);
    expect(await errorOf(t.engine.removeVolume('keep'))).toMatchObject({ _tag: 'Conflict' });
    for (const id of v.usedBy) await t.engine.removeContainer(id);
    await t.engine.removeVolume('keep');
    expect(hasTag(await t.engine.inspectVolume('keep').catch((e) => e), 'NotFound')).toBe(true);
  });

  it('copies the image\'s content into an empty named volume; VOLUME makes an anonymous one removed by rm -v', async () => {
    const r = await runIt({ image: 'seeded', command: ['sh', '-c', 'cat /data/seed.txt /data/sub/deep.txt; echo new > /data/n'], mounts: [{ type: 'volume', source: 'seeded-vol', target: '/data' }] });
    expect(r.out).toBe('from the image\ndeep\n');
    expect(fs.readFileSync(path.join((await t.engine.inspectVolume('seeded-vol')).mountpoint, 'n'), 'utf8')).toBe('new\n');
    // not empty any more: no second copy-up over the user's data
    const again = await runIt({ image: 'seeded', command: ['ls', '/data'], mounts: [{ type: 'volume', source: 'seeded-vol', target: '/data' }] });
    expect(again.out.split('\n').filter((x) => x !== '').sort()).toEqual(['n', 'seed.txt', 'sub']);
    const anon = await runIt({ image: 'seeded', command: ['cat', '/data/seed.txt'] });
    expect(anon.out).toBe('from the image\n');
    const vols = (await t.engine.listVolumes()).filter((v) => v.usedBy.includes(anon.id));
    expect(vols).toHaveLength(1);
    await t.engine.removeContainer(anon.id, { volumes: true });
    expect(hasTag(await t.engine.inspectVolume(vols[0]!.name).catch((e) => e), 'NotFound')).toBe(true);
  });

  it('bind mounts read-only and read-write', async () => {
    const dir = fs.mkdtempSync(path.join(t.dir, 'bind-'));
    fs.writeFileSync(path.join(dir, 'in'), 'host\n');
    const r = await sh('cat /b/in; echo x > /b/out 2>/dev/null && echo writable || echo readonly; echo w > /w/out', {
      mounts: [{ type: 'bind', source: dir, target: '/b', readOnly: true }, { type: 'bind', source: dir, target: '/w' }],
    });
    expect(r.out).toBe('host\nreadonly\n');
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('w\n');
    expect((await errorOf(sh('true', { mounts: [{ type: 'bind', source: path.join(dir, 'missing'), target: '/m' }] })))._tag).toBe('InvalidSpec');
  });
});

describe('logs', () => {
  it('tails, filters by time, follows until exit', async () => {
    const r = await sh('for i in 1 2 3 4 5; do echo line$i; done');
    const tail: string[] = [];
    for await (const l of t.engine.logs(r.id, { tail: 2 })) tail.push(l.text);
    expect(tail).toEqual(['line4\n', 'line5\n']);
    const none2: string[] = [];
    for await (const l of t.engine.logs(r.id, { since: new Date(Date.now() + 60_000) })) none2.push(l.text);
    expect(none2).toEqual([]);
    const c = await t.engine.createContainer(none({ command: ['sh', '-c', 'echo a; sleep 0.3; echo b'] }));
    await t.engine.startContainer(c.id);
    const followed: string[] = [];
    for await (const l of t.engine.logs(c.id, { follow: true })) followed.push(l.text);
    expect(followed).toEqual(['a\n', 'b\n']);
  });
});

describe('events', () => {
  it('streams container events from every engine on the same roots', async () => {
    const ac = new AbortController();
    const seen: string[] = [];
    const reader = (async () => {
      for await (const ev of t.engine.events({ signal: ac.signal })) {
        if (ev.type === 'container') seen.push(ev.action);
        if (ev.type === 'container' && ev.action === 'destroy') ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    const other = openLocalEngine(t.engine.roots, { networking: null });
    const c = await other.createContainer(none({ command: ['sh', '-c', 'exit 2'] }));
    await other.startContainer(c.id);
    await other.waitContainer(c.id);
    await other.removeContainer(c.id);
    await reader;
    expect(seen).toEqual(['create', 'start', 'die', 'destroy']);
  });
});

describe('concurrency', () => {
  it('one name, many engines creating at once: exactly one wins, the rest get a conflict', async () => {
    const engines = Array.from({ length: 6 }, () => openLocalEngine(t.engine.roots, { networking: null }));
    const results = await Promise.allSettled(engines.map((e) => e.createContainer(none({ name: 'race', command: ['true'] }))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(toEngineError(r.reason)._tag).toBe('Conflict');
    expect((await t.engine.listContainers({ all: true, filters: { name: ['race'] } })).length).toBe(1);
    // concurrent removes: one removes, the others find nothing; nothing is left half done
    const rm = await Promise.allSettled(engines.map((e) => e.removeContainer('race', { force: true })));
    expect(rm.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    for (const r of rm) if (r.status === 'rejected') expect(toEngineError(r.reason)._tag).toBe('NotFound');
    expect(fs.readdirSync(path.join(t.engine.roots.root, 'containers/names'))).not.toContain('race');
  });

  it('a name costs no inode: its entry is a hard link to the first record, and resolves after the record is replaced', async () => {
    const c = await t.engine.createContainer(none({ name: 'linked', command: ['sleep', '100'] }));
    const entry = path.join(t.engine.roots.root, 'containers/names/linked');
    const record = path.join(t.engine.roots.root, 'containers', c.id, 'container.json');
    expect(fs.statSync(entry).ino).toBe(fs.statSync(record).ino);
    expect(fs.statSync(entry).nlink).toBe(2);
    await t.engine.startContainer('linked'); // replaces the record (running state)
    expect(fs.statSync(entry).ino).not.toBe(fs.statSync(record).ino);
    expect((await t.engine.inspectContainer('linked')).state.status).toBe('running');
    // a taken name is refused and the loser leaves nothing behind
    const before = fs.readdirSync(path.join(t.engine.roots.root, 'containers')).length;
    const e = await errorOf(t.engine.createContainer(none({ name: 'linked', command: ['true'] })));
    expect(e._tag).toBe('Conflict');
    expect(fs.readdirSync(path.join(t.engine.roots.root, 'containers')).length).toBe(before);
    expect(fs.statSync(entry).nlink).toBe(1);
    await t.engine.removeContainer('linked', { force: true });
    expect(fs.existsSync(entry)).toBe(false);
  });

  it('concurrent starts of one container start it once', async () => {
    const c = await t.engine.createContainer(none({ command: ['sleep', '100'] }));
    const engines = Array.from({ length: 4 }, () => openLocalEngine(t.engine.roots, { networking: null }));
    await Promise.all(engines.map((e) => e.startContainer(c.id)));
    expect(fs.readdirSync(path.join(t.engine.roots.runRoot, 'shims')).filter((d) => d === c.id)).toHaveLength(1);
    expect((await t.engine.containers.topContainer(c.id)).length).toBe(1);
    await t.engine.removeContainer(c.id, { force: true });
  });
});

describe('init layer', () => {
  /** busybox with one more layer: `tree` (files relative to the layer root) made by `make`. */
  const imageWith = async (ref: string, make: (tree: string) => void): Promise<string[]> => {
    const { importLayers } = await import('../../../engine/local-images.js');
    const { busyboxLayer } = await import('./helpers.js');
    const tree = fs.mkdtempSync(path.join(t.dir, 'layer-'));
    make(tree);
    const tar = `${tree}.tar`;
    execFileSync('tar', ['-C', tree, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
    await importLayers(t.engine.store, [busyboxLayer(t.dir), tar], ref, { cmd: ['sh'] });
    return [...(await t.engine.store.resolve(ref)).chain];
  };
  // beside the top chain's unpacked layer in the layer store, so that it goes with it
  const initDirOf = (chain: string[]): string => path.join(t.engine.roots.root, 'layers', chain[chain.length - 1]!.slice('sha256:'.length), 'init');
  const upperOf = (id: string): string[] => fs.readdirSync(path.join(t.engine.roots.root, 'containers', id, 'upper'));

  it('gives the second and later containers of an image the /etc mount targets it lacks, in a shared lower: nothing in their upper dirs', async () => {
    const chain = await imageWith('etcmode:1', (tree) => {
      fs.mkdirSync(path.join(tree, 'etc'));
      fs.writeFileSync(path.join(tree, 'etc/motd'), 'hi\n');
      fs.chmodSync(path.join(tree, 'etc'), 0o751);
      fs.utimesSync(path.join(tree, 'etc'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
    });
    const first = await runIt({ image: 'etcmode:1', command: ['true'] });
    expect(first.code).toBe(0);
    // the first start made the targets in its own upper dir, as the runtime always did
    expect(upperOf(first.id)).toContain('etc');
    expect(fs.existsSync(initDirOf(chain))).toBe(false);
    const second = await runIt({ image: 'etcmode:1', hostname: 'second', command: ['sh', '-c', 'stat -c %a /etc; cat /etc/hostname; test -f /etc/hosts && test -f /etc/resolv.conf && echo targets; cat /etc/motd'] });
    expect(second).toMatchObject({ code: 0, out: '751\nsecond\ntargets\nhi\n' });
    expect(upperOf(second.id)).toEqual([]);
    // the layer: /etc as the image has it, and the targets the image lacks (busybox has /etc/hostname)
    const etc = path.join(initDirOf(chain), 'etc');
    expect(fs.readdirSync(etc).sort()).toEqual(['hosts', 'resolv.conf']);
    const st = fs.statSync(etc);
    expect(st.mode & 0o7777).toBe(0o751);
    expect(st.mtime.toISOString()).toBe('2001-02-03T04:05:06.000Z');
    // a fresh engine (another process) uses it from its first start
    const fresh = openLocalEngine(t.engine.roots, { networking: null });
    const c = await fresh.createContainer(none({ image: 'etcmode:1', command: ['true'] }));
    await fresh.startContainer(c.id);
    expect((await fresh.waitContainer(c.id)).exitCode).toBe(0);
    expect(upperOf(c.id)).toEqual([]);
    for (const id of [first.id, second.id, c.id]) await t.engine.removeContainer(id);
    // the image's removal takes the init layer with the chain's unpacked layer: nothing left of either
    expect((await t.engine.removeImage('etcmode:1')).deleted).toHaveLength(1);
    expect(fs.existsSync(path.dirname(initDirOf(chain)))).toBe(false);
    expect(fs.readdirSync(path.join(t.engine.roots.root, 'layers')).filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
  });

  it('makes none for an image whose /etc is not a directory', async () => {
    const chain = await imageWith('etclink:1', (tree) => {
      fs.mkdirSync(path.join(tree, 'alt'));
      fs.symlinkSync('alt', path.join(tree, 'etc'));
    });
    for (let i = 0; i < 2; i++) {
      const r = await runIt({ image: 'etclink:1', command: ['sh', '-c', 'test -L /etc && test -f /alt/hosts && echo ok'] });
      expect(r).toMatchObject({ code: 0, out: 'ok\n' });
      await t.engine.removeContainer(r.id);
    }
    expect(fs.existsSync(initDirOf(chain))).toBe(false);
  });
});

describe('crash recovery', () => {
  it('finishes after a crash between mounting the rootfs and creating the container, and takes over a stale name', async () => {
    const c = await t.engine.createContainer(none({ name: 'crashy', command: ['echo', 'ok'] }));
    const dir = path.join(t.engine.roots.root, 'containers', c.id);
    // the rootfs mount point is in the container's bundle, under the run root (engine/runtime/layout.ts)
    const bundle = path.join(t.engine.roots.runRoot, 'containers', c.id);
    const chain = (await t.engine.store.resolve('busybox')).chain;
    const m = await t.engine.store.layers.mount(chain, path.join(dir, 'upper'), path.join(dir, 'work'), path.join(bundle, 'rootfs'));
    fs.mkdirSync(m.target, { recursive: true });
    execFileSync('mount', ['-t', 'overlay', '-o', m.options.join(','), 'overlay', m.target]);
    expect(mountsUnder(bundle)).toHaveLength(1);
    await t.engine.startContainer('crashy');
    expect((await t.engine.waitContainer('crashy')).exitCode).toBe(0);
    expect(mountsUnder(bundle)).toEqual([]);
    // the same crash under an older Berth, whose mount point was in the container's dir
    const old = await t.engine.createContainer(none({ name: 'crashy-old', command: ['echo', 'ok'] }));
    const oldDir = path.join(t.engine.roots.root, 'containers', old.id);
    const om = await t.engine.store.layers.mount(chain, path.join(oldDir, 'upper'), path.join(oldDir, 'work'), path.join(oldDir, 'rootfs'));
    fs.mkdirSync(om.target);
    execFileSync('mount', ['-t', 'overlay', '-o', om.options.join(','), 'overlay', om.target]);
    await t.engine.startContainer('crashy-old');
    expect((await t.engine.waitContainer('crashy-old')).exitCode).toBe(0);
    expect(mountsUnder(oldDir)).toEqual([]);
    // rm takes the bundle with the container
    await t.engine.removeContainer('crashy-old');
    expect(fs.existsSync(path.join(t.engine.roots.runRoot, 'containers', old.id))).toBe(false);
    // a name entry whose container is gone (crash during rm) does not block the name
    fs.writeFileSync(path.join(t.engine.roots.root, 'containers/names/ghost'), 'f'.repeat(64));
    await t.engine.createContainer(none({ name: 'ghost', command: ['true'] }));
    // nor one whose create died before writing the record (its dir is removed with it)
    const half = 'd'.repeat(64);
    fs.mkdirSync(path.join(t.engine.roots.root, 'containers', half, 'upper'), { recursive: true });
    fs.writeFileSync(path.join(t.engine.roots.root, 'containers/names/halfway'), half);
    await t.engine.createContainer(none({ name: 'halfway', command: ['true'] }));
    expect(fs.existsSync(path.join(t.engine.roots.root, 'containers', half))).toBe(false);
    // an --rm container's create is not fsynced: a power loss can leave its record and its name
    // entry (one inode) empty. An empty entry from before this boot does not block the name; one
    // from now is a create writing it, and does; the empty record is skipped and removed by its ID
    const lost = 'a'.repeat(64);
    fs.mkdirSync(path.join(t.engine.roots.root, 'containers', lost), { recursive: true });
    fs.writeFileSync(path.join(t.engine.roots.root, 'containers', lost, 'container.json'), '');
    const entry = path.join(t.engine.roots.root, 'containers/names/lostrm');
    fs.linkSync(path.join(t.engine.roots.root, 'containers', lost, 'container.json'), entry);
    await expect(t.engine.createContainer(none({ name: 'lostrm', command: ['true'] }))).rejects.toThrow(/already in use/);
    const beforeBoot = (Date.now() - os.uptime() * 1000 - 60_000) / 1000;
    fs.utimesSync(entry, beforeBoot, beforeBoot);
    expect((await t.engine.listContainers({ all: true })).map((c) => c.id)).not.toContain(lost);
    await t.engine.createContainer(none({ name: 'lostrm', command: ['true'] }));
    await t.engine.removeContainer(lost);
    expect(fs.existsSync(path.join(t.engine.roots.root, 'containers', lost))).toBe(false);
    // a container dir without a record (crash during create) is removed by its ID
    const orphan = 'e'.repeat(64);
    fs.mkdirSync(path.join(t.engine.roots.root, 'containers', orphan, 'rootfs'), { recursive: true });
    await t.engine.removeContainer(orphan);
    expect(fs.existsSync(path.join(t.engine.roots.root, 'containers', orphan))).toBe(false);
  });
});

describe('hostile images', () => {
  it('symlinks in the image cannot make user lookup or copy-up read the host', async () => {
    const { importLayers } = await import('../../../engine/local-images.js');
    const { busyboxLayer } = await import('./helpers.js');
    const host = fs.mkdtempSync(path.join(t.dir, 'host-secret-'));
    fs.writeFileSync(path.join(host, 'passwd'), 'evil:x:4242:4242::/:/bin/sh\n');
    fs.writeFileSync(path.join(host, 'secret.txt'), 'host data\n');
    const layer = fs.mkdtempSync(path.join(t.dir, 'hostile-'));
    fs.mkdirSync(path.join(layer, 'root/etc'), { recursive: true });
    const up = '../'.repeat(12);
    fs.symlinkSync(`${up}${host.slice(1)}/passwd`, path.join(layer, 'root/etc/passwd'));
    fs.symlinkSync(`/${up}${host.slice(1)}`, path.join(layer, 'root/data'));
    const tar = path.join(layer, 'l.tar');
    execFileSync('tar', ['-C', path.join(layer, 'root'), '-cf', tar, '.']);
    await importLayers(t.engine.store, [busyboxLayer(t.dir), tar], 'hostile:1', { cmd: ['sh'] });
    const e = await errorOf(runIt({ image: 'hostile:1', user: 'evil', command: ['id'] }));
    expect(JSON.stringify(e)).toMatch(/unable to find user evil/);
    const r = await runIt({ image: 'hostile:1', command: ['sh', '-c', 'ls -A /data/ | wc -l'], mounts: [{ type: 'volume', source: 'hostile-vol', target: '/data' }] });
    expect(r.out).toBe('0\n');
    expect(fs.readdirSync((await t.engine.inspectVolume('hostile-vol')).mountpoint)).toEqual([]);
    // and the runtime mounted the volume inside the rootfs, not over the host directory
    expect(fs.readdirSync(host).sort()).toEqual(['passwd', 'secret.txt']);
    expect(mountsUnder(host)).toEqual([]);
  });
});

describe('crash between runtime create and the record', () => {
  it('start replaces a container whose start was never recorded; rm removes one', async () => {
    for (const verb of ['start', 'rm'] as const) {
      const c = await t.engine.createContainer(none({ command: ['sleep', '100'] }));
      await t.engine.startContainer(c.id);
      const file = path.join(t.engine.roots.root, 'containers', c.id, 'container.json');
      const rec = JSON.parse(fs.readFileSync(file, 'utf8'));
      const oldPid = rec.state.pid as number;
      const shimPid = rec.state.shimPid as number;
      // as if the engine died after the shim created the container, before it wrote the record
      fs.writeFileSync(file, JSON.stringify({ ...rec, state: { running: false, restartCount: 0 } }));
      if (verb === 'start') {
        await t.engine.startContainer(c.id);
        const now = await t.engine.inspectContainer(c.id);
        expect(now.state.status).toBe('running');
        expect(now.state.pid).not.toBe(oldPid);
        await t.engine.removeContainer(c.id, { force: true });
      } else {
        await t.engine.removeContainer(c.id);
      }
      for (let i = 0; i < 100 && fs.existsSync(`/proc/${shimPid}/cmdline`) && !fs.readFileSync(`/proc/${shimPid}/stat`, 'utf8').includes(') Z'); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(fs.existsSync(`/proc/${oldPid}/cmdline`) && fs.readFileSync(`/proc/${oldPid}/cmdline`, 'utf8').includes('sleep')).toBe(false);
      expect(fs.existsSync(path.join(t.engine.roots.runRoot, 'runtime', c.id))).toBe(false);
      expect(fs.existsSync(`/sys/fs/cgroup/pids/berth/${c.id}`)).toBe(false);
    }
  });
});

describe('runc as the runtime', () => {
  const runc = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => fs.existsSync(p));
  it.skipIf(!runc)('runs, execs and stops a container with runc', async () => {
    const e = openLocalEngine(t.engine.roots, { runtime: runc as string, networking: null });
    const c = await e.createContainer(none({ command: ['sh', '-c', 'echo via runc; sleep 100'] }));
    await e.startContainer(c.id);
    expect((await e.exec(c.id, { command: ['sh', '-c', 'exit 9'] })).exitCode).toBe(9);
    await e.stopContainer(c.id, { timeoutSeconds: 0 });
    expect((await e.inspectContainer(c.id)).state.exitCode).toBe(137);
    const lines: string[] = [];
    for await (const l of e.logs(c.id)) lines.push(l.text);
    expect(lines).toEqual(['via runc\n']);
    // the default engine manages it too: the record names its runtime
    await t.engine.startContainer(c.id);
    await t.engine.removeContainer(c.id, { force: true });
  });
});
