#!/usr/bin/env bash
# Stack benchmarks (issue 6): no-op plan over 1,000 resources, apply of 50
# and 200 containers from empty. As root, from anywhere:
#   bench/stack/run.sh                 # noop apply:50 apply:200
#   bench/stack/run.sh apply:50        # one of them
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top"
make -C native >/dev/null
examples/web/make-rootfs.sh >/dev/null
npx tsc -p tsconfig.json
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
node dist/bench/stack/bench.js "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
