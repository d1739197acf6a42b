/**
 * Decoding untrusted JSON with io-ts into clear, complete errors:
 *   manifest sha256:ab..: layers[0].digest: expected Digest, got "sha256:xyz"
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import { fail, invalidSpec } from '../errors.js';

const show = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

export const formatValidationErrors = (errors: t.Errors): string[] => {
  const out = new Set<string>();
  for (const e of errors) {
    const steps: string[] = [];
    e.context.forEach((c, i) => {
      const parent = i > 0 ? e.context[i - 1]?.type : undefined;
      // union and intersection members appear as keys "0", "1": not real path steps
      if (c.key === '' || parent instanceof t.UnionType || parent instanceof t.IntersectionType) return;
      steps.push(/^\d+$/.test(c.key) ? `[${c.key}]` : steps.length === 0 ? c.key : `.${c.key}`);
    });
    const path = steps.join('');
    const expected = e.context[e.context.length - 1]?.type.name ?? 'a value';
    out.add(`${path || '(top level)'}: ${e.message ?? `expected ${expected}, got ${show(e.value)}`}`);
  }
  return [...out];
};

/** Decode an already-parsed value; throws InvalidSpec naming `source`. */
export const decodeValue = <A, O>(codec: t.Type<A, O, unknown>, value: unknown, source: string): A => {
  const r = codec.decode(value);
  if (isLeft(r)) return fail(invalidSpec(source, formatValidationErrors(r.left)));
  return r.right;
};

/** Parse JSON bytes and decode; throws InvalidSpec naming `source`. */
export const decodeJson = <A, O>(codec: t.Type<A, O, unknown>, bytes: Uint8Array | string, source: string): A => {
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    return fail(invalidSpec(source, [`not valid JSON: ${(e as Error).message}`]));
  }
  return decodeValue(codec, value, source);
};
