/**
 * Small io-ts combinators for user-facing documents.
 *
 * io-ts's own `t.type`/`t.exact` strip unknown keys and its unions report the
 * failures of every branch; neither gives a person a useful message. These
 * combinators are ordinary io-ts codecs (so `t.TypeOf` still gives the
 * types) whose failures carry a message and whose context keys form a path:
 * `containers.web.ports[0].hostPort`. `formatErrors` renders them as
 * `stack.yaml: containers.web.ports[0].hostPort: expected an integer 1-65535, got "80a"`.
 */
import * as t from 'io-ts';
import * as E from 'fp-ts/lib/Either.js';

/** What a parser returns instead of a value: what it expected. */
export class Expected {
  constructor(readonly expected: string) {}
}
export const expect = (what: string): Expected => new Expected(what);

/** A short rendering of a bad value for a message. */
export const show = (u: unknown): string => {
  if (u === undefined) return 'nothing';
  if (u === null) return 'null';
  if (Array.isArray(u)) return 'a list';
  if (typeof u === 'object') return 'a mapping';
  const s = JSON.stringify(u);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const fail = (u: unknown, c: t.Context, expected: string): t.Validation<never> =>
  t.failure(u, c, `expected ${expected}, got ${show(u)}`);

/** A codec from a predicate on a base value, with a message saying what was expected. */
export const refined = <A>(name: string, expected: string, test: (u: unknown) => u is A): t.Type<A, A, unknown> =>
  new t.Type<A, A, unknown>(name, test, (u, c) => (test(u) ? t.success(u) : fail(u, c, expected)), t.identity);

/** A codec that parses/normalizes its input (e.g. "64m" -> 67108864). `parse` returns a value or an expectation message. */
export const parsed = <A>(name: string, is: (u: unknown) => u is A, parse: (u: unknown) => A | Expected): t.Type<A, A, unknown> =>
  new t.Type<A, A, unknown>(
    name,
    is,
    (u, c) => {
      const r = parse(u);
      if (r instanceof Expected) return fail(u, c, r.expected);
      return t.success(r as A);
    },
    t.identity,
  );

export const str = refined('string', 'a string', (u): u is string => typeof u === 'string');
export const nonEmpty = refined('string', 'a non-empty string', (u): u is string => typeof u === 'string' && u.length > 0);
export const bool = refined('boolean', 'true or false', (u): u is boolean => typeof u === 'boolean');
export const int = (min: number, max: number): t.Type<number, number, unknown> =>
  refined(`integer ${min}-${max}`, `an integer ${min}-${max}`, (u): u is number => typeof u === 'number' && Number.isInteger(u) && u >= min && u <= max);
export const num = (min: number): t.Type<number, number, unknown> =>
  refined(`number >= ${min}`, `a number >= ${min}`, (u): u is number => typeof u === 'number' && Number.isFinite(u) && u >= min);
export const literal = <L extends string>(...values: readonly L[]): t.Type<L, L, unknown> =>
  refined(values.join(' | '), `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`, (u): u is L =>
    typeof u === 'string' && (values as readonly string[]).includes(u));

/** A list; element paths are `[i]`. */
export const list = <C extends t.Mixed>(item: C): t.Type<t.TypeOf<C>[], unknown, unknown> =>
  new t.Type<t.TypeOf<C>[], unknown, unknown>(
    `${item.name}[]`,
    (u): u is t.TypeOf<C>[] => Array.isArray(u) && u.every(item.is),
    (u, c) => {
      if (!Array.isArray(u)) return fail(u, c, 'a list');
      const out: t.TypeOf<C>[] = [];
      const errors: t.ValidationError[] = [];
      u.forEach((v, i) => {
        const r = item.validate(v, t.appendContext(c, `[${i}]`, item, v));
        if (E.isLeft(r)) errors.push(...r.left);
        else out.push(r.right);
      });
      return errors.length > 0 ? t.failures(errors) : t.success(out);
    },
    t.identity,
  );

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === 'object' && u !== null && !Array.isArray(u);

/** A mapping from names to values; keys are checked by `key` when given. */
export const dict = <C extends t.Mixed>(value: C, key?: { test: (k: string) => boolean; expected: string }): t.Type<Record<string, t.TypeOf<C>>, unknown, unknown> =>
  new t.Type<Record<string, t.TypeOf<C>>, unknown, unknown>(
    `{[k]: ${value.name}}`,
    (u): u is Record<string, t.TypeOf<C>> => isPlainObject(u) && Object.values(u).every(value.is),
    (u, c) => {
      if (u === null) return t.success({}); // YAML `key:` with nothing under it
      if (!isPlainObject(u)) return fail(u, c, 'a mapping');
      const out: Record<string, t.TypeOf<C>> = {};
      const errors: t.ValidationError[] = [];
      for (const [k, v] of Object.entries(u)) {
        const ctx = t.appendContext(c, k, value, v);
        if (key && !key.test(k)) {
          errors.push({ value: k, context: ctx, message: `bad name ${JSON.stringify(k)}: expected ${key.expected}` });
          continue;
        }
        const r = value.validate(v, ctx);
        if (E.isLeft(r)) errors.push(...r.left);
        else out[k] = r.right;
      }
      return errors.length > 0 ? t.failures(errors) : t.success(out);
    },
    t.identity,
  );

type Props = Record<string, t.Mixed>;
type StrictOut<R extends Props, O extends Props> = { [K in keyof R]: t.TypeOf<R[K]> } & { [K in keyof O]?: t.TypeOf<O[K]> };

export interface StrictOptions {
  /** Keys that are known but not supported: each maps to the reason given in the error. */
  readonly unsupported?: Readonly<Record<string, string>>;
  /** Keys that are silently allowed and dropped (e.g. Compose's `x-` extensions). */
  readonly ignore?: (key: string) => boolean;
}

/**
 * An object with required and optional keys. Unknown keys are errors (that
 * name the key and list the allowed ones), as are keys known to be unsupported.
 */
export const strict = <R extends Props, O extends Props>(
  name: string,
  required: R,
  optional: O,
  opts: StrictOptions = {},
): t.Type<StrictOut<R, O>, unknown, unknown> => {
  const allowed = [...Object.keys(required), ...Object.keys(optional)];
  return new t.Type<StrictOut<R, O>, unknown, unknown>(
    name,
    (u): u is StrictOut<R, O> => isPlainObject(u),
    (u, c) => {
      if (u === null && Object.keys(required).length === 0) u = {};
      if (!isPlainObject(u)) return fail(u, c, `a mapping (${name})`);
      const out: Record<string, unknown> = {};
      const errors: t.ValidationError[] = [];
      for (const [k, codec] of Object.entries(required)) {
        const v = u[k];
        const ctx = t.appendContext(c, k, codec, v);
        if (v === undefined || v === null) {
          errors.push({ value: v, context: ctx, message: `required key missing (${codec.name})` });
          continue;
        }
        const r = codec.validate(v, ctx);
        if (E.isLeft(r)) errors.push(...r.left);
        else out[k] = r.right;
      }
      for (const [k, codec] of Object.entries(optional)) {
        const v = u[k];
        if (v === undefined) continue;
        const r = codec.validate(v, t.appendContext(c, k, codec, v));
        if (E.isLeft(r)) errors.push(...r.left);
        else if (r.right !== undefined) out[k] = r.right;
      }
      for (const k of Object.keys(u)) {
        if (k in required || k in optional) continue;
        if (opts.ignore?.(k)) continue;
        const ctx = t.appendContext(c, k, t.unknown, u[k]);
        const why = opts.unsupported?.[k];
        errors.push({
          value: u[k],
          context: ctx,
          message: why !== undefined
            ? `key ${JSON.stringify(k)} is not supported by Berth${why ? ` (${why})` : ''}`
            : `unknown key ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`,
        });
      }
      return errors.length > 0 ? t.failures(errors) : t.success(out as StrictOut<R, O>);
    },
    t.identity,
  );
};

type Branch<A> = { readonly validate: (u: unknown, c: t.Context) => t.Validation<A> };

/** Chooses the codec from the input's shape (string, list, mapping, number...), so errors come from one branch only. */
export const byShape = <A>(
  name: string,
  expected: string,
  branches: {
    readonly string?: Branch<A>;
    readonly number?: Branch<A>;
    readonly boolean?: Branch<A>;
    readonly list?: Branch<A>;
    readonly mapping?: Branch<A>;
  },
): t.Type<A, unknown, unknown> =>
  new t.Type<A, unknown, unknown>(
    name,
    (u): u is A => false,
    (u, c) => {
      const b = typeof u === 'string' ? branches.string
        : typeof u === 'number' ? branches.number
        : typeof u === 'boolean' ? branches.boolean
        : Array.isArray(u) ? branches.list
        : isPlainObject(u) ? branches.mapping
        : undefined;
      return b ? b.validate(u, c) : fail(u, c, expected);
    },
    t.identity,
  );

/** Maps a decoded value; `f` may return an expectation message to fail. */
export const mapped = <A, B>(codec: Branch<A>, name: string, f: (a: A) => B | Expected): t.Type<B, unknown, unknown> =>
  new t.Type<B, unknown, unknown>(
    name,
    (u): u is B => false,
    (u, c) => {
      const r = codec.validate(u, c);
      if (E.isLeft(r)) return r;
      const b = f(r.right);
      if (b instanceof Expected) return fail(u, c, b.expected);
      return t.success(b as B);
    },
    t.identity,
  );

/** The path of an error: `containers.web.ports[0].hostPort`. */
export const errorPath = (e: t.ValidationError): string => {
  let p = '';
  for (const entry of e.context.slice(1)) {
    if (entry.key === '') continue;
    p += entry.key.startsWith('[') ? entry.key : p === '' ? entry.key : `.${entry.key}`;
  }
  return p;
};

/** Every error, one line each, without the file name: `path: message`. */
export const formatErrors = (errors: t.Errors): string[] =>
  errors.map((e) => {
    const p = errorPath(e);
    const last = e.context[e.context.length - 1];
    const msg = e.message ?? `expected ${last?.type.name ?? 'something else'}, got ${show(e.value)}`;
    return p === '' ? msg : `${p}: ${msg}`;
  });

/** Decode `u` with `codec`; Left carries formatted problems. */
export const decodeWith = <A>(codec: t.Type<A, unknown, unknown>, u: unknown, root = ''): E.Either<string[], A> => {
  const r = codec.validate(u, [{ key: root, type: codec, actual: u }]);
  return E.isLeft(r) ? E.left(formatErrors(r.left).map((m) => (root ? `${root}.${m}` : m))) : E.right(r.right);
};
