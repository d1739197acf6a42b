// Docker's container flags to a ContainerSpec: pure parsing, every problem
// reported at once; and the default seccomp profile's shape.
import { describe, expect, it } from 'vitest';
import { parseDuration, parseMountFlag, parseSize, parseVolumeFlag, specFromFlags } from '../../cli/commands/container-flags.js';
import { toEngineError } from '../../engine/errors.js';
import { defaultSeccomp } from '../../engine/runtime/seccomp-default.js';
import { capabilitySet, DEFAULT_CAPS } from '../../engine/runtime/security.js';

describe('sizes and durations', () => {
  it('parses Docker\'s units', () => {
    expect(parseSize('512m')).toBe(512 * 1024 * 1024);
    expect(parseSize('1g')).toBe(1024 ** 3);
    expect(parseSize('1.5k')).toBe(1536);
    expect(parseSize('100')).toBe(100);
    expect(parseSize('12MB')).toBe(12 * 1024 * 1024);
    expect(parseSize('lots')).toBeUndefined();
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10')).toBeUndefined();
  });
});

describe('mount flags', () => {
  it('-v: bind, named, anonymous, options', () => {
    const p: string[] = [];
    expect(parseVolumeFlag('/host:/c:ro,rshared', p)).toEqual({ type: 'bind', source: '/host', target: '/c', readOnly: true, propagation: 'rshared' });
    expect(parseVolumeFlag('data:/var/lib/x', p)).toEqual({ type: 'volume', source: 'data', target: '/var/lib/x' });
    expect(parseVolumeFlag('/anon', p)).toEqual({ type: 'volume', target: '/anon' });
    expect(p).toEqual([]);
    parseVolumeFlag('rel/x:/c', p);
    parseVolumeFlag('data:rel', p);
    parseVolumeFlag('data:/c:bogus', p);
    expect(p).toHaveLength(3);
  });
  it('--mount: bind, volume, tmpfs', () => {
    const p: string[] = [];
    expect(parseMountFlag('type=bind,src=/a,dst=/b,readonly', p)).toEqual({ type: 'bind', source: '/a', target: '/b', readOnly: true });
    expect(parseMountFlag('type=volume,source=v,target=/d,volume-nocopy=true', p)).toEqual({ type: 'volume', source: 'v', target: '/d', noCopy: true });
    expect(parseMountFlag('type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770', p)).toEqual({ type: 'tmpfs', target: '/t', sizeBytes: 64 * 1024 * 1024, mode: 0o1770 });
    expect(p).toEqual([]);
    parseMountFlag('type=nfs,target=/x', p);
    parseMountFlag('type=bind,target=/x', p);
    expect(p).toHaveLength(2);
  });
});

const problemsOf = (f: () => unknown): readonly string[] => {
  try {
    f();
  } catch (e) {
    const te = toEngineError(e);
    if (te._tag === 'InvalidSpec') return te.problems;
    throw e;
  }
  return [];
};

describe('network flags', () => {
  it('-p by networking\'s parser: single ports, ranges, ip:, /udp', () => {
    expect(specFromFlags('busybox', [], { publish: ['8080:80', '127.0.0.1::53/udp'] }).ports).toEqual([
      { containerPort: 80, protocol: 'tcp', hostPort: 8080 },
      { containerPort: 53, protocol: 'udp', hostIp: '127.0.0.1' },
    ]);
    expect(specFromFlags('busybox', [], { publish: ['8000-8002:80-82'] }).ports).toEqual([80, 81, 82].map((c) => ({ containerPort: c, protocol: 'tcp', hostPort: c + 7920 })));
    expect(specFromFlags('busybox', [], { publish: ['127.0.0.1:8000-8001:80-81/udp'] }).ports).toEqual([
      { containerPort: 80, protocol: 'udp', hostPort: 8000, hostIp: '127.0.0.1' },
      { containerPort: 81, protocol: 'udp', hostPort: 8001, hostIp: '127.0.0.1' },
    ]);
    expect(specFromFlags('busybox', [], { publish: ['9000-9009:80'] }).ports).toEqual([{ containerPort: 80, protocol: 'tcp', hostPort: 9000, hostPortEnd: 9009 }]);
    const p = problemsOf(() => specFromFlags('busybox', [], { publish: ['80/sctp', '99999', '8000-8002:80-81'] }));
    expect(p).toHaveLength(3);
    expect(p.join('\n')).toMatch(/-p 8000-8002:80-81: .*differ in length/);
  });
  it('--network-alias and --ip go to the --network network; --add-host as name:ip', () => {
    const s = specFromFlags('busybox', [], { network: 'front', networkAlias: ['web', 'www'], ip: '10.1.2.3', addHost: ['db:10.0.0.5', 'cache=10.0.0.6'] });
    expect(s.networks).toEqual({ front: { aliases: ['web', 'www'], ipv4Address: '10.1.2.3' } });
    expect(s.extraHosts).toEqual(['db:10.0.0.5', 'cache:10.0.0.6']);
    expect(specFromFlags('busybox', [], {}).networks).toBeUndefined();
  });
});

describe('specFromFlags', () => {
  it('builds a spec from run flags', () => {
    process.env['BERTH_TEST_PASS'] = 'through';
    const s = specFromFlags('busybox', ['sh'], {
      name: 'web', env: ['A=1', 'BERTH_TEST_PASS', 'UNSET_VAR_XYZ'], memory: '64m', cpus: '1.5', pidsLimit: '100', restart: 'on-failure:3',
      label: ['a=b', 'flag'], tmpfs: ['/run:size=1m'], capAdd: ['NET_ADMIN'], securityOpt: ['seccomp=unconfined', 'no-new-privileges'],
      ulimit: ['nofile=1024:2048'], init: true, rm: true, tty: true, interactive: true, network: 'none', healthCmd: 'true', healthInterval: '5s',
    });
    expect(s).toMatchObject({
      image: 'busybox', command: ['sh'], name: 'web', env: ['A=1', 'BERTH_TEST_PASS=through'],
      resources: { memory: 64 * 1024 * 1024, cpus: 1.5, pidsLimit: 100 }, restartPolicy: { name: 'on-failure', maximumRetryCount: 3 },
      labels: { a: 'b', flag: '' }, mounts: [{ type: 'tmpfs', target: '/run', sizeBytes: 1024 * 1024 }], capAdd: ['NET_ADMIN'],
      security: { seccomp: 'unconfined', noNewPrivileges: true }, ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }],
      init: true, autoRemove: true, tty: true, openStdin: true, networkMode: 'none', healthcheck: { test: ['CMD-SHELL', 'true'], intervalMs: 5000 },
    });
  });
  it('reports every bad flag at once', () => {
    let err;
    try {
      specFromFlags('busybox', [], { memory: 'x', cpus: 'y', restart: 'often', ulimit: ['nofile'], securityOpt: ['apparmor=foo'], publish: ['nope'] });
    } catch (e) {
      err = toEngineError(e);
    }
    expect(err?._tag).toBe('InvalidSpec');
    expect(err?._tag === 'InvalidSpec' && err.problems).toHaveLength(6);
  });
});

describe('security defaults', () => {
  it('Docker\'s capability set with adds and drops', () => {
    expect(DEFAULT_CAPS).toHaveLength(14);
    expect(capabilitySet({ capDrop: ['ALL'], capAdd: ['chown'] })).toEqual(['CAP_CHOWN']);
    expect(capabilitySet({ capDrop: ['NET_RAW'] })).not.toContain('CAP_NET_RAW');
    expect(() => capabilitySet({ capAdd: ['CAP_FLY'] })).toThrow(/unknown capability/);
  });
  it('the seccomp profile opens cap-dependent groups and guards clone', () => {
    const plain = defaultSeccomp(DEFAULT_CAPS);
    const allowed = new Set(plain.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
    for (const s of ['read', 'write', 'openat', 'execve']) expect(allowed.has(s)).toBe(true);
    for (const s of ['mount', 'unshare', 'setns', 'ptrace', 'reboot', 'init_module', 'bpf', 'clone', 'clone3']) expect(allowed.has(s)).toBe(false);
    expect(allowed.has('chroot')).toBe(true); // CAP_SYS_CHROOT is a default
    expect(plain.syscalls.find((r) => r.names.includes('clone'))?.args?.[0]).toMatchObject({ index: 0, op: 'SCMP_CMP_MASKED_EQ', valueTwo: 0 });
    expect(plain.syscalls.find((r) => r.names.includes('clone3'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
    expect(plain.syscalls.filter((r) => r.names.includes('personality')).map((r) => r.args?.[0]?.value)).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
    const admin = defaultSeccomp([...DEFAULT_CAPS, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE']);
    const adminAllowed = new Set(admin.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));
    for (const s of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'ptrace']) expect(adminAllowed.has(s)).toBe(true);
    expect(plain.defaultAction).toBe('SCMP_ACT_ERRNO');
  });
  it('the seccomp profile is made once per capability set, in any order, and cannot be changed by its users', () => {
    const plain = defaultSeccomp(DEFAULT_CAPS);
    expect(defaultSeccomp([...DEFAULT_CAPS].reverse())).toBe(plain);
    expect(defaultSeccomp([...DEFAULT_CAPS, 'CAP_SYS_ADMIN'])).not.toBe(plain);
    expect(Object.isFrozen(plain) && Object.isFrozen(plain.syscalls) && Object.isFrozen(plain.syscalls[0]!.names)).toBe(true);
    expect(() => (plain.syscalls as unknown[]).push({})).toThrow(TypeError);
  });
});
