#!/bin/sh
# Networking benchmarks (root; needs iproute2, nftables, iperf3, hyperfine):
#   bench/network/run.sh            iperf3 through published ports (Berth's paths, then Berth vs
#                                   docker with and without its userland proxy vs podman), setup/teardown latency
#   bench/network/run.sh run-rm     run --rm busybox true on the default bridge and with --network none,
#                                   Berth vs podman vs docker (CLI, hyperfine), then Berth's engine in process
#   bench/network/run.sh setups     50 setups in a row on one network, then 50 at once, and their teardowns
# Compiles what it needs into a temporary directory and runs it with node.
# BENCH_SECONDS, BENCH_REPEATS, BENCH_CYCLES, BENCH_ROUNDS, ROUNDS, RUNS tune the runs;
# BENCH_PEERS=0 leaves podman and docker out (they run privately: test/helpers/peers.ts).
# Each engine's runtime state (Berth's run root, podman's run root and tmp dir, docker's
# exec root) is on a tmpfs of its own, as /run is on a standard host; BENCH_RUN_STATE=disk
# keeps it under /tmp with the rest.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
script=${1:-published-port}
out=$(mktemp -d /tmp/berth-bench-build-XXXXXX)
trap 'rm -rf "$out"' EXIT
[ "$script" = run-rm ] || [ "$script" = setups ] || command -v iperf3 >/dev/null || { echo "iperf3 is missing: apt-get install iperf3" >&2; exit 1; }
"$repo/node_modules/.bin/tsc" --ignoreConfig --outDir "$out" --module nodenext --moduleResolution nodenext \
  --target es2023 --skipLibCheck --types node --rootDir "$repo" "$repo/bench/network/$script.ts"
ln -s "$repo/node_modules" "$out/node_modules"
ln -s "$repo/native" "$out/native"  # the engine finds berth-runtime and berth-shim next to its modules
echo '{"type":"module"}' > "$out/package.json"
# the engines' CLI comparisons run Berth as users do, dist/cli/berth, from a copy of
# dist/ and native/build taken now (mtimes kept: the launcher's snapshot check), so
# that a rebuild by someone else during the run cannot break it
mkdir "$out/berth"
cp -a "$repo/dist" "$out/berth/dist"
cp "$repo/package.json" "$out/berth/package.json"
ln -s "$repo/node_modules" "$out/berth/node_modules"
cp -a "$repo/native/build" "$out/berth/native"
export BERTH_DIST="$out/berth/dist" BERTH_NATIVE_DIR="$out/berth/native"
echo "host: $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$repo" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
cd "$repo" && BERTH_REPO="$repo" node "$out/bench/network/$script.js"
