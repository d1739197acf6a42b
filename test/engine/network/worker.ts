/** engine/network compiled into a test root, for worker processes that the tests kill (node runs no TypeScript here). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

const compiled = new Map<string, string>();

/** Compiles engine/network once per test root; returns the directory holding engine/network/networking.js. */
export const compileNetworkWorker = (root: string): string => {
  const known = compiled.get(root);
  if (known) return known;
  const outDir = path.join(root, 'worker');
  execFileSync(path.join(repoRoot, 'node_modules/.bin/tsc'), [
    '--ignoreConfig', '--outDir', outDir, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023', '--skipLibCheck', '--types', 'node',
    '--rootDir', repoRoot, path.join(repoRoot, 'engine/network/networking.ts'),
  ], { cwd: repoRoot, stdio: 'pipe' });
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(outDir, 'node_modules'));
  fs.writeFileSync(path.join(outDir, 'package.json'), '{"type":"module"}');
  compiled.set(root, outDir);
  return outDir;
};
