#!/usr/bin/env bash
# Containers through each engine's CLI, as a user runs them, Berth against
# podman 4.3 and docker 20.10 in one run (issue 4):
#   1. `run --rm --network none busybox true`: hyperfine -N, one CLI process
#      per run, the three engines interleaved (ROUNDS rounds of RUNS runs of
#      each; medians over all rounds).
#   2. COUNT detached `sleep 600` containers per engine, started one CLI call
#      at a time, interleaved (berth, podman, docker, berth, ...): the summed
#      wall time of each engine's calls; then memory per running container,
#      the same method for each engine: Pss of the engine's per-container
#      process (the container's parent: berth-shim, conmon,
#      containerd-shim-runc-v2) + what the kernel charges the container's
#      memory cgroup (memory.usage_in_bytes, which holds the container's own
#      processes). dockerd + containerd's own growth is printed beside it.
# The same busybox image in each engine: the fixture rootfs imported into
# Berth, `berth save` of it loaded into docker (`docker load`) and into
# podman (`skopeo copy docker-archive:... containers-storage:[overlay@...]`):
# the same image ID in all three.
# Peers run privately (test/helpers/dockerd.ts, podman.ts): dockerd in a
# network namespace of its own with its own roots (no bridge, no iptables),
# podman with its own storage and a containers.conf given by CONTAINERS_CONF.
# PEERS=0 runs Berth alone; peers that are not installed are skipped.
# FLOOR=1 (default) adds `node -e 0` and a bare `berth-runtime run` of /bin/true
# to part 1: what any Node front pays before its engine does anything.
# Needs: npm run build, make -C native, test/fixtures/make-fixtures.sh, hyperfine; root;
# node on PATH as the build used it (. scripts/env.sh).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
node=${NODE:-node}
rounds=${ROUNDS:-5}
runs=${RUNS:-6}
count=${COUNT:-50}
out="$repo/bench/out"
mkdir -p "$out"
dir=$(mktemp -d /tmp/berth-bench-containers-XXXXXX)
root="$dir/root"
# Berth as users run it: dist/cli/berth (package.json "bin"; it starts node from
# Berth's V8 start-up snapshot when that is fresh, else runs dist/cli/main.js),
# from a copy of dist/ and native/build taken at the start (mtimes kept), so
# that other engineers rebuilding either during the run cannot break it
cp -a "$repo/dist" "$dir/dist"
cp "$repo/package.json" "$dir/package.json"
ln -s "$repo/node_modules" "$dir/node_modules"
cp -a "$repo/native/build" "$dir/native"
export BERTH_NATIVE_DIR="$dir/native"
build="$dir/dist"
berth=("$build/cli/berth" --root "$root")
podman_dir=
dockerd_dir=
podman=()
docker=()
teardown() {
  set +e
  ids=$("${berth[@]}" ps -aq --no-trunc 2>/dev/null)
  [ -n "$ids" ] && "${berth[@]}" rm -f $ids >/dev/null 2>&1
  [ -n "$podman_dir" ] && "$node" "$dir/helpers/test/helpers/podman.js" cleanup "$podman_dir"
  [ -n "$dockerd_dir" ] && "$node" "$dir/helpers/test/helpers/dockerd.js" stop "$dockerd_dir"
  podman_dir=; dockerd_dir=
  set -e
}
trap 'teardown; rm -rf "$dir"' EXIT
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
json() { "$node" -e "process.stdout.write(String(JSON.parse(require('fs').readFileSync(0,'utf8'))$1))"; }

echo "host: $(nproc) CPUs, kernel $(uname -r), load $(loadavg), commit $(git -C "$repo" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
# the launcher's own test: is the V8 start-up snapshot used?
(
  cd "$build/cli"; nodebin=$(command -v node)
  if [ -z "${BERTH_NO_SNAPSHOT:-}" ] && [ -z "${NODE_OPTIONS:-}" ] && [ -f berth.blob ] && [ "$nodebin" -ef berth.blob.node ] && ! [ "$nodebin" -nt berth.blob ] \
    && [ berth.blob -nt main.js ] && { ! [ -e ../../node_modules/.package-lock.json ] || [ berth.blob -nt ../../node_modules/.package-lock.json ]; }; then
    echo "berth: dist/cli/berth with its V8 start-up snapshot"
  else
    echo "berth: dist/cli/berth without its snapshot (missing or stale: npm run build): dist/cli/main.js"
  fi
)

# the peers' helpers, compiled from test/helpers
"$repo/node_modules/.bin/tsc" --ignoreConfig --outDir "$dir/helpers" --module nodenext --moduleResolution nodenext \
  --target es2023 --skipLibCheck --types node --rootDir "$repo" "$repo/test/helpers/dockerd.ts" "$repo/test/helpers/podman.ts"
echo '{"type":"module"}' > "$dir/helpers/package.json"

# the image: Berth imports the fixture rootfs, the peers load Berth's save of it
tar -C "$repo/test/fixtures/build/rootfs" --numeric-owner -cf "$dir/busybox.tar" .
"$node" --input-type=module -e "
const { openLocalEngine } = await import('$build/engine/local.js');
const { importLayers } = await import('$build/engine/local-images.js');
const e = openLocalEngine({ root: '$root', runRoot: '$root/run' });
await importLayers(e.store, ['$dir/busybox.tar'], 'busybox:latest', { cmd: ['sh'] });
"
"${berth[@]}" save -o "$dir/busybox-save.tar" busybox:latest
echo "berth image: $("$node" -e "process.stdout.write(JSON.parse(require('fs').readFileSync('/dev/stdin','utf8')).find((m) => m.RepoTags.includes('busybox:latest')).Config.replace(/^blobs\/sha256\/|\.json$/g, ''))" < <(tar -xOf "$dir/busybox-save.tar" manifest.json))"

names=(berth)
cmds=("${berth[*]} run --rm --network none busybox true")
if [ "${PEERS:-1}" != 0 ] && command -v podman >/dev/null && command -v skopeo >/dev/null; then
  p=$("$node" "$dir/helpers/test/helpers/podman.js" make)
  podman_dir=$(json .dir <<<"$p")
  read -r -a podman <<<"$(json ".argv.join(' ')" <<<"$p")"
  podman_run=$(json ".runFlags.join(' ')" <<<"$p")
  export CONTAINERS_CONF="$podman_dir/containers.conf"
  skopeo --insecure-policy copy -q "docker-archive:$dir/busybox-save.tar" \
    "containers-storage:[overlay@$podman_dir/root+$podman_dir/runroot]docker.io/library/busybox:latest"
  echo "podman image: $("${podman[@]}" images --no-trunc -q busybox)"
  names+=(podman)
  cmds+=("${podman[*]} run --rm --network none $podman_run busybox true")
else
  echo "podman: not run (PEERS=0, or podman/skopeo missing)"
fi
if [ "${PEERS:-1}" != 0 ] && [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]; then
  d=$("$node" "$dir/helpers/test/helpers/dockerd.js" start none)
  dockerd_dir=$(json .dir <<<"$d")
  docker=(/usr/bin/docker -H "unix://$(json .socket <<<"$d")")
  export DOCKER_CONFIG="$dockerd_dir/cli"
  "${docker[@]}" load -q -i "$dir/busybox-save.tar" >/dev/null
  echo "docker image: $("${docker[@]}" images --no-trunc -q busybox)"
  names+=(docker)
  cmds+=("${docker[*]} run --rm --network none busybox true")
else
  echo "docker: not run (PEERS=0, or docker.io missing)"
fi

# The floor of any `run --rm` through a Node CLI, timed in the same rounds
# (FLOOR=0 leaves it out): `node -e 0` (Node's own start and exit) and
# `berth-runtime run` of a bundle with the same busybox rootfs and /bin/true
# (namespaces, cgroups, mounts, pivot_root, seccomp, exec, wait, delete:
# the container itself, with no engine around it). Their sum is what a Node
# front cannot go below.
engines=("${names[@]}")
if [ "${FLOOR:-1}" != 0 ]; then
  bundle="$dir/bundle"
  mkdir -p "$bundle"
  cp -a "$repo/test/fixtures/build/rootfs" "$bundle/rootfs"
  (cd "$bundle" && "$BERTH_NATIVE_DIR/berth-runtime" spec)
  "$node" -e '
    const fs = require("node:fs"); const f = process.argv[1]; const s = JSON.parse(fs.readFileSync(f, "utf8"));
    s.process.terminal = false; s.process.args = ["/bin/true"]; s.linux.cgroupsPath = "/berth-bench-floor";
    fs.writeFileSync(f, JSON.stringify(s));' "$bundle/config.json"
  names+=(node-e-0 runtime)
  cmds+=("$node -e 0" "$BERTH_NATIVE_DIR/berth-runtime --root $dir/runtime-root run --bundle $bundle berth-bench-floor")
fi

echo "== run --rm --network none busybox true: ${names[*]}, $rounds rounds x $runs runs each, interleaved by round (load $(loadavg))"
hf=()
hfopts=(--style none); [ -n "${HF_SHOW:-}" ] && hfopts=(--show-output)  # HF_SHOW=1: the commands' output, to debug a failing one
for i in "${!names[@]}"; do hf+=(-n "${names[$i]}" "${cmds[$i]}"); done
for r in $(seq 1 "$rounds"); do
  warm=1; [ "$r" = 1 ] && warm=3
  hyperfine -N "${hfopts[@]}" --warmup "$warm" --runs "$runs" --export-json "$dir/run-rm-$r.json" "${hf[@]}" >/dev/null
done
echo "load after: $(loadavg)"
"$node" - "$dir" "$rounds" <<'JS' | tee "$out/containers-run-rm.txt"
const fs = require('node:fs');
const [dir, rounds] = process.argv.slice(2);
const times = {};
for (let r = 1; r <= Number(rounds); r++)
  for (const res of JSON.parse(fs.readFileSync(`${dir}/run-rm-${r}.json`, 'utf8')).results) (times[res.command] ??= []).push(...res.times);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v) * 1000]));
for (const [k, v] of Object.entries(times)) {
  const rel = Object.keys(med).filter((o) => o !== k).map((o) => `${(med[k] / med[o]).toFixed(2)}x ${o}`).join(', ');
  console.log(`${k.padEnd(7)} median ${med[k].toFixed(1)} ms, min ${(Math.min(...v) * 1000).toFixed(1)} ms, n=${v.length}${rel ? ` (${rel})` : ''}`);
}
JS
names=("${engines[@]}") # the floor rows are part 1 only

echo "== $count detached sleep containers per engine, one CLI call each, interleaved (load $(loadavg))"
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
daemon_pss() { # dockerd + its containerd, KiB
  local t=0 f p
  for f in "$dockerd_dir/docker.pid" "$dockerd_dir/exec/containerd/containerd.pid"; do
    p=$(cat "$f" 2>/dev/null) && t=$((t + $(pss "$p")))
  done
  echo "$t"
}
declare -A ns=()
for n in "${names[@]}"; do ns[$n]=0; done
[ -n "$dockerd_dir" ] && daemon_before=$(daemon_pss)
for i in $(seq 1 "$count"); do
  for n in "${names[@]}"; do
    t0=$(date +%s%N)
    case $n in
      berth) "${berth[@]}" run -d --network none busybox sleep 600 >/dev/null ;;
      podman) "${podman[@]}" run -d --network none $podman_run busybox sleep 600 >/dev/null ;;
      docker) "${docker[@]}" run -d --network none busybox sleep 600 >/dev/null ;;
    esac
    ns[$n]=$(( ${ns[$n]} + $(date +%s%N) - t0 ))
  done
done
sleep 2
echo "load: $(loadavg)"
{
for n in "${names[@]}"; do
  case $n in
    berth) pids=$("${berth[@]}" inspect -f '{{.State.Pid}}' $("${berth[@]}" ps -q --no-trunc)) ;;
    podman) pids=$("${podman[@]}" inspect -f '{{.State.Pid}}' $("${podman[@]}" ps -q --no-trunc)) ;;
    docker) pids=$("${docker[@]}" inspect -f '{{.State.Pid}}' $("${docker[@]}" ps -q --no-trunc)) ;;
  esac
  k=0; parent=0; own=0; cg=0; comms=
  for p in $pids; do
    pp=$(awk '/^PPid:/ {print $2}' "/proc/$p/status")
    comms="$comms $(cat "/proc/$pp/comm")"
    parent=$((parent + $(pss "$pp"))); own=$((own + $(pss "$p")))
    path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' "/proc/$p/cgroup")
    cg=$((cg + $(cat "/sys/fs/cgroup/memory$path/memory.usage_in_bytes") / 1024))
    k=$((k + 1))
  done
  [ "$k" -gt 0 ] || { echo "$n: no running containers found"; continue; }
  awk -v n="$n" -v k="$k" -v ns="${ns[$n]}" -v c="$count" -v parent="$parent" -v own="$own" -v cg="$cg" -v comm="$(tr ' ' '\n' <<<"$comms" | sort -u | tr '\n' ' ')" 'BEGIN {
    printf "%-7s start %d: %.2f s (%.0f ms each); per container: %sPss %.0f KiB + memory cgroup %.0f KiB = %.2f MB (the container process: Pss %.0f KiB); %d running\n",
      n, c, ns / 1e9, ns / 1e6 / c, comm, parent / k, cg / k, (parent / k + cg / k) / 1024, own / k, k;
  }'
done
if [ -n "$dockerd_dir" ]; then
  daemon_after=$(daemon_pss)
  awk -v b="$daemon_before" -v a="$daemon_after" -v c="$count" 'BEGIN { printf "docker  dockerd + containerd Pss: %.1f MB idle, %.1f MB with %d containers (%.0f KiB per container, not in the figure above)\n", b / 1024, a / 1024, c, (a - b) / c }'
fi
} | tee "$out/containers-50.txt"

echo "== teardown and leak check"
peer_dirs="$podman_dir $dockerd_dir"
teardown
left=$( {
  ip netns list | grep -E 'berth-test-(docker|podman)' || true
  ls -d /sys/fs/cgroup/*/berth-test-* 2>/dev/null || true
  for d in $dir $peer_dirs; do
    awk -v d="$d" '$5 == d || index($5, d "/") == 1 {print "mount " $5}' /proc/self/mountinfo
    ps -eo pid=,args= | awk -v d="$d" 'index($0, d) && !/awk/ {print "process " $0}'
  done
} )
if [ -n "$left" ]; then echo "left on the host:"; echo "$left"; else echo "nothing left: no peer netns, cgroups, mounts or processes"; fi
