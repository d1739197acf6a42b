/**
 * A stack: a named set of resources with references between them, and the
 * checks that hold across resources (references, dependency cycles, host
 * port clashes). Every source (TypeScript constructors, Berth files,
 * Compose) ends here.
 */
import type { ContainerResource, ImageResource, NetworkResource, VolumeResource } from './resources.js';

export interface Stack {
  readonly name: string;
  readonly images: Readonly<Record<string, ImageResource>>;
  readonly networks: Readonly<Record<string, NetworkResource>>;
  readonly volumes: Readonly<Record<string, VolumeResource>>;
  readonly containers: Readonly<Record<string, ContainerResource>>;
  /** Where each resource was declared ("stack.yaml"), for messages; keyed "containers.web". */
  readonly origins?: Readonly<Record<string, string>>;
  /** The source format, so that messages use its paths (`services.web.depends_on` for Compose). */
  readonly format?: 'berth' | 'compose';
}

export type ResourceKind = 'image' | 'network' | 'volume' | 'container';

/* Deterministic engine names, as Compose does (`<project>-<service>-1` there). */
export const containerName = (stack: string, key: string): string => `${stack}-${key}`;
export const networkName = (stack: string, key: string): string => `${stack}_${key}`;
export const volumeName = (stack: string, key: string): string => `${stack}_${key}`;

/** The image reference a container runs: a stack image's ref, or the string itself. */
export const imageRefOf = (stack: Stack, c: ContainerResource): string => stack.images[c.image]?.ref ?? c.image;

/** A path as the source file spells it. */
const composePath = (p: string): string =>
  p.replace(/^containers\./, 'services.').replace(/\.dependsOn\b/, '.depends_on').replace(/\.mounts\[/, '.volumes[');

const where = (stack: Stack, path: string): string => {
  const o = stack.origins?.[path.split('.').slice(0, 2).join('.')];
  const p = stack.format === 'compose' ? composePath(path) : path;
  return o ? `${o}: ${p}` : p;
};

/** Cross-resource checks; each problem is one line naming the file and path. */
export const validateStack = (stack: Stack): string[] => {
  const problems: string[] = [];
  const hostPorts = new Map<string, string>();
  for (const [key, c] of Object.entries(stack.containers)) {
    const base = `containers.${key}`;
    if (c.networkMode !== undefined && Object.keys(c.networks).length > 0) {
      problems.push(`${where(stack, `${base}.networkMode`)}: networkMode ${c.networkMode} cannot be combined with networks`);
    }
    for (const n of Object.keys(c.networks)) {
      if (!(n in stack.networks)) problems.push(`${where(stack, `${base}.networks.${n}`)}: network "${n}" is not declared (declare it under networks)`);
    }
    c.mounts.forEach((m, i) => {
      if (m.type === 'volume' && m.source !== undefined && !(m.source in stack.volumes)) {
        problems.push(`${where(stack, `${base}.mounts[${i}].source`)}: volume "${m.source}" is not declared (declare it under volumes)`);
      }
    });
    for (const d of Object.keys(c.dependsOn)) {
      if (!(d in stack.containers)) problems.push(`${where(stack, `${base}.dependsOn.${d}`)}: container "${d}" is not declared`);
      else if (c.dependsOn[d] === 'healthy' && stack.containers[d]!.healthcheck === undefined) {
        problems.push(`${where(stack, `${base}.dependsOn.${d}`)}: condition healthy needs a healthcheck on container "${d}"`);
      }
    }
    const targets = new Set<string>();
    c.mounts.forEach((m, i) => {
      if (targets.has(m.target)) problems.push(`${where(stack, `${base}.mounts[${i}].target`)}: ${m.target} is mounted twice`);
      targets.add(m.target);
    });
    c.ports.forEach((p, i) => {
      if (p.hostPort === undefined) return;
      const ip = p.hostIp ?? '0.0.0.0';
      // A wildcard bind clashes with every address on the same port.
      for (const probe of ip === '0.0.0.0' ? [...hostPorts.keys()].filter((k) => k.endsWith(`:${p.hostPort}/${p.protocol}`)) : [`${ip}:${p.hostPort}/${p.protocol}`, `0.0.0.0:${p.hostPort}/${p.protocol}`]) {
        const other = hostPorts.get(probe);
        if (other !== undefined) problems.push(`${where(stack, `${base}.ports[${i}].hostPort`)}: host port ${p.hostPort}/${p.protocol} is already published by ${other}`);
      }
      hostPorts.set(`${ip}:${p.hostPort}/${p.protocol}`, `${base}.ports[${i}]`);
    });
  }
  const cycle = findCycle(Object.fromEntries(Object.entries(stack.containers).map(([k, c]) => [k, Object.keys(c.dependsOn)])));
  if (cycle) problems.push(`${where(stack, `containers.${cycle[0]}.dependsOn`)}: dependency cycle ${cycle.join(' -> ')}`);
  return problems;
};

/** A cycle in a graph given as node -> successors, as a path that ends where it starts; undefined if none. */
export const findCycle = (graph: Readonly<Record<string, readonly string[]>>): string[] | undefined => {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph[n] ?? []) {
      if (!(m in graph)) continue;
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of Object.keys(graph).sort()) {
    const c = visit(n);
    if (c) return c;
  }
  return undefined;
};
