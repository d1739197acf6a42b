/**
 * Ownership labels and spec hashes.
 *
 * Every object Berth creates for a stack carries:
 *   berth.stack       the stack name
 *   berth.resource    "<kind>/<key>", e.g. "container/web"
 *   berth.spec-hash   hash of the canonical declared spec (the fields that
 *                     cannot change in place)
 *   berth.spec        that canonical spec as JSON, so a plan can say which
 *                     fields changed (like kubectl's last-applied annotation)
 * Only objects whose berth.stack equals the stack are ever changed or pruned.
 */
import { createHash } from 'node:crypto';
import type { ResourceKind } from '../model/stack.js';

export const STACK = 'berth.stack';
export const RESOURCE = 'berth.resource';
export const SPEC_HASH = 'berth.spec-hash';
export const SPEC = 'berth.spec';
export const DEPENDS_ON = 'berth.depends-on';

export const ownershipKeys: readonly string[] = [STACK, RESOURCE, SPEC_HASH, SPEC, DEPENDS_ON];

/** Drops undefined, false, empty lists and empty mappings; sorts keys. Two specs that mean the same serialize the same. */
export const canonical = (v: unknown): unknown => {
  if (Array.isArray(v)) {
    const items = v.map(canonical).filter((x) => x !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const c = canonical((v as Record<string, unknown>)[k]);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  if (v === false || v === undefined || v === null) return undefined;
  return v;
};

export const canonicalJson = (v: unknown): string => JSON.stringify(canonical(v) ?? {});

export const specHash = (v: unknown): string => createHash('sha256').update(canonicalJson(v)).digest('hex').slice(0, 24);

export interface Ownership {
  readonly stack: string;
  readonly kind: ResourceKind;
  readonly key: string;
}

/** Who owns an object, from its labels; undefined when Berth's stacks do not. */
export const ownerOf = (labels: Readonly<Record<string, string>> | undefined): Ownership | undefined => {
  const stack = labels?.[STACK];
  const res = labels?.[RESOURCE];
  if (!stack || !res) return undefined;
  const i = res.indexOf('/');
  const kind = res.slice(0, i);
  if (kind !== 'image' && kind !== 'network' && kind !== 'volume' && kind !== 'container') return undefined;
  return { stack, kind, key: res.slice(i + 1) };
};

export const ownershipLabels = (o: Ownership, core: unknown, extra: Record<string, string> = {}): Record<string, string> => {
  const json = canonicalJson(core);
  return {
    [STACK]: o.stack,
    [RESOURCE]: `${o.kind}/${o.key}`,
    [SPEC_HASH]: createHash('sha256').update(json).digest('hex').slice(0, 24),
    [SPEC]: json,
    ...extra,
  };
};

/** The user's labels of an object: all but Berth's own. */
export const userLabels = (labels: Readonly<Record<string, string>> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !ownershipKeys.includes(k)));
