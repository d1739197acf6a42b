#!/usr/bin/env bash
# Berth's main job, end to end: apply the example stack in examples/web (a
# network, a volume, busybox httpd serving the volume on 127.0.0.1:8080, and
# a second container that reaches it by name), then show the page answering.
# Everything is made offline; setup installs what is missing.
#
# Usage: scripts/demo.sh            apply (again: a no-op when nothing changed) and leave it running
#        scripts/demo.sh --destroy  apply, show it answering, then destroy the stack
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"
[ "${BERTH_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
. scripts/env.sh   # again: setup may have just installed Node into .tools/

berth() { "$BERTH_TOP/dist/cli/berth" "$@"; }   # the installed command: the snapshot launcher (cli/berth.sh)

bash examples/web/make-rootfs.sh
echo "== berth apply -f examples/web --auto-approve"
berth apply -f examples/web --auto-approve

echo "== waiting for http://127.0.0.1:8080/"
page=
for _ in $(seq 1 100); do
  if page=$(curl -fsS --max-time 2 http://127.0.0.1:8080/ 2>/dev/null); then break; fi
  sleep 0.1
done
if [ -z "$page" ]; then
  echo "demo: the page did not answer on 127.0.0.1:8080" >&2
  berth stack ps web >&2 || true
  exit 1
fi
printf '%s\n' "$page"
echo "== berth stack ps web"
berth stack ps web
echo "== berth logs (the probe container reaches web by name)"
sleep 1
berth logs --tail 3 web-probe 2>/dev/null || berth stack ps web

if [ "${1:-}" = --destroy ]; then
  echo "== berth destroy -f examples/web --auto-approve"
  berth destroy -f examples/web --auto-approve
else
  echo "== the stack keeps running; remove it with: dist/cli/berth destroy -f examples/web --auto-approve"
fi
