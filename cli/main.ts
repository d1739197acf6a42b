#!/usr/bin/env node
/**
 * The `berth` command. Each file in cli/commands/ registers one group of
 * verbs on the program (`register(program)`); global options are read
 * with `cmd.optsWithGlobals()` (see cli/context.ts). Engines and stores are
 * opened lazily inside actions, so `berth --help` stays fast.
 */
import { Command } from 'commander';
import registerAuthCommands from './commands/auth.js';
import registerContainerCommands, { engineFor } from './commands/containers.js';
import registerImageCommands from './commands/images.js';
import { registerNetworkCommands } from './commands/networks.js';
import { registerStackCommands } from './commands/stack.js';
import registerSystemCommands from './commands/system.js';
import registerVolumeCommands from './commands/volumes.js';
import { DEFAULT_ROOT } from './context.js';
import { renderError, toEngineError } from '../engine/errors.js';

const program = new Command('berth')
  .description('a daemonless Linux container engine with a declarative front')
  .version('0.1.0')
  .option('--root <dir>', 'persistent state (env BERTH_ROOT)', process.env['BERTH_ROOT'] ?? DEFAULT_ROOT)
  .option('--run-root <dir>', 'runtime state (env BERTH_RUN_ROOT; default /run/berth)')
  .option('--runtime <path>', 'OCI runtime to run containers with (berth-runtime, runc)')
  .option('--json', 'machine-readable output')
  .option('--debug', 'debug logs and stack traces')
  .showHelpAfterError()
  .enablePositionalOptions();

registerImageCommands(program);
registerAuthCommands(program);
registerSystemCommands(program);
registerContainerCommands(program);
registerVolumeCommands(program);
registerNetworkCommands(program, { engine: () => engineFor(program) });
registerStackCommands(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
  process.exitCode = 1;
});
