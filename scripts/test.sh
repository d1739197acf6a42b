#!/usr/bin/env bash
# Runs every test: setup (idempotent), then vitest over test/**/*.test.ts.
# Extra arguments go to vitest (e.g. a file: scripts/test.sh test/runtime).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"
[ "${BERTH_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
. scripts/env.sh   # again: setup may have just installed Node into .tools/
# vitest prints its own summary; CI also reads a plain "N passed, N failed" line,
# made from vitest's JSON report (a non-zero exit counts as at least one failure,
# e.g. the leak check that runs after the last test).
report=$(mktemp /tmp/berth-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT
rc=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || rc=$?
node - "$report" "$rc" <<'JS'
const fs = require('node:fs');
const [file, rcText] = process.argv.slice(2);
let r = {};
try { r = JSON.parse(fs.readFileSync(file, 'utf8')); } catch { /* vitest died before writing it */ }
const rc = Number(rcText);
const passed = r.numPassedTests ?? 0;
let failed = (r.numFailedTests ?? 0) + ((r.numFailedTests ?? 0) === 0 ? (r.numFailedTestSuites ?? 0) : 0);
if (rc !== 0 && failed === 0) failed = 1;
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
JS
exit "$rc"
