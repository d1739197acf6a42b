// Runs once around the whole suite: refuses to start without root or
// fixtures, and fails the run if it left Berth objects on the host.
import * as fs from 'node:fs';
import { findLeaks } from './leaks.js';
import { fixtureRootfs, probeBinary, recvttyBinary } from './paths.js';

let before: Set<string>;

export function setup(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the tests create namespaces, cgroups and mounts: run them as root (scripts/test.sh)');
  }
  for (const p of [fixtureRootfs + '/probe', fixtureRootfs + '/bin/busybox', probeBinary, recvttyBinary]) {
    if (!fs.existsSync(p)) {
      throw new Error(`missing test fixture ${p}: run test/fixtures/make-fixtures.sh (or scripts/setup.sh)`);
    }
  }
  before = new Set(findLeaks());
}

export function teardown(): void {
  // Only what this run added counts. Outside CI other people may be running
  // containers on the same host: there, count only objects named like ours
  // (temp dirs, cgroups and roots are all called berth-test-*).
  const ours = (l: string) => process.env.CI !== undefined || l.includes('berth-test-');
  const leaked = findLeaks().filter((l) => !before.has(l) && ours(l));
  if (leaked.length > 0) {
    const shown = leaked.slice(0, 20).map((l) => (l.length > 200 ? l.slice(0, 200) + '...' : l));
    const more = leaked.length > shown.length ? `\n  ... and ${leaked.length - shown.length} more` : '';
    throw new Error(`the test run left ${leaked.length} Berth objects on the host:\n  ${shown.join('\n  ')}${more}`);
  }
}
