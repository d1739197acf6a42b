#!/usr/bin/env bash
# Containers through the berth CLI, as a user runs them:
#   1. `berth run --rm --network none busybox true` (hyperfine -N, one CLI process per run)
#   2. 50 detached `sleep` containers: wall time to start them all (one CLI
#      process each), then host memory per running container (MemAvailable
#      before/after, and the shims' Pss).
# podman and docker run the same steps when they are installed and set up
# as bench/../shared PEERS notes say (BENCH_PEERS=1); otherwise their figures
# measured on this host class are quoted in RESULTS-section.md.
# Needs: npm run build, make -C native, test/fixtures/make-fixtures.sh, hyperfine.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
node=${NODE:-node}
runs=${RUNS:-30}
count=${COUNT:-50}
out="$repo/bench/out"
mkdir -p "$out"
dir=$(mktemp -d /tmp/berth-bench-containers-XXXXXX)
root="$dir/root"
berth=("$node" "$repo/dist/cli/main.js" --root "$root")
cleanup() {
  ids=$("${berth[@]}" ps -aq --no-trunc 2>/dev/null || true)
  [ -n "$ids" ] && "${berth[@]}" rm -f $ids >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

tar -C "$repo/test/fixtures/build/rootfs" --numeric-owner -cf "$dir/busybox.tar" .
"$node" --input-type=module -e "
const { openLocalEngine } = await import('$repo/dist/engine/local.js');
const { importLayers } = await import('$repo/dist/engine/local-images.js');
const e = openLocalEngine({ root: '$root', runRoot: '$root/run' });
await importLayers(e.store, ['$dir/busybox.tar'], 'busybox:latest', { cmd: ['sh'] });
"

echo "== berth run --rm --network none busybox true ($runs runs)"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$out/containers-run-rm.json" \
  "${berth[*]} run --rm --network none busybox true"

echo "== $count detached sleep containers"
avail() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
before=$(avail)
t0=$(date +%s.%N)
for i in $(seq 1 "$count"); do "${berth[@]}" run -d --network none busybox sleep 600 >/dev/null; done
t1=$(date +%s.%N)
sleep 2
after=$(avail)
pss=0; n=0
for f in "$root"/run/shims/*/shim.pid; do
  p=$(cat "$f"); v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup); pss=$((pss + v)); n=$((n + 1))
done
cpss=0; cgmem=0
for id in $("${berth[@]}" ps -q --no-trunc); do
  p=$("${berth[@]}" inspect -f '{{.State.Pid}}' "$id"); v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup); cpss=$((cpss + v))
  # what the kernel charges the container's memory cgroup (its pages and kernel objects)
  m=$(cat /sys/fs/cgroup/memory/berth/$id/memory.usage_in_bytes 2>/dev/null || echo 0); cgmem=$((cgmem + m))
done
awk -v t0="$t0" -v t1="$t1" -v b="$before" -v a="$after" -v n="$count" -v pss="$pss" -v k="$n" -v cpss="$cpss" -v cgmem="$cgmem" 'BEGIN {
  printf "start %d: %.1f s (%.0f ms each)\n", n, t1 - t0, (t1 - t0) * 1000 / n;
  printf "MemAvailable drop per container: %.2f MB\n", (b - a) / n / 1024;
  printf "shim Pss: %.0f KiB each (%d shims); container process Pss: %.0f KiB each\n", pss / k, k, cpss / n;
  printf "memory cgroup usage: %.0f KiB each; shim Pss + cgroup usage: %.2f MB per container\n", cgmem / n / 1024, (pss / k + cgmem / n / 1024) / 1024;
}' | tee "$out/containers-50.txt"
