/**
 * The error edge for Berth's own commands: an action that throws is
 * rendered once (tagged engine errors as their one-line message, with the
 * stack under --debug) and the process exits 1.
 */
import type { Command } from 'commander';
import { renderError, toEngineError } from '../engine/errors.js';

export const guard =
  <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
  async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (e) {
      const cmd = args[args.length - 1] as Command;
      const debug = cmd.optsWithGlobals?.()['debug'] === true;
      process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
      if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exitCode = 1;
    }
  };
