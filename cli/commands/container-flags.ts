/**
 * Docker's container flags turned into a ContainerSpec: sizes, volumes
 * (-v, --mount, --tmpfs), env files, ulimits, restart policies, ports.
 * Every problem is collected and reported at once (InvalidSpec), before
 * anything changes.
 */
import { readFileSync } from 'node:fs';
import type { ContainerSpec, DeviceSpec, MountSpec, PortSpec, RestartPolicy, UlimitSpec } from '../../engine/engine.js';
import { fail, invalidSpec, toEngineError } from '../../engine/errors.js';
import { parsePublish } from '../../engine/network/ports.js';

export interface RunFlags {
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  rm?: boolean;
  name?: string;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  volume?: string[];
  mount?: string[];
  tmpfs?: string[];
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  restart?: string;
  hostname?: string;
  domainname?: string;
  readOnly?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  init?: boolean;
  label?: string[];
  network?: string;
  publish?: string[];
  publishAll?: boolean;
  networkAlias?: string[];
  ip?: string;
  addHost?: string[];
  ulimit?: string[];
  sysctl?: string[];
  device?: string[];
  stopSignal?: string;
  stopTimeout?: string;
  securityOpt?: string[];
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  noHealthcheck?: boolean;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512m", "1g", "1048576", "1.5g" -> bytes. */
export const parseSize = (s: string): number | undefined => {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] as number));
};

/** "10s", "1m30s", "500ms", "2h" -> milliseconds. */
export const parseDuration = (s: string): number | undefined => {
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms'] as number);
    consumed += m[0].length;
  }
  return consumed === s.length && s.length > 0 ? total : undefined;
};

const splitKv = (s: string): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    if (part === '') continue;
    const i = part.indexOf('=');
    out[(i < 0 ? part : part.slice(0, i)).trim().toLowerCase()] = i < 0 ? 'true' : part.slice(i + 1);
  }
  return out;
};

const isVolumeName = (s: string): boolean => /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(s);

export const parseVolumeFlag = (v: string, problems: string[]): MountSpec | undefined => {
  const parts = v.split(':');
  if (parts.length === 1) {
    if (!v.startsWith('/')) {
      problems.push(`-v ${v}: a single path must be absolute (an anonymous volume)`);
      return undefined;
    }
    return { type: 'volume', target: v };
  }
  const [src, target, opts = ''] = parts as [string, string, string?];
  if (parts.length > 3 || !target || !target.startsWith('/')) {
    problems.push(`-v ${v}: expected [SOURCE:]TARGET[:OPTIONS] with an absolute TARGET`);
    return undefined;
  }
  const o = opts.split(',').filter((x) => x !== '');
  for (const x of o) {
    if (!['ro', 'rw', 'z', 'Z', 'nocopy', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(x)) problems.push(`-v ${v}: unknown option ${x}`);
  }
  const readOnly = o.includes('ro');
  if (src.startsWith('/')) {
    const prop = o.find((x) => ['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'].includes(x)) as
      | 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave' | undefined;
    return { type: 'bind', source: src, target, ...(readOnly ? { readOnly } : {}), ...(prop ? { propagation: prop } : {}) };
  }
  if (!isVolumeName(src)) {
    problems.push(`-v ${v}: ${JSON.stringify(src)} is neither an absolute host path nor a valid volume name`);
    return undefined;
  }
  return { type: 'volume', source: src, target, ...(readOnly ? { readOnly } : {}), ...(o.includes('nocopy') ? { noCopy: true } : {}) };
};

export const parseMountFlag = (v: string, problems: string[]): MountSpec | undefined => {
  const kv = splitKv(v);
  const type = kv['type'] ?? 'volume';
  const target = kv['target'] ?? kv['destination'] ?? kv['dst'];
  const source = kv['source'] ?? kv['src'];
  const ro = kv['readonly'] === 'true' || kv['readonly'] === '1' || kv['ro'] === 'true' || kv['ro'] === '1';
  if (!target) {
    problems.push(`--mount ${v}: target is required`);
    return undefined;
  }
  if (type === 'bind') {
    if (!source) {
      problems.push(`--mount ${v}: a bind mount needs a source`);
      return undefined;
    }
    const prop = kv['bind-propagation'] as 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave' | undefined;
    return { type: 'bind', source, target, ...(ro ? { readOnly: true } : {}), ...(prop ? { propagation: prop } : {}) };
  }
  if (type === 'volume') {
    return { type: 'volume', target, ...(source ? { source } : {}), ...(ro ? { readOnly: true } : {}), ...(kv['volume-nocopy'] === 'true' ? { noCopy: true } : {}) };
  }
  if (type === 'tmpfs') {
    const size = kv['tmpfs-size'] !== undefined ? parseSize(kv['tmpfs-size']) : undefined;
    if (kv['tmpfs-size'] !== undefined && size === undefined) problems.push(`--mount ${v}: bad tmpfs-size`);
    const mode = kv['tmpfs-mode'] !== undefined ? parseInt(kv['tmpfs-mode'], 8) : undefined;
    if (mode !== undefined && Number.isNaN(mode)) problems.push(`--mount ${v}: bad tmpfs-mode (octal)`);
    return { type: 'tmpfs', target, ...(size !== undefined ? { sizeBytes: size } : {}), ...(mode !== undefined && !Number.isNaN(mode) ? { mode } : {}), ...(ro ? { readOnly: true } : {}) };
  }
  problems.push(`--mount ${v}: unknown type ${JSON.stringify(type)} (bind, volume, tmpfs)`);
  return undefined;
};

export const parseTmpfsFlag = (v: string, problems: string[]): MountSpec | undefined => {
  const i = v.indexOf(':');
  const target = i < 0 ? v : v.slice(0, i);
  const kv = i < 0 ? {} : splitKv(v.slice(i + 1));
  if (!target.startsWith('/')) {
    problems.push(`--tmpfs ${v}: the path must be absolute`);
    return undefined;
  }
  const size = kv['size'] !== undefined ? parseSize(kv['size']) : undefined;
  if (kv['size'] !== undefined && size === undefined) problems.push(`--tmpfs ${v}: bad size`);
  const mode = kv['mode'] !== undefined ? parseInt(kv['mode'], 8) : undefined;
  return { type: 'tmpfs', target, ...(size !== undefined ? { sizeBytes: size } : {}), ...(mode !== undefined && !Number.isNaN(mode) ? { mode } : {}), ...(kv['ro'] ? { readOnly: true } : {}) };
};

export const parseRestart = (v: string, problems: string[]): RestartPolicy | undefined => {
  const [name, count] = v.split(':', 2);
  if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(name ?? '')) {
    problems.push(`--restart ${v}: expected no, always, on-failure[:N] or unless-stopped`);
    return undefined;
  }
  if (count !== undefined) {
    if (name !== 'on-failure' || !/^[0-9]+$/.test(count)) {
      problems.push(`--restart ${v}: a retry count is only valid as on-failure:N`);
      return undefined;
    }
    return { name: 'on-failure', maximumRetryCount: Number(count) };
  }
  return { name: name as RestartPolicy['name'] };
};

/** `-p`, by networking's parser (ranges, ip:, /udp): its problems added to the others. */
const publishFlag = (v: string, problems: string[]): readonly PortSpec[] => {
  try {
    return parsePublish(v);
  } catch (e) {
    const te = toEngineError(e);
    if (te._tag !== 'InvalidSpec') throw e;
    problems.push(...te.problems.map((p) => `-p ${v}: ${p}`));
    return [];
  }
};

/** `--add-host name:ip` (also Docker's newer name=ip), as the spec's "name:ip". */
const addHostFlag = (v: string): string => {
  const eq = v.indexOf('=');
  const colon = v.indexOf(':');
  return eq > 0 && (colon < 0 || eq < colon) ? `${v.slice(0, eq)}:${v.slice(eq + 1)}` : v;
};

const readEnvFile = (file: string, problems: string[]): string[] => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    problems.push(`--env-file ${file}: ${(e as Error).message}`);
    return [];
  }
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (l === '' || l.startsWith('#')) continue;
    out.push(l.includes('=') ? l : process.env[l] !== undefined ? `${l}=${process.env[l]}` : l);
  }
  return out.filter((e) => e.includes('='));
};

/** `-e KEY` takes KEY from the caller's environment (dropped when unset), as Docker does. */
const envFlag = (e: string): string | undefined => (e.includes('=') ? e : process.env[e] !== undefined ? `${e}=${process.env[e]}` : undefined);

export const specFromFlags = (image: string, command: readonly string[], f: RunFlags): ContainerSpec => {
  const problems: string[] = [];
  const size = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (flag === '--memory-swap' && v === '-1') return -1;
    const n = parseSize(v);
    if (n === undefined) problems.push(`${flag} ${v}: expected a size such as 512m or 1g`);
    return n;
  };
  const int = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^-?[0-9]+$/.test(v)) {
      problems.push(`${flag} ${v}: expected an integer`);
      return undefined;
    }
    return Number(v);
  };
  const mounts: MountSpec[] = [];
  for (const v of f.volume ?? []) {
    const m = parseVolumeFlag(v, problems);
    if (m) mounts.push(m);
  }
  for (const v of f.mount ?? []) {
    const m = parseMountFlag(v, problems);
    if (m) mounts.push(m);
  }
  for (const v of f.tmpfs ?? []) {
    const m = parseTmpfsFlag(v, problems);
    if (m) mounts.push(m);
  }
  const env = [...(f.envFile ?? []).flatMap((file) => readEnvFile(file, problems)), ...(f.env ?? []).map(envFlag).filter((e): e is string => e !== undefined)];
  const labels: Record<string, string> = {};
  for (const l of f.label ?? []) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  const ulimits: UlimitSpec[] = [];
  for (const u of f.ulimit ?? []) {
    const m = /^([a-z]+)=(-?[0-9]+)(?::(-?[0-9]+))?$/.exec(u);
    if (!m) problems.push(`--ulimit ${u}: expected NAME=SOFT[:HARD]`);
    else ulimits.push({ name: m[1] as string, soft: Number(m[2]), hard: Number(m[3] ?? m[2]) });
  }
  const sysctls: Record<string, string> = {};
  for (const s of f.sysctl ?? []) {
    const i = s.indexOf('=');
    if (i < 1) problems.push(`--sysctl ${s}: expected KEY=VALUE`);
    else sysctls[s.slice(0, i)] = s.slice(i + 1);
  }
  const devices: DeviceSpec[] = [];
  for (const d of f.device ?? []) {
    const [hostPath = '', containerPath, permissions] = d.split(':');
    const perm = containerPath !== undefined && /^[rwm]+$/.test(containerPath) && permissions === undefined ? containerPath : permissions ?? 'rwm';
    const cpath = containerPath !== undefined && !/^[rwm]+$/.test(containerPath) ? containerPath : hostPath;
    if (!hostPath.startsWith('/')) problems.push(`--device ${d}: the host path must be absolute`);
    devices.push({ hostPath, containerPath: cpath, permissions: perm });
  }
  let seccomp: string | undefined;
  let noNewPrivileges: boolean | undefined;
  for (const s of f.securityOpt ?? []) {
    if (s === 'no-new-privileges' || s === 'no-new-privileges=true' || s === 'no-new-privileges:true') noNewPrivileges = true;
    else if (s === 'no-new-privileges=false' || s === 'no-new-privileges:false') noNewPrivileges = false;
    else if (s.startsWith('seccomp=') || s.startsWith('seccomp:')) seccomp = s.slice(8);
    else problems.push(`--security-opt ${s}: supported: seccomp=unconfined|<file>, no-new-privileges`);
  }
  const cpus = f.cpus !== undefined ? Number(f.cpus) : undefined;
  if (f.cpus !== undefined && (cpus === undefined || Number.isNaN(cpus))) problems.push(`--cpus ${f.cpus}: expected a number`);
  const restartPolicy = f.restart !== undefined ? parseRestart(f.restart, problems) : undefined;
  const ports: PortSpec[] = (f.publish ?? []).flatMap((p) => publishFlag(p, problems));
  // --network-alias / --ip belong to the network given by --network (the spec's check refuses them on the default bridge)
  const attachment = {
    ...(f.networkAlias && f.networkAlias.length > 0 ? { aliases: [...f.networkAlias] } : {}),
    ...(f.ip !== undefined ? { ipv4Address: f.ip } : {}),
  };
  const networks = Object.keys(attachment).length > 0 ? { [f.network ?? 'bridge']: attachment } : undefined;
  const extraHosts = (f.addHost ?? []).map(addHostFlag);
  const stopTimeout = int('--stop-timeout', f.stopTimeout);
  const dur = (flag: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    if (ms === undefined) problems.push(`${flag} ${v}: expected a duration such as 30s or 1m`);
    return ms;
  };
  const hc = f.noHealthcheck
    ? { test: ['NONE'] }
    : f.healthCmd !== undefined
      ? {
          test: ['CMD-SHELL', f.healthCmd],
          ...(f.healthInterval ? { intervalMs: dur('--health-interval', f.healthInterval) as number } : {}),
          ...(f.healthTimeout ? { timeoutMs: dur('--health-timeout', f.healthTimeout) as number } : {}),
          ...(f.healthRetries ? { retries: int('--health-retries', f.healthRetries) as number } : {}),
          ...(f.healthStartPeriod ? { startPeriodMs: dur('--health-start-period', f.healthStartPeriod) as number } : {}),
        }
      : undefined;
  const resources = {
    ...(f.memory !== undefined ? { memory: size('--memory', f.memory) as number } : {}),
    ...(f.memorySwap !== undefined ? { memorySwap: size('--memory-swap', f.memorySwap) as number } : {}),
    ...(f.memoryReservation !== undefined ? { memoryReservation: size('--memory-reservation', f.memoryReservation) as number } : {}),
    ...(cpus !== undefined ? { cpus } : {}),
    ...(f.cpuShares !== undefined ? { cpuShares: int('--cpu-shares', f.cpuShares) as number } : {}),
    ...(f.cpusetCpus !== undefined ? { cpusetCpus: f.cpusetCpus } : {}),
    ...(f.cpusetMems !== undefined ? { cpusetMems: f.cpusetMems } : {}),
    ...(f.pidsLimit !== undefined ? { pidsLimit: int('--pids-limit', f.pidsLimit) as number } : {}),
  };
  if (problems.length > 0) fail(invalidSpec('berth run', problems));
  return {
    image,
    ...(command.length > 0 ? { command: [...command] } : {}),
    ...(f.name !== undefined ? { name: f.name } : {}),
    ...(f.entrypoint !== undefined ? { entrypoint: f.entrypoint === '' ? [] : [f.entrypoint] } : {}),
    ...(env.length > 0 ? { env } : {}),
    ...(f.workdir !== undefined ? { workingDir: f.workdir } : {}),
    ...(f.user !== undefined ? { user: f.user } : {}),
    ...(f.hostname !== undefined ? { hostname: f.hostname } : {}),
    ...(f.domainname !== undefined ? { domainname: f.domainname } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(f.readOnly ? { readOnlyRootfs: true } : {}),
    ...(mounts.length > 0 ? { mounts } : {}),
    ...(f.capAdd ? { capAdd: f.capAdd } : {}),
    ...(f.capDrop ? { capDrop: f.capDrop } : {}),
    ...(f.privileged ? { privileged: true } : {}),
    ...(devices.length > 0 ? { devices } : {}),
    ...(ulimits.length > 0 ? { ulimits } : {}),
    ...(Object.keys(sysctls).length > 0 ? { sysctls } : {}),
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
    ...(f.stopSignal !== undefined ? { stopSignal: f.stopSignal } : {}),
    ...(stopTimeout !== undefined ? { stopTimeoutSeconds: stopTimeout } : {}),
    ...(f.init ? { init: true } : {}),
    ...(f.tty ? { tty: true } : {}),
    ...(f.interactive ? { openStdin: true } : {}),
    ...(restartPolicy ? { restartPolicy } : {}),
    ...(f.rm ? { autoRemove: true } : {}),
    ...(hc ? { healthcheck: hc } : {}),
    ...(f.network !== undefined ? { networkMode: f.network } : {}),
    ...(ports.length > 0 ? { ports } : {}),
    ...(f.publishAll ? { publishAll: true } : {}),
    ...(networks ? { networks } : {}),
    ...(extraHosts.length > 0 ? { extraHosts } : {}),
    ...(seccomp !== undefined || noNewPrivileges !== undefined
      ? { security: { ...(seccomp !== undefined ? { seccomp } : {}), ...(noNewPrivileges !== undefined ? { noNewPrivileges } : {}) } }
      : {}),
  };
};
