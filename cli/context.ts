/**
 * What every command file gets: the global options (--root, --json,
 * --debug), a logger, the store, and a way to find or create a shared
 * command group (`image`, `system`, ...) so that several files can add
 * subcommands to one group.
 */
import type { Command } from 'commander';
import { createLogger, type Logger } from '../engine/log.js';
import { openStore, type Store } from '../engine/store/store.js';

export interface GlobalOptions {
  readonly root: string;
  readonly json: boolean;
  readonly debug: boolean;
}

export const DEFAULT_ROOT = '/var/lib/berth';

export const globals = (cmd: Command): GlobalOptions => {
  const o = cmd.optsWithGlobals<{ root?: string; json?: boolean; debug?: boolean }>();
  return { root: o.root ?? process.env['BERTH_ROOT'] ?? DEFAULT_ROOT, json: o.json === true, debug: o.debug === true };
};

export interface CliContext {
  readonly opts: GlobalOptions;
  readonly log: Logger;
  store(): Store;
}

export const context = (cmd: Command): CliContext => {
  const opts = globals(cmd);
  const log = createLogger({ debug: opts.debug });
  let store: Store | undefined;
  return {
    opts,
    log,
    // BERTH_DURABLE=0 skips fsync/syncfs of pulled content (faster, not crash safe; for benchmarks);
    // BERTH_DURABLE=sync makes a pull wait for the disk before it publishes (engine/store/settle.ts)
    store: () => (store ??= openStore(opts.root, { durable: process.env['BERTH_DURABLE'] !== '0', deferred: process.env['BERTH_DURABLE'] !== 'sync' })),
  };
};

/** The subcommand group `name` of `program`, created on first use. */
export const group = (program: Command, name: string, description: string): Command => {
  const existing = program.commands.find((c) => c.name() === name);
  return existing ?? program.command(name).description(description);
};

/** Signature every cli/commands/*.ts file exports. */
export type Register = (program: Command) => void;
