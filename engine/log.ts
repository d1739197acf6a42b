/**
 * The engine's logger: pino, structured JSON lines on stderr; a human
 * (pino-pretty) rendering when stderr is a TTY. Engine code takes a Logger
 * as a parameter and never prints.
 *
 * pino-pretty is loaded only when a human rendering is made: it brings
 * colorette, which reads TERM, NO_COLOR, FORCE_COLOR, CI and whether fd 1
 * is a terminal while it is evaluated, so importing it here would keep
 * this module (and engine/network/networking.js with it) out of berth's
 * start-up snapshot (cli/snapshot.ts), and every `berth run` on a bridge
 * would evaluate pino and pino-pretty, ~25 ms.
 *
 * pino itself is loaded on first use too (a level method at or above the
 * logger's level, child(), ...): with its sonic-boom and thread-stream it
 * brings node:assert and node:worker_threads, and in berth's start-up
 * snapshot that heap costs every command ~1.5 ms to start, where a
 * `berth run` mostly writes no log line at all. The levels below are
 * pino's own (test/engine/log.test.ts checks them against it).
 */
import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import type { Logger, pino as PinoFactory } from 'pino';
import type { PrettyOptions } from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  /** Log level; `debug: true` means 'debug', else 'info' (env BERTH_LOG_LEVEL overrides both). */
  readonly debug?: boolean;
  readonly level?: string;
  readonly name?: string;
  /** Force human output on or off; default: when stderr is a TTY. */
  readonly pretty?: boolean;
}

type Pretty = (opts: PrettyOptions) => NodeJS.WritableStream;

/** pino's levels (pino.levels.values), known without loading pino. */
export const LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

let loadedPino: typeof PinoFactory | undefined;
/** pino, loaded on first use (the module doc says why). */
const loadPino = (): typeof PinoFactory => {
  if (loadedPino === undefined) {
    const m = createRequire(import.meta.url)('pino') as typeof PinoFactory | { pino: typeof PinoFactory };
    loadedPino = typeof m === 'function' ? m : m.pino;
  }
  return loadedPino;
};

/** pino-pretty, loaded on first use (the module doc says why). */
const loadPretty = (): Pretty => {
  const m = createRequire(import.meta.url)('pino-pretty') as Pretty | { default: Pretty };
  return typeof m === 'function' ? m : m.default;
};

/**
 * A logger whose pino instance is made on the first use that needs one: a
 * level method at or above `level`, child(), or anything else; `level`,
 * `isLevelEnabled` and the methods below the level answer without it.
 * Making a pino instance looks up its callers' files (util.getCallSites,
 * for pino's transports): in berth's start-up snapshot, whose code is one
 * 0.7 MB script, finding their lines costs ~1.7 ms, and a `berth run`
 * mostly writes no log line at all.
 */
const deferred = (level: string, make: () => Logger): Logger => {
  const values = LEVELS;
  // a level pino does not know: made now, so that pino answers it as it always did
  if (level !== 'silent' && values[level] === undefined) return make();
  const threshold = level === 'silent' ? Infinity : values[level]!;
  const below = (): void => undefined;
  let real: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      if (real === undefined && typeof prop === 'string') {
        const v = values[prop];
        if (v !== undefined && v < threshold) return below;
        if (prop === 'level') return level;
        if (prop === 'isLevelEnabled') return (l: string): boolean => (values[l] ?? Infinity) >= threshold;
      }
      real ??= make();
      const value: unknown = Reflect.get(real, prop, real);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
    },
    set(_target, prop, value) {
      real ??= make();
      return Reflect.set(real, prop, value, real);
    },
  });
};

export const createLogger = (opts: LoggerOptions = {}): Logger => {
  const level = process.env['BERTH_LOG_LEVEL'] ?? opts.level ?? (opts.debug ? 'debug' : 'info');
  // isatty(2), not process.stderr.isTTY: the stream would be made only to ask (for a pipe, Node makes the fd
  // non-blocking then, and a `run` that made no stdio stream can report its exit early, cli/startup.ts)
  const human = opts.pretty ?? isatty(2);
  const base = { name: opts.name ?? 'berth', level };
  if (human) {
    return deferred(level, () => loadPino()(base, loadPretty()({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' })));
  }
  return deferred(level, () => {
    const pino = loadPino();
    return pino(base, pino.destination({ dest: 2, sync: true }));
  });
};

/** A logger that drops everything (tests, library callers that pass none). */
export const silentLogger = (): Logger => deferred('silent', () => loadPino()({ level: 'silent' }));
