/**
 * From a Stack to what the engine is asked for: engine names, engine specs
 * with ownership labels, and the "core" of each spec (what cannot change in
 * place, hashed into berth.spec-hash). Pure.
 */
import type {
  ContainerSpec, HealthcheckSpec, NetworkSpec, ResourceSpec, RestartPolicy, VolumeSpec,
} from '../../engine/engine.js';
import type { DependCondition, ImageResource } from '../model/resources.js';
import { containerName, imageRefOf, networkName, volumeName, type Stack } from '../model/stack.js';
import { DEPENDS_ON, ownershipLabels, specHash } from './labels.js';

export interface DesiredImage {
  readonly key: string;
  readonly source: ImageResource;
  /** Hash of what makes the image: the source file's digest (import/archive) and config. */
  readonly hash: string;
}

export interface DesiredNetwork { readonly key: string; readonly spec: NetworkSpec; readonly core: unknown }
export interface DesiredVolume { readonly key: string; readonly spec: VolumeSpec; readonly core: unknown }

export interface DesiredContainer {
  readonly key: string;
  /** The spec to create (name and image ref included; networks by engine name). */
  readonly spec: ContainerSpec;
  /** Fields that force a replacement when they change. */
  readonly core: Record<string, unknown>;
  /** Key of the stack image it runs, if it is one. */
  readonly imageKey?: string;
  readonly imageRef: string;
  readonly resources: ResourceSpec;
  readonly restartPolicy: RestartPolicy;
  /** Engine network name -> aliases and address. */
  readonly networks: Readonly<Record<string, { readonly aliases: readonly string[]; readonly ipv4Address?: string }>>;
  readonly dependsOn: Readonly<Record<string, DependCondition>>;
  readonly healthcheck?: HealthcheckSpec;
  /** Volume keys it mounts. */
  readonly volumes: readonly string[];
  /** True when a fixed host port or fixed name forces delete-before-create on replace. */
  readonly fixedHostPorts: boolean;
}

export interface Desired {
  readonly stack: string;
  readonly images: Readonly<Record<string, DesiredImage>>;
  readonly networks: Readonly<Record<string, DesiredNetwork>>;
  readonly volumes: Readonly<Record<string, DesiredVolume>>;
  readonly containers: Readonly<Record<string, DesiredContainer>>;
}

/** `sourceDigests`: per image key, the digest of its source file (import/archive), read by the caller. */
export const desiredState = (stack: Stack, sourceDigests: Readonly<Record<string, string>> = {}): Desired => {
  const s = stack.name;
  const images: Record<string, DesiredImage> = {};
  for (const [key, img] of Object.entries(stack.images)) {
    const hashInput = { ...img, file: sourceDigests[key] ?? '' };
    images[key] = { key, source: img, hash: specHash(hashInput) };
  }
  const networks: Record<string, DesiredNetwork> = {};
  for (const [key, n] of Object.entries(stack.networks)) {
    const core = { driver: 'bridge', subnet: n.subnet, gateway: n.gateway, ipRange: n.ipRange, internal: n.internal, labels: n.labels };
    networks[key] = {
      key, core,
      spec: {
        name: networkName(s, key), driver: 'bridge',
        ...(n.subnet ? { subnet: n.subnet } : {}), ...(n.gateway ? { gateway: n.gateway } : {}),
        ...(n.ipRange ? { ipRange: n.ipRange } : {}), ...(n.internal ? { internal: true } : {}),
        labels: { ...n.labels, ...ownershipLabels({ stack: s, kind: 'network', key }, core) },
      },
    };
  }
  const volumes: Record<string, DesiredVolume> = {};
  for (const [key, v] of Object.entries(stack.volumes)) {
    const core = { driver: 'local', options: v.options, labels: v.labels };
    volumes[key] = {
      key, core,
      spec: {
        name: volumeName(s, key), driver: 'local', options: v.options,
        labels: { ...v.labels, ...ownershipLabels({ stack: s, kind: 'volume', key }, core) },
      },
    };
  }
  const containers: Record<string, DesiredContainer> = {};
  for (const [key, c] of Object.entries(stack.containers)) {
    const imageRef = imageRefOf(stack, c);
    const imageKey = c.image in stack.images ? c.image : undefined;
    const nets: Record<string, { aliases: string[]; ipv4Address?: string }> = {};
    for (const [nk, a] of Object.entries(c.networks)) {
      // Each container is reachable by its key on every network it joins (as Compose services are).
      nets[networkName(s, nk)] = { aliases: [...new Set([key, ...a.aliases])], ...(a.ipv4Address ? { ipv4Address: a.ipv4Address } : {}) };
    }
    const mounts = c.mounts.map((m) => (m.type === 'volume' && m.source !== undefined ? { ...m, source: volumeName(s, m.source) } : m));
    const ports = [...c.ports].sort((a, b) => portKey(a).localeCompare(portKey(b)));
    const body = {
      image: imageRef,
      entrypoint: c.entrypoint, command: c.command, env: c.env, workingDir: c.workingDir, user: c.user,
      hostname: c.hostname, readOnlyRootfs: c.readOnlyRootfs, mounts,
      capAdd: [...c.capAdd].sort(), capDrop: [...c.capDrop].sort(), privileged: c.privileged,
      ulimits: c.ulimits, sysctls: c.sysctls, stopSignal: c.stopSignal, stopTimeoutSeconds: c.stopTimeoutSeconds,
      init: c.init, tty: c.tty, healthcheck: c.healthcheck, ports, security: c.security,
    };
    const defaultNetwork = Object.keys(nets).length === 0 && c.networkMode === undefined;
    const core: Record<string, unknown> = { ...body, labels: c.labels, defaultNetwork, networkMode: c.networkMode };
    const restartPolicy: RestartPolicy = c.restart.name === 'on-failure' && c.restart.maximumRetryCount
      ? { name: 'on-failure', maximumRetryCount: c.restart.maximumRetryCount } : { name: c.restart.name };
    const dependsOn = Object.keys(c.dependsOn).sort().join(',');
    const firstNet = Object.keys(nets)[0];
    const spec = canonicalSpec({
      ...body,
      name: containerName(s, key),
      labels: { ...c.labels, ...ownershipLabels({ stack: s, kind: 'container', key }, core, dependsOn ? { [DEPENDS_ON]: dependsOn } : {}) },
      resources: c.resources,
      restartPolicy,
      ...(firstNet !== undefined ? { networkMode: firstNet, networks: nets } : c.networkMode !== undefined ? { networkMode: c.networkMode } : {}),
    });
    containers[key] = {
      key, spec, core, imageRef, ...(imageKey !== undefined ? { imageKey } : {}),
      resources: c.resources, restartPolicy, networks: nets, dependsOn: c.dependsOn,
      ...(c.healthcheck ? { healthcheck: c.healthcheck } : {}),
      volumes: c.mounts.flatMap((m) => (m.type === 'volume' && m.source !== undefined ? [m.source] : [])),
      fixedHostPorts: c.ports.some((p) => p.hostPort !== undefined),
    };
  }
  return { stack: s, images, networks, volumes, containers };
};

const portKey = (p: { containerPort: number; protocol: string; hostPort?: number; hostIp?: string }): string =>
  `${p.protocol}/${String(p.containerPort).padStart(5, '0')}/${p.hostIp ?? ''}/${p.hostPort ?? ''}`;

/** A spec without undefined fields (the engine's inputs are plain JSON). */
const canonicalSpec = (spec: ContainerSpec): ContainerSpec =>
  Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as unknown as ContainerSpec;
