#!/usr/bin/env bash
# The compose example's image: the same offline busybox rootfs as examples/web.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../web/make-rootfs.sh" "$here/build/busybox-rootfs.tar"
