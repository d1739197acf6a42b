#!/usr/bin/env bash
# Makes the examples' image offline: a busybox root filesystem (Debian's
# busybox-static) as a tarball that a stack imports as a one-layer image.
# Usage: make-rootfs.sh [OUTPUT_TAR]   (default: examples/web/build/busybox-rootfs.tar)
# Idempotent: rebuilds only when /bin/busybox is newer than the tarball.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/build/busybox-rootfs.tar}
busybox=/bin/busybox
if ! "$busybox" --list 2>/dev/null | grep -x httpd >/dev/null; then
  echo "make-rootfs: needs /bin/busybox with httpd (apt-get install busybox-static)" >&2
  exit 1
fi
if [ -f "$out" ] && [ "$out" -nt "$busybox" ] && [ "$out" -nt "${BASH_SOURCE[0]}" ]; then
  exit 0
fi
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/berth-example-rootfs-XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
(
  cd "$work"
  mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root var/tmp run www
  chmod 1777 tmp var/tmp
  cp "$busybox" bin/busybox
  # busybox places its applet links by absolute path: do it inside a chroot.
  chroot . /bin/busybox --install -s
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > etc/passwd
  printf 'root:x:0:\nnogroup:x:65534:\n' > etc/group
)
tar -C "$work" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "made $out"
