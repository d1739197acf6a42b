// engine/log.ts: a logger loads pino and makes its instance only when
// something needs one (pino with its sonic-boom and thread-stream brings
// node:assert and node:worker_threads into berth's start-up snapshot, ~1.5 ms
// of every start; making an instance looks up its callers' files, ~1.7 ms),
// once, and an unknown level still fails at once.
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';

const { createLogger, silentLogger, LEVELS } = await import('../../engine/log.js');

const require = createRequire(import.meta.url);
const pinoPath = require.resolve('pino');
/** Whether pino's module has been loaded in this process (through any require). */
const pinoLoaded = (): boolean => require.cache[pinoPath] !== undefined;
// checked before anything below loads it: importing the logger's module does not
const loadedByImport = pinoLoaded();

// the pino that engine/log.ts will load (same resolved file, one module cache): counted
const made = { count: 0 };
type PinoFn = typeof import('pino').pino;
const real = require('pino') as PinoFn;
const counted = Object.assign((...a: Parameters<PinoFn>) => {
  made.count++;
  return real(...a);
}, real);
require.cache[pinoPath]!.exports = counted;

afterEach(() => {
  made.count = 0;
  delete process.env['BERTH_LOG_LEVEL'];
});

describe('engine logger', () => {
  it('loads pino only when a logger needs it', () => {
    expect(loadedByImport).toBe(false);
  });

  it("knows pino's levels without it", () => {
    expect(LEVELS).toEqual(real.levels.values);
  });

  it('answers level, isLevelEnabled and the methods below its level without making pino', () => {
    const log = createLogger({ pretty: false, level: 'warn' });
    log.debug('not written');
    log.info({ x: 1 }, 'not written');
    expect(log.level).toBe('warn');
    expect(log.isLevelEnabled('info')).toBe(false);
    expect(log.isLevelEnabled('error')).toBe(true);
    expect(made.count).toBe(0);
    // child() needs the real one (no line is written)
    const child = log.child({ component: 'x' });
    expect(made.count).toBe(1);
    expect(child.level).toBe('warn');
    log.debug('still not written');
    expect(made.count).toBe(1);
  });

  it('a silent logger never makes pino for its level methods', () => {
    const log = silentLogger();
    log.error('dropped');
    log.fatal('dropped');
    expect(log.isLevelEnabled('fatal')).toBe(false);
    expect(made.count).toBe(0);
  });

  it('an unknown BERTH_LOG_LEVEL is left to pino, as before, at once', () => {
    process.env['BERTH_LOG_LEVEL'] = 'bogus';
    expect(() => createLogger({ pretty: false })).toThrow(/bogus/);
    expect(made.count).toBe(1);
  });
});
