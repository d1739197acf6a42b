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
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
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

/** pino-pretty, loaded on first use (the module doc says why). */
const loadPretty = (): Pretty => {
  const m = createRequire(import.meta.url)('pino-pretty') as Pretty | { default: Pretty };
  return typeof m === 'function' ? m : m.default;
};

export const createLogger = (opts: LoggerOptions = {}): Logger => {
  const level = process.env['BERTH_LOG_LEVEL'] ?? opts.level ?? (opts.debug ? 'debug' : 'info');
  const human = opts.pretty ?? process.stderr.isTTY === true;
  const base = { name: opts.name ?? 'berth', level };
  if (human) {
    return pino(base, loadPretty()({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
};

/** A logger that drops everything (tests, library callers that pass none). */
export const silentLogger = (): Logger => pino({ level: 'silent' });
