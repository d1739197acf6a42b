/**
 * plan(desired, observed): what to do to every resource of a stack, and why.
 * Pure: the same inputs give the same plan. Only objects labelled as owned
 * by the stack are changed or deleted; an object in the way that the stack
 * does not own is a conflict, and nothing is done about it.
 */
import type {
  ContainerInfo, ImageInfo, NetworkInfo, ResourceSpec, RestartPolicy, VolumeInfo,
} from '../../engine/engine.js';
import type { ResourceKind } from '../model/stack.js';
import type { Desired, DesiredContainer } from './desired.js';
import { SPEC, SPEC_HASH, canonical, canonicalJson, ownerOf, specHash } from './labels.js';

export interface Observed {
  readonly containers: readonly ContainerInfo[];
  readonly networks: readonly NetworkInfo[];
  readonly volumes: readonly VolumeInfo[];
  /** Every local image (for ownership). */
  readonly images: readonly ImageInfo[];
  /** What each image reference the stack uses resolves to now; absent when not present. */
  readonly refs: Readonly<Record<string, ImageInfo | undefined>>;
}

export type Action = 'create' | 'update' | 'replace' | 'delete' | 'noop';

export interface Reason {
  readonly field: string;
  readonly detail: string;
  readonly forcesReplacement: boolean;
}

export interface InPlace {
  readonly resources?: ResourceSpec;
  readonly restartPolicy?: RestartPolicy;
  readonly connect: readonly { readonly network: string; readonly aliases: readonly string[]; readonly ipv4Address?: string }[];
  readonly disconnect: readonly string[];
  readonly start: boolean;
  /** The container's name is not the stack's (renamed outside Berth, or an apply stopped before its rename). */
  readonly rename?: string;
}

export interface Change {
  readonly kind: ResourceKind;
  readonly key: string;
  /** The engine object's name (image: its reference). */
  readonly name: string;
  readonly action: Action;
  readonly reasons: readonly Reason[];
  readonly order?: 'create-before-delete' | 'delete-before-create';
  readonly inPlace?: InPlace;
  /** The existing object this change acts on (ID), when there is one. */
  readonly current?: { readonly id: string; readonly name: string };
}

export interface Plan {
  readonly stack: string;
  readonly desired: Desired;
  /** Every declared resource (no-ops included) and, with prune, deletions. */
  readonly changes: readonly Change[];
  /** Owned objects no longer declared, left alone because prune was not asked for. */
  readonly orphans: readonly Change[];
  /** Objects in the way that this stack does not own: nothing may be applied while any exist. */
  readonly conflicts: readonly string[];
}

export interface PlanOptions {
  /** Delete owned objects that are no longer declared. */
  readonly prune?: boolean;
}

/** True when applying the plan would change nothing. */
export const isEmpty = (p: Plan): boolean => p.changes.every((c) => c.action === 'noop');

const short = (v: unknown): string => {
  const s = v === undefined ? '(unset)' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};
const shortId = (id: string | undefined): string => (id === undefined ? '(none)' : id.length > 19 ? `${id.slice(0, 19)}..` : id);

/** Field-by-field reasons between the last applied core (label) and the desired one. */
const coreReasons = (last: string | undefined, desired: unknown, lastHash: string | undefined, what: string): Reason[] => {
  let before: Record<string, unknown> | undefined;
  try {
    before = last === undefined ? undefined : (JSON.parse(last) as Record<string, unknown>);
  } catch {
    before = undefined;
  }
  if (before === undefined) {
    return [{ field: 'spec', detail: `spec hash ${lastHash ?? '(none)'} differs from ${specHash(desired)}`, forcesReplacement: true }];
  }
  const after = (canonical(desired) ?? {}) as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const out: Reason[] = [];
  for (const f of fields) {
    if (JSON.stringify(before[f]) === JSON.stringify(after[f])) continue;
    const why = f === 'labels' ? ` (the engine cannot relabel ${what} in place)` : '';
    out.push({ field: f, detail: `${short(before[f])} -> ${short(after[f])}${why}`, forcesReplacement: true });
  }
  if (out.length === 0) out.push({ field: 'spec', detail: 'spec hash differs (label edited outside Berth?)', forcesReplacement: true });
  return out;
};

const resourceKeys = ['memory', 'memorySwap', 'memoryReservation', 'cpus', 'cpuShares', 'cpusetCpus', 'cpusetMems', 'pidsLimit', 'blkioWeight'] as const;
/** Values the engine may fill in when not asked (derived or kernel defaults): not a difference when undeclared. */
const engineDerived = new Set<string>(['memorySwap', 'cpuShares', 'blkioWeight', 'cpusetMems']);
const isUnset = (v: unknown): boolean => v === undefined || v === 0 || v === '' || v === -1;

/** The in-place resource update needed, or undefined when declared and actual agree. */
const resourceUpdate = (want: ResourceSpec, have: ResourceSpec | undefined): { update: ResourceSpec; reasons: Reason[] } | undefined => {
  const update: Record<string, number | string> = {};
  const reasons: Reason[] = [];
  for (const k of resourceKeys) {
    const w = want[k];
    const h = have?.[k];
    if (w === undefined) {
      if (isUnset(h) || engineDerived.has(k)) continue;
      update[k] = typeof h === 'string' ? '' : 0;
      reasons.push({ field: `resources.${k}`, detail: `${short(h)} -> (unset)`, forcesReplacement: false });
    } else if (typeof w === 'number' && typeof h === 'number' ? Math.abs(w - h) > 1e-9 * Math.max(1, Math.abs(w)) : w !== h) {
      update[k] = w;
      reasons.push({ field: `resources.${k}`, detail: `${short(h)} -> ${short(w)}`, forcesReplacement: false });
    }
  }
  return reasons.length === 0 ? undefined : { update: update as ResourceSpec, reasons };
};

const samePolicy = (a: RestartPolicy, b: RestartPolicy | undefined): boolean => {
  const norm = (p: RestartPolicy | undefined): string => {
    const name = p?.name ?? 'no';
    return name === 'on-failure' ? `on-failure:${p?.maximumRetryCount ?? 0}` : name;
  };
  return norm(a) === norm(b);
};

/** Stack networks a container is on now, by engine name, with aliases. */
const attachedNetworks = (c: ContainerInfo, byId: ReadonlyMap<string, string>): Map<string, readonly string[]> => {
  const out = new Map<string, readonly string[]>();
  for (const [k, n] of Object.entries(c.networks)) out.set(byId.get(n.networkId) ?? byId.get(k) ?? k, n.aliases);
  return out;
};

interface Owned<T> { readonly key: string; readonly obj: T }

export const plan = (desired: Desired, observed: Observed, opts: PlanOptions = {}): Plan => {
  const s = desired.stack;
  const changes: Change[] = [];
  const orphans: Change[] = [];
  const conflicts: string[] = [];
  const drop = (c: Change): void => {
    if (opts.prune) changes.push(c);
    else orphans.push(c);
  };

  /* ---- observed objects owned by this stack, by kind and key */
  const ownedBy = <T>(items: readonly T[], kind: ResourceKind, labels: (x: T) => Readonly<Record<string, string>> | undefined): Owned<T>[] =>
    items.flatMap((x) => {
      const o = ownerOf(labels(x));
      return o && o.stack === s && o.kind === kind ? [{ key: o.key, obj: x }] : [];
    });
  const foreign = (labels: Readonly<Record<string, string>> | undefined): string => {
    const o = ownerOf(labels);
    return o ? `stack "${o.stack}"` : 'no Berth stack';
  };

  /* ---- images */
  const imageChanged = new Map<string, string>(); // key -> why containers using it are replaced
  for (const [key, img] of Object.entries(desired.images)) {
    const have = observed.refs[img.source.ref];
    const base = { kind: 'image' as const, key, name: img.source.ref };
    const current = have ? { current: { id: have.id, name: img.source.ref } } : {};
    if (!have) {
      const verb = img.source.kind === 'registry' ? 'pulled' : img.source.kind === 'import' ? 'imported' : img.source.kind === 'archive' ? 'loaded' : 'built';
      changes.push({ ...base, action: 'create', reasons: [{ field: 'image', detail: `${img.source.ref} is not present; it will be ${verb}`, forcesReplacement: false }] });
      imageChanged.set(key, `image ${img.source.ref} is ${verb}`);
      continue;
    }
    if (img.source.kind === 'import' || img.source.kind === 'build') {
      const o = ownerOf(have.labels);
      if (!o || o.stack !== s) {
        conflicts.push(`image ${img.source.ref} exists and belongs to ${foreign(have.labels)}; remove it or choose another ref for images.${key}`);
        continue;
      }
      if (have.labels[SPEC_HASH] !== img.hash) {
        // a build's hash covers its context's content, the Dockerfile and the args (desired.ts): the same inputs are no change
        const what = img.source.kind === 'import' ? `${img.source.tarball} or its config` : `the build context ${img.source.context}, its Dockerfile or build args`;
        changes.push({ ...base, ...current, action: 'replace', reasons: [{ field: img.source.kind, detail: `${what} changed (hash ${have.labels[SPEC_HASH] ?? '(none)'} -> ${img.hash})`, forcesReplacement: true }] });
        imageChanged.set(key, `image ${img.source.ref} is ${img.source.kind === 'import' ? 're-imported' : 'rebuilt'}`);
        continue;
      }
    } else if (img.source.kind === 'registry' && img.source.pull === 'always') {
      changes.push({ ...base, ...current, action: 'update', reasons: [{ field: 'pull', detail: `pull: always re-resolves ${img.source.ref} (now ${shortId(have.id)})`, forcesReplacement: false }] });
      continue;
    }
    changes.push({ ...base, ...current, action: 'noop', reasons: [] });
  }
  for (const { key, obj } of ownedBy(observed.images, 'image', (i) => i.labels)) {
    if (key in desired.images) continue;
    drop({ kind: 'image', key, name: obj.names[0] ?? obj.id, action: 'delete', current: { id: obj.id, name: obj.names[0] ?? obj.id }, reasons: [{ field: 'image', detail: 'no longer declared', forcesReplacement: false }] });
  }

  /* ---- networks and volumes: replaced (delete first, names are fixed) when their core changes */
  const netReplaced = new Set<string>();
  const netOwned = ownedBy(observed.networks, 'network', (n) => n.spec.labels);
  const netByName = new Map(observed.networks.map((n) => [n.name, n]));
  const netOwnedByKey = new Map(netOwned.map((x) => [x.key, x.obj]));
  for (const [key, n] of Object.entries(desired.networks)) {
    const base = { kind: 'network' as const, key, name: n.spec.name };
    const byName = netByName.get(n.spec.name);
    const mine = netOwnedByKey.get(key);
    if (byName && byName !== mine) {
      conflicts.push(`network ${n.spec.name} exists and belongs to ${foreign(byName.spec.labels)}; remove or rename it`);
      continue;
    }
    if (!mine) { changes.push({ ...base, action: 'create', reasons: [] }); continue; }
    const labels = mine.spec.labels ?? {};
    if (labels[SPEC_HASH] !== n.spec.labels?.[SPEC_HASH]) {
      changes.push({ ...base, action: 'replace', order: 'delete-before-create', current: { id: mine.id, name: mine.name }, reasons: coreReasons(labels[SPEC], n.core, labels[SPEC_HASH], 'a network') });
      netReplaced.add(n.spec.name);
    } else changes.push({ ...base, action: 'noop', current: { id: mine.id, name: mine.name }, reasons: [] });
  }
  for (const { key, obj } of netOwned) {
    if (key in desired.networks && desired.networks[key]!.spec.name === obj.name) continue;
    drop({ kind: 'network', key, name: obj.name, action: 'delete', current: { id: obj.id, name: obj.name }, reasons: [{ field: 'network', detail: 'no longer declared', forcesReplacement: false }] });
    netReplaced.add(obj.name);
  }

  const volReplaced = new Set<string>();
  const volOwned = ownedBy(observed.volumes, 'volume', (v) => v.spec.labels);
  const volByName = new Map(observed.volumes.map((v) => [v.name, v]));
  const volOwnedByKey = new Map(volOwned.map((x) => [x.key, x.obj]));
  for (const [key, v] of Object.entries(desired.volumes)) {
    const base = { kind: 'volume' as const, key, name: v.spec.name };
    const byName = volByName.get(v.spec.name);
    const mine = volOwnedByKey.get(key);
    if (byName && byName !== mine) {
      conflicts.push(`volume ${v.spec.name} exists and belongs to ${foreign(byName.spec.labels)}; remove or rename it`);
      continue;
    }
    if (!mine) { changes.push({ ...base, action: 'create', reasons: [] }); continue; }
    const labels = mine.spec.labels ?? {};
    if (labels[SPEC_HASH] !== v.spec.labels?.[SPEC_HASH]) {
      const reasons = coreReasons(labels[SPEC], v.core, labels[SPEC_HASH], 'a volume').map((r) => ({ ...r, detail: `${r.detail}; the volume's contents are lost` }));
      changes.push({ ...base, action: 'replace', order: 'delete-before-create', current: { id: mine.name, name: mine.name }, reasons });
      volReplaced.add(v.spec.name);
    } else changes.push({ ...base, action: 'noop', current: { id: mine.name, name: mine.name }, reasons: [] });
  }
  for (const { key, obj } of volOwned) {
    if (key in desired.volumes && desired.volumes[key]!.spec.name === obj.name) continue;
    drop({ kind: 'volume', key, name: obj.name, action: 'delete', current: { id: obj.name, name: obj.name }, reasons: [{ field: 'volume', detail: 'no longer declared (its contents are lost)', forcesReplacement: false }] });
    volReplaced.add(obj.name);
  }

  /* ---- containers */
  const netById = new Map<string, string>();
  for (const n of observed.networks) netById.set(n.id, n.name);
  const ownNetworkNames = new Set<string>([...Object.values(desired.networks).map((n) => n.spec.name), ...netOwned.map((n) => n.obj.name)]);
  const ctrOwned = ownedBy(observed.containers, 'container', (c) => c.spec.labels);
  const ctrByName = new Map(observed.containers.map((c) => [c.name.replace(/^\//, ''), c]));
  const ctrOwnedByKey = new Map<string, ContainerInfo[]>();
  for (const x of ctrOwned) ctrOwnedByKey.set(x.key, [...(ctrOwnedByKey.get(x.key) ?? []), x.obj]);
  for (const [key, d] of Object.entries(desired.containers)) {
    const name = d.spec.name!;
    const base = { kind: 'container' as const, key, name };
    const byName = ctrByName.get(name);
    const mineAll = ctrOwnedByKey.get(key) ?? [];
    if (byName && !mineAll.includes(byName)) {
      conflicts.push(`container ${name} exists and belongs to ${foreign(byName.spec.labels)}; remove or rename it`);
      continue;
    }
    // The one to reconcile: the one with the stack's name; others are left from an interrupted replace.
    const mine = byName ?? mineAll[0];
    for (const extra of mineAll.filter((x) => x !== mine)) {
      changes.push({ kind: 'container', key, name: extra.name, action: 'delete', current: { id: extra.id, name: extra.name }, reasons: [{ field: 'container', detail: `a second container for ${key} (left by an interrupted apply)`, forcesReplacement: false }] });
    }
    if (!mine) { changes.push({ ...base, action: 'create', reasons: [] }); continue; }
    changes.push(containerChange(d, mine, desired, observed, { imageChanged, netReplaced, volReplaced, netById, ownNetworkNames }));
  }
  for (const { key, obj } of ctrOwned) {
    if (key in desired.containers) continue;
    drop({ kind: 'container', key, name: obj.name, action: 'delete', current: { id: obj.id, name: obj.name }, reasons: [{ field: 'container', detail: 'no longer declared', forcesReplacement: false }] });
  }

  return { stack: s, desired, changes, orphans, conflicts };
};

interface Ctx {
  readonly imageChanged: ReadonlyMap<string, string>;
  readonly netReplaced: ReadonlySet<string>;
  readonly volReplaced: ReadonlySet<string>;
  readonly netById: ReadonlyMap<string, string>;
  readonly ownNetworkNames: ReadonlySet<string>;
}

const containerChange = (d: DesiredContainer, c: ContainerInfo, desired: Desired, observed: Observed, ctx: Ctx): Change => {
  const base = { kind: 'container' as const, key: d.key, name: d.spec.name!, current: { id: c.id, name: c.name } };
  const labels = c.spec.labels ?? {};
  const replace: Reason[] = [];
  if (labels[SPEC_HASH] !== d.spec.labels?.[SPEC_HASH]) replace.push(...coreReasons(labels[SPEC], d.core, labels[SPEC_HASH], 'a container'));

  // The image: a stack image being (re)made, or a tag that now points elsewhere.
  const imgWhy = d.imageKey !== undefined ? ctx.imageChanged.get(d.imageKey) : undefined;
  const now = observed.refs[d.imageRef];
  if (imgWhy !== undefined) replace.push({ field: 'image', detail: imgWhy, forcesReplacement: true });
  else if (now !== undefined && now.id !== c.imageId) {
    replace.push({ field: 'image', detail: `${d.imageRef} moved from ${shortId(c.imageId)} to ${shortId(now.id)}`, forcesReplacement: true });
  }
  let dependencyReplaced = false;
  for (const n of Object.keys(d.networks)) {
    if (ctx.netReplaced.has(n)) { replace.push({ field: 'networks', detail: `network ${n} is re-created`, forcesReplacement: true }); dependencyReplaced = true; }
  }
  for (const m of d.spec.mounts ?? []) {
    if (m.type === 'volume' && m.source !== undefined && ctx.volReplaced.has(m.source)) {
      replace.push({ field: 'mounts', detail: `volume ${m.source} is re-created`, forcesReplacement: true });
      dependencyReplaced = true;
    }
  }
  if (replace.length > 0) {
    return {
      ...base, action: 'replace', reasons: replace,
      order: d.fixedHostPorts || dependencyReplaced ? 'delete-before-create' : 'create-before-delete',
    };
  }

  // In place: limits, restart policy, networks, state.
  const reasons: Reason[] = [];
  const res = resourceUpdate(d.resources, c.spec.resources);
  if (res) reasons.push(...res.reasons);
  const policyChanged = !samePolicy(d.restartPolicy, c.spec.restartPolicy);
  if (policyChanged) reasons.push({ field: 'restart', detail: `${c.spec.restartPolicy?.name ?? 'no'} -> ${d.restartPolicy.name}${d.restartPolicy.maximumRetryCount ? `:${d.restartPolicy.maximumRetryCount}` : ''}`, forcesReplacement: false });
  const attached = attachedNetworks(c, ctx.netById);
  const connect: { network: string; aliases: readonly string[]; ipv4Address?: string }[] = [];
  const disconnect: string[] = [];
  for (const [n, a] of Object.entries(d.networks)) {
    const have = attached.get(n);
    if (have === undefined) {
      connect.push({ network: n, aliases: a.aliases, ...(a.ipv4Address ? { ipv4Address: a.ipv4Address } : {}) });
      reasons.push({ field: `networks.${n}`, detail: 'connect', forcesReplacement: false });
    } else if (!a.aliases.every((x) => have.includes(x))) {
      disconnect.push(n);
      connect.push({ network: n, aliases: a.aliases, ...(a.ipv4Address ? { ipv4Address: a.ipv4Address } : {}) });
      reasons.push({ field: `networks.${n}.aliases`, detail: `${short(have)} -> ${short(a.aliases)} (reconnect)`, forcesReplacement: false });
    }
  }
  for (const n of attached.keys()) {
    if (ctx.ownNetworkNames.has(n) && !(n in d.networks)) {
      disconnect.push(n);
      reasons.push({ field: `networks.${n}`, detail: 'disconnect', forcesReplacement: false });
    }
  }
  const currentName = c.name.replace(/^\//, '');
  const rename = currentName !== d.spec.name ? d.spec.name! : undefined;
  if (rename !== undefined) reasons.push({ field: 'name', detail: `${currentName} -> ${rename}`, forcesReplacement: false });
  const st = c.state;
  const completed = st.status === 'exited' && st.exitCode === 0 && d.restartPolicy.name === 'no';
  const start = (st.status === 'created' || st.status === 'exited' || st.status === 'dead') && !completed;
  if (start) reasons.push({ field: 'state', detail: `${st.status}${st.exitCode !== undefined && st.status !== 'created' ? ` (exit code ${st.exitCode})` : ''} -> running`, forcesReplacement: false });
  if (reasons.length === 0) return { ...base, action: 'noop', reasons: [] };
  void desired;
  return {
    ...base, action: 'update', reasons,
    inPlace: {
      ...(res ? { resources: res.update } : {}),
      ...(policyChanged ? { restartPolicy: d.restartPolicy } : {}),
      connect, disconnect, start, ...(rename !== undefined ? { rename } : {}),
    },
  };
};

/** The plan as JSON for machines (`berth plan --json`). */
export const planJson = (p: Plan): unknown => ({
  stack: p.stack,
  conflicts: p.conflicts,
  changes: p.changes.filter((c) => c.action !== 'noop').map((c) => ({
    resource: `${c.kind}s.${c.key}`, name: c.name, action: c.action, ...(c.order ? { order: c.order } : {}),
    reasons: c.reasons.map((r) => ({ field: r.field, detail: r.detail, forcesReplacement: r.forcesReplacement })),
  })),
  unchanged: p.changes.filter((c) => c.action === 'noop').map((c) => `${c.kind}s.${c.key}`),
  orphans: p.orphans.map((c) => ({ resource: `${c.kind}s.${c.key}`, name: c.name })),
  summary: summary(p),
});

export const summary = (p: Plan): Record<Action, number> => {
  const out: Record<Action, number> = { create: 0, update: 0, replace: 0, delete: 0, noop: 0 };
  for (const c of p.changes) out[c.action]++;
  return out;
};

export { canonicalJson };
