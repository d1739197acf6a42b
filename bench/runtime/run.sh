#!/usr/bin/env bash
# Times OCI runtimes side by side with hyperfine: `run` of /bin/true in the
# busybox fixture rootfs, and a create+start+delete cycle (cycle.sh).
# Usage: bench/runtime/run.sh [RUNTIME...]   (berth-runtime runc crun by default)
# Env: RUNS (default 50), WARMUP (default 5), BENCH_CRUN_HUGETLB=1 (below).
# Writes bench/out/runtime-{run,cycle}.json (hyperfine exports), runtime.md
# and runtime-summary.json (medians, ratios to runc), and prints the table.
#
# crun 1.8.1 refuses a hybrid cgroup host whose cgroup2 mount holds a
# controller. With BENCH_CRUN_HUGETLB=1, and only when no other container
# runtime process is running, the bench binds hugetlb to a v1 hierarchy for
# crun's turn only and gives it back to cgroup2 afterwards (../shared/PEERS.md).
# It changes the host's cgroup layout for that time: a runtime that starts a
# container meanwhile puts groups into that hierarchy, which keeps it from
# going back (seen here), hence the opt-in and the check.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/env.sh"
cd "$BERTH_TOP"

runtimes=("$@")
[ ${#runtimes[@]} -gt 0 ] || runtimes=(berth-runtime runc crun)
[ "${BERTH_SKIP_SETUP:-}" = 1 ] || BERTH_RUNTIMES="${runtimes[*]}" bash scripts/setup.sh
. scripts/env.sh   # again: setup may have just installed Node into .tools/
RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}

out="$BERTH_TOP/bench/out"
mkdir -p "$out"
work=$(mktemp -d /tmp/berth-bench-XXXXXX)
hugetlb_mounted=
cleanup() {
  for rt in "${runtimes[@]}"; do
    bin=$(runtime_path "$rt" 2>/dev/null) || continue
    for id in berth-bench-run berth-bench-cycle; do
      "$bin" --root "$work/root-$rt" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  unbind_hugetlb
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

runtime_path() {
  case "$1" in
    berth-runtime) echo "$BERTH_TOP/native/build/berth-runtime" ;;
    *) command -v "$1" ;;
  esac
}

hugetlb_was_enabled=
# Pids of container runtimes and monitors running now (other than this script's).
other_runtimes() {
  local p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case "$comm" in
      berth-runtime|berth-shim|runc|crun|conmon|containerd-shim*|dockerd|podman) echo "${p#/proc/} $comm" ;;
    esac
  done
}

bind_hugetlb() {
  if [ "${BENCH_CRUN_HUGETLB:-}" != 1 ]; then
    echo "bench: crun refuses this hybrid host; BENCH_CRUN_HUGETLB=1 moves hugetlb to v1 for its turn (on an otherwise idle host)" >&2
    return 1
  fi
  [ -f /sys/fs/cgroup/cgroup.controllers ] && return 1           # pure v2: not the hybrid case
  local v2=/sys/fs/cgroup/unified
  grep -qw hugetlb "$v2/cgroup.controllers" 2>/dev/null || return 1
  # Child groups on cgroup2 would hold hugetlb state: then someone uses it.
  if [ -e /sys/fs/cgroup/hugetlb ] || find "$v2" -mindepth 1 -maxdepth 1 -type d | grep . >/dev/null; then
    echo "bench: cgroup2 has child groups or /sys/fs/cgroup/hugetlb exists; not moving hugetlb for crun" >&2
    return 1
  fi
  local others
  others=$(other_runtimes)
  if [ -n "$others" ]; then
    echo "bench: other container runtimes are running; not moving hugetlb for crun:" $others >&2
    return 1
  fi
  grep -qw hugetlb "$v2/cgroup.subtree_control" && hugetlb_was_enabled=1
  mkdir /sys/fs/cgroup/hugetlb
  # EBUSY while groups of an earlier runtime (runc makes one on cgroup2
  # too) are still dying: retry for a few seconds.
  for _ in $(seq 1 25); do
    if mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null; then
      hugetlb_mounted=1
      return 0
    fi
    sleep 0.2
  done
  rmdir /sys/fs/cgroup/hugetlb
  echo "bench: could not bind hugetlb to a v1 hierarchy (busy)" >&2
  return 1
}

unbind_hugetlb() {
  [ -n "$hugetlb_mounted" ] || return 0
  # The v1 hierarchy outlives its unmount while it has child groups, live
  # or still dying; remove the empty ones, unmount, and mount and unmount
  # again until the kernel gives hugetlb back to cgroup2.
  local v2=/sys/fs/cgroup/unified d
  for _ in $(seq 1 20); do
    mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null || true
    if mountpoint -q /sys/fs/cgroup/hugetlb; then
      for d in $(find /sys/fs/cgroup/hugetlb -mindepth 1 -type d | sort -r); do
        [ -s "$d/cgroup.procs" ] || rmdir "$d" 2>/dev/null || true
      done
    fi
    umount /sys/fs/cgroup/hugetlb 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      grep -qw hugetlb "$v2/cgroup.controllers" && break 2
      sleep 0.2
    done
  done
  rmdir /sys/fs/cgroup/hugetlb 2>/dev/null || true
  if ! grep -qw hugetlb "$v2/cgroup.controllers"; then
    echo "bench: hugetlb did not go back to cgroup2: mount it on /sys/fs/cgroup/hugetlb, remove its empty child groups, unmount, and repeat" >&2
  elif [ -n "$hugetlb_was_enabled" ]; then
    echo +hugetlb > "$v2/cgroup.subtree_control" ||
      echo "bench: could not enable hugetlb in cgroup2's subtree_control again" >&2
  fi
  hugetlb_mounted=
}

# One bundle: busybox rootfs, /bin/true, no terminal, a berth-named cgroup.
bundle="$work/bundle"
mkdir -p "$bundle"
cp -a test/fixtures/build/rootfs "$bundle/rootfs"
(cd "$bundle" && runc spec)
node --input-type=module - "$bundle/config.json" <<'JS'
import * as fs from 'node:fs';
const file = process.argv[2];
const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
spec.process.terminal = false;
spec.process.args = ['/bin/true'];
spec.linux.cgroupsPath = '/berth-bench';
fs.writeFileSync(file, JSON.stringify(spec, null, 2));
JS

run_cmds=()
cycle_cmds=()
names=()
for rt in "${runtimes[@]}"; do
  bin=$(runtime_path "$rt") || { echo "bench: $rt not installed, left out" >&2; continue; }
  [ -x "$bin" ] || { echo "bench: $bin not built, left out" >&2; continue; }
  mkdir -p "$work/root-$rt"
  names+=("$rt")
  run_cmds+=("$bin --root $work/root-$rt run --bundle $bundle berth-bench-run")
  cycle_cmds+=("$BERTH_TOP/bench/runtime/cycle.sh $bin $work/root-$rt $bundle berth-bench-cycle")
done
[ ${#names[@]} -gt 0 ] || { echo "bench: no runtime to time" >&2; exit 1; }

# crun's turn needs the hugetlb binding; the others run without it, so crun
# is timed in its own hyperfine call and the exports are merged.
hf() { # hf KEY NAME CMD
  hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --style basic -n "$2" "$3" --export-json "$work/$1-$2.json" >&2
}
for i in "${!names[@]}"; do
  rt=${names[$i]}
  if [ "$rt" = crun ]; then
    crun=$(runtime_path crun)
    if ! "$crun" --root "$work/root-crun" run --bundle "$bundle" berth-bench-probe >/dev/null 2>&1; then
      "$crun" --root "$work/root-crun" delete --force berth-bench-probe >/dev/null 2>&1 || true
      if ! bind_hugetlb; then
        echo "bench: crun cannot run on this host, left out" >&2
        continue
      fi
    fi
  fi
  hf run "$rt" "${run_cmds[$i]}"
  hf cycle "$rt" "${cycle_cmds[$i]}"
  [ "$rt" != crun ] || unbind_hugetlb
done

node dist/bench/runtime/summarize.js "$work" "$out"
