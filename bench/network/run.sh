#!/bin/sh
# Networking benchmark (root; needs iproute2, nftables, iperf3): compiles the
# engine's networking and bench/network/published-port.ts into a temporary
# directory and runs it. BENCH_SECONDS, BENCH_REPEATS, BENCH_CYCLES tune it;
# BENCH_OUT=file also writes the figures there.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d /tmp/berth-bench-build-XXXXXX)
trap 'rm -rf "$out"' EXIT
command -v iperf3 >/dev/null || { echo "iperf3 is missing: apt-get install iperf3" >&2; exit 1; }
"$repo/node_modules/.bin/tsc" --ignoreConfig --outDir "$out" --module nodenext --moduleResolution nodenext \
  --target es2023 --skipLibCheck --types node --rootDir "$repo" "$repo/bench/network/published-port.ts"
ln -s "$repo/node_modules" "$out/node_modules"
echo '{"type":"module"}' > "$out/package.json"
echo "host: $(nproc) CPUs, kernel $(uname -r), $(iperf3 --version | head -1)"
node "$out/bench/network/published-port.js"
