// The `berth` command for CLI tests: dist/cli/main.js when the CLI's main
// exists, else a commander program with the container and volume groups
// and the global options (--root, --json, --debug).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// BERTH_TEST_DIST: a private build (tests compile one so that a concurrent `npm run build` cannot break them)
const dist = process.env.BERTH_TEST_DIST ?? path.join(repo, 'dist');
const main = path.join(dist, 'cli/main.js');
if (fs.existsSync(main) && !process.env.BERTH_TEST_OWN_MAIN) {
  await import(main);
} else {
  const { Command } = await import('commander');
  const { registerContainerCommands } = await import(path.join(dist, 'cli/commands/containers.js'));
  const { registerVolumeCommands } = await import(path.join(dist, 'cli/commands/volumes.js'));
  const program = new Command('berth').option('--root <dir>').option('--json').option('--debug');
  registerContainerCommands(program);
  registerVolumeCommands(program);
  await program.parseAsync(process.argv);
}
