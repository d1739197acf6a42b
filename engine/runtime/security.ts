/**
 * Docker's security defaults: its 14 capabilities, masked and read-only
 * /proc and /sys paths; and the capability set a spec asks for.
 */
import { readFileSync } from 'node:fs';
import { fail, invalidSpec } from '../errors.js';

export const DEFAULT_CAPS: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

export const ALL_CAPS: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

export const MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

let hostBounding: string[] | undefined;
/** The capabilities this process can hand on (its bounding set): "all" means these. */
export const hostCaps = (): readonly string[] => {
  if (hostBounding) return hostBounding;
  let mask = (1n << BigInt(ALL_CAPS.length)) - 1n;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) mask = BigInt(`0x${m[1]}`);
  } catch {
    // no procfs: assume all
  }
  hostBounding = ALL_CAPS.filter((_c, i) => (mask >> BigInt(i)) & 1n);
  return hostBounding;
};

/** "net_admin", "CAP_NET_ADMIN", "ALL" -> canonical names; problems for unknown ones. */
export const normalizeCap = (c: string): string => {
  const u = c.trim().toUpperCase();
  if (u === 'ALL') return 'ALL';
  return u.startsWith('CAP_') ? u : `CAP_${u}`;
};

export const checkCaps = (field: string, caps: readonly string[]): string[] =>
  caps.map(normalizeCap).filter((c) => c !== 'ALL' && !ALL_CAPS.includes(c)).map((c) => `${field}: unknown capability ${JSON.stringify(c)}`);

/** The capability set: Docker's defaults, plus adds, minus drops ("ALL" works in both). */
export const capabilitySet = (opts: { privileged?: boolean; capAdd?: readonly string[]; capDrop?: readonly string[] }): string[] => {
  if (opts.privileged) return [...hostCaps()];
  const add = (opts.capAdd ?? []).map(normalizeCap);
  const drop = (opts.capDrop ?? []).map(normalizeCap);
  const problems = [...checkCaps('cap-add', add), ...checkCaps('cap-drop', drop)];
  if (problems.length > 0) fail(invalidSpec('container spec', problems));
  let set = drop.includes('ALL') ? [] : DEFAULT_CAPS.filter((c) => !drop.includes(c));
  if (add.includes('ALL')) set = hostCaps().filter((c) => !drop.includes(c) || add.includes(c));
  for (const c of add) if (c !== 'ALL' && !set.includes(c)) set.push(c);
  return set;
};
