// Capabilities as berth-runtime applies them (native/src/caps.c), checked
// from /proc/self/status of a child that applied them to itself through the
// probe in native/tests/security/.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const probePath = `${repo}native/build/security/berth-secprobe`;
const isRoot = process.getuid?.() === 0;

// Kernel numbering, independent of the table in caps.c so that a wrong
// table fails here.
const CAP_NAMES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID',
  'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

// Docker's default set.
const DOCKER_DEFAULT = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

type Sets = {
  bounding?: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
};

interface ProbeResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function probe(args: string[]): ProbeResult {
  const r = spawnSync(probePath, args, { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function namesOf(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  const out: string[] = [];
  for (let i = 0; i < 64; i++) {
    if ((mask >> BigInt(i)) & 1n) out.push(CAP_NAMES[i] ?? `cap${i}`);
  }
  return out.sort();
}

function statusWith(caps: Sets, extra: string[] = []): Record<string, string> {
  const r = probe([...extra, '--caps', JSON.stringify(caps), 'status']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, string>;
}

function expectSets(st: Record<string, string>, caps: Sets): void {
  const sorted = (l?: string[]) => [...new Set(l ?? [])].sort();
  expect(namesOf(st.CapBnd ?? '')).toEqual(sorted(caps.bounding));
  expect(namesOf(st.CapEff ?? '')).toEqual(sorted(caps.effective));
  expect(namesOf(st.CapPrm ?? '')).toEqual(sorted(caps.permitted));
  expect(namesOf(st.CapInh ?? '')).toEqual(sorted(caps.inheritable));
  expect(namesOf(st.CapAmb ?? '')).toEqual(sorted(caps.ambient));
}

const lastCap = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
const ownStatus = readFileSync('/proc/self/status', 'utf8');
const ownField = (k: string) => new RegExp(`^${k}:\\s+(\\w+)$`, 'm').exec(ownStatus)?.[1] ?? '0';
// The runner may itself lack some capabilities (this VM drops
// CAP_SYS_RESOURCE), and capset cannot grant what the caller does not hold.
const held = namesOf(ownField('CapPrm'));
const missingCap = CAP_NAMES.slice(0, lastCap + 1).find((c) => !held.includes(c));

describe.skipIf(!isRoot)('capabilities (needs root: sets capabilities and uids)', () => {
  beforeAll(() => {
    execFileSync('make', ['-s', '-C', `${repo}native/tests/security`], { stdio: 'inherit' });
  });

  const distinct: Sets = {
    bounding: ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_ADMIN'],
    permitted: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_ADMIN', 'CAP_SYS_TIME'],
    effective: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    inheritable: ['CAP_KILL', 'CAP_NET_BIND_SERVICE'],
    ambient: ['CAP_NET_BIND_SERVICE'],
  };

  it('sets each of the five sets exactly as configured, as root', () => {
    const st = statusWith(distinct);
    expect(st.Uid).toBe('0\t0\t0\t0');
    expectSets(st, distinct);
  });

  it('sets each of the five sets exactly as configured after switching to a non-root user', () => {
    const st = statusWith(distinct, ['--user', '1000:1000', '--groups', '1001,1002']);
    expect(st.Uid).toBe('1000\t1000\t1000\t1000');
    expect(st.Gid).toBe('1000\t1000\t1000\t1000');
    expect(st.Groups?.trim()).toBe('1001 1002');
    expectSets(st, distinct);
  });

  it('applies Docker\'s default set to bounding, effective, permitted and inheritable', () => {
    const caps: Sets = {
      bounding: DOCKER_DEFAULT,
      effective: DOCKER_DEFAULT,
      permitted: DOCKER_DEFAULT,
      inheritable: DOCKER_DEFAULT,
    };
    expectSets(statusWith(caps), caps);
  });

  it('empties every set, bounding included, when capabilities are absent', () => {
    const r = probe(['status']);
    expect(r.status).toBe(0);
    expectSets(JSON.parse(r.stdout) as Record<string, string>, {});
  });

  it('keeps every capability this process holds when all are asked for', () => {
    const all = CAP_NAMES.slice(0, lastCap + 1).filter((c) => held.includes(c));
    const caps: Sets = { bounding: all, effective: all, permitted: all, inheritable: all, ambient: all };
    expectSets(statusWith(caps), caps);
  });

  it.skipIf(missingCap === undefined)(
    'reports a capability the runtime does not hold by name instead of a bare EPERM (skipped when the runner holds every capability)',
    () => {
      const missing = missingCap ?? '';
      const r = probe(['--caps', JSON.stringify({ bounding: [missing], permitted: [missing] }), 'status']);
      expect(r.status).toBe(3);
      expect(r.stderr).toContain(`capset: the runtime does not hold permitted ${missing}`);
    },
  );

  it('keeps the whole bounding set the runtime has when every capability is asked for', () => {
    const st = statusWith({ bounding: CAP_NAMES.slice(0, lastCap + 1) });
    expect(st.CapBnd).toBe(ownField('CapBnd'));
  });

  for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const) {
    it(`refuses an unknown name in ${set}, naming the set and the name, before forking`, () => {
      const r = probe(['--caps', JSON.stringify({ [set]: ['CAP_CHOWN', 'CAP_FOO'] }), 'status']);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`process.capabilities.${set}: unknown capability "CAP_FOO"`);
    });
  }

  it('leaves out ambient capabilities that are not both permitted and inheritable, as runc does', () => {
    // `runc spec` lists ambient capabilities without the inheritable set; runc runs such bundles.
    for (const caps of [
      { bounding: ['CAP_KILL'], permitted: ['CAP_KILL'], effective: ['CAP_KILL'], ambient: ['CAP_KILL'] },
      { bounding: ['CAP_KILL'], inheritable: ['CAP_KILL'], ambient: ['CAP_KILL'] },
    ]) {
      const st = statusWith(caps);
      expectSets(st, { ...caps, ambient: [] });
    }
  });

  it('refuses an effective capability that is not permitted, and an inheritable one outside bounding', () => {
    let r = probe(['--caps', JSON.stringify({ effective: ['CAP_SYS_NICE'] }), 'status']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('process.capabilities.effective: CAP_SYS_NICE is not in the permitted set');
    r = probe(['--caps', JSON.stringify({ inheritable: ['CAP_MKNOD'] }), 'status']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('process.capabilities.inheritable: CAP_MKNOD is not in the bounding set');
  });

  it('refuses a set that is not an array of names', () => {
    const r = probe(['--caps', JSON.stringify({ bounding: 'CAP_KILL' }), 'status']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('process.capabilities.bounding: expected an array');
  });

  it('lets ambient capabilities reach a non-root program across execve, and only those', () => {
    const caps: Sets = {
      bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      permitted: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      effective: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      inheritable: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      ambient: ['CAP_NET_BIND_SERVICE'],
    };
    const r = probe([
      '--user', '1000:1000', '--caps', JSON.stringify(caps),
      'exec', '/bin/busybox', 'grep', '^Cap', '/proc/self/status',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const field = (k: string) => namesOf(/^(\w+):\s+(\w+)$/m.exec(r.stdout.split('\n').find((l) => l.startsWith(`${k}:`)) ?? '')?.[2] ?? '0');
    expect(field('CapEff')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(field('CapPrm')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(field('CapAmb')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(field('CapBnd')).toEqual(['CAP_KILL', 'CAP_NET_BIND_SERVICE']);
  });

  it('reports every capability name it knows for `features`, in kernel order', () => {
    const r = probe(['features']);
    expect(r.status).toBe(0);
    const f = JSON.parse(r.stdout) as { capabilities: string[] };
    expect(f.capabilities).toEqual(CAP_NAMES);
  });
});
