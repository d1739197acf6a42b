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
self=$0
if [ -L "$self" ]; then self=$(readlink -f -- "$self"); fi
case $self in */*) dir=${self%/*} ;; *) dir=. ;; esac
main=$dir/main.js
blob=$dir/berth.blob
lock=$dir/../../node_modules/.package-lock.json
node=$(command -v node) || { echo 'berth: node not found on PATH (Node >= 22 is needed)' >&2; exit 127; }
if [ -z "${BERTH_NO_SNAPSHOT:-}" ] && [ -z "${NODE_OPTIONS:-}" ] && [ -f "$blob" ] \
  && [ "$node" -ef "$blob.node" ] && ! [ "$node" -nt "$blob" ] \
  && [ "$blob" -nt "$main" ] && { ! [ -e "$lock" ] || [ "$blob" -nt "$lock" ]; }; then
  exec "$node" --snapshot-blob "$blob" "$main" "$@"
fi
exec "$node" "$main" "$@"
