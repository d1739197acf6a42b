#!/usr/bin/env node
/**
 * The `berth` command. Each file in cli/commands/ registers one group of
 * verbs on the program (`register(program)`); global options are read
 * with `cmd.optsWithGlobals()` (see cli/context.ts).
 *
 * Start-up is kept small: Node's compile cache is turned on before any
 * other module is read (cli/startup.ts), and only the command group that
 * argv names is imported (cli/lazy.ts, which also holds the table of
 * top-level commands). Engines and stores are opened lazily inside
 * actions. To add a command group: a loader and its words in cli/lazy.ts.
 *
 * This is the plain entry. The installed command (package.json "bin") is
 * dist/cli/berth, a launcher (cli/berth.sh) that starts Node from a V8
 * start-up snapshot of the CLI (cli/snapshot.ts, built by `npm run
 * build`) and runs this file instead whenever the snapshot does not fit;
 * both print the same (test/cli/snapshot.test.ts).
 */
import { dropLauncherEnv, enableCompileCache } from './startup.js';

dropLauncherEnv();
enableCompileCache(process.argv.slice(2));

import('./lazy.js')
  .then(({ runCli }) => runCli(process.argv))
  .catch(async (e: unknown) => {
    const { renderError, toEngineError } = await import('../engine/errors.js');
    process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
    process.exitCode = 1;
  });
