/**
 * Compose files (compose-spec) as an input format: translated into a Stack.
 *
 * Supported service keys are the ones Berth can honour; every other key of
 * the spec is an error naming it ("not supported by Berth"), never ignored.
 * Translation follows `docker compose up -d`: project networks/volumes are
 * named `<project>_<name>`, a service without `networks` joins `default`,
 * each service is reachable by its name on the networks it joins.
 *
 * Offline images: the top-level extension `x-berth-images` maps an image
 * reference to how it is made (`import: rootfs.tar`, `archive: image.tar`),
 * with the same keys as `images.<key>` in Berth's own files.
 */
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';
import type { MountSpec, PortSpec } from '../../engine/engine.js';
import {
  Expected, expect, bool, byShape, decodeWith, dict, int, list, literal, mapped, nonEmpty, num, parsed, str, strict,
} from './decode.js';
import {
  ImageDoc, bytes, command, dependsOn, duration, environment, healthTest, labels, resourceKey, restart,
  type ContainerResource, type ImageResource, type NetworkResource, type VolumeResource,
} from './resources.js';
import type { Stack } from './stack.js';
import { parseMountString } from './resources.js';
import { parseDurationMs, parsePortString } from './units.js';

const unsupportedServiceKeys: Record<string, string> = Object.fromEntries([
  'annotations', 'attach', 'blkio_config', 'cgroup', 'cgroup_parent', 'configs', 'container_name', 'cpu_count', 'cpu_percent',
  'cpu_period', 'cpu_quota', 'cpu_rt_period', 'cpu_rt_runtime', 'cpus', 'cpuset', 'cpu_shares', 'credential_spec', 'develop',
  'device_cgroup_rules', 'devices', 'dns', 'dns_opt', 'dns_search', 'domainname', 'driver_opts', 'expose', 'extends',
  'external_links', 'extra_hosts', 'gpus', 'group_add', 'ipc', 'isolation', 'links', 'logging', 'mac_address',
  'mem_limit', 'mem_reservation', 'mem_swappiness', 'memswap_limit', 'models', 'oom_kill_disable',
  'oom_score_adj', 'pid', 'pids_limit', 'platform', 'post_start', 'pre_stop', 'profiles', 'provider', 'pull_policy',
  'runtime', 'scale', 'secrets', 'security_opt', 'shm_size', 'stdin_open', 'storage_opt', 'use_api_socket', 'userns_mode',
  'uts', 'volumes_from', 'label_file', 'ulimits',
].map((k) => [k, k === 'container_name' ? 'Berth names containers <project>-<service>' : k === 'mem_limit' || k === 'cpus' || k === 'pids_limit' ? 'use deploy.resources.limits' : '']));

const composePort = byShape<PortSpec>('port', 'a port such as "8080:80" or a mapping with target', {
  string: parsed('port', (u): u is PortSpec => typeof u === 'object', (u) => parsePortString(u as string)),
  number: mapped(int(1, 65535), 'port', (n) => ({ containerPort: n, protocol: 'tcp' as const })),
  mapping: mapped(strict('port', { target: int(1, 65535) }, {
    published: byShape<number>('published', 'a host port 1-65535', {
      number: int(1, 65535),
      string: parsed('published', (u): u is number => typeof u === 'number', (u) =>
        /^\d+$/.test(u as string) && Number(u) >= 1 && Number(u) <= 65535 ? Number(u) : expect('a host port 1-65535 (ranges are not supported by Berth)')),
    }),
    host_ip: nonEmpty, protocol: literal('tcp', 'udp'), mode: literal('host', 'ingress'), name: str, app_protocol: str,
  }), 'port', (p) => ({
    containerPort: p.target, protocol: p.protocol ?? 'tcp',
    ...(p.published !== undefined ? { hostPort: p.published } : {}), ...(p.host_ip ? { hostIp: p.host_ip } : {}),
  })),
});

const composeVolumeMount = byShape<MountSpec>('volume', 'a mount such as "data:/var/lib/data" or a mapping', {
  string: parsed('volume', (u): u is MountSpec => typeof u === 'object', (u) => parseMountString(u as string)),
  mapping: mapped(strict('volume', { type: literal('volume', 'bind', 'tmpfs'), target: nonEmpty }, {
    source: nonEmpty, read_only: bool,
    volume: strict('volume options', {}, { nocopy: bool }, { unsupported: { subpath: '' } }),
    bind: strict('bind options', {}, { propagation: literal('private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave'), create_host_path: bool }, { unsupported: { selinux: '' } }),
    tmpfs: strict('tmpfs options', {}, { size: bytes, mode: int(0, 0o7777) }),
  }, { unsupported: { consistency: '' } }), 'volume', (v): MountSpec | Expected => {
    const ro = v.read_only ? { readOnly: true } : {};
    if (v.type === 'bind') {
      if (!v.source) return expect('a bind mount with a source');
      return { type: 'bind', source: v.source, target: v.target, ...ro, ...(v.bind?.propagation ? { propagation: v.bind.propagation } : {}) };
    }
    if (v.type === 'tmpfs') {
      return { type: 'tmpfs', target: v.target, ...(v.tmpfs?.size !== undefined ? { sizeBytes: v.tmpfs.size } : {}), ...(v.tmpfs?.mode !== undefined ? { mode: v.tmpfs.mode } : {}) };
    }
    return { type: 'volume', target: v.target, ...(v.source ? { source: v.source } : {}), ...ro, ...(v.volume?.nocopy ? { noCopy: true } : {}) };
  }),
});

const composeNetworks = byShape<Record<string, { aliases: string[]; ipv4Address?: string }>>('networks', 'a list of network names or a mapping', {
  list: mapped(list(nonEmpty), 'networks', (l) => Object.fromEntries(l.map((n) => [n, { aliases: [] }]))),
  mapping: mapped(dict(strict('network attachment', {}, { aliases: list(str), ipv4_address: nonEmpty }, { unsupported: { ipv6_address: '', link_local_ips: '', mac_address: '', priority: '', driver_opts: '', gw_priority: '' } })),
    'networks', (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { aliases: v.aliases ?? [], ...(v.ipv4_address ? { ipv4Address: v.ipv4_address } : {}) }]))),
});

const composeDependsOn = byShape<Record<string, 'started' | 'healthy' | 'completed'>>('depends_on', 'a list of service names or a mapping', {
  list: dependsOn,
  mapping: mapped(dict(strict('dependency', { condition: literal('service_started', 'service_healthy', 'service_completed_successfully') }, { restart: bool, required: bool })),
    'depends_on', (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k,
      v.condition === 'service_healthy' ? 'healthy' as const : v.condition === 'service_completed_successfully' ? 'completed' as const : 'started' as const]))),
});

const composeHealthcheck = strict('healthcheck', {}, {
  test: healthTest, interval: duration, timeout: duration, retries: int(0, 1_000_000), start_period: duration, start_interval: duration, disable: bool,
});

const composeDeploy = strict('deploy', {}, {
  resources: strict('resources', {}, {
    limits: strict('limits', {}, { cpus: byShape<number>('cpus', 'a number of CPUs', { number: num(0), string: parsed('cpus', (u): u is number => typeof u === 'number', (u) => /^\d+(\.\d+)?$/.test(u as string) ? Number(u) : expect('a number of CPUs')) }), memory: bytes, pids: int(-1, 4_194_304) }, { unsupported: { devices: '' } }),
    reservations: strict('reservations', {}, { memory: bytes }, { unsupported: { cpus: 'CPU reservations', devices: '', generic_resources: '' } }),
  }),
}, { unsupported: { mode: '', replicas: 'one container per service', placement: '', restart_policy: 'use restart', rollback_config: '', update_config: '', endpoint_mode: '', labels: 'use labels' } });

const composeBuild = byShape<{ context: string; dockerfile?: string; args?: Record<string, string> }>('build', 'a context directory or a mapping', {
  string: mapped(nonEmpty, 'context', (c) => ({ context: c })),
  mapping: mapped(strict('build', {}, { context: nonEmpty, dockerfile: nonEmpty, args: environment }, {
    unsupported: Object.fromEntries(['additional_contexts', 'cache_from', 'cache_to', 'dockerfile_inline', 'entitlements', 'extra_hosts', 'isolation', 'labels', 'network', 'no_cache', 'platforms', 'privileged', 'pull', 'secrets', 'ssh', 'shm_size', 'tags', 'target', 'ulimits'].map((k) => [k, ''])),
  }), 'build', (b) => ({
    context: b.context ?? '.', ...(b.dockerfile ? { dockerfile: b.dockerfile } : {}),
    ...(b.args ? { args: Object.fromEntries(b.args.map((a) => [a.split('=')[0]!, a.slice(a.indexOf('=') + 1)])) } : {}),
  })),
});

const composeService = strict('service', {}, {
  image: nonEmpty, build: composeBuild, command, entrypoint: command, environment, env_file: byShape<string[]>('env_file', 'a path or a list of paths', {
    string: mapped(nonEmpty, 'env_file', (s) => [s]), list: list(nonEmpty),
  }),
  ports: list(composePort), volumes: list(composeVolumeMount), networks: composeNetworks, depends_on: composeDependsOn,
  network_mode: mapped(str, 'network_mode', (m) => (m === 'none' || m === 'host' ? m : expect('"none" or "host" (Berth supports no other network_mode)'))),
  healthcheck: composeHealthcheck, restart, deploy: composeDeploy, labels, user: nonEmpty, working_dir: nonEmpty,
  cap_add: list(nonEmpty), cap_drop: list(nonEmpty), read_only: bool,
  tmpfs: byShape<string[]>('tmpfs', 'a path or a list of paths', { string: mapped(nonEmpty, 'tmpfs', (s) => [s]), list: list(nonEmpty) }),
  hostname: nonEmpty, init: bool, tty: bool, privileged: bool, stop_signal: nonEmpty, stop_grace_period: duration, sysctls: dict(str),
}, { unsupported: unsupportedServiceKeys, ignore: (k) => k.startsWith('x-') });

const composeNetwork = strict('network', {}, {
  driver: literal('bridge'), internal: bool, labels, name: nonEmpty,
  ipam: strict('ipam', {}, { driver: literal('default'), config: list(strict('ipam config', {}, { subnet: nonEmpty, gateway: nonEmpty, ip_range: nonEmpty }, { unsupported: { aux_addresses: '' } })) }, { unsupported: { options: '' } }),
}, { unsupported: { external: 'Berth manages only the networks a stack declares', driver_opts: '', attachable: '', enable_ipv6: '', enable_ipv4: '' }, ignore: (k) => k.startsWith('x-') });

const composeVolume = strict('volume', {}, { driver: literal('local'), driver_opts: dict(str), labels, name: nonEmpty },
  { unsupported: { external: 'Berth manages only the volumes a stack declares' }, ignore: (k) => k.startsWith('x-') });

const orEmpty = <A>(c: t.Type<A, unknown, unknown>): t.Type<A | Record<string, never>, unknown, unknown> =>
  new t.Type<A | Record<string, never>, unknown, unknown>(c.name, (u): u is A => c.is(u), (u, ctx) => (u === null ? t.success({}) : c.validate(u, ctx)), t.identity);

export const ComposeFile = strict('compose file', { services: dict(composeService, resourceKey) }, {
  name: mapped(nonEmpty, 'project name', (s) => (/^[a-z0-9][a-z0-9_-]*$/.test(s) ? s : expect('a project name of lower-case letters, digits, "_" and "-"'))),
  version: str, // obsolete in compose-spec, accepted and unused as by docker compose
  networks: dict(orEmpty(composeNetwork), resourceKey),
  volumes: dict(orEmpty(composeVolume), resourceKey),
  'x-berth-images': dict(ImageDoc),
}, { unsupported: { secrets: '', configs: '', include: '', models: '' }, ignore: (k) => k.startsWith('x-') });

/** Is this parsed document a Compose file (rather than a Berth stack document)? */
export const looksLikeCompose = (doc: unknown): boolean =>
  typeof doc === 'object' && doc !== null && 'services' in doc;

export interface ComposeContext {
  readonly file: string;
  /** Project name when the file has none (Compose: the directory's name). */
  readonly defaultProject: string;
  /** Reads an env_file (path as written, relative to the compose file) as text, or undefined when missing. */
  readonly readEnvFile: (p: string) => string | undefined;
}

/** KEY=value lines; comments and blank lines skipped; quotes around the value removed. */
export const parseEnvFile = (text: string): string[] =>
  text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/^export\s+/, ''))
    .map((l) => {
      const i = l.indexOf('=');
      if (i < 0) return l;
      const v = l.slice(i + 1).trim();
      const unq = /^(['"])(.*)\1$/.exec(v);
      return `${l.slice(0, i)}=${unq ? unq[2] : v}`;
    });

const projectName = (s: string): string => s.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[^a-z0-9]+/, '') || 'default';

/** Translate a parsed Compose document; Left lists every problem (`file: path: message`). */
export const composeToStack = (doc: unknown, ctx: ComposeContext): E.Either<string[], Stack> => {
  const decoded = decodeWith(ComposeFile, doc);
  if (E.isLeft(decoded)) return E.left(decoded.left.map((m) => `${ctx.file}: ${m}`));
  const f = decoded.right;
  const problems: string[] = [];
  const project = f.name ?? projectName(ctx.defaultProject);
  const images: Record<string, ImageResource> = {};
  const containers: Record<string, ContainerResource> = {};
  const networks: Record<string, NetworkResource> = {};
  const volumes: Record<string, VolumeResource> = {};
  const origins: Record<string, string> = {};

  for (const [name, n] of Object.entries(f.networks ?? {})) {
    const net = n as t.TypeOf<typeof composeNetwork>;
    if (net.name !== undefined) problems.push(`${ctx.file}: networks.${name}.name: key "name" is not supported by Berth (networks are named <project>_<key>)`);
    const cfg = net.ipam?.config ?? [];
    if (cfg.length > 1) problems.push(`${ctx.file}: networks.${name}.ipam.config: Berth supports one subnet per network`);
    const c0 = cfg[0];
    networks[name] = {
      labels: net.labels ?? {},
      ...(c0?.subnet ? { subnet: c0.subnet } : {}), ...(c0?.gateway ? { gateway: c0.gateway } : {}),
      ...(c0?.ip_range ? { ipRange: c0.ip_range } : {}), ...(net.internal ? { internal: true } : {}),
    };
    origins[`networks.${name}`] = ctx.file;
  }
  for (const [name, v] of Object.entries(f.volumes ?? {})) {
    const vol = v as t.TypeOf<typeof composeVolume>;
    if (vol.name !== undefined) problems.push(`${ctx.file}: volumes.${name}.name: key "name" is not supported by Berth (volumes are named <project>_<key>)`);
    volumes[name] = { labels: vol.labels ?? {}, options: vol.driver_opts ?? {} };
    origins[`volumes.${name}`] = ctx.file;
  }
  // Images declared for offline use, keyed by their reference.
  const declared = new Map<string, ImageResource>();
  for (const [key, img] of Object.entries(f['x-berth-images'] ?? {})) {
    images[key] = img;
    declared.set(img.ref, img);
    origins[`images.${key}`] = ctx.file;
  }

  for (const [name, s] of Object.entries(f.services)) {
    const base = `services.${name}`;
    let image: string;
    if (s.build !== undefined) {
      const ref = s.image ?? `${project}-${name}`;
      const key = `${name}-build`;
      images[key] = { kind: 'build', ref, ...s.build };
      origins[`images.${key}`] = ctx.file;
      image = key;
    } else if (s.image !== undefined) {
      const key = [...Object.entries(images)].find(([, i]) => i.ref === s.image)?.[0];
      image = key ?? s.image;
    } else {
      problems.push(`${ctx.file}: ${base}: a service needs image or build`);
      continue;
    }
    const env: string[] = [];
    for (const p of s.env_file ?? []) {
      const text = ctx.readEnvFile(p);
      if (text === undefined) problems.push(`${ctx.file}: ${base}.env_file: cannot read ${p}`);
      else env.push(...parseEnvFile(text));
    }
    env.push(...(s.environment ?? []));
    const mounts: MountSpec[] = [...(s.volumes ?? [])];
    for (const tm of s.tmpfs ?? []) {
      const [target, opts] = tm.split(':', 2) as [string, string | undefined];
      const size = opts ? /(?:^|,)size=([^,]+)/.exec(opts)?.[1] : undefined;
      const sizeBytes = size !== undefined ? bytes.decode(size) : undefined;
      mounts.push({ type: 'tmpfs', target, ...(sizeBytes && E.isRight(sizeBytes) ? { sizeBytes: sizeBytes.right } : {}) });
    }
    const hc = s.healthcheck;
    const limits = s.deploy?.resources?.limits;
    const nets = s.network_mode !== undefined ? (s.networks ?? {}) : (s.networks ?? { default: { aliases: [] } });
    if (s.networks === undefined && s.network_mode === undefined && !('default' in networks)) networks['default'] = { labels: {} };
    containers[name] = {
      image,
      ...(s.entrypoint ? { entrypoint: s.entrypoint } : {}),
      ...(s.command ? { command: s.command } : {}),
      env,
      ...(s.working_dir ? { workingDir: s.working_dir } : {}),
      ...(s.user ? { user: s.user } : {}),
      ...(s.hostname ? { hostname: s.hostname } : {}),
      labels: s.labels ?? {},
      ...(s.read_only ? { readOnlyRootfs: true } : {}),
      mounts,
      ports: s.ports ?? [],
      capAdd: (s.cap_add ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')),
      capDrop: (s.cap_drop ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')),
      ...(s.privileged ? { privileged: true } : {}),
      resources: {
        ...(limits?.memory !== undefined ? { memory: limits.memory } : {}),
        ...(limits?.cpus !== undefined ? { cpus: limits.cpus } : {}),
        ...(limits?.pids !== undefined ? { pidsLimit: limits.pids } : {}),
        ...(s.deploy?.resources?.reservations?.memory !== undefined ? { memoryReservation: s.deploy.resources.reservations.memory } : {}),
      },
      restart: s.restart ?? { name: 'no' },
      ...(hc && !hc.disable && hc.test && hc.test[0] !== 'NONE' ? {
        healthcheck: {
          test: hc.test,
          ...(hc.interval !== undefined ? { intervalMs: hc.interval } : {}),
          ...(hc.timeout !== undefined ? { timeoutMs: hc.timeout } : {}),
          ...(hc.retries !== undefined ? { retries: hc.retries } : {}),
          ...(hc.start_period !== undefined ? { startPeriodMs: hc.start_period } : {}),
        },
      } : {}),
      networks: nets,
      ...(s.network_mode !== undefined ? { networkMode: s.network_mode } : {}),
      dependsOn: s.depends_on ?? {},
      ...(s.stop_signal ? { stopSignal: s.stop_signal } : {}),
      ...(s.stop_grace_period !== undefined ? { stopTimeoutSeconds: Math.ceil(s.stop_grace_period / 1000) } : {}),
      ...(s.init ? { init: true } : {}),
      ...(s.tty ? { tty: true } : {}),
      ...(s.sysctls ? { sysctls: s.sysctls } : {}),
    };
    origins[`containers.${name}`] = ctx.file;
  }
  void parseDurationMs;
  if (problems.length > 0) return E.left(problems);
  return E.right({ name: project, images, networks, volumes, containers, origins, format: 'compose' });
};
