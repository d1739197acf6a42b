#!/bin/sh
# The `berth` command (package.json "bin"; `npm run build` copies this file
# to dist/cli/berth). It starts Node from berth's V8 start-up snapshot (see
# cli/snapshot.ts) when that snapshot fits this run, else it runs the plain
# entry, dist/cli/main.js: all print the same. The snapshot comes in two
# forms (scripts/build-snapshot.mjs): dist/cli/berth-node, a copy of node
# with the snapshot inside (tried first: it starts ~10 ms sooner), and
# dist/cli/berth.blob for `node --snapshot-blob`.
#
# Either is used only when all hold:
# - it exists and was made from the very node binary on PATH (FILE.node
#   links to that binary: same file, not changed since);
# - it is newer than main.js and node_modules/.package-lock.json (a tsc
#   run or an npm install after the build makes it stale);
# - NODE_OPTIONS is empty (its flags could differ from the build's) and
#   BERTH_NO_SNAPSHOT is not set.
# Only shell built-ins are used, so the check costs no process.
#
# GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (when the user has set none): malloc
# asks for transparent huge pages, so Node's buffers for the blob (read,
# then its V8 part copied: ~16 MB) fault a few 2 MiB pages instead of ~3,700
# 4 KiB ones (fresh pages are dear on a VM: ~17 ms of a `berth run` here).
# The CLI drops it again (BERTH_LAUNCHER_TUNABLES, cli/startup.ts), so what
# berth starts gets the user's environment.
#
# For the commands that start containers (run, start, restart), the engine's
# process helper is started here, before Node: `berth-shim launch` runs Node
# in a child that forks the helper first; Node takes its pipes over
# (BERTH_HELPER_FDS) and reports its exit status to the waiting launcher as
# soon as its work is done (BERTH_LAUNCHER_REPORT_FD; native/shim/launch.h).
# Spawned by the engine, the helper is a fork of the Node process, which
# costs the main thread the fork and then a fault on each page of its heap
# that it writes again. BERTH_HELPER=0 (no helper at all) or a
# missing berth-shim leaves this out.
#
# NODE_OPTIONS=--jitless for the container commands (when the user has set
# no NODE_OPTIONS, which the snapshot needs anyway): they run Berth's code
# for some tens of ms, and V8's tiers above the interpreter, with their
# executable pages, cost such a run more than they give it (`berth run`
# ~6 ms sooner, bench/containers/STARTUP.md). Long or heavy work (build,
# pull, load, save, apply, agent), and ps, which reads every container's
# record (1,000 of them: 171 ms with the JIT, 208 without), keep the JIT.
# The CLI and the helper drop
# the variable again (BERTH_LAUNCHER_NODE_OPTIONS), so what berth starts
# gets the user's environment. BERTH_JIT=1 keeps the JIT.
self=$0
if [ -L "$self" ]; then self=$(readlink -f -- "$self"); fi
case $self in */*) dir=${self%/*} ;; *) dir=. ;; esac
main=$dir/main.js
blob=$dir/berth.blob
lock=$dir/../../node_modules/.package-lock.json
if [ -z "${GLIBC_TUNABLES+x}" ]; then
  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 BERTH_LAUNCHER_TUNABLES=1
  export GLIBC_TUNABLES BERTH_LAUNCHER_TUNABLES
fi
# command -v without $(...): a command substitution is a fork of this shell
node=
IFS_was=$IFS IFS=:
for d in $PATH; do
  if [ -f "${d:-.}/node" ] && [ -x "${d:-.}/node" ]; then node=${d:-.}/node; break; fi
done
IFS=$IFS_was
[ -n "$node" ] || { echo 'berth: node not found on PATH (Node >= 22 is needed)' >&2; exit 127; }
# the command word: the first argument after the global options (--root, --run-root and --runtime take a value)
word= skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case $a in
    --root|--run-root|--runtime) skip=1 ;;
    -*) ;;
    *) word=$a; break ;;
  esac
done
launch= jitless=
case $word in
  run|start|restart)
    jitless=1
    shim=${BERTH_NATIVE_DIR:-$dir/../../native/build}/berth-shim
    if [ "${BERTH_HELPER:-}" != 0 ] && [ -x "$shim" ]; then launch=$shim; fi ;;
  create|exec|stop|kill|rm|inspect|port|pause|unpause|wait|rename) jitless=1 ;;
esac
# exec, through `berth-shim launch` when it starts the helper
run() {
  if [ -n "$launch" ]; then exec "$launch" launch "$@"; fi
  exec "$@"
}
fits() {
  [ -f "$1" ] && [ "$node" -ef "$1.node" ] && ! [ "$node" -nt "$1" ] \
    && [ "$1" -nt "$main" ] && { ! [ -e "$lock" ] || [ "$1" -nt "$lock" ]; }
}
if [ -z "${BERTH_NO_SNAPSHOT:-}" ] && [ -z "${NODE_OPTIONS:-}" ]; then
  if [ -n "$jitless" ] && [ -z "${NODE_OPTIONS+x}" ] && [ "${BERTH_JIT:-}" != 1 ]; then
    NODE_OPTIONS=--jitless BERTH_LAUNCHER_NODE_OPTIONS=1
    export NODE_OPTIONS BERTH_LAUNCHER_NODE_OPTIONS
  fi
  if fits "$dir/berth-node"; then run "$dir/berth-node" "$@"; fi
  if fits "$blob"; then run "$node" --snapshot-blob "$blob" "$main" "$@"; fi
fi
run "$node" "$main" "$@"
