/**
 * The engine's logger: pino, structured JSON lines on stderr; a human
 * (pino-pretty) rendering when stderr is a TTY. Engine code takes a Logger
 * as a parameter and never prints.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  /** Log level; `debug: true` means 'debug', else 'info' (env BERTH_LOG_LEVEL overrides both). */
  readonly debug?: boolean;
  readonly level?: string;
  readonly name?: string;
  /** Force human output on or off; default: when stderr is a TTY. */
  readonly pretty?: boolean;
}

export const createLogger = (opts: LoggerOptions = {}): Logger => {
  const level = process.env['BERTH_LOG_LEVEL'] ?? opts.level ?? (opts.debug ? 'debug' : 'info');
  const human = opts.pretty ?? process.stderr.isTTY === true;
  const base = { name: opts.name ?? 'berth', level };
  if (human) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
};

/** A logger that drops everything (tests, library callers that pass none). */
export const silentLogger = (): Logger => pino({ level: 'silent' });
