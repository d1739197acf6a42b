// engine/log.ts: a logger makes its pino instance only when something needs
// one (pino looks up its callers' files then, which costs a start-up from
// berth's snapshot ~1.7 ms), once, and an unknown level still fails at once.
import { afterEach, describe, expect, it, vi } from 'vitest';

const made = vi.hoisted(() => ({ count: 0 }));
vi.mock('pino', async (importOriginal) => {
  const real = await importOriginal<typeof import('pino')>();
  const counted = Object.assign((...a: Parameters<typeof real.pino>) => {
    made.count++;
    return real.pino(...a);
  }, real.pino);
  return { ...real, pino: counted, default: counted };
});

const { createLogger, silentLogger } = await import('../../engine/log.js');

afterEach(() => {
  made.count = 0;
  delete process.env['BERTH_LOG_LEVEL'];
});

describe('engine logger', () => {
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
