#!/usr/bin/env bash
# Runs every test: setup (idempotent), then vitest over test/**/*.test.ts.
# Extra arguments go to vitest (e.g. a file: scripts/test.sh test/runtime).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"
bash scripts/setup.sh
exec npx vitest run "$@"
