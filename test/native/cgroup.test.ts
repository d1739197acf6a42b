// cgroups as berth-runtime drives them (native/src/cgroup*.c), through the
// test driver in native/tests/cgroup/: real groups named /berth-test-cg-*,
// values read back from the cgroup files, behaviour checked on real
// processes. The host block runs on this (hybrid or v1) host; the v2 block
// boots a pure cgroup v2 guest with test/vm/run-in-vm.sh and runs
// test/vm/cgroup-v2-checks.sh there.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const driver = `${repo}native/build/tests/cgroup-driver`;
const isRoot = process.getuid?.() === 0;
const CG = '/sys/fs/cgroup';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function drv(...args: string[]): Run {
  const r = spawnSync(driver, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): string {
  const r = drv(...args);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.trim();
}

/** What /proc/self/mountinfo says this host is, independently of cgroup.c. */
function hostMode(): 'v1' | 'v2' | 'hybrid' {
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const fstypeAt = (mnt: string) =>
    lines.filter((l) => l.split(' ')[4] === mnt).map((l) => l.split(' - ')[1]?.split(' ')[0])[0];
  if (fstypeAt(CG) === 'cgroup2') return 'v2';
  const v2 = lines.some((l) => l.split(' ')[4]?.startsWith(`${CG}/`) && l.includes(' - cgroup2 '));
  return v2 ? 'hybrid' : 'v1';
}

const mode = fs.existsSync(CG) ? hostMode() : 'v1';

/** Directories of the v1 hierarchies under /sys/fs/cgroup, by controller. */
function v1Mounts(): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = l.split(' - ');
    const mnt = pre?.split(' ')[4];
    const [fstype, , opts] = post?.split(' ') ?? [];
    if (fstype !== 'cgroup' || !mnt?.startsWith(`${CG}/`)) continue;
    for (const o of opts?.split(',') ?? []) if (!out.has(o)) out.set(o, mnt);
  }
  return out;
}
const unifiedMount = mode === 'hybrid' ? `${CG}/unified` : CG;

let seq = 0;
const made: string[] = [];
const spawned: number[] = [];

function group(): string {
  const p = `/berth-test-cg-${process.pid}-${++seq}`;
  made.push(p);
  return p;
}

function read(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}

function alive(pid: number): boolean {
  try {
    return read(`/proc/${pid}/stat`).split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

function utime(pid: number): number {
  const after = read(`/proc/${pid}/stat`).split(') ')[1]?.split(' ') ?? [];
  return Number(after[11]); // field 14 of stat, counted after "pid (comm)"
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every directory the group has on the host (v1 hierarchies and cgroup2). */
function groupDirs(p: string): string[] {
  const dirs = [...new Set(v1Mounts().values())].map((m) => m + p);
  if (mode !== 'v1') dirs.push(unifiedMount + p);
  return dirs;
}

function cleanup(): void {
  for (const pid of spawned.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  for (const p of made.splice(0)) {
    const r = drv('destroy', p);
    if (r.status !== 0) throw new Error(`could not remove test cgroup ${p}: ${r.stderr}`);
  }
}

describe.skipIf(!isRoot)('cgroups (needs root: creates cgroups)', () => {
  beforeAll(() => {
    execFileSync('make', ['-s', '-C', `${repo}native/tests/cgroup`], { stdio: 'inherit' });
  });
  afterEach(cleanup);

  it('detects the host layout that /proc/self/mountinfo shows', () => {
    expect(ok('mode')).toBe(mode);
  });

  it('reports v1 and v2 support for `features`', () => {
    expect(JSON.parse(ok('features'))).toEqual({ v1: true, v2: true, systemd: false, systemdUser: false, rdma: true });
  });

  describe.skipIf(mode === 'v2')(`cgroup v1 controllers on this ${mode} host`, () => {
    const m = v1Mounts();
    const dir = (ctl: string, p: string) => `${m.get(ctl)}${p}`;

    it('writes every v1 resource and reads the same values back', () => {
      const p = group();
      const res = {
        memory: { limit: 104857600, reservation: 52428800, swap: 209715200, swappiness: 10, disableOOMKiller: true },
        cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
        pids: { limit: 7 },
        blockIO: {
          throttleReadBpsDevice: [{ major: 7, minor: 0, rate: 1048576 }],
          throttleWriteBpsDevice: [{ major: 7, minor: 0, rate: 2097152 }],
          throttleReadIOPSDevice: [{ major: 7, minor: 0, rate: 100 }],
          throttleWriteIOPSDevice: [{ major: 7, minor: 0, rate: 200 }],
        },
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
          { allow: true, type: 'c', major: 136, access: 'rw' },
          { allow: true, type: 'b', major: 7, minor: 0, access: 'r' },
        ],
      };
      ok('create', p, JSON.stringify(res));
      const mem = dir('memory', p);
      expect(read(`${mem}/memory.limit_in_bytes`)).toBe('104857600');
      expect(read(`${mem}/memory.memsw.limit_in_bytes`)).toBe('209715200');
      expect(read(`${mem}/memory.soft_limit_in_bytes`)).toBe('52428800');
      expect(read(`${mem}/memory.swappiness`)).toBe('10');
      expect(read(`${mem}/memory.oom_control`)).toMatch(/^oom_kill_disable 1$/m);
      const cpu = dir('cpu', p);
      expect(read(`${cpu}/cpu.shares`)).toBe('512');
      expect(read(`${cpu}/cpu.cfs_quota_us`)).toBe('50000');
      expect(read(`${cpu}/cpu.cfs_period_us`)).toBe('100000');
      expect(read(`${dir('cpuset', p)}/cpuset.cpus`)).toBe('0');
      expect(read(`${dir('cpuset', p)}/cpuset.mems`)).toBe('0');
      expect(read(`${dir('pids', p)}/pids.max`)).toBe('7');
      const blk = dir('blkio', p);
      expect(read(`${blk}/blkio.throttle.read_bps_device`)).toBe('7:0 1048576');
      expect(read(`${blk}/blkio.throttle.write_bps_device`)).toBe('7:0 2097152');
      expect(read(`${blk}/blkio.throttle.read_iops_device`)).toBe('7:0 100');
      expect(read(`${blk}/blkio.throttle.write_iops_device`)).toBe('7:0 200');
      expect(read(`${dir('devices', p)}/devices.list`).split('\n').sort()).toEqual(
        ['b 7:0 r', 'c 1:3 rwm', 'c 136:* rw'].sort(),
      );
    });

    it('writes the cpu extras this kernel has (burst, idle, real-time)', () => {
      const p = group();
      ok('create', p, '{}');
      const cpu = dir('cpu', p);
      const res: Record<string, number> = {};
      if (fs.existsSync(`${cpu}/cpu.cfs_burst_us`)) res.burst = 2000;
      if (fs.existsSync(`${cpu}/cpu.idle`)) res.idle = 1;
      if (fs.existsSync(`${cpu}/cpu.rt_runtime_us`)) Object.assign(res, { realtimeRuntime: 1000, realtimePeriod: 500000 });
      if (Object.keys(res).length === 0) return expect.fail('this kernel has none of cpu.cfs_burst_us, cpu.idle, cpu.rt_*');
      ok('update', p, JSON.stringify({ cpu: { quota: 10000, ...res } }));
      if (res.burst) expect(read(`${cpu}/cpu.cfs_burst_us`)).toBe('2000');
      if (res.idle) expect(read(`${cpu}/cpu.idle`)).toBe('1');
      if (res.realtimeRuntime) {
        expect(read(`${cpu}/cpu.rt_runtime_us`)).toBe('1000');
        expect(read(`${cpu}/cpu.rt_period_us`)).toBe('500000');
      }
    });

    it('fills an empty v1 cpuset from its parent so a process can join', () => {
      const p = group();
      ok('create', p, '{}');
      expect(read(`${dir('cpuset', p)}/cpuset.cpus`)).toBe(read(`${m.get('cpuset')}/cpuset.cpus`));
      expect(read(`${dir('cpuset', p)}/cpuset.mems`)).toBe(read(`${m.get('cpuset')}/cpuset.mems`));
    });

    it('orders the memory and memory+swap writes so raising and lowering both work', () => {
      const p = group();
      ok('create', p, JSON.stringify({ memory: { limit: 104857600, swap: 209715200 } }));
      ok('update', p, JSON.stringify({ memory: { limit: 314572800, swap: 419430400 } }));
      expect(read(`${dir('memory', p)}/memory.limit_in_bytes`)).toBe('314572800');
      expect(read(`${dir('memory', p)}/memory.memsw.limit_in_bytes`)).toBe('419430400');
      ok('update', p, JSON.stringify({ memory: { limit: 52428800, swap: 62914560 } }));
      expect(read(`${dir('memory', p)}/memory.limit_in_bytes`)).toBe('52428800');
      expect(read(`${dir('memory', p)}/memory.memsw.limit_in_bytes`)).toBe('62914560');
      ok('update', p, JSON.stringify({ memory: { limit: -1, swap: -1 } }));
      expect(Number(read(`${dir('memory', p)}/memory.limit_in_bytes`))).toBeGreaterThan(2 ** 62);
    });

    it.skipIf(mode !== 'hybrid' || !read(`${unifiedMount}/cgroup.controllers`).includes('hugetlb'))(
      'drives hugetlb through the cgroup2 mount where only cgroup2 holds it',
      () => {
        const p = group();
        ok('create', p, JSON.stringify({ hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }] }));
        expect(read(`${unifiedMount}${p}/hugetlb.2MB.max`)).toBe('4194304');
        ok('update', p, JSON.stringify({ unified: { 'hugetlb.2MB.max': '8388608' } }));
        expect(read(`${unifiedMount}${p}/hugetlb.2MB.max`)).toBe('8388608');
        const stats = JSON.parse(ok('stats', p)) as { hugetlb: Record<string, unknown> };
        expect(stats.hugetlb['2MB']).toEqual({ usage: 0, failcnt: 0 });
      },
    );

    it.skipIf(mode !== 'hybrid')('refuses unified keys the cgroup2 mount of a hybrid host does not hold', () => {
      const p = group();
      ok('create', p, '{}');
      const r = drv('update', p, JSON.stringify({ unified: { 'memory.high': '1000000' } }));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('linux.resources.unified.memory.high');
    });

    it('puts a process in the group in every hierarchy, the cgroup2 one included', () => {
      const p = group();
      const pid = Number(ok('spawn', p, '{}', 'sleep'));
      spawned.push(pid);
      const lines = read(`/proc/${pid}/cgroup`).split('\n');
      // One line per v1 hierarchy (named ones too) and the 0:: line.
      for (const l of lines) expect(l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1), lines.join('\n')).toBe(p);
      expect(lines.length).toBe(new Set(v1Mounts().values()).size + (mode === 'hybrid' ? 1 : 0));
    });

    it('stops the sixth process when pids.limit is 5', () => {
      const p = group();
      // The driver's forkn is the first of the five.
      expect(ok('exec', p, JSON.stringify({ pids: { limit: 5 } }), '--', driver, 'forkn', '10')).toBe(
        'forked 4\nstatus 0',
      );
      made.pop(); // exec removed it
    });

    it('denies /dev/null under a deny-all rule that allows only /dev/zero', () => {
      const zeroOnly = { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 5, access: 'rw' }] };
      const nullOnly = { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }] };
      const p = group();
      expect(ok('exec', p, JSON.stringify(zeroOnly), '--', driver, 'open', '/dev/null')).toBe('EPERM\nstatus 0');
      expect(ok('exec', p, JSON.stringify(nullOnly), '--', driver, 'open', '/dev/null')).toBe('ok\nstatus 0');
      expect(ok('exec', p, JSON.stringify(nullOnly), '--', driver, 'open', '/dev/zero')).toBe('EPERM\nstatus 0');
      made.pop();
    });

    it('updates device rules by difference: each step holds exactly the asked-for list', () => {
      const p = group();
      const deny = { allow: false, access: 'rwm' };
      const dev = (minor: number, access: string) => ({ allow: true, type: 'c', major: 1, minor, access });
      const list = () => read(`${dir('devices', p)}/devices.list`).split('\n').sort();
      ok('create', p, JSON.stringify({ devices: [deny, dev(3, 'rwm'), dev(5, 'rw')] }));
      expect(list()).toEqual(['c 1:3 rwm', 'c 1:5 rw']);
      ok('update', p, JSON.stringify({ devices: [deny, dev(3, 'rw'), dev(7, 'rwm'), { allow: true, type: 'c', major: 136, access: 'rw' }] }));
      expect(list()).toEqual(['c 1:3 rw', 'c 1:7 rwm', 'c 136:* rw'].sort());
      ok('update', p, JSON.stringify({ devices: [deny, dev(3, 'rwm'), { allow: false, type: 'c', major: 1, minor: 3, access: 'm' }] }));
      expect(list()).toEqual(['c 1:3 rw']);
      ok('update', p, JSON.stringify({ devices: [{ allow: true, access: 'rwm' }] }));
      expect(list()).toEqual(['a *:* rwm']);
      ok('update', p, JSON.stringify({ devices: [deny, dev(3, 'rwm')] }));
      expect(list()).toEqual(['c 1:3 rwm']);
    });

    it('never denies a kept device while its rules are updated', async () => {
      const p = group();
      const deny = { allow: false, access: 'rwm' };
      const dev = (minor: number) => ({ allow: true, type: 'c', major: 1, minor, access: 'rw' });
      ok('create', p, JSON.stringify({ devices: [deny, dev(3)] }));
      const looper = spawn(driver, ['exec', p, '{}', '--', driver, 'openloop', '/dev/null', '1500'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      looper.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const done = new Promise((r) => looper.on('exit', r));
      await sleep(300);
      for (let i = 0; i < 30; i++) ok('update', p, JSON.stringify({ devices: [deny, dev(3), dev(i % 2 ? 5 : 7)] }));
      await done;
      made.pop(); // exec removed it
      expect(out).toMatch(/^opens [1-9]\d* failures 0\n/);
    });

    it('freezes a busy process (no CPU time while frozen) and thaws it', async () => {
      const p = group();
      const pid = Number(ok('spawn', p, '{}', 'busy'));
      spawned.push(pid);
      await sleep(200);
      ok('freeze', p);
      expect(ok('frozen', p)).toBe('true');
      expect(read(`${dir('freezer', p)}/freezer.state`)).toBe('FROZEN');
      const a = utime(pid);
      await sleep(400);
      expect(utime(pid)).toBe(a);
      ok('thaw', p);
      expect(ok('frozen', p)).toBe('false');
      const b = utime(pid);
      for (let i = 0; i < 40 && utime(pid) <= b; i++) await sleep(50);
      expect(utime(pid)).toBeGreaterThan(b);
    });

    it('lists the group\'s processes and kills them all, nested groups included', async () => {
      const p = group();
      const a = Number(ok('spawn', p, '{}', 'sleep'));
      const b = Number(ok('spawn', `${p}/inner`, '{}', 'sleep'));
      spawned.push(a, b);
      expect(ok('pids', p).split(' ').map(Number).sort()).toEqual([a, b].sort());
      ok('kill', p, '9');
      for (let i = 0; i < 50 && (alive(a) || alive(b)); i++) await sleep(20);
      expect([alive(a), alive(b)]).toEqual([false, false]);
      expect(ok('pids', p)).toBe('');
    });

    it('signals a paused group without resuming it, and SIGKILL still kills it', async () => {
      const p = group();
      const pid = Number(ok('spawn', p, '{}', 'sleep'));
      spawned.push(pid);
      ok('freeze', p);
      ok('kill', p, '15');
      expect(ok('frozen', p)).toBe('true');
      await sleep(200);
      expect(alive(pid)).toBe(true);
      ok('kill', p, '9');
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(20);
      expect(alive(pid)).toBe(false);
      expect(ok('pids', p)).toBe('');
    });

    it('reports stats in the shape of runc events --stats', async () => {
      const p = group();
      const pid = Number(ok('spawn', p, JSON.stringify({ pids: { limit: 9 }, memory: { limit: 104857600 }, cpu: { cpus: '0' } }), 'busy'));
      spawned.push(pid);
      // A busy loop, but on a shared 2-core host: wait for some CPU time.
      for (let i = 0; i < 40 && utime(pid) < 2; i++) await sleep(50);
      const s = JSON.parse(ok('stats', p)) as {
        cpu: { usage: { total: number; percpu: number[]; user: number; kernel: number }; throttling: object };
        memory: { usage: { usage: number; limit: number }; raw: Record<string, number>; cache: number };
        pids: { current: number; limit: number };
        blkio: { ioServiceBytesRecursive: unknown[] };
        cpuset: { cpus: number[]; mems: number[] };
      };
      // utime counts clock ticks (10 ms); cpuacct counts nanoseconds.
      expect(s.cpu.usage.total).toBeGreaterThan(10_000_000);
      expect(s.cpu.usage.percpu.length).toBe(os.cpus().length);
      expect(s.cpu.usage.user + s.cpu.usage.kernel).toBeGreaterThan(0);
      expect(s.cpu.throttling).toHaveProperty('periods');
      expect(s.memory.usage.limit).toBe(104857600);
      expect(s.memory.usage.usage).toBeGreaterThan(0);
      expect(s.memory.raw).toHaveProperty('rss');
      expect(s.pids).toEqual({ current: 1, limit: 9 });
      expect(Array.isArray(s.blkio.ioServiceBytesRecursive)).toBe(true);
      expect(s.cpuset).toEqual({ cpus: [0], mems: [0] });
    });

    it('mounts the container\'s own groups, read-only, in a new cgroup namespace', () => {
      const p = group();
      ok('create', p, JSON.stringify({ pids: { limit: 7 } }));
      const target = fs.mkdtempSync(`${os.tmpdir()}/berth-test-cgmnt-`);
      try {
        const out = ok('mount', p, target, '--', 'sh', '-c',
          `cat ${target}/cgroup/pids/pids.max; ls ${target}/cgroup; touch ${target}/cgroup/pids/x 2>&1 || true`);
        const [max, ...rest] = out.split('\n');
        expect(max).toBe('7');
        expect(rest).toEqual(expect.arrayContaining(['cpu', 'memory', 'pids', 'devices', 'freezer']));
        expect(out).toMatch(/Read-only file system/);
      } finally {
        fs.rmdirSync(target);
      }
    });
  });

  describe('validation: a bad value names its field and changes nothing', () => {
    const bad: [string, object, string][] = [
      ['negative shares', { cpu: { shares: -1 } }, 'linux.resources.cpu.shares'],
      ['a cpuset that is no list', { cpu: { cpus: 'abc' } }, 'linux.resources.cpu.cpus'],
      ['CPUs that are not online', { cpu: { cpus: '0-4095' } }, 'not online'],
      ['an unknown device type', { devices: [{ allow: true, type: 'x' }] }, 'linux.resources.devices[0].type'],
      ['a device access letter', { devices: [{ allow: true, access: 'rwx' }] }, 'linux.resources.devices[0].access'],
      ['a string limit', { memory: { limit: '1g' } }, 'linux.resources.memory.limit'],
      ['swap below the limit', { memory: { limit: 200, swap: 100 } }, 'linux.resources.memory.swap'],
      ['a period out of range', { cpu: { period: 10 } }, 'linux.resources.cpu.period'],
      ['a huge page size the host lacks', { hugepageLimits: [{ pageSize: '3MB', limit: 1 }] }, 'hugepageLimits[0].pageSize'],
      ['a blkio weight out of range', { blockIO: { weight: 5 } }, 'linux.resources.blockIO.weight'],
      ['a unified key with a path', { unified: { '../cgroup.procs': '1' } }, 'linux.resources.unified'],
      ['pids below -1', { pids: { limit: -5 } }, 'linux.resources.pids.limit'],
    ];
    it.each(bad)('refuses %s', (_name, res, field) => {
      const p = group();
      const r = drv('create', p, JSON.stringify(res));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(field);
      for (const d of groupDirs(p)) expect(fs.existsSync(d)).toBe(false);
    });

    it.skipIf(mode === 'v2')('leaves every value as it was when an update holds one bad value', () => {
      const p = group();
      ok('create', p, JSON.stringify({ pids: { limit: 5 }, memory: { limit: 104857600 } }));
      const r = drv('update', p, JSON.stringify({ pids: { limit: 10 }, memory: { limit: 209715200 }, cpu: { shares: -1 } }));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('linux.resources.cpu.shares');
      const m = v1Mounts();
      expect(read(`${m.get('pids')}${p}/pids.max`)).toBe('5');
      expect(read(`${m.get('memory')}${p}/memory.limit_in_bytes`)).toBe('104857600');
    });

    it.skipIf(mode === 'v2')('refuses a memory limit below usage when checkBeforeUpdate is set', async () => {
      const p = group();
      const pid = Number(ok('spawn', p, '{}', 'busy'));
      spawned.push(pid);
      const r = drv('update', p, JSON.stringify({ memory: { limit: 4096, checkBeforeUpdate: true } }));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/linux\.resources\.memory\.limit: 4096 is below the group's current usage/);
      ok('update', p, JSON.stringify({ memory: { limit: 104857600, checkBeforeUpdate: true } }));
      expect(read(`${v1Mounts().get('memory')}${p}/memory.limit_in_bytes`)).toBe('104857600');
    });

    const rdmaMissing = mode !== 'v2' && !v1Mounts().has('rdma') &&
      !(mode === 'hybrid' && read(`${unifiedMount}/cgroup.controllers`).split(' ').includes('rdma'));
    it.skipIf(!rdmaMissing)('refuses rdma limits where no hierarchy holds the rdma controller', () => {
      const p = group();
      const r = drv('create', p, JSON.stringify({ rdma: { mlx5_0: { hcaHandles: 3 } } }));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/linux\.resources\.rdma asks for the .*'rdma' controller/);
      for (const d of groupDirs(p)) expect(fs.existsSync(d)).toBe(false);
    });

    it.skipIf(mode === 'v2' || v1Mounts().has('net_cls'))(
      'refuses a controller the host has not mounted, by name, and leaves no group',
      () => {
        const p = group();
        const r = drv('create', p, JSON.stringify({ network: { classID: 0x100001 } }));
        expect(r.status).toBe(1);
        expect(r.stderr).toContain("'net_cls' cgroup controller");
        for (const d of groupDirs(p)) expect(fs.existsSync(d)).toBe(false);
      },
    );
  });
});

// ---- guests: pure cgroup v1 (co-mounted controllers) and pure cgroup v2 ---

function runGuest(mode: 'v1' | 'v2', script: string, files: string[]): { checks: Map<string, string>; lines: string[] } {
  const r = spawnSync(`${repo}test/vm/run-in-vm.sh`, [`${repo}test/vm/${script}`, ...files], {
    encoding: 'utf8',
    timeout: 280_000,
    // TCG on a loaded 2-core host can be slow: the guest gets 4 minutes.
    env: { ...process.env, BERTH_VM_CGROUP: mode, BERTH_VM_TIMEOUT: '300' },
  });
  if (r.status !== 0) throw new Error(`the ${mode} guest failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  const checks = new Map<string, string>();
  const lines = r.stdout.split('\n');
  for (const line of lines) {
    const m = /^CHECK (\S+) ?(.*)$/.exec(line);
    if (m?.[1]) checks.set(m[1], (m[2] ?? '').trim());
  }
  return { checks, lines };
}


const runtime = `${repo}native/build/berth-runtime`;
const fixtureRootfs = `${repo}test/fixtures/build/rootfs`;
const runtimeReason = !fs.existsSync(runtime)
  ? 'native/build/berth-runtime is not built (make -C native)'
  : !fs.existsSync(`${fixtureRootfs}/bin/busybox`)
    ? 'no fixture rootfs (test/fixtures/make-fixtures.sh)'
    : '';

const vmReason = !isRoot
  ? 'needs root (installs qemu and a kernel, reads /boot)'
  : !fs.existsSync('/dev/kvm') && !fs.existsSync('/usr/bin/qemu-system-x86_64') && !fs.existsSync('/usr/bin/apt-get')
    ? 'no /dev/kvm, no qemu and no apt-get to install it'
    : '';

describe.skipIf(vmReason !== '')(`pure cgroup v1 in a KVM/TCG guest${vmReason ? ` (skipped: ${vmReason})` : ''}`, () => {
  let checks = new Map<string, string>();
  let stats: { cpu?: { usage?: { total?: number; percpu?: number[] } }; cpuset?: unknown; pids?: unknown } = {};

  beforeAll(() => {
    execFileSync('make', ['-s', '-C', `${repo}native/tests/cgroup`], { stdio: 'inherit' });
    const g = runGuest('v1', 'cgroup-v1-checks.sh', [driver]);
    checks = g.checks;
    const s = g.lines.find((l) => l.startsWith('STATS '));
    if (s) stats = JSON.parse(s.slice(6)) as typeof stats;
  }, 300_000);

  const c = (k: string) => checks.get(k);

  it('finds the co-mounted cpu,cpuacct and net_cls,net_prio hierarchies', () => {
    expect(c('mode')).toBe('v1');
    expect(c('create.rc')).toBe('0');
    expect(c('cpu.shares')).toBe('256');
    expect(c('cpu.cfs_quota_us')).toBe('30000');
    expect(c('net_cls.classid')).toBe('1048577');
    expect(c('net_prio.lo')).toBe('lo 5');
  });

  it('writes memory, cpuset, pids, hugetlb and devices through v1 files', () => {
    expect(c('memory.limit')).toBe('104857600');
    expect(c('memory.memsw')).toBe('157286400');
    expect(c('memory.swappiness')).toBe('20');
    expect(c('cpuset.cpus')).toBe('1');
    expect(c('pids.max')).toBe('6');
    expect(c('hugetlb.2MB')).toBe('2097152');
    expect(c('devices.list')).toBe('c 1:3 rw');
  });

  it('places a process in every hierarchy, the named systemd one included', () => {
    expect(c('systemd.dir')).toBe('present');
    const [n, , total] = (c('enter.cgroup') ?? '').split(' ');
    expect(n).toBe(total);
    expect(Number(n)).toBeGreaterThanOrEqual(12);
  });

  it('freezes, thaws, kills and reports stats from cpuacct', () => {
    expect(c('freeze.state')).toBe('FROZEN');
    expect(c('thaw.state')).toBe('THAWED');
    expect(c('kill.pids')).toBe('[]');
    expect(stats.cpu?.usage?.total).toBeGreaterThan(0);
    expect(stats.cpu?.usage?.percpu).toHaveLength(2);
    expect(stats.cpuset).toEqual({ cpus: [1], mems: [0] });
    expect(stats.pids).toEqual({ current: 1, limit: 6 });
  });

  it('mounts every hierarchy for the container, co-mounted ones under each name', () => {
    const [names, link, shares] = (c('mount.view') ?? '').split('|');
    expect(names?.split(' ')).toEqual(expect.arrayContaining(['cpu,cpuacct', 'cpu', 'cpuacct', 'net_cls', 'net_prio', 'systemd']));
    expect(link).toBe('cpu,cpuacct');
    expect(shares).toBe('256');
    expect(c('destroy.rc')).toBe('0');
    expect(c('end')).toBe('0');
  });
});

describe.skipIf(vmReason !== '')(`pure cgroup v2 in a KVM/TCG guest${vmReason ? ` (skipped: ${vmReason})` : ''}`, () => {
  const checks = new Map<string, string>();
  let stats: Record<string, unknown> = {};

  const container: string[] = [];
  let bundleDir = '';

  beforeAll(() => {
    execFileSync('make', ['-s', '-C', `${repo}native/tests/cgroup`], { stdio: 'inherit' });
    const files = [driver];
    if (runtimeReason === '') {
      // A bundle for the whole runtime: its config from `berth-runtime spec`.
      bundleDir = fs.mkdtempSync(`${os.tmpdir()}/berth-test-vmbundle-`);
      execFileSync(runtime, ['spec'], { cwd: bundleDir });
      const config = JSON.parse(fs.readFileSync(`${bundleDir}/config.json`, 'utf8')) as {
        process: { terminal: boolean; args: string[]; capabilities?: Record<string, string[]> };
        root: { path: string; readonly: boolean };
        linux: { resources?: object; cgroupsPath?: string; namespaces: { type: string }[] };
      };
      config.process.terminal = false;
      config.process.args = ['/bin/sh', '-c', [
        'echo "pids.max $(cat /sys/fs/cgroup/pids.max)"',
        'echo "memory.max $(cat /sys/fs/cgroup/memory.max)"',
        'echo "cpu.max $(cat /sys/fs/cgroup/cpu.max)"',
        'echo "self $(cat /proc/self/cgroup)"',
        '(echo x > /dev/null) 2>/dev/null && echo "null ok" || echo "null denied"',
        // berth-runtime adds runc's default rules (mknod of anything, the
        // standard nodes) to the config's: a serial port stays denied.
        'mknod /dev/berth-ttyS0 c 4 64 && { (: < /dev/berth-ttyS0) 2>&1 | grep -q "not permitted" && echo "ttyS0 denied" || echo "ttyS0 opened"; }',
      ].join('; ')];
      // mknod needs CAP_MKNOD, which `spec`'s default set leaves out.
      for (const set of ['bounding', 'effective', 'permitted'])
        config.process.capabilities = { ...config.process.capabilities, [set]: [...(config.process.capabilities?.[set] ?? []), 'CAP_MKNOD'] };
      config.root = { path: 'rootfs', readonly: true };
      config.linux.cgroupsPath = '/berth-test-vm/ctr';
      config.linux.resources = {
        pids: { limit: 10 },
        memory: { limit: 67108864 },
        cpu: { quota: 20000, period: 100000 },
        devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }],
      };
      if (!config.linux.namespaces.some((n) => n.type === 'cgroup')) config.linux.namespaces.push({ type: 'cgroup' });
      fs.writeFileSync(`${bundleDir}/config.json`, JSON.stringify(config));
      files.push(runtime, `${bundleDir}/config.json`, fixtureRootfs);
    }
    try {
      const r = spawnSync(`${repo}test/vm/run-in-vm.sh`, [`${repo}test/vm/cgroup-v2-checks.sh`, ...files], {
        encoding: 'utf8',
        timeout: 280_000,
        env: { ...process.env, BERTH_VM_CGROUP: 'v2', BERTH_VM_TIMEOUT: '300', BERTH_VM_CPUS: '1' },
      });
      if (r.status !== 0) throw new Error(`the guest failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
      for (const line of r.stdout.split('\n')) {
        const m = /^CHECK (\S+) ?(.*)$/.exec(line);
        if (m?.[1]) checks.set(m[1], (m[2] ?? '').trim());
        if (line.startsWith('STATS ')) stats = JSON.parse(line.slice(6)) as Record<string, unknown>;
        if (line.startsWith('CONTAINER ')) container.push(line.slice(10));
      }
    } finally {
      if (bundleDir) fs.rmSync(bundleDir, { recursive: true, force: true });
    }
  }, 300_000);

  const c = (k: string) => checks.get(k);

  it('boots a guest whose /sys/fs/cgroup is cgroup2 only', () => {
    expect(c('mode')).toBe('v2');
  });

  it('enables the controllers in the parent\'s subtree_control', () => {
    expect(c('root.subtree_control')?.split(' ')).toEqual(
      expect.arrayContaining(['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids']),
    );
  });

  it('writes every v2 resource: memory, cpu, cpuset, pids, io, hugetlb, unified', () => {
    expect(c('create.rc')).toBe('0');
    expect(c('memory.max')).toBe('104857600');
    expect(c('memory.low')).toBe('52428800');
    // OCI swap is memory+swap: 150 MiB - 100 MiB.
    expect(c('memory.swap.max')).toBe('52428800');
    expect(c('memory.high')).toBe('94371840');
    // crun's documented conversion, ceil(10^((l^2 + 125 l) / 612 - 7/34)) with
    // l = log2(shares): the defaults 1024 and 100 meet.
    expect(c('cpu.weight')).toBe('100');
    expect(c('cpu.weight.512')).toBe('59');
    expect(c('cpu.weight.262144')).toBe('10000');
    expect(c('cpu.max')).toBe('50000 100000');
    expect(c('cpu.max.burst')).toBe('1000');
    expect(c('cpu.idle')).toBe('0');
    expect(c('cpuset.cpus')).toBe('0');
    expect(c('cpuset.mems')).toBe('0');
    expect(c('pids.max')).toBe('5');
    expect(c('io.max')).toBe('7:0 rbps=1048576 wbps=max riops=max wiops=300');
    // blkio weight 500 -> 1 + (500 - 10) * 9999 / 990
    expect(c('io.weight')).toBe('default 4950');
    expect(c('hugetlb.2MB.max')).toBe('4194304');
  });

  it('changes nothing when an update holds a bad value, and applies a good one', () => {
    expect(c('update.bad.error')).toContain('linux.resources.cpu.shares');
    expect(c('update.bad.pids.max')).toBe('5');
    expect(c('update.rc')).toBe('0');
    expect(c('update.pids.max')).toBe('max');
    expect(c('update.memory.max')).toBe('209715200');
    expect(c('update.memory.swap.max')).toBe('max');
  });

  it('freezes through cgroup.freeze, waits for cgroup.events, and thaws', () => {
    expect(c('pids.list')).toBe('match');
    expect(c('freeze.frozen')).toBe('true');
    expect(c('freeze.events')).toBe('frozen 1');
    expect(c('freeze.utime.still')).toBe('yes');
    expect(c('thaw.frozen')).toBe('false');
    expect(c('thaw.utime.moves')).toBe('yes');
  });

  it('reports v2 stats in the runc shape', () => {
    const s = stats as {
      cpu?: { usage?: { total?: number } };
      memory?: { usage?: { usage?: number } };
      pids?: { current?: number; limit?: number };
      hugetlb?: Record<string, unknown>;
      cpuset?: { cpus: number[]; mems: number[] };
    };
    expect(s.cpu?.usage?.total).toBeGreaterThan(0);
    expect(s.memory?.usage?.usage).toBeGreaterThan(0);
    expect(s.pids).toEqual({ current: 1, limit: 5 });
    expect(s.hugetlb).toHaveProperty('2MB');
    expect(s.cpuset).toEqual({ cpus: [0], mems: [0] });
  });

  it('kills every process with cgroup.kill, nested groups included, and removes the group', () => {
    expect(c('kill.pids')).toBe('[]');
    expect(c('kill.process')).toBe('gone');
    expect(c('kill.nested')).toBe('gone');
    expect(c('destroy.rc')).toBe('0');
    expect(c('destroy.gone')).toBe('gone');
    expect(c('destroy.nested.gone')).toBe('gone');
  });

  it('stops the sixth process when pids.max is 5', () => {
    expect(c('pids.forkn')).toBe('forked 4 status 0');
  });

  it('enforces device rules with an eBPF program and replaces it on update', () => {
    expect(c('devices.null.denied')).toBe('EPERM status 0');
    expect(c('devices.update.null.allowed')).toBe('ok status 0');
    expect(c('devices.deny.write')).toBe('EPERM status 0');
    expect(c('devices.zero.denied')).toBe('EPERM status 0');
  });

  it('refuses what cgroup v2 lacks, by name, and leaves no group', () => {
    expect(c('refuse.network')).toContain('linux.resources.network');
    expect(c('refuse.realtime')).toContain('realtimeRuntime');
    expect(c('refuse.unified.missing')).toContain('linux.resources.unified.memory.nosuchfile');
    expect(c('refuse.unified.dotdot')).toContain('linux.resources.unified');
    expect(c('refuse.swap.nolimit')).toContain('linux.resources.memory.swap');
    // The guest has the rdma controller but no RDMA device: the kernel's
    // refusal comes back naming the field and the file.
    expect(c('refuse.rdma.nodevice')).toMatch(/linux\.resources\.rdma\.nosuchdev: write 'nosuchdev hca_handle=3' to .*rdma\.max/);
    expect(c('refuse.network.gone')).toBe('gone');
    expect(c('refuse.gone')).toBe('gone');
  });

  it('mounts cgroup2 in a new cgroup namespace with the group as its root', () => {
    expect(c('mount.pids.max')).toBe('7');
    expect(c('end')).toBe('0');
  });

  it.skipIf(runtimeReason !== '')(
    `runs a berth-runtime container that sees its own limits through its cgroup namespace${runtimeReason ? ` (skipped: ${runtimeReason})` : ''}`,
    () => {
      expect(c('container.rc'), container.join('\n')).toBe('0');
      expect(container).toEqual(expect.arrayContaining([
        'pids.max 10', 'memory.max 67108864', 'cpu.max 20000 100000', 'self 0::/', 'null ok', 'ttyS0 denied',
      ]));
      expect(c('container.cgroups.left')).toBe('0');
    },
  );
});
