/**
 * Validation and normalization of a ContainerSpec before anything changes:
 * every problem is reported at once, with the field it concerns.
 */
import { isIP, isIPv4 } from 'node:net';
import type { ContainerSpec, MountSpec } from '../engine.js';
import { fail, invalidSpec } from '../errors.js';
import { isUlimitName, signalNumber } from './oci-spec.js';
import { checkCaps } from './security.js';

export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const MIN_MEMORY = 6 * 1024 * 1024;

const checkMount = (m: MountSpec, i: number, problems: string[]): void => {
  const f = `mounts[${i}]`;
  if (!m.target.startsWith('/')) problems.push(`${f}.target: expected an absolute path, got ${JSON.stringify(m.target)}`);
  if (m.target === '/') problems.push(`${f}.target: cannot mount over the root`);
  if (m.type === 'bind' && !m.source.startsWith('/')) problems.push(`${f}.source: a bind mount needs an absolute host path, got ${JSON.stringify(m.source)}`);
  if (m.type === 'volume' && m.source !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.source)) {
    problems.push(`${f}.source: ${JSON.stringify(m.source)} is not a valid volume name`);
  }
  if (m.type === 'tmpfs' && m.sizeBytes !== undefined && (!Number.isInteger(m.sizeBytes) || m.sizeBytes < 0)) {
    problems.push(`${f}.sizeBytes: expected a non-negative integer`);
  }
};

/** Networks Berth (like Docker) keeps without aliases or fixed addresses: the default bridge and the special modes. */
const isSpecialNetwork = (n: string): boolean => n === 'bridge' || n === 'default' || n === 'host' || n === 'none' || n.startsWith('container:');

/** Network modes, per-network aliases and addresses, extra hosts: Docker's refusals, before anything changes. */
const checkNetworking = (spec: ContainerSpec): string[] => {
  const problems: string[] = [];
  const mode = spec.networkMode ?? 'bridge';
  const shared = mode.startsWith('container:');
  if (shared && mode.length === 'container:'.length) problems.push('network: container: needs a container name or ID (container:<name|id>)');
  if (shared && ((spec.ports?.length ?? 0) > 0 || spec.publishAll === true))
    problems.push('ports: conflicting options: port publishing and the container network mode (publish the ports on the container whose network is shared)');
  if (shared && spec.hostname !== undefined) problems.push('hostname: conflicting options: hostname and the container network mode (the hostname is the shared network\'s)');
  if ((shared || mode === 'host') && (spec.extraHosts?.length ?? 0) > 0)
    problems.push(`add-host: conflicting options: custom host-to-IP mapping and the ${shared ? 'container' : 'host'} network mode`);
  for (const [name, att] of Object.entries(spec.networks ?? {})) {
    const special = isSpecialNetwork(name) || (name === mode && isSpecialNetwork(mode));
    if ((mode === 'host' || mode === 'none' || shared) && name !== mode)
      problems.push(`networks.${name}: a container with network mode ${JSON.stringify(mode)} cannot join other networks`);
    if ((att.aliases?.length ?? 0) > 0 && special)
      problems.push(`network-alias: network-scoped aliases are supported only for containers on user-defined networks (network ${JSON.stringify(name)}); create one with \`berth network create\``);
    if (att.ipv4Address !== undefined && special)
      problems.push(`ip: a user-specified IP address is supported only on user-defined networks (network ${JSON.stringify(name)}); create one with \`berth network create --subnet\``);
    if (att.ipv4Address !== undefined && isIPv4(att.ipv4Address) === false) problems.push(`ip: ${JSON.stringify(att.ipv4Address)} is not an IPv4 address`);
    for (const a of att.aliases ?? []) if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(a)) problems.push(`network-alias: ${JSON.stringify(a)} is not a valid name`);
  }
  for (const h of spec.extraHosts ?? []) {
    const i = h.indexOf(':');
    const name = i > 0 ? h.slice(0, i) : '';
    const ip = i > 0 ? h.slice(i + 1).replace(/^\[|\]$/g, '') : '';
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name) || isIP(ip) === 0) problems.push(`add-host: expected name:ip, got ${JSON.stringify(h)}`);
  }
  return problems;
};

/** Throws InvalidSpec listing every problem; returns the spec with defaults filled in. */
export const checkSpec = (spec: ContainerSpec): ContainerSpec => {
  const problems: string[] = [];
  const name = spec.name?.replace(/^\//, '');
  if (name !== undefined && !NAME_RE.test(name)) {
    problems.push(`name: ${JSON.stringify(spec.name)} is invalid: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (two characters at least)`);
  }
  if (spec.image === '') problems.push('image: required');
  const r = spec.resources;
  if (r) {
    if (r.memory !== undefined && r.memory !== 0 && (!Number.isInteger(r.memory) || r.memory < MIN_MEMORY)) problems.push(`memory: minimum is 6 MiB, got ${r.memory} bytes`);
    if (r.memorySwap !== undefined && r.memorySwap !== -1 && r.memorySwap !== 0 && r.memory !== undefined && r.memorySwap < r.memory) problems.push('memory-swap: must be at least memory (or -1)');
    if (r.cpus !== undefined && (!Number.isFinite(r.cpus) || r.cpus < 0.01)) problems.push(`cpus: expected a number of CPUs of at least 0.01, got ${r.cpus}`);
    if (r.pidsLimit !== undefined && !Number.isInteger(r.pidsLimit)) problems.push(`pids-limit: expected an integer, got ${r.pidsLimit}`);
    if (r.cpuShares !== undefined && (!Number.isInteger(r.cpuShares) || r.cpuShares < 2)) problems.push(`cpu-shares: expected an integer of at least 2`);
    if (r.cpusetCpus !== undefined && !/^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/.test(r.cpusetCpus)) problems.push(`cpuset-cpus: ${JSON.stringify(r.cpusetCpus)} is not a CPU list such as 0-2,4`);
  }
  for (const [k, v] of Object.entries(spec.labels ?? {})) if (k === '') problems.push(`labels: empty key (value ${JSON.stringify(v)})`);
  for (const e of spec.env ?? []) if (e === '' || e.startsWith('=')) problems.push(`env: ${JSON.stringify(e)} is not KEY=value`);
  (spec.mounts ?? []).forEach((m, i) => checkMount(m, i, problems));
  const targets = (spec.mounts ?? []).map((m) => m.target.replace(/\/+$/, ''));
  for (const t of targets) if (targets.indexOf(t) !== targets.lastIndexOf(t)) problems.push(`mounts: duplicate mount point ${t}`);
  problems.push(...checkCaps('cap-add', spec.capAdd ?? []), ...checkCaps('cap-drop', spec.capDrop ?? []));
  for (const u of spec.ulimits ?? []) {
    if (!isUlimitName(u.name)) problems.push(`ulimit: unknown resource ${JSON.stringify(u.name)}`);
    if (u.soft > u.hard) problems.push(`ulimit ${u.name}: soft limit ${u.soft} exceeds hard limit ${u.hard}`);
  }
  if (spec.stopSignal !== undefined && signalNumber(spec.stopSignal) === undefined) problems.push(`stop-signal: unknown signal ${JSON.stringify(spec.stopSignal)}`);
  if (spec.stopTimeoutSeconds !== undefined && (!Number.isInteger(spec.stopTimeoutSeconds) || spec.stopTimeoutSeconds < -1)) problems.push('stop-timeout: expected whole seconds');
  const rp = spec.restartPolicy;
  if (rp) {
    if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(rp.name)) problems.push(`restart: unknown policy ${JSON.stringify(rp.name)} (no, always, on-failure[:N], unless-stopped)`);
    if (rp.maximumRetryCount !== undefined && rp.name !== 'on-failure') problems.push('restart: a retry count is only valid with on-failure');
    if (rp.maximumRetryCount !== undefined && (!Number.isInteger(rp.maximumRetryCount) || rp.maximumRetryCount < 0)) problems.push('restart: the retry count must be a non-negative integer');
  }
  if (spec.autoRemove && rp && rp.name !== 'no') problems.push('--rm and a restart policy other than "no" conflict');
  if (spec.user === '') problems.push('user: empty');
  if (spec.workingDir !== undefined && !spec.workingDir.startsWith('/')) problems.push(`workdir: expected an absolute path, got ${JSON.stringify(spec.workingDir)}`);
  for (const [k] of Object.entries(spec.sysctls ?? {})) {
    const ok = k.startsWith('net.') || k.startsWith('kernel.msg') || k.startsWith('kernel.sem') || k.startsWith('kernel.shm') || k.startsWith('fs.mqueue.') || k === 'kernel.domainname';
    if (!ok) problems.push(`sysctl: ${k} is not namespaced (allowed: net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)`);
  }
  const mode = spec.networkMode;
  if (mode === 'host' && spec.ports && spec.ports.length > 0) problems.push('ports: cannot publish ports with --network host');
  problems.push(...checkNetworking(spec));
  if (spec.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(spec.hostname)) problems.push(`hostname: ${JSON.stringify(spec.hostname)} is not a valid hostname`);
  for (const d of spec.devices ?? []) {
    if (!/^[rwm]+$/.test(d.permissions)) problems.push(`device ${d.hostPath}: permissions ${JSON.stringify(d.permissions)} must be made of r, w, m`);
    if (!d.containerPath.startsWith('/')) problems.push(`device ${d.hostPath}: container path must be absolute`);
  }
  if (problems.length > 0) fail(invalidSpec('container spec', problems));
  return {
    ...spec,
    ...(name !== undefined ? { name } : {}),
    restartPolicy: spec.restartPolicy ?? { name: 'no' },
    networkMode: spec.networkMode ?? 'bridge',
  };
};
