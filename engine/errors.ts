/**
 * Tagged error values shared by the whole engine.
 *
 * Code branches on `_tag`, never on the message. Each error is rendered once,
 * at the edge (CLI, agent API, Pulumi) with `renderError`. Inside plain async
 * code an error travels as an `EngineFailure` (an Error carrying the value),
 * so stack traces survive; `toEngineError` turns anything caught back into a
 * value.
 */

export type EngineError =
  /** A named object does not exist. `kind` is e.g. "image", "blob", "container". */
  | { readonly _tag: 'NotFound'; readonly kind: string; readonly name: string; readonly hint?: string }
  | { readonly _tag: 'AlreadyExists'; readonly kind: string; readonly name: string; readonly hint?: string }
  /** Untrusted input (JSON, YAML, tar, CLI argument) failed validation. `problems` lists every finding. */
  | { readonly _tag: 'InvalidSpec'; readonly source: string; readonly problems: readonly string[] }
  /** The operation clashes with current state (in use, locked, changed meanwhile). */
  | { readonly _tag: 'Conflict'; readonly kind: string; readonly name: string; readonly reason: string }
  /** A system call failed. */
  | { readonly _tag: 'Kernel'; readonly syscall: string; readonly errno: string; readonly path?: string; readonly message: string }
  /** Content did not match what it claims to be (digest, size, diff ID). */
  | { readonly _tag: 'Corrupt'; readonly object: string; readonly expected: string; readonly actual: string }
  /** A remote endpoint (registry, token server) failed or answered something unusable. */
  | { readonly _tag: 'Remote'; readonly endpoint: string; readonly status?: number; readonly message: string }
  /** A remote endpoint refused our credentials (or we had none). */
  | { readonly _tag: 'Unauthorized'; readonly endpoint: string; readonly message: string }
  /** Valid input that this engine does not handle. */
  | { readonly _tag: 'Unsupported'; readonly what: string }
  /** A bug or an unexpected condition; carries the original message. */
  | { readonly _tag: 'Internal'; readonly message: string };

export type ErrorTag = EngineError['_tag'];

export class EngineFailure extends Error {
  constructor(readonly error: EngineError, options?: { cause?: unknown }) {
    super(renderError(error), options);
    this.name = `EngineFailure(${error._tag})`;
  }
}

export const fail = (error: EngineError, cause?: unknown): never => {
  throw new EngineFailure(error, cause === undefined ? undefined : { cause });
};

export const notFound = (kind: string, name: string, hint?: string): EngineError =>
  hint === undefined ? { _tag: 'NotFound', kind, name } : { _tag: 'NotFound', kind, name, hint };
export const alreadyExists = (kind: string, name: string, hint?: string): EngineError =>
  hint === undefined ? { _tag: 'AlreadyExists', kind, name } : { _tag: 'AlreadyExists', kind, name, hint };
export const invalidSpec = (source: string, problems: readonly string[]): EngineError => ({ _tag: 'InvalidSpec', source, problems });
export const conflict = (kind: string, name: string, reason: string): EngineError => ({ _tag: 'Conflict', kind, name, reason });
export const corrupt = (object: string, expected: string, actual: string): EngineError => ({ _tag: 'Corrupt', object, expected, actual });
export const remote = (endpoint: string, message: string, status?: number): EngineError =>
  status === undefined ? { _tag: 'Remote', endpoint, message } : { _tag: 'Remote', endpoint, status, message };
export const unauthorized = (endpoint: string, message: string): EngineError => ({ _tag: 'Unauthorized', endpoint, message });
export const unsupported = (what: string): EngineError => ({ _tag: 'Unsupported', what });

const isErrno = (e: unknown): e is NodeJS.ErrnoException =>
  e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';

/** A Kernel error from a Node fs/child_process error (which carries code and syscall). */
export const kernel = (e: NodeJS.ErrnoException, path?: string): EngineError => {
  const p = path ?? e.path;
  const base = { _tag: 'Kernel' as const, syscall: e.syscall ?? 'unknown', errno: e.code ?? 'EUNKNOWN', message: e.message };
  return p === undefined ? base : { ...base, path: p };
};

export const isEngineFailure = (e: unknown): e is EngineFailure => e instanceof EngineFailure;

/** True when `e` is an EngineFailure (or Node errno error mapped to one) with the given tag. */
export const hasTag = (e: unknown, tag: ErrorTag): boolean => toEngineError(e)._tag === tag;

/** Whatever was thrown, as an EngineError value. */
export const toEngineError = (e: unknown): EngineError => {
  if (e instanceof EngineFailure) return e.error;
  if (isErrno(e)) return kernel(e);
  if (e instanceof Error) return { _tag: 'Internal', message: e.message };
  return { _tag: 'Internal', message: String(e) };
};

/** Run `f`; a Node errno error becomes a Kernel EngineFailure naming `path`. */
export const sys = async <A>(path: string, f: () => Promise<A>): Promise<A> => {
  try {
    return await f();
  } catch (e) {
    if (isErrno(e)) throw new EngineFailure(kernel(e, path), { cause: e });
    throw e;
  }
};

/** One line (or a few, for InvalidSpec) that says what failed, on which object, and what to do. */
export const renderError = (e: EngineError): string => {
  switch (e._tag) {
    case 'NotFound':
      return `${e.kind} ${JSON.stringify(e.name)} not found${e.hint ? `: ${e.hint}` : ''}`;
    case 'AlreadyExists':
      return `${e.kind} ${JSON.stringify(e.name)} already exists${e.hint ? `: ${e.hint}` : ''}`;
    case 'InvalidSpec':
      return e.problems.length === 1
        ? `${e.source}: ${e.problems[0]}`
        : `${e.source}: ${e.problems.length} problems:\n${e.problems.map((p) => `  - ${p}`).join('\n')}`;
    case 'Conflict':
      return `${e.kind} ${JSON.stringify(e.name)}: ${e.reason}`;
    case 'Kernel':
      return `${e.syscall}${e.path ? ` '${e.path}'` : ''}: ${e.errno} (${e.message})`;
    case 'Corrupt':
      return `${e.object}: content does not match: expected ${e.expected}, got ${e.actual}`;
    case 'Remote':
      return `${e.endpoint}: ${e.status !== undefined ? `HTTP ${e.status}: ` : ''}${e.message}`;
    case 'Unauthorized':
      return `${e.endpoint}: unauthorized: ${e.message} (try \`berth login\`)`;
    case 'Unsupported':
      return `unsupported: ${e.what}`;
    case 'Internal':
      return `internal error: ${e.message}`;
  }
};
