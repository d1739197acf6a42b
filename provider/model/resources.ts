/**
 * The four stack resources, as io-ts codecs for Berth's desired-state files
 * and as the normalized types every source (TypeScript, YAML/JSON, Compose)
 * decodes to.
 *
 * A resource is named by its key inside the stack (`containers.web`); the
 * engine objects get deterministic names from the stack name (see
 * `engineName`), so that creates are idempotent and a stack can be found.
 */
import * as t from 'io-ts';
import type {
  HealthcheckSpec, MountSpec, PortSpec, ResourceSpec, RestartPolicy, UlimitSpec,
} from '../../engine/engine.js';
import { Expected, expect, bool, byShape, dict, int, list, literal, mapped, nonEmpty, num, parsed, str, strict } from './decode.js';
import { parseBytes, parseDurationMs, parsePortString, parseRestart, shellSplit } from './units.js';

/* ------------------------------------------------------- normalized types */

export type ImageSource =
  /** Pulled from a registry (`pull: always` re-resolves the tag on every apply). */
  | { readonly kind: 'registry'; readonly ref: string; readonly pull: 'missing' | 'always' }
  /** Built from a local context (Dockerfile). */
  | { readonly kind: 'build'; readonly ref: string; readonly context: string; readonly dockerfile?: string; readonly args?: Readonly<Record<string, string>> }
  /** Loaded from an image archive (`docker save` / OCI layout tarball). */
  | { readonly kind: 'archive'; readonly ref: string; readonly path: string }
  /** Imported from a root filesystem tarball (offline), as `docker import`. */
  | { readonly kind: 'import'; readonly ref: string; readonly tarball: string; readonly config?: ImportConfig };

export interface ImportConfig {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
}

export type ImageResource = ImageSource;

export interface NetworkResource {
  readonly subnet?: string;
  readonly gateway?: string;
  readonly ipRange?: string;
  readonly internal?: boolean;
  readonly labels: Readonly<Record<string, string>>;
}

export interface VolumeResource {
  readonly labels: Readonly<Record<string, string>>;
  readonly options: Readonly<Record<string, string>>;
}

export type DependCondition = 'started' | 'healthy' | 'completed';

/** A mount; a volume mount's `source` names a volume of the stack (by key). */
export type StackMount = MountSpec;

export interface ContainerResource {
  /** A key of the stack's `images`, or an image reference used as is. */
  readonly image: string;
  readonly entrypoint?: readonly string[];
  readonly command?: readonly string[];
  readonly env: readonly string[];
  readonly workingDir?: string;
  readonly user?: string;
  readonly hostname?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly readOnlyRootfs?: boolean;
  readonly mounts: readonly StackMount[];
  readonly ports: readonly PortSpec[];
  readonly capAdd: readonly string[];
  readonly capDrop: readonly string[];
  readonly privileged?: boolean;
  readonly resources: ResourceSpec;
  readonly restart: RestartPolicy;
  readonly healthcheck?: HealthcheckSpec;
  /** "none" or "host" instead of networks (no stack networks then). */
  readonly networkMode?: 'none' | 'host';
  /** Stack networks by key, with aliases. Empty: the engine's default network. */
  readonly networks: Readonly<Record<string, { readonly aliases: readonly string[]; readonly ipv4Address?: string }>>;
  readonly dependsOn: Readonly<Record<string, DependCondition>>;
  readonly stopSignal?: string;
  readonly stopTimeoutSeconds?: number;
  readonly init?: boolean;
  readonly tty?: boolean;
  readonly sysctls?: Readonly<Record<string, string>>;
  readonly ulimits?: readonly UlimitSpec[];
  readonly security?: { readonly seccomp?: string; readonly noNewPrivileges?: boolean };
}

/* --------------------------------------------------------- shared codecs */

const nameRe = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
export const resourceKey = { test: (k: string) => nameRe.test(k), expected: 'a name of letters, digits, "_", "." and "-" (max 63), starting with a letter or digit' };

export const stringList = list(str);

/** A command: a list of words, or a string split like a shell would. */
export const command = byShape<string[]>('command', 'a list of words or a command string', {
  list: stringList,
  string: parsed('command string', (u): u is string[] => Array.isArray(u), (u) => shellSplit(u as string)),
});

const scalarString = byShape<string>('string', 'a string, number or boolean', {
  string: str,
  number: mapped(num(-Infinity), 'number', (n) => String(n)),
  boolean: mapped(bool, 'boolean', (b) => String(b)),
});

/** Environment: a mapping (values may be numbers or booleans) or a list of KEY=value. */
export const environment = byShape<string[]>('environment', 'a mapping or a list of KEY=value', {
  mapping: mapped(dict(byShape<string | null>('value', 'a string, number, boolean or nothing', {
    string: str, number: mapped(num(-Infinity), 'n', String), boolean: mapped(bool, 'b', String),
  })), 'environment', (m) => Object.entries(m).map(([k, v]) => `${k}=${v ?? ''}`)),
  list: mapped(stringList, 'environment list', (l) =>
    l.every((e) => /^[^=\s]+(=|$)/.test(e)) ? l : expect('entries of the form KEY=value')),
});

export const labels = byShape<Record<string, string>>('labels', 'a mapping or a list of key=value', {
  mapping: dict(scalarString),
  list: mapped(stringList, 'labels list', (l) => {
    const out: Record<string, string> = {};
    for (const e of l) {
      const i = e.indexOf('=');
      if (i <= 0) return expect('entries of the form key=value');
      out[e.slice(0, i)] = e.slice(i + 1);
    }
    return out;
  }),
});

export const bytes = parsed('size', (u): u is number => typeof u === 'number', parseBytes);
export const duration = parsed('duration', (u): u is number => typeof u === 'number', parseDurationMs);
export const restart = parsed('restart policy', (u): u is RestartPolicy => typeof u === 'object', parseRestart);

const portObject = strict('port', { containerPort: int(1, 65535) }, {
  hostPort: int(1, 65535), protocol: literal('tcp', 'udp'), hostIp: nonEmpty,
});
export const port = byShape<PortSpec>('port', 'a port string such as "8080:80" or a mapping', {
  string: parsed('port string', (u): u is PortSpec => typeof u === 'object', (u) => parsePortString(u as string)),
  number: mapped(int(1, 65535), 'port number', (n) => ({ containerPort: n, protocol: 'tcp' as const })),
  mapping: mapped(portObject, 'port', (p) => ({ ...p, protocol: p.protocol ?? 'tcp' })),
});

const mountObject = strict('mount', { type: literal('volume', 'bind', 'tmpfs'), target: nonEmpty }, {
  source: nonEmpty, readOnly: bool, size: bytes, mode: int(0, 0o7777),
  propagation: literal('private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'),
});
export const mount = byShape<MountSpec>('mount', 'a mount such as "data:/var/lib/data:ro" or a mapping', {
  string: parsed('mount string', (u): u is MountSpec => typeof u === 'object', (u) => parseMountString(u as string)),
  mapping: mapped(mountObject, 'mount', (m): MountSpec | Expected => {
    if (!m.target.startsWith('/')) return expect('an absolute target path');
    if (m.type === 'bind') {
      if (m.source === undefined) return expect('a bind mount with a source');
      return { type: 'bind', source: m.source, target: m.target, ...(m.readOnly ? { readOnly: true } : {}), ...(m.propagation ? { propagation: m.propagation } : {}) };
    }
    if (m.type === 'tmpfs') {
      return { type: 'tmpfs', target: m.target, ...(m.size !== undefined ? { sizeBytes: m.size } : {}), ...(m.mode !== undefined ? { mode: m.mode } : {}), ...(m.readOnly ? { readOnly: true } : {}) };
    }
    return { type: 'volume', target: m.target, ...(m.source !== undefined ? { source: m.source } : {}), ...(m.readOnly ? { readOnly: true } : {}) };
  }),
});

/** "volume:/target[:ro]", "/host/path:/target[:ro]", "/anonymous-target". */
export const parseMountString = (s: string): MountSpec | Expected => {
  const parts = s.split(':');
  const exp = expect('a mount such as "data:/var/lib/data", "./dir:/srv:ro" or "/target"');
  if (parts.length === 1) return parts[0]!.startsWith('/') ? { type: 'volume', target: parts[0]! } : exp;
  if (parts.length > 3) return exp;
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (!target.startsWith('/') || source === '') return exp;
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return expect('mode ro or rw');
  const ro = mode === 'ro' ? { readOnly: true } : {};
  if (source.startsWith('/') || source.startsWith('.') || source.startsWith('~')) return { type: 'bind', source, target, ...ro };
  return { type: 'volume', source, target, ...ro };
};

export const healthTest = byShape<string[]>('healthcheck test', 'a command string or a list ["CMD", ...] / ["CMD-SHELL", "..."] / ["NONE"]', {
  string: mapped(str, 'test', (s) => ['CMD-SHELL', s]),
  list: mapped(stringList, 'test list', (l) =>
    l[0] === 'CMD' || l[0] === 'CMD-SHELL' || l[0] === 'NONE' ? l : expect('a list starting with "CMD", "CMD-SHELL" or "NONE"')),
});

const healthcheckObject = strict('healthcheck', { test: healthTest }, {
  interval: duration, timeout: duration, retries: int(0, 1_000_000), startPeriod: duration,
});
export const toHealthcheck = (h: t.TypeOf<typeof healthcheckObject>): HealthcheckSpec => ({
  test: h.test,
  ...(h.interval !== undefined ? { intervalMs: h.interval } : {}),
  ...(h.timeout !== undefined ? { timeoutMs: h.timeout } : {}),
  ...(h.retries !== undefined ? { retries: h.retries } : {}),
  ...(h.startPeriod !== undefined ? { startPeriodMs: h.startPeriod } : {}),
});

const networkAttachment = strict('network attachment', {}, { aliases: stringList, ipv4Address: nonEmpty });
export const containerNetworks = byShape<Record<string, { aliases: string[]; ipv4Address?: string }>>('networks', 'a list of network names or a mapping', {
  list: mapped(stringList, 'networks', (l) => Object.fromEntries(l.map((n) => [n, { aliases: [] }]))),
  mapping: mapped(dict(networkAttachment, resourceKey), 'networks', (m) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { aliases: v.aliases ?? [], ...(v.ipv4Address ? { ipv4Address: v.ipv4Address } : {}) }]))),
});

const conditionCodec = mapped(literal('started', 'healthy', 'completed', 'service_started', 'service_healthy', 'service_completed_successfully'),
  'condition', (c): DependCondition => c === 'service_started' ? 'started' : c === 'service_healthy' ? 'healthy' : c === 'service_completed_successfully' ? 'completed' : c);
export const dependsOn = byShape<Record<string, DependCondition>>('dependsOn', 'a list of container names or a mapping name -> {condition}', {
  list: mapped(stringList, 'dependsOn', (l) => Object.fromEntries(l.map((n) => [n, 'started' as const]))),
  mapping: mapped(dict(strict('dependency', {}, { condition: conditionCodec })), 'dependsOn', (m) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.condition ?? 'started' as const]))),
});

const capName = mapped(nonEmpty, 'capability', (c) => {
  const up = c.toUpperCase().replace(/^CAP_/, '');
  return /^[A-Z_]+$/.test(up) ? up : expect('a capability name such as NET_ADMIN');
});

/* ---------------------------------------------------- Berth's own format */

const importConfig = strict('image config', {}, {
  entrypoint: command, cmd: command, env: environment, workingDir: nonEmpty, user: nonEmpty,
});
const buildCodec = byShape<{ context: string; dockerfile?: string; args?: Record<string, string> }>('build', 'a context directory or a mapping', {
  string: mapped(nonEmpty, 'context', (c) => ({ context: c })),
  mapping: strict('build', { context: nonEmpty }, { dockerfile: nonEmpty, args: dict(scalarString) }),
});

/** `images.<key>`: `ref` and at most one of `import`, `archive`, `build`. */
export const ImageDoc = mapped(
  strict('image', { ref: nonEmpty }, { import: nonEmpty, archive: nonEmpty, build: buildCodec, pull: literal('missing', 'always'), config: importConfig }),
  'image',
  (d): ImageResource | Expected => {
    const sources = [d.import, d.archive, d.build].filter((x) => x !== undefined).length;
    if (sources > 1) return expect('at most one of import, archive, build');
    if (d.config !== undefined && d.import === undefined) return expect('`config` only with `import`');
    if (d.pull !== undefined && sources > 0) return expect('`pull` only for registry images (no import, archive or build)');
    if (d.import !== undefined) return { kind: 'import', ref: d.ref, tarball: d.import, ...(d.config ? { config: d.config } : {}) };
    if (d.archive !== undefined) return { kind: 'archive', ref: d.ref, path: d.archive };
    if (d.build !== undefined) return { kind: 'build', ref: d.ref, ...d.build };
    return { kind: 'registry', ref: d.ref, pull: d.pull ?? 'missing' };
  },
);

export const NetworkDoc = mapped(
  strict('network', {}, { subnet: nonEmpty, gateway: nonEmpty, ipRange: nonEmpty, internal: bool, labels }),
  'network',
  (d): NetworkResource => ({
    labels: d.labels ?? {},
    ...(d.subnet ? { subnet: d.subnet } : {}), ...(d.gateway ? { gateway: d.gateway } : {}),
    ...(d.ipRange ? { ipRange: d.ipRange } : {}), ...(d.internal ? { internal: true } : {}),
  }),
);

export const VolumeDoc = mapped(
  strict('volume', {}, { labels, options: dict(scalarString) }),
  'volume',
  (d): VolumeResource => ({ labels: d.labels ?? {}, options: d.options ?? {} }),
);

const resourcesCodec = strict('resources', {}, {
  memory: bytes, memorySwap: byShape<number>('memorySwap', 'a size or -1', { number: mapped(num(-1), 'n', (n) => n === -1 ? -1 : Math.round(n)), string: bytes }),
  memoryReservation: bytes, cpus: num(0), cpuShares: int(2, 262144), cpusetCpus: nonEmpty, cpusetMems: nonEmpty,
  pidsLimit: int(-1, 4_194_304), blkioWeight: int(10, 1000),
});

const ulimitCodec = strict('ulimit', { name: nonEmpty, soft: int(-1, Number.MAX_SAFE_INTEGER), hard: int(-1, Number.MAX_SAFE_INTEGER) }, {});

export const ContainerDoc = mapped(
  strict('container', { image: nonEmpty }, {
    entrypoint: command, command, env: environment, workingDir: nonEmpty, user: nonEmpty, hostname: nonEmpty,
    labels, readOnlyRootfs: bool, mounts: list(mount), ports: list(port), capAdd: list(capName), capDrop: list(capName),
    privileged: bool, resources: resourcesCodec, restart, healthcheck: healthcheckObject, networks: containerNetworks, networkMode: literal('none', 'host'),
    dependsOn, stopSignal: nonEmpty, stopTimeout: int(0, 86400), init: bool, tty: bool, sysctls: dict(scalarString),
    ulimits: list(ulimitCodec),
    security: strict('security', {}, { seccomp: nonEmpty, noNewPrivileges: bool }),
  }),
  'container',
  (d): ContainerResource => ({
    image: d.image,
    ...(d.entrypoint ? { entrypoint: d.entrypoint } : {}),
    ...(d.command ? { command: d.command } : {}),
    env: d.env ?? [],
    ...(d.workingDir ? { workingDir: d.workingDir } : {}),
    ...(d.user ? { user: d.user } : {}),
    ...(d.hostname ? { hostname: d.hostname } : {}),
    labels: d.labels ?? {},
    ...(d.readOnlyRootfs ? { readOnlyRootfs: true } : {}),
    mounts: d.mounts ?? [],
    ports: d.ports ?? [],
    capAdd: d.capAdd ?? [],
    capDrop: d.capDrop ?? [],
    ...(d.privileged ? { privileged: true } : {}),
    resources: d.resources ?? {},
    restart: d.restart ?? { name: 'no' },
    ...(d.healthcheck ? { healthcheck: toHealthcheck(d.healthcheck) } : {}),
    networks: d.networks ?? {},
    ...(d.networkMode ? { networkMode: d.networkMode } : {}),
    dependsOn: d.dependsOn ?? {},
    ...(d.stopSignal ? { stopSignal: d.stopSignal } : {}),
    ...(d.stopTimeout !== undefined ? { stopTimeoutSeconds: d.stopTimeout } : {}),
    ...(d.init ? { init: true } : {}),
    ...(d.tty ? { tty: true } : {}),
    ...(d.sysctls ? { sysctls: d.sysctls } : {}),
    ...(d.ulimits ? { ulimits: d.ulimits } : {}),
    ...(d.security ? { security: d.security } : {}),
  }),
);

/** One Berth desired-state document (a file; a directory merges several). */
export const StackDoc = strict('stack document', {}, {
  stack: mapped(nonEmpty, 'stack name', (s) => (/^[a-z0-9][a-z0-9_-]{0,40}$/.test(s) ? s : expect('a stack name of lower-case letters, digits, "_" and "-" (max 41)'))),
  images: dict(ImageDoc, resourceKey),
  networks: dict(NetworkDoc, resourceKey),
  volumes: dict(VolumeDoc, resourceKey),
  containers: dict(ContainerDoc, resourceKey),
});
export type StackDoc = t.TypeOf<typeof StackDoc>;
