#!/bin/bash
# Runs a script inside a throwaway KVM guest that boots Debian's kernel on a
# pure cgroup v2 host (cgroup_no_v1=all, cgroup2 mounted at /sys/fs/cgroup),
# prints the script's output and exits with its status.
#
#   test/vm/run-in-vm.sh <script> [files or directories...]
#
# The files are copied to /test/<basename> in the guest, the script runs as
# /test/<script basename> with /test as its cwd. Dynamically linked ELF
# files get their shared libraries (from this host) copied along. The guest
# The guest runs under KVM where the host's KVM can boot Debian's kernel, else
# under TCG emulation (see below). It has busybox (every applet on PATH), /proc, /sys, devtmpfs, a tmpfs /tmp and
# /run, and the modules overlay, veth, bridge, br_netfilter, loop loaded.
#
# Environment: BERTH_VM_CGROUP (v2, the default; v1: one hierarchy per
# controller, cpu,cpuacct and net_cls,net_prio co-mounted; hybrid: v1 plus
# cgroup2 at /sys/fs/cgroup/unified), BERTH_VM_TIMEOUT (seconds, default 120), BERTH_VM_MEM (MiB,
# default 1024), BERTH_VM_CPUS (default 2), BERTH_VM_CACHE (default
# /var/cache/berth-vm: the base initramfs, rebuilt when the kernel changes).
set -euo pipefail

die() { echo "run-in-vm: $*" >&2; exit 125; }

[ $# -ge 1 ] || die "usage: $0 <script> [files...]"
script=$1; shift
[ -f "$script" ] || die "script '$script' not found"
[ "$(id -u)" = 0 ] || die "must run as root (to install packages and read the kernel image)"

# Install what the harness needs, only when missing.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || need+=(linux-image-amd64)
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c "not a dynamic" || true) || file_is_static=0
[ "$file_is_static" = 1 ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v modprobe >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
  echo "run-in-vm: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2 \
    || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2; } \
    || die "could not install ${need[*]}"
fi

kernel=$(ls /boot/vmlinuz-*-amd64 | sort -V | tail -1)
kver=${kernel#/boot/vmlinuz-}
[ -d "/lib/modules/$kver" ] || die "modules for $kver are missing (/lib/modules/$kver)"

cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}
mkdir -p "$cache"
here=$(cd "$(dirname "$0")" && pwd)
base="$cache/base-$kver.cpio"

# The base image: busybox, /init, kernel modules. Built once per kernel and
# per version of this script (its hash is part of the stamp).
stamp="$kver $(sha256sum "$0" | cut -c1-16)"
if [ ! -f "$base" ] || [ "$(cat "$base.stamp" 2>/dev/null)" != "$stamp" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp"/{bin,sbin,proc,sys,dev,tmp,run,test,etc,lib/modules,usr/bin,usr/sbin,var}
  cp /bin/busybox "$tmp/bin/busybox"
  for m in overlay veth bridge br_netfilter loop; do
    modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' > "$tmp/modlist"
  : > "$tmp/etc/modules.order"
  while read -r ko; do
    [ -n "$ko" ] || continue
    cp "$ko" "$tmp/lib/modules/"
    echo "/lib/modules/$(basename "$ko")" >> "$tmp/etc/modules.order"
  done < "$tmp/modlist"
  rm "$tmp/modlist"
  cat > "$tmp/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# pivot_root cannot leave the initramfs: move everything to a tmpfs root
# first, so runtimes under test can pivot_root as on a real host.
if [ "$$" = 1 ] && [ -z "$BERTH_VM_SWITCHED" ]; then
  mkdir -p /newroot
  mount -t tmpfs -o mode=755 tmpfs /newroot
  for f in /*; do
    case $f in /newroot|/proc|/sys|/dev) mkdir -p "/newroot$f" ;; *) cp -a "$f" /newroot/ ;; esac
  done
  export BERTH_VM_SWITCHED=1
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
# berth.cgroup=v2 (the default): cgroup2 alone. v1: every controller in its
# own hierarchy, co-mounted the way Debian and RHEL 7 did (cpu,cpuacct and
# net_cls,net_prio, with symlinks). hybrid: v1 plus cgroup2 at unified.
cgmode=$(sed -n 's/.*berth\.cgroup=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
if [ "${cgmode:-v2}" = v2 ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
  for c in cpuset cpu,cpuacct blkio memory devices freezer net_cls,net_prio perf_event hugetlb pids rdma misc; do
    mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || rmdir "/sys/fs/cgroup/$c"
  done
  mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  for l in cpu cpuacct; do ln -s cpu,cpuacct "/sys/fs/cgroup/$l"; done
  for l in net_cls net_prio; do ln -s net_cls,net_prio "/sys/fs/cgroup/$l"; done
  if [ "$cgmode" = hybrid ]; then
    mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
  fi
fi
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var
while read -r ko; do insmod "$ko" 2>/dev/null; done < /etc/modules.order
ip link set lo up 2>/dev/null
hostname berth-vm
cd /test
echo "BERTH-VM-BEGIN"
sh "/test/$(cat /test/.script)" < /dev/null 2>&1
rc=$?
echo "BERTH-VM-EXIT=$rc"
sync
poweroff -f
EOF
  chmod 755 "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet) > "$base.new.$$"
  mv "$base.new.$$" "$base"
  echo "$stamp" > "$base.stamp.$$" && mv "$base.stamp.$$" "$base.stamp"
  rm -rf "$tmp"
  trap - EXIT
fi

# The per-run image: the script, the files and their libraries.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/test"
cp "$script" "$root/test/"
basename "$script" > "$root/test/.script"
add_libs() {
  local f=$1
  file_out=$(head -c 4 "$f" 2>/dev/null | od -An -c | tr -d ' ')
  [ "$file_out" = '177ELF' ] || return 0
  # Static binaries have no libraries: ldd fails and grep finds nothing.
  { ldd "$f" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
    [ -f "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
for f in "$@"; do
  [ -e "$f" ] || die "file '$f' not found"
  cp -a "$f" "$root/test/"
  if [ -d "$f" ]; then
    while IFS= read -r -d '' g; do add_libs "$g"; done < <(find "$f" -type f -perm -u+x -print0)
  else
    add_libs "$f"
  fi
done
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/run.cpio"
cat "$base" "$work/run.cpio" > "$work/initrd"

# KVM when it can boot a stock kernel, else TCG (slower, same guest). A PVM
# host (kvm_pvm, as on Firecracker-style machines) exposes /dev/kvm but only
# runs guest kernels built for PVM: Debian's hangs while decompressing.
accel=${BERTH_VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel=kvm; else accel=tcg; fi
fi
case $accel in
  kvm) accel_args=(-enable-kvm -cpu "${BERTH_VM_CPU:-host}") ;;
  tcg) accel_args=(-accel tcg,thread=multi -cpu "${BERTH_VM_CPU:-max}") ;;
  *) die "BERTH_VM_ACCEL must be auto, kvm or tcg" ;;
esac

case ${BERTH_VM_CGROUP:-v2} in
  v2) cgargs="berth.cgroup=v2 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
  v1) cgargs="berth.cgroup=v1 systemd.unified_cgroup_hierarchy=0" ;;
  hybrid) cgargs="berth.cgroup=hybrid systemd.unified_cgroup_hierarchy=0" ;;
  *) die "BERTH_VM_CGROUP must be v2, v1 or hybrid" ;;
esac

timeout_s=${BERTH_VM_TIMEOUT:-120}
set +e
timeout "$timeout_s" qemu-system-x86_64 \
  "${accel_args[@]}" -m "${BERTH_VM_MEM:-1024}" -smp "${BERTH_VM_CPUS:-2}" \
  -kernel "$kernel" -initrd "$work/initrd" \
  -append "console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init $cgargs" \
  -display none -serial "file:$work/console" -monitor none -no-reboot -nodefaults \
  </dev/null >"$work/qemu.log" 2>&1
qrc=$?
set -e
tr -d '\r' < "$work/console" > "$work/out"
if [ $qrc -eq 124 ]; then
  cat "$work/out" >&2
  die "guest did not finish within ${timeout_s}s"
fi
if ! grep -q '^BERTH-VM-EXIT=' "$work/out"; then
  cat "$work/qemu.log" "$work/out" >&2
  die "guest ended without reporting an exit status (qemu exit $qrc)"
fi
sed -n '/^BERTH-VM-BEGIN$/,/^BERTH-VM-EXIT=/p' "$work/out" | sed '1d;$d'
rc=$(grep '^BERTH-VM-EXIT=' "$work/out" | tail -1 | cut -d= -f2)
exit "$rc"
