// What test/fixtures/probe.c prints, decoded (it is output from inside a
// container, so its shape is checked, not assumed).
import * as t from 'io-ts';
import { decodeJson } from './oci.js';

const Limit = t.type({ soft: t.string, hard: t.string });
const NullableString = t.union([t.string, t.null]);

export const ProbeReport = t.type({
  pid: t.number,
  ppid: t.number,
  hostname: t.string,
  domainname: t.string,
  uid: t.number,
  gid: t.number,
  euid: t.number,
  egid: t.number,
  groups: t.array(t.number),
  status: t.record(t.string, t.string),
  cwd: NullableString,
  tty: NullableString,
  oomScoreAdj: NullableString,
  uidMap: NullableString,
  gidMap: NullableString,
  rlimits: t.record(t.string, Limit),
  fds: t.record(t.string, t.string),
  ns: t.record(t.string, NullableString),
  mountinfo: t.union([t.array(t.string), t.null]),
  sysctls: t.record(t.string, NullableString),
  env: t.array(t.string),
  cgroup: t.type({ self: t.union([t.array(t.string), t.null]), files: t.record(t.string, t.string) }),
});
export type ProbeReport = t.TypeOf<typeof ProbeReport>;

export const TryResult = t.type({
  action: t.string,
  ok: t.boolean,
  errno: t.number,
  error: NullableString,
  value: t.number,
});
export type TryResult = t.TypeOf<typeof TryResult>;

export const HuntResult = t.type({
  found: t.array(t.type({
    pid: t.number, exe: t.string, dev: t.number, ino: t.number, hostBinary: t.boolean, writable: t.boolean, error: NullableString,
    sealed: t.union([t.boolean, t.null]), sealError: NullableString,
  })),
});
export type HuntResult = t.TypeOf<typeof HuntResult>;

export function parseReport(stdout: string): ProbeReport {
  return decodeJson(ProbeReport, stdout.trim(), 'probe report');
}

/** Parses the JSON lines of one or more `probe try` runs. */
export function parseTries(stdout: string): TryResult[] {
  return stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => decodeJson(TryResult, l, 'probe try'));
}

/** The mountinfo line whose mount point is `target`, if any (the last one wins, as in the kernel). */
export function mountAt(report: ProbeReport, target: string): string | undefined {
  return (report.mountinfo ?? []).filter((l) => l.split(' ')[4] === target).at(-1);
}
