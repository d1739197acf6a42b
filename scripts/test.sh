#!/usr/bin/env bash
# Runs every test: setup (idempotent), then vitest over test/**/*.test.ts.
# Extra arguments go to vitest (e.g. a file: scripts/test.sh test/runtime).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"
[ "${BERTH_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
. scripts/env.sh   # again: setup may have just installed Node into .tools/
exec npx vitest run "$@"
