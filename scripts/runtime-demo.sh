#!/usr/bin/env bash
# The smallest demo: run a busybox container with berth-runtime from
# an OCI bundle, show what it sees from inside, and clean up.
# Usage: scripts/runtime-demo.sh [RUNTIME]   (RUNTIME defaults to native/build/berth-runtime;
#                                     any OCI runtime with runc's CLI works, e.g. runc)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"
[ "${BERTH_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
. scripts/env.sh   # again: setup may have just installed Node into .tools/

runtime=${1:-$BERTH_TOP/native/build/berth-runtime}
work=$(mktemp -d /tmp/berth-demo-XXXXXX)
id="berth-demo-$$"
root="$work/state"
cleanup() {
  "$runtime" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# The bundle: the busybox fixture as rootfs, config.json from `<runtime> spec`.
mkdir -p "$work/bundle" "$root"
cp -a test/fixtures/build/rootfs "$work/bundle/rootfs"
(cd "$work/bundle" && "$runtime" spec)
node --input-type=module - "$work/bundle/config.json" <<'JS'
import * as fs from 'node:fs';
const file = process.argv[2];
const spec = JSON.parse(fs.readFileSync(file, 'utf8'));
spec.process.terminal = false;
spec.process.args = ['/bin/sh', '-c', [
  'echo "hostname: $(hostname)"',
  'echo "id:       $(id)"',
  'echo "pid:      $$"',
  'echo "ls /:     $(ls / | tr "\\n" " ")"',
  'echo "mounts:   $(wc -l < /proc/self/mountinfo) (the host has more)"',
].join('; ')];
spec.hostname = 'berth-demo';
spec.linux.cgroupsPath = '/berth-demo-' + process.pid;
fs.writeFileSync(file, JSON.stringify(spec, null, 2));
JS

echo "== $runtime run $id (bundle $work/bundle)"
rc=0
"$runtime" --root "$root" run --bundle "$work/bundle" "$id" || rc=$?
echo "== exit code $rc; cleaning up"
exit "$rc"
