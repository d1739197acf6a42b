// The parts of the OCI runtime spec that the tests write (config.json) and
// read back (state). Written configs are plain typed values; what a runtime
// prints is decoded with io-ts, since it is input we did not make.
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';

export interface IdMapping { containerID: number; hostID: number; size: number }
export interface Mount { destination: string; type?: string; source?: string; options?: string[] }
export interface Namespace { type: string; path?: string }
export interface Rlimit { type: string; soft: number; hard: number }
export interface Hook { path: string; args?: string[]; env?: string[]; timeout?: number }
export interface Capabilities {
  bounding?: string[]; effective?: string[]; inheritable?: string[]; permitted?: string[]; ambient?: string[];
}
export interface SeccompRule {
  names: string[]; action: string; errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}
export interface Seccomp { defaultAction: string; architectures?: string[]; syscalls?: SeccompRule[] }
export interface Resources {
  memory?: { limit?: number; swap?: number };
  cpu?: { quota?: number; period?: number; shares?: number; cpus?: string };
  pids?: { limit: number };
  devices?: { allow: boolean; access?: string; type?: string; major?: number; minor?: number }[];
}
export interface Process {
  terminal?: boolean;
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
}
export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Partial<Record<'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop', Hook[]>>;
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: Namespace[];
    uidMappings?: IdMapping[];
    gidMappings?: IdMapping[];
    sysctl?: Record<string, string>;
    resources?: Resources;
    cgroupsPath?: string;
    seccomp?: Seccomp;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    rootfsPropagation?: string;
    devices?: { path: string; type: string; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }[];
    timeOffsets?: Record<string, { secs: number; nanosecs: number }>;
  };
}

/** State as `<runtime> state` prints it (OCI runtime spec, "State"). */
export const State = t.intersection([
  t.type({
    ociVersion: t.string,
    id: t.string,
    status: t.keyof({ creating: null, created: null, running: null, stopped: null, paused: null }),
    bundle: t.string,
  }),
  t.partial({ pid: t.number, annotations: t.record(t.string, t.string) }),
]);
export type State = t.TypeOf<typeof State>;

/** Decodes untrusted JSON text with a codec; the error names what was read. */
export function decodeJson<A>(codec: t.Decoder<unknown, A>, text: string, what: string): A {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what}: not JSON (${(e as Error).message}): ${JSON.stringify(text.slice(0, 400))}`);
  }
  const r = codec.decode(value);
  if (isLeft(r)) {
    const paths = r.left.map((err) => {
      const p = err.context.map((c) => c.key).filter((k) => k !== '').join('.');
      return `${p || '(root)'}: expected ${err.context[err.context.length - 1]?.type.name ?? '?'}, got ${JSON.stringify(err.value)}`;
    });
    throw new Error(`${what}: unexpected shape:\n  ${paths.join('\n  ')}`);
  }
  return r.right;
}

// Capability numbers from linux/capability.h, for comparing with the hex
// masks in /proc/PID/status.
const capNames = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
];

/** The /proc/PID/status hex mask (16 digits) for a list of CAP_ names. */
export function capMask(names: string[]): string {
  let mask = 0n;
  for (const n of names) {
    const bit = capNames.indexOf(n.replace(/^CAP_/, ''));
    if (bit < 0) throw new Error(`unknown capability ${n}`);
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16).padStart(16, '0');
}
