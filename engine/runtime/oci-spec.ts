/**
 * The OCI config.json of a container: image defaults + the container spec
 * + Berth's security defaults. Pure: every host fact it needs (resolved
 * user, volume paths, netns, init binary) is an argument.
 */
import type { ContainerSpec, ResourceSpec } from '../engine.js';
import { defaultSeccomp, type OciSeccomp } from './seccomp-default.js';
import { capabilitySet, MASKED_PATHS, READONLY_PATHS } from './security.js';
import type { ResolvedUser } from './user.js';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciDevice {
  readonly path: string;
  readonly type: 'c' | 'b';
  readonly major: number;
  readonly minor: number;
  readonly fileMode: number;
  readonly permissions: string;
}

export interface BundleInputs {
  readonly id: string;
  readonly spec: ContainerSpec;
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: ResolvedUser;
  /** User mounts, already resolved to host sources. */
  readonly mounts: readonly OciMount[];
  /** Files for /etc/hosts, /etc/resolv.conf, /etc/hostname (host paths). */
  readonly etcFiles?: { hosts: string; resolvConf: string; hostname: string };
  /** The netns to join; undefined and not host: a new, empty one. */
  readonly netnsPath?: string;
  readonly hostNetwork: boolean;
  readonly initPath?: string;
  /** Host devices (--device), stat'ed by the caller. */
  readonly devices?: readonly OciDevice[];
  /** A seccomp profile read from a file (--security-opt seccomp=<file>). */
  readonly seccompProfile?: unknown;
}

export const INIT_IN_CONTAINER = '/sbin/berth-init';

const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13,
  ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24,
  XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** "SIGTERM", "TERM", "15", "SIGRTMIN+3" -> number; undefined when unknown. */
export const signalNumber = (s: string): number | undefined => {
  const u = s.trim().toUpperCase();
  if (/^[0-9]+$/.test(u)) {
    const n = Number(u);
    return n >= 1 && n <= 64 ? n : undefined;
  }
  const name = u.startsWith('SIG') ? u.slice(3) : u;
  const rt = /^RTMIN(\+([0-9]+))?$/.exec(name);
  if (rt) {
    const n = 34 + Number(rt[2] ?? 0);
    return n <= 64 ? n : undefined;
  }
  return SIGNALS[name];
};

const RLIMITS: Readonly<Record<string, string>> = {
  core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE', locks: 'RLIMIT_LOCKS',
  memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE', nofile: 'RLIMIT_NOFILE',
  nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO', rttime: 'RLIMIT_RTTIME',
  sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK', as: 'RLIMIT_AS',
};
export const isUlimitName = (n: string): boolean => n in RLIMITS;

const CPU_PERIOD = 100_000;

/** OCI linux.resources for a ResourceSpec. */
export const ociResources = (r: ResourceSpec | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  if (!r) return out;
  const memory: Record<string, number> = {};
  if (r.memory) memory['limit'] = r.memory;
  if (r.memorySwap !== undefined && r.memorySwap !== 0) memory['swap'] = r.memorySwap;
  else if (r.memory) memory['swap'] = r.memory * 2; // Docker: swap as much as memory unless told
  if (r.memoryReservation) memory['reservation'] = r.memoryReservation;
  if (Object.keys(memory).length > 0) out['memory'] = memory;
  const cpu: Record<string, unknown> = {};
  if (r.cpus) {
    cpu['quota'] = Math.round(r.cpus * CPU_PERIOD);
    cpu['period'] = CPU_PERIOD;
  }
  if (r.cpuShares) cpu['shares'] = r.cpuShares;
  if (r.cpusetCpus) cpu['cpus'] = r.cpusetCpus;
  if (r.cpusetMems) cpu['mems'] = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out['cpu'] = cpu;
  if (r.pidsLimit !== undefined && r.pidsLimit !== 0) out['pids'] = { limit: r.pidsLimit };
  if (r.blkioWeight) out['blockIO'] = { weight: r.blkioWeight };
  return out;
};

export const buildOciConfig = (b: BundleInputs): Record<string, unknown> => {
  const s = b.spec;
  const privileged = s.privileged === true;
  const caps = capabilitySet({ privileged, capAdd: s.capAdd ?? [], capDrop: s.capDrop ?? [] });
  const args = s.init && b.initPath ? [INIT_IN_CONTAINER, '--', ...b.args] : [...b.args];
  const rlimits = (s.ulimits ?? []).map((u) => ({ type: RLIMITS[u.name] as string, soft: u.soft, hard: u.hard }));

  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] },
  ];
  if (b.etcFiles) {
    mounts.push({ destination: '/etc/hosts', type: 'bind', source: b.etcFiles.hosts, options: ['rbind', 'rprivate'] });
    mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: b.etcFiles.resolvConf, options: ['rbind', 'rprivate'] });
    mounts.push({ destination: '/etc/hostname', type: 'bind', source: b.etcFiles.hostname, options: ['rbind', 'rprivate'] });
  }
  mounts.push(...b.mounts);
  if (s.init && b.initPath) mounts.push({ destination: INIT_IN_CONTAINER, type: 'bind', source: b.initPath, options: ['bind', 'ro', 'nosuid', 'nodev'] });

  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }];
  if (!b.hostNetwork) namespaces.push(b.netnsPath ? { type: 'network', path: b.netnsPath } : { type: 'network' });

  let seccomp: OciSeccomp | unknown | undefined;
  const sc = s.security?.seccomp;
  if (privileged || sc === 'unconfined') seccomp = undefined;
  else if (b.seccompProfile !== undefined) seccomp = b.seccompProfile;
  else seccomp = defaultSeccomp(caps);

  const deviceRules: Array<Record<string, unknown>> = [{ allow: privileged, access: 'rwm' }];
  for (const d of b.devices ?? []) deviceRules.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.permissions });

  const linux: Record<string, unknown> = {
    namespaces,
    cgroupsPath: `/berth/${b.id}`,
    resources: { ...ociResources(s.resources), devices: deviceRules },
  };
  if (!privileged) {
    linux['maskedPaths'] = [...MASKED_PATHS];
    linux['readonlyPaths'] = [...READONLY_PATHS];
  }
  if (seccomp !== undefined) linux['seccomp'] = seccomp;
  if (s.sysctls && Object.keys(s.sysctls).length > 0) linux['sysctl'] = { ...s.sysctls };
  if (b.devices && b.devices.length > 0) {
    linux['devices'] = b.devices.map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: 0, gid: 0 }));
  }

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: s.tty === true,
      user: { uid: b.user.uid, gid: b.user.gid, ...(b.user.additionalGids.length > 0 ? { additionalGids: [...b.user.additionalGids] } : {}) },
      args,
      env: [...b.env],
      cwd: b.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      ...(rlimits.length > 0 ? { rlimits } : {}),
      noNewPrivileges: s.security?.noNewPrivileges ?? false,
    },
    root: { path: 'rootfs', readonly: s.readOnlyRootfs === true },
    hostname: s.hostname ?? b.id.slice(0, 12),
    ...(s.domainname ? { domainname: s.domainname } : {}),
    mounts,
    linux,
  };
};
