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

export async function teardown(): Promise<void> {
  // Only what this run added counts. Outside CI other people may be running
  // containers on the same host: there, count only objects named like ours
  // (temp dirs, cgroups and roots are all called berth-test-*).
  const ours = (l: string) => process.env.CI !== undefined || l.includes('berth-test-');
  const added = (): string[] => findLeaks().filter((l) => !before.has(l) && ours(l));
  let leaked = added();
  // The last test's shims exited moments ago: pid 1 reaps its orphans when it gets to
  // them (on some hosts only every second or so), so zombies get a few seconds to go.
  for (let waited = 0; waited < 5_000 && leaked.some((l) => l.includes('(zombie, parent ')); waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    leaked = added();
  }
  if (leaked.length > 0) {
    const shown = leaked.slice(0, 20).map((l) => (l.length > 200 ? l.slice(0, 200) + '...' : l));
    const more = leaked.length > shown.length ? `\n  ... and ${leaked.length - shown.length} more` : '';
    throw new Error(`the test run left ${leaked.length} Berth objects on the host:\n  ${shown.join('\n  ')}${more}`);
  }
}
