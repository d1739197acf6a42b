#!/bin/sh
# The `berth` command (package.json "bin"; `npm run build` copies this file
# to dist/cli/berth). It starts Node from berth's V8 start-up snapshot
# (dist/cli/berth.blob, see cli/snapshot.ts) when that snapshot fits this
# run, else it runs the plain entry, dist/cli/main.js: both print the same.
#
# The snapshot is used only when all hold:
# - berth.blob exists and was made by the very node binary on PATH
#   (berth.blob.node links to the binary that built it: same file, not
#   changed since);
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
node=$(command -v node) || { echo 'berth: node not found on PATH (Node >= 22 is needed)' >&2; exit 127; }
if [ -z "${BERTH_NO_SNAPSHOT:-}" ] && [ -z "${NODE_OPTIONS:-}" ] && [ -f "$blob" ] \
  && [ "$node" -ef "$blob.node" ] && ! [ "$node" -nt "$blob" ] \
  && [ "$blob" -nt "$main" ] && { ! [ -e "$lock" ] || [ "$blob" -nt "$lock" ]; }; then
  exec "$node" --snapshot-blob "$blob" "$main" "$@"
fi
exec "$node" "$main" "$@"
