// The runtime conformance suite: the same bundles through every OCI runtime
// under test (berth-runtime, and Debian's runc as the reference). The probe
// in the fixture rootfs reports from inside what the container got, and the
// tests compare that with the config they wrote. BERTH_RUNTIMES=runc (or
// berth-runtime) runs one of them only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultCaps } from '../helpers/bundle.js';
import { capMask, decodeJson } from '../helpers/oci.js';
import { HuntResult, mountAt, parseReport, parseTries, type ProbeReport } from '../helpers/probe.js';
import { recvttyBinary } from '../helpers/paths.js';
import {
  Harness, hostCgroupDir, isCgroup2Only, mountsUnder, processesRootedAt, runCommand, runtimesUnderTest, waitFor,
  type Result, type RuntimeUnderTest,
} from '../helpers/runtime.js';
import * as t from 'io-ts';

const EPERM = 1;
const EXDEV = 18;
const EROFS = 30;

function expectOk(r: Result, what: string): void {
  expect(r.code, `${what} exited ${r.code} (signal ${r.signal}); stderr:\n${r.stderr}`).toBe(0);
}

function hostNs(kind: string): string {
  return fs.readlinkSync(`/proc/self/ns/${kind}`);
}

/** Tests a runtime is known to fail, by test name, with the reason. They run
 *  as expected failures (it.fails) and say so in their name: a fix in that
 *  runtime turns them red, so the list stays true. */
const knownFailures: Record<string, Record<string, string>> = {
  runc: {
    'sets the domainname': 'runc 1.1.5 parses domainname but applies it only from 1.2 on',
    'rejects a config with unknown capability': 'runc 1.1 ignores unknown capability names with a warning',
    'rejects a config with malformed JSON': 'runc says only "unexpected EOF", naming neither config.json nor JSON',
    'creates a time namespace with the configured offsets': 'runc 1.1.5 does not know the time namespace',
    'applies rootfsPropagation to the container root': 'runc 1.1.5 leaves the container\'s / private when rootfsPropagation is shared',
    'does not follow a /dev symlink out of the rootfs':
      'runc 1.1.5 creates the /dev/fd, stdin, stdout, stderr and ptmx symlinks through a rootfs /dev symlink, on the host',
  },
};

describe.each(runtimesUnderTest())('$name', (rt: RuntimeUnderTest) => {
  let h: Harness;
  let made = false;

  beforeEach(() => {
    // A runtime that is not built fails every test of its block: never a silent skip.
    if (!fs.existsSync(rt.path)) {
      throw new Error(`${rt.name} not found at ${rt.path}: build it (make -C native) or choose runtimes with BERTH_RUNTIMES`);
    }
    h = new Harness(rt);
    made = true;
  });
  afterEach(async () => {
    if (made) await h.cleanup();
    made = false;
  });

  /** Runs the probe (report) in a fresh bundle through `run`. */
  async function probe(mutate?: Parameters<Harness['bundle']>[1], args: string[] = ['/probe', 'report']): Promise<ProbeReport> {
    const b = h.bundle(args, mutate);
    const r = await h.run(b);
    expectOk(r, `${rt.name} run`);
    return parseReport(r.stdout);
  }

  /** Runs a shell line of `probe try` calls and returns their results. */
  async function tries(script: string, mutate?: Parameters<Harness['bundle']>[1]) {
    const b = h.bundle(['/bin/sh', '-c', script], mutate);
    const r = await h.run(b);
    expectOk(r, `${rt.name} run`);
    return parseTries(r.stdout);
  }

  /** `it`, or `it.fails` with the reason where this runtime is known to fail. */
  function conforms(name: string, fn: () => Promise<void>): void {
    const reason = knownFailures[rt.name]?.[name];
    if (reason === undefined) it(name, fn);
    else it.fails(`${name} [known ${rt.name} failure: ${reason}]`, fn);
  }

  describe('run and exit codes', () => {
    it('runs the probe as pid 1 of a new pid namespace and exits 0', async () => {
      const report = await probe();
      expect(report.pid).toBe(1);
      expect(report.hostname).toBe('berth-test');
    });

    it('exits with the code of the container process', async () => {
      const r = await h.run(h.bundle(['/bin/sh', '-c', 'exit 7']));
      expect(r.code).toBe(7);
    });

    it('exits 128+signal when the container process is killed by a signal', async () => {
      const id = h.newId();
      const running = h.run(h.bundle(['sleep', '1000']), id);
      await h.waitStatus(id, 'running');
      expectOk(await h.cli(['kill', id, 'KILL']), 'kill');
      expect((await running).code).toBe(137);
    });

    it('runs a #! script as the process of run and of exec', async () => {
      const b = h.bundle(['/script.sh', 'from-run']);
      fs.writeFileSync(path.join(b.rootfs, 'script.sh'), '#!/bin/sh\necho "script $1"\n', { mode: 0o755 });
      const r = await h.run(b);
      expectOk(r, 'run');
      expect(r.stdout).toBe('script from-run\n');
      const id = await h.createAndStart(h.bundle(['sleep', '1000'], (_spec, dir) => {
        fs.writeFileSync(path.join(dir, 'rootfs/script.sh'), '#!/bin/sh\necho "script $1"\n', { mode: 0o755 });
      }));
      const e = await h.cli(['exec', id, '/script.sh', 'from-exec']);
      expectOk(e, 'exec');
      expect(e.stdout).toBe('script from-exec\n');
    });

    it('fails with a message naming the binary when process.args[0] does not exist', async () => {
      const r = await h.run(h.bundle(['/no/such/binary']));
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/no\/such\/binary|no such file/i);
    });
  });

  describe('namespaces', () => {
    it('creates every namespace the config asks for', async () => {
      const report = await probe();
      for (const kind of ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup']) {
        expect(report.ns[kind], kind).not.toBe(hostNs(kind));
      }
      // Not asked for: shared with the host.
      expect(report.ns.user).toBe(hostNs('user'));
    });

    it('joins namespaces given by path', async () => {
      const holder = h.helper('unshare', ['--net', '--ipc', '--uts', 'sleep', '1000']);
      const pid = holder.pid!;
      const netns = await waitFor('unshare to enter its namespaces', () => {
        const ns = fs.readlinkSync(`/proc/${pid}/ns/net`);
        return ns !== hostNs('net') ? ns : undefined;
      });
      const report = await probe((spec) => {
        delete spec.hostname;
        spec.linux!.namespaces = spec.linux!.namespaces!.map((ns) =>
          ns.type === 'network' ? { type: 'network', path: `/proc/${pid}/ns/net` }
            : ns.type === 'ipc' ? { type: 'ipc', path: `/proc/${pid}/ns/ipc` }
              : ns.type === 'uts' ? { type: 'uts', path: `/proc/${pid}/ns/uts` } : ns);
      });
      expect(report.ns.net).toBe(netns);
      expect(report.ns.ipc).toBe(fs.readlinkSync(`/proc/${pid}/ns/ipc`));
      expect(report.ns.uts).toBe(fs.readlinkSync(`/proc/${pid}/ns/uts`));
      expect(report.ns.pid).not.toBe(hostNs('pid'));
    });

    it('maps uids and gids in a user namespace', async () => {
      const report = await probe((spec) => {
        spec.linux!.namespaces!.push({ type: 'user' });
        spec.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        spec.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        // cgroup v1 hierarchies cannot be mounted from a user namespace.
        spec.mounts = spec.mounts!.filter((m) => m.type !== 'cgroup');
      });
      expect(report.ns.user).not.toBe(hostNs('user'));
      expect(report.uidMap?.trim().split(/\s+/)).toEqual(['0', '100000', '65536']);
      expect(report.gidMap?.trim().split(/\s+/)).toEqual(['0', '100000', '65536']);
      expect(report.uid).toBe(0);
    });

    conforms('creates a time namespace with the configured offsets', async () => {
      const b = h.bundle(['/bin/sh', '-c', '/probe report; cat /proc/self/timens_offsets'], (spec) => {
        spec.linux!.namespaces!.push({ type: 'time' });
        spec.linux!.timeOffsets = { monotonic: { secs: 86400, nanosecs: 0 } };
      });
      const r = await h.run(b);
      expectOk(r, 'run');
      const [reportLine, ...offsets] = r.stdout.trim().split('\n');
      expect(parseReport(reportLine!).ns.time).not.toBe(hostNs('time'));
      expect(offsets.map((l) => l.trim().split(/\s+/))).toContainEqual(['monotonic', '86400', '0']);
    });

    it('sets the hostname', async () => {
      const report = await probe((spec) => (spec.hostname = 'berth-box'));
      expect(report.hostname).toBe('berth-box');
    });

    it('brings up lo in a new network namespace, and only lo exists there', async () => {
      const b = h.bundle(['/bin/sh', '-c', 'ls /sys/class/net; cat /sys/class/net/lo/flags']);
      const r = await h.run(b);
      expectOk(r, `${rt.name} run`);
      const [ifaces, flags] = r.stdout.trim().split('\n');
      expect(ifaces?.trim()).toBe('lo');
      expect(Number(flags) & 0x1).toBe(1); // IFF_UP
    });

    conforms('sets the domainname', async () => {
      const report = await probe((spec) => (spec.domainname = 'berth.test'));
      expect(report.domainname).toBe('berth.test');
    });
  });

  describe('process', () => {
    it('runs as the configured user with its groups, umask, cwd and env', async () => {
      const report = await probe((spec) => {
        spec.process!.user = { uid: 1000, gid: 1000, additionalGids: [1001, 5], umask: 0o027 };
        spec.process!.cwd = '/home/test';
        spec.process!.env!.push('BERTH_PROBE=yes');
      });
      expect([report.uid, report.euid, report.gid, report.egid]).toEqual([1000, 1000, 1000, 1000]);
      expect([...report.groups].sort((a, b) => a - b)).toEqual([5, 1001]);
      expect(report.status.Umask).toBe('0027');
      expect(report.cwd).toBe('/home/test');
      expect(report.env).toContain('BERTH_PROBE=yes');
    });

    it('gives a non-root user exactly the configured capability sets', async () => {
      const bounding = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW'];
      const ambient = ['CAP_KILL', 'CAP_NET_RAW'];
      const report = await probe((spec) => {
        spec.process!.user = { uid: 1000, gid: 1000 };
        spec.process!.capabilities = {
          bounding, inheritable: ambient, permitted: ['CAP_CHOWN', ...ambient], effective: ['CAP_CHOWN', ...ambient], ambient,
        };
      });
      expect(report.status.CapBnd).toBe(capMask(bounding));
      expect(report.status.CapInh).toBe(capMask(ambient));
      expect(report.status.CapAmb).toBe(capMask(ambient));
      // After execve a non-root process keeps only what is ambient.
      expect(report.status.CapPrm).toBe(capMask(ambient));
      expect(report.status.CapEff).toBe(capMask(ambient));
    });

    it('gives root the bounding set and nothing inheritable by default', async () => {
      const report = await probe();
      expect(report.status.CapBnd).toBe(capMask(defaultCaps));
      expect(report.status.CapEff).toBe(capMask(defaultCaps));
      expect(report.status.CapPrm).toBe(capMask(defaultCaps));
      expect(report.status.CapInh).toBe(capMask([]));
      expect(report.status.CapAmb).toBe(capMask([]));
    });

    it('sets no_new_privileges only when asked', async () => {
      expect((await probe()).status.NoNewPrivs).toBe('1');
      expect((await probe((spec) => (spec.process!.noNewPrivileges = false))).status.NoNewPrivs).toBe('0');
    });

    it('sets rlimits', async () => {
      const report = await probe((spec) => {
        spec.process!.rlimits = [
          { type: 'RLIMIT_NOFILE', soft: 1000, hard: 4096 },
          { type: 'RLIMIT_NPROC', soft: 512, hard: 1024 },
          { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
        ];
      });
      expect(report.rlimits.RLIMIT_NOFILE).toEqual({ soft: '1000', hard: '4096' });
      expect(report.rlimits.RLIMIT_NPROC).toEqual({ soft: '512', hard: '1024' });
      expect(report.rlimits.RLIMIT_CORE).toEqual({ soft: '0', hard: '0' });
    });

    it('sets oom_score_adj', async () => {
      const report = await probe((spec) => (spec.process!.oomScoreAdj = 500));
      expect(report.oomScoreAdj).toBe('500');
    });

    it('sets namespaced sysctls', async () => {
      const report = await probe((spec) => {
        spec.linux!.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '123456789' };
      }, ['/probe', 'report', 'net.ipv4.ip_forward', 'kernel.shmmax']);
      expect(report.sysctls).toEqual({ 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '123456789' });
    });
  });

  describe('file descriptors', () => {
    it('passes only stdio into the container', async () => {
      // An fd without CLOEXEC in the caller (fd 3 of the runtime) must not reach the container.
      const fd = fs.openSync(path.join(h.dir, 'leak-me'), 'w');
      try {
        const r = await h.run(h.bundle(['/probe', 'report']), undefined, { extraFds: [fd] });
        expectOk(r, 'run');
        expect(Object.keys(parseReport(r.stdout).fds).sort()).toEqual(['0', '1', '2']);
      } finally {
        fs.closeSync(fd);
      }
    });

    it('passes fds named by --preserve-fds', async () => {
      const fd = fs.openSync(path.join(h.dir, 'preserved'), 'w');
      try {
        const r = await h.run(h.bundle(['/probe', 'report']), undefined, { extraFds: [fd], extraArgs: ['--preserve-fds', '1'] });
        expectOk(r, 'run');
        const fds = parseReport(r.stdout).fds;
        expect(Object.keys(fds).sort()).toEqual(['0', '1', '2', '3']);
        expect(fds['3']).toMatch(/preserved$/);
      } finally {
        fs.closeSync(fd);
      }
    });
  });

  describe('mounts and filesystem', () => {
    it('performs the configured mounts with their options', async () => {
      const data = path.join(h.dir, 'data');
      fs.mkdirSync(data);
      fs.writeFileSync(path.join(data, 'file'), 'host data');
      const b = h.bundle(['/bin/sh', '-c', '/probe report; /probe try read /mnt/data/file; /probe try write /mnt/data/file'], (spec) => {
        spec.mounts!.push(
          { destination: '/mnt/scratch', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'size=1m', 'mode=1777'] },
          { destination: '/mnt/data', type: 'bind', source: data, options: ['rbind', 'ro'] },
        );
      });
      const r = await h.run(b);
      expectOk(r, 'run');
      const [reportLine, ...tryLines] = r.stdout.trim().split('\n');
      const report = parseReport(reportLine!);
      const scratch = mountAt(report, '/mnt/scratch');
      expect(scratch).toMatch(/ - tmpfs /);
      expect(scratch).toMatch(/nosuid/);
      expect(scratch).toMatch(/nodev/);
      expect(scratch).toMatch(/size=1024k/);
      expect(mountAt(report, '/mnt/data')?.split(' ')[5]).toMatch(/^ro\b/);
      const [read, write] = parseTries(tryLines.join('\n'));
      expect(read).toMatchObject({ ok: true, value: 'host data'.length });
      expect(write).toMatchObject({ ok: false, errno: EROFS });
      expect(fs.readFileSync(path.join(data, 'file'), 'utf8')).toBe('host data');
    });

    it('pivots into the rootfs: the host is out of reach and / is the bundle rootfs', async () => {
      const b = h.bundle(['/bin/sh', '-c', `/probe report; /probe try open ${h.dir}`]);
      const r = await h.run(b);
      expectOk(r, 'run');
      const [reportLine, tryLine] = r.stdout.trim().split('\n');
      const root = mountAt(parseReport(reportLine!), '/');
      expect(root, 'a mount at /').toBeDefined();
      // The mount's root inside its filesystem is the bundle's rootfs directory.
      expect(b.rootfs.endsWith(root!.split(' ')[3]!)).toBe(true);
      expect(parseTries(tryLine!)[0]).toMatchObject({ ok: false });
    });

    it('makes the root read-only when root.readonly is set', async () => {
      const [ro] = await tries('/probe try mkdir /newdir', (spec) => (spec.root!.readonly = true));
      expect(ro).toMatchObject({ ok: false, errno: EROFS });
      const [rw] = await tries('/probe try mkdir /newdir');
      expect(rw).toMatchObject({ ok: true });
    });

    it('masks maskedPaths and makes readonlyPaths read-only', async () => {
      // Masking means something only for files that have content on the host.
      for (const f of ['/proc/keys', '/proc/timer_list']) expect(fs.readFileSync(f).length, f).toBeGreaterThan(0);
      const results = await tries(
        '/probe try read /proc/keys; /probe try read /proc/timer_list; /probe try write /proc/sys/kernel/domainname x; /probe try read /proc/sys/kernel/ostype',
        (spec) => {
          spec.process!.capabilities!.bounding!.push('CAP_SYS_ADMIN');
          spec.process!.capabilities!.effective!.push('CAP_SYS_ADMIN');
          spec.process!.capabilities!.permitted!.push('CAP_SYS_ADMIN');
        },
      );
      const [keys, timers, sysWrite, sysRead] = results;
      expect(keys).toMatchObject({ ok: true, value: 0 });
      expect(timers).toMatchObject({ ok: true, value: 0 });
      // Even with CAP_SYS_ADMIN, /proc/sys is a read-only mount.
      expect(sysWrite).toMatchObject({ ok: false, errno: EROFS });
      expect(sysRead).toMatchObject({ ok: true });
    });

    it('creates the devices of linux.devices, allowed by the device cgroup', async () => {
      const [write] = await tries('/probe try write /dev/berth-null', (spec) => {
        spec.linux!.devices = [{ path: '/dev/berth-null', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }];
        spec.linux!.resources = { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }] };
      });
      expect(write).toMatchObject({ ok: true });
    });

    conforms('applies rootfsPropagation to the container root', async () => {
      const optional = async (propagation?: string) => {
        const report = await probe((spec) => {
          if (propagation !== undefined) spec.linux!.rootfsPropagation = propagation;
        });
        // Optional fields of mountinfo sit between field 6 and the "-".
        const line = mountAt(report, '/')!.split(' ');
        return line.slice(6, line.indexOf('-')).join(' ');
      };
      expect(await optional('shared')).toMatch(/shared:\d+/);
      expect(await optional('private')).not.toMatch(/shared:|master:/);
    });

    it('creates the default devices', async () => {
      const results = await tries('for d in null zero full random urandom tty; do /probe try write /dev/$d; done');
      // /dev/full: ENOSPC; /dev/tty: ENXIO, there is no controlling terminal.
      expect(results.map((r) => r.errno)).toEqual([0, 0, 28, 0, 0, 6]);
    });
  });

  describe('seccomp', () => {
    it('applies the filter: errno actions and argument conditions', async () => {
      const results = await tries('/probe try mkdir /tmp/x; /probe try personality 0x12345; /probe try personality 0xffffffff; grep Seccomp: /proc/self/status >&2', (spec) => {
        spec.linux!.seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          architectures: ['SCMP_ARCH_X86_64'],
          syscalls: [
            { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: EXDEV },
            { names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: 0x12345, op: 'SCMP_CMP_EQ' }] },
          ],
        };
      });
      const [mkdir, personalityBlocked, personalityQuery] = results;
      expect(mkdir).toMatchObject({ ok: false, errno: EXDEV });
      expect(personalityBlocked).toMatchObject({ ok: false, errno: EPERM });
      expect(personalityQuery).toMatchObject({ ok: true });
      const report = await probe((spec) => {
        spec.linux!.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] };
      });
      expect(report.status.Seccomp).toBe('2');
    });
  });

  describe('cgroups', () => {
    const limitFile = (ctrl: 'memory' | 'pids' | 'cpu') => isCgroup2Only()
      ? { memory: 'memory.max', pids: 'pids.max', cpu: 'cpu.max' }[ctrl]
      : { memory: 'memory.limit_in_bytes', pids: 'pids.max', cpu: 'cpu.cfs_quota_us' }[ctrl];

    it('applies memory, pids and cpu limits, visible on the host and inside', async () => {
      const b = h.bundle(['/bin/sh', '-c', '/probe report; /probe try forks 40'], (spec) => {
        spec.linux!.resources = {
          memory: { limit: 64 * 1024 * 1024 },
          pids: { limit: 20 },
          cpu: { quota: 50000, period: 100000 },
        };
      });
      const cg = b.spec.linux!.cgroupsPath!;
      const id = h.newId();
      expectOk(await h.create(b, id), 'create');
      const read = (ctrl: 'memory' | 'pids' | 'cpu') => fs.readFileSync(path.join(hostCgroupDir(ctrl, cg), limitFile(ctrl)), 'utf8').trim();
      expect(read('memory')).toBe(String(64 * 1024 * 1024));
      expect(read('pids')).toBe('20');
      expect(read('cpu')).toBe(isCgroup2Only() ? '50000 100000' : '50000');
      const { pid } = await h.state(id);
      expect(fs.readFileSync(path.join(hostCgroupDir('memory', cg), 'cgroup.procs'), 'utf8').split('\n')).toContain(String(pid));

      expectOk(await h.cli(['start', id]), 'start');
      await h.waitStatus(id, 'stopped');
      const [reportLine, forkLine] = h.output(id).stdout.trim().split('\n');
      const report = parseReport(reportLine!);
      const inside = Object.entries(report.cgroup.files);
      expect(inside.find(([f]) => /memory\.(limit_in_bytes|max)$/.test(f))?.[1]).toBe(String(64 * 1024 * 1024));
      expect(inside.find(([f]) => /pids\.max$/.test(f))?.[1]).toBe('20');
      const [forks] = parseTries(forkLine!);
      expect(forks!.ok).toBe(false);
      expect(forks!.value).toBeLessThan(20);
      expectOk(await h.cli(['delete', id]), 'delete');
      for (const ctrl of ['memory', 'pids', 'cpu'] as const) expect(fs.existsSync(hostCgroupDir(ctrl, cg)), ctrl).toBe(false);
    });

    it('updates limits of a running container', async () => {
      const b = h.bundle(['sleep', '1000'], (spec) => {
        spec.linux!.resources = { memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 20 } };
      });
      const cg = b.spec.linux!.cgroupsPath!;
      const id = await h.createAndStart(b);
      const resources = path.join(h.dir, 'resources.json');
      fs.writeFileSync(resources, JSON.stringify({ memory: { limit: 96 * 1024 * 1024 }, pids: { limit: 30 } }));
      expectOk(await h.cli(['update', '--resources', resources, id]), 'update');
      const read = (ctrl: 'memory' | 'pids') => fs.readFileSync(path.join(hostCgroupDir(ctrl, cg), limitFile(ctrl)), 'utf8').trim();
      expect(read('memory')).toBe(String(96 * 1024 * 1024));
      expect(read('pids')).toBe('30');
    });

    it('pauses and resumes through the freezer', async () => {
      const b = h.bundle(['sleep', '1000']);
      const cg = b.spec.linux!.cgroupsPath!;
      const id = await h.createAndStart(b);
      const frozen = () => isCgroup2Only()
        ? fs.readFileSync(path.join(hostCgroupDir('', cg), 'cgroup.freeze'), 'utf8').trim() === '1'
        : fs.readFileSync(path.join(hostCgroupDir('freezer', cg), 'freezer.state'), 'utf8').trim() === 'FROZEN';
      expectOk(await h.cli(['pause', id]), 'pause');
      expect((await h.state(id)).status).toBe('paused');
      expect(frozen()).toBe(true);
      expectOk(await h.cli(['resume', id]), 'resume');
      expect((await h.state(id)).status).toBe('running');
      expect(frozen()).toBe(false);
    });
  });

  describe('lifecycle and state', () => {
    it('goes created -> running -> stopped -> deleted with state per the OCI spec', async () => {
      const b = h.bundle(['sleep', '1000']);
      const id = h.newId();
      const pidFile = path.join(h.dir, 'pid');
      expectOk(await h.create(b, id, { pidFile }), 'create');
      const created = await h.state(id);
      expect(created).toMatchObject({ id, status: 'created', bundle: b.dir });
      expect(created.ociVersion).toMatch(/^1\.\d+\.\d+/);
      expect(created.pid).toBeGreaterThan(0);
      expect(Number(fs.readFileSync(pidFile, 'utf8'))).toBe(created.pid);
      expect(fs.existsSync(`/proc/${created.pid}`)).toBe(true);

      expectOk(await h.cli(['start', id]), 'start');
      const running = await h.state(id);
      expect(running).toMatchObject({ status: 'running', pid: created.pid });
      // start may return before the container's execve: wait for it.
      const cmdline = () => fs.readFileSync(`/proc/${running.pid}/cmdline`, 'utf8');
      await waitFor('the container process to exec sleep', () => (cmdline() === 'sleep\u00001000\u0000' ? true : undefined), 5000)
        .catch(() => expect(cmdline()).toBe('sleep\u00001000\u0000'));

      expectOk(await h.cli(['kill', id, 'KILL']), 'kill');
      await h.waitStatus(id, 'stopped');
      expectOk(await h.cli(['delete', id]), 'delete');
      const gone = await h.cli(['state', id]);
      expect(gone.code).not.toBe(0);
      expect(fs.existsSync(h.stateDir(id))).toBe(false);
      expect(fs.existsSync(hostCgroupDir('pids', b.spec.linux!.cgroupsPath!))).toBe(false);
    });

    it('refuses to start a container twice and to delete a running one without --force', async () => {
      const id = await h.createAndStart(h.bundle(['sleep', '1000']));
      expect((await h.cli(['start', id])).code).not.toBe(0);
      expect((await h.cli(['delete', id])).code).not.toBe(0);
      expect((await h.state(id)).status).toBe('running');
      expectOk(await h.cli(['delete', '--force', id]), 'delete --force');
      expect(fs.existsSync(h.stateDir(id))).toBe(false);
    });

    it('kill --all signals every process of the container', async () => {
      const b = h.bundle(['/bin/sh', '-c', 'sleep 1000 & sleep 1000 & wait'], (spec) => {
        // Without a pid namespace, killing pid 1 alone would leave the sleeps.
        spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== 'pid');
      });
      const id = await h.createAndStart(b);
      const procs = path.join(hostCgroupDir('pids', b.spec.linux!.cgroupsPath!), 'cgroup.procs');
      await waitFor('three processes', () => (fs.readFileSync(procs, 'utf8').trim().split('\n').length >= 3 ? true : undefined));
      expectOk(await h.cli(['kill', '--all', id, 'KILL']), 'kill --all');
      await waitFor('an empty cgroup', () => (fs.readFileSync(procs, 'utf8').trim() === '' ? true : undefined));
      await h.waitStatus(id, 'stopped');
    });

    it('runs --detach and lists, ps-es and deletes the container', async () => {
      const b = h.bundle(['sleep', '1000']);
      const id = h.newId();
      const out = fs.openSync(path.join(h.dir, 'detach.out'), 'w');
      const r = await h.cli(['run', '--detach', '--bundle', b.dir, id], { stdoutFd: out });
      fs.closeSync(out);
      expectOk(r, 'run --detach');
      const { pid } = await h.waitStatus(id, 'running');

      const list = await h.cli(['list', '--format', 'json']);
      expectOk(list, 'list');
      const listed = decodeJson(t.array(t.type({ id: t.string, pid: t.number, status: t.string })), list.stdout, 'list');
      expect(listed).toContainEqual(expect.objectContaining({ id, pid, status: 'running' }));

      const ps = await h.cli(['ps', '--format', 'json', id]);
      expectOk(ps, 'ps');
      expect(decodeJson(t.array(t.number), ps.stdout, 'ps')).toContain(pid);
    });

    it('exec runs a process inside with its own user, cwd and env', async () => {
      const id = await h.createAndStart(h.bundle(['sleep', '1000']));
      const { pid } = await h.state(id);
      const r = await h.cli(['exec', '--user', '1000:1000', '--cwd', '/tmp', '--env', 'EXEC_VAR=1', id, '/probe', 'report']);
      expectOk(r, 'exec');
      const report = parseReport(r.stdout);
      expect([report.uid, report.gid, report.cwd]).toEqual([1000, 1000, '/tmp']);
      expect(report.env).toContain('EXEC_VAR=1');
      expect(report.ns.pid).toBe(fs.readlinkSync(`/proc/${pid}/ns/pid`));
      expect(report.ns.mnt).toBe(fs.readlinkSync(`/proc/${pid}/ns/mnt`));
      expect(Object.keys(report.fds).sort()).toEqual(['0', '1', '2']);

      const processJson = path.join(h.dir, 'process.json');
      fs.writeFileSync(processJson, JSON.stringify({
        user: { uid: 0, gid: 0 }, args: ['/bin/sh', '-c', 'exit 3'], cwd: '/', env: ['PATH=/bin'],
      }));
      expect((await h.cli(['exec', '--process', processJson, id])).code).toBe(3);

      const pidFile = path.join(h.dir, 'exec.pid');
      const out = fs.openSync(path.join(h.dir, 'exec.out'), 'w');
      const detached = await h.cli(['exec', '--detach', '--pid-file', pidFile, id, 'sleep', '999'], { stdoutFd: out });
      fs.closeSync(out);
      expectOk(detached, 'exec --detach');
      const execPid = Number(fs.readFileSync(pidFile, 'utf8'));
      expect(fs.readlinkSync(`/proc/${execPid}/ns/pid`)).toBe(fs.readlinkSync(`/proc/${pid}/ns/pid`));
    });

    it('reports its features as JSON', async () => {
      const r = await h.cli(['features']);
      expectOk(r, 'features');
      const features = decodeJson(t.type({
        ociVersionMin: t.string, ociVersionMax: t.string, hooks: t.array(t.string), mountOptions: t.array(t.string),
        linux: t.type({ namespaces: t.array(t.string) }),
      }), r.stdout, 'features');
      expect(features.hooks).toEqual(expect.arrayContaining(['prestart', 'createRuntime', 'poststart', 'poststop']));
      expect(features.linux.namespaces).toEqual(expect.arrayContaining(['pid', 'network', 'ipc', 'uts', 'mount', 'user', 'cgroup']));
    });
  });

  describe('hooks', () => {
    it('runs prestart, createRuntime, poststart and poststop hooks in order with the state on stdin', async () => {
      const log = path.join(h.dir, 'hooks.log');
      const hook = (name: string) => ({ path: '/bin/sh', args: ['sh', '-c', `echo ${name} >> ${log}; cat > ${h.dir}/${name}.json`] });
      const b = h.bundle(['/bin/true'], (spec) => {
        spec.hooks = {
          prestart: [hook('prestart')], createRuntime: [hook('createRuntime')], poststart: [hook('poststart')], poststop: [hook('poststop')],
        };
      });
      const id = h.newId();
      expectOk(await h.run(b, id), 'run');
      expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toEqual(['prestart', 'createRuntime', 'poststart', 'poststop']);
      for (const name of ['prestart', 'createRuntime', 'poststart']) {
        const state = JSON.parse(fs.readFileSync(path.join(h.dir, `${name}.json`), 'utf8'));
        expect(state, name).toMatchObject({ id, bundle: b.dir });
        expect(state.pid, name).toBeGreaterThan(0);
      }
    });

    it('fails create and cleans up when a createRuntime hook fails', async () => {
      const b = h.bundle(['/bin/true'], (spec) => {
        spec.hooks = { createRuntime: [{ path: '/bin/false', args: ['false'] }] };
      });
      const id = h.newId();
      const r = await h.create(b, id);
      expect(r.code).not.toBe(0);
      await waitFor('no container process', () => (processesRootedAt(b.rootfs).length === 0 ? true : undefined));
      expect(fs.existsSync(hostCgroupDir('pids', b.spec.linux!.cgroupsPath!))).toBe(false);
    });
  });

  describe('terminal', () => {
    it('sends the pty master to --console-socket and the process runs on the pty', async () => {
      const b = h.bundle(['/probe', 'report'], (spec) => (spec.process!.terminal = true));
      const socket = path.join(h.dir, 'console.sock');
      const recv = h.helper(recvttyBinary, [socket]);
      let out = '';
      let err = '';
      recv.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      recv.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise((r) => recv.once('exit', r));
      await waitFor('recvtty to listen', () => (err.includes('ready') ? true : undefined));
      const id = await h.createAndStart(b, undefined, { consoleSocket: socket });
      await h.waitStatus(id, 'stopped');
      await exited;
      expect(err).toMatch(/master \/dev\/(pts\/)?ptmx/);
      const report = parseReport(out.replaceAll('\r', ''));
      expect(report.tty).toMatch(/^\/dev\/(pts\/\d+|console)$/);
      expect(report.fds['0']).toMatch(/^\/dev\/pts\/\d+$/);
    });
  });

  describe('bad configs: clear error, nothing left behind', () => {
    const cases: { name: string; message: RegExp; mutate: (spec: import('../helpers/oci.js').Spec, dir: string) => void; raw?: string }[] = [
      { name: 'missing root.path', message: /root/i, mutate: (spec) => delete spec.root },
      { name: 'unknown capability', message: /CAP_BOGUS/, mutate: (spec) => spec.process!.capabilities!.bounding!.push('CAP_BOGUS') },
      {
        name: 'invalid mount option', message: /mount|tmpfs|invalid/i,
        mutate: (spec) => spec.mounts!.push({ destination: '/mnt/bad', type: 'tmpfs', source: 'tmpfs', options: ['size=notanumber'] }),
      },
      { name: 'malformed JSON', message: /json|config|parse/i, mutate: () => {}, raw: '{"ociVersion": "1.0.2", "process": ' },
      {
        name: 'bind mount of a missing source', message: /no-such-source/,
        mutate: (spec, dir) => spec.mounts!.push({ destination: '/mnt/x', type: 'bind', source: `${dir}/no-such-source`, options: ['rbind'] }),
      },
    ];
    for (const c of cases) {
      conforms(`rejects a config with ${c.name}`, async () => {
        const b = h.bundle(['/probe', 'report'], c.mutate);
        if (c.raw !== undefined) fs.writeFileSync(path.join(b.dir, 'config.json'), c.raw);
        const id = h.newId();
        const r = await h.run(b, id);
        expect(r.code).not.toBe(0);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(c.message);
        expect(fs.existsSync(h.stateDir(id)), 'state dir').toBe(false);
        const cg = b.spec.linux?.cgroupsPath;
        if (cg !== undefined) for (const ctrl of ['memory', 'pids', 'cpu']) expect(fs.existsSync(hostCgroupDir(ctrl, cg)), `${ctrl} cgroup`).toBe(false);
        expect(processesRootedAt(b.rootfs)).toEqual([]);
        expect(mountsUnder(b.dir)).toEqual([]);
      });
    }
  });

  describe('escapes', () => {
    it('refuses a cwd that leads out of the rootfs through a leaked fd (CVE-2024-21626)', async () => {
      for (let fd = 3; fd <= 12; fd++) {
        const b = h.bundle(['/probe', 'report'], (spec) => (spec.process!.cwd = `/proc/self/fd/${fd}`));
        const r = await h.run(b);
        if (r.code !== 0) {
          expect(r.stderr, `fd ${fd}`).not.toBe('');
          expect(processesRootedAt(b.rootfs)).toEqual([]);
          continue;
        }
        // It ran: then its cwd must be a path inside the container.
        const report = parseReport(r.stdout);
        expect(report.cwd, `cwd /proc/self/fd/${fd}`).not.toBeNull();
        expect(report.cwd!.startsWith('/'), `cwd ${report.cwd}`).toBe(true);
      }
    });

    it('never lets the container reopen the runtime binary for writing (CVE-2019-5736)', async () => {
      // The container's init hunts for processes that run a binary not from
      // the rootfs: that is the runtime, during `exec`. /evil is a script
      // whose interpreter is /proc/self/exe, so the exec'd process is the
      // runtime binary again, blocked opening its --log FIFO until the hunter
      // has its handle. On a vulnerable runtime the handle is the host
      // binary, writable as soon as the runtime exits. A runtime that runs
      // from a copy must seal it (memfd seals), so that it cannot be changed
      // under a process that still uses it.
      const host = fs.statSync(rt.path);
      const b = h.bundle(['/probe', 'hunt-exe', '20', '/fifo', `${host.dev}:${host.ino}`], (spec) => {
        for (const set of ['bounding', 'effective', 'permitted'] as const) spec.process!.capabilities![set]!.push('CAP_SYS_PTRACE');
      });
      fs.writeFileSync(path.join(b.rootfs, 'evil'), '#!/proc/self/exe --log=/fifo\n', { mode: 0o755 });
      await runCommand('mkfifo', [path.join(b.rootfs, 'fifo')]);
      const before = fs.readFileSync(rt.path);
      const id = await h.createAndStart(b);
      // The hunter stops (and the container with it) once it has seen one;
      // where /evil cannot run, only the runtime's own short exec stage can
      // be seen, so try a few times.
      let exec: Result | undefined;
      for (let attempt = 0; attempt < 10; attempt++) {
        exec = await h.cli(['exec', id, '/evil'], { timeoutMs: 30_000 });
        if ((await h.state(id)).status === 'stopped') break;
      }
      await h.waitStatus(id, 'stopped', 30_000);
      const hunt = decodeJson(HuntResult, h.output(id).stdout.trim(), 'hunt-exe');
      expect(hunt.found.length, `no runtime process was seen in the container; exec exited ${exec?.code}: ${exec?.stderr}; container stderr: ${h.output(id).stderr}`).toBeGreaterThan(0);
      for (const f of hunt.found) {
        const what = `pid ${f.pid} exe ${f.exe}`;
        expect(f.hostBinary && f.writable, `${what} is the host binary and writable`).toBe(false);
        if (f.exe.startsWith('/memfd:') && f.writable) expect(f.sealed, `${what} is an unsealed memfd`).toBe(true);
      }
      expect(fs.readFileSync(rt.path).equals(before)).toBe(true);
    });

    conforms('does not follow a /dev symlink out of the rootfs', async () => {
      const elsewhere = path.join(h.dir, 'elsewhere');
      fs.mkdirSync(elsewhere);
      fs.writeFileSync(path.join(elsewhere, 'sentinel'), 'host');
      const b = h.bundle(['/probe', 'try', 'write', '/dev/null']);
      fs.rmSync(path.join(b.rootfs, 'dev'), { recursive: true });
      fs.symlinkSync(elsewhere, path.join(b.rootfs, 'dev'));
      await h.run(b);
      expect(fs.readdirSync(elsewhere)).toEqual(['sentinel']);
      expect(mountsUnder(elsewhere)).toEqual([]);
    });

    it('does not let a /dev/null symlink redirect device setup to a host file', async () => {
      const victim = path.join(h.dir, 'victim');
      fs.writeFileSync(victim, 'precious', { mode: 0o600 });
      const b = h.bundle(['/bin/sh', '-c', '/probe try write /dev/null; /probe try write /dev/zero'], (spec) => {
        // Without a tmpfs on /dev the runtime creates devices in the rootfs's own /dev.
        spec.mounts = spec.mounts!.filter((m) => m.destination !== '/dev');
      });
      fs.symlinkSync(victim, path.join(b.rootfs, 'dev/null'));
      fs.symlinkSync(victim, path.join(b.rootfs, 'dev/zero'));
      await h.run(b);
      expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
      const st = fs.lstatSync(victim);
      expect(st.isFile()).toBe(true);
      expect(st.mode & 0o7777).toBe(0o600);
      expect(mountsUnder(victim)).toEqual([]);
    });
  });
});

