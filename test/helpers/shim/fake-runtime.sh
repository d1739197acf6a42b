#!/bin/sh
# A stand-in OCI runtime for berth-shim's tests: runc's command line
# (create start state kill delete, --root, --bundle, --pid-file), real
# processes, no isolation. `create` starts the bundle's run.sh as a child
# that waits on a fifo; `start` opens the fifo and lets it exec.
set -eu
root=/run/berth-fake-runtime
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "fake-runtime: no command" >&2; exit 2; }
cmd=$1; shift

pid_of() { cat "$root/$1/pid" 2>/dev/null || { echo "fake-runtime: container '$1' does not exist" >&2; exit 1; }; }
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

case $cmd in
  create)
    bundle=. pidfile= console=
    while [ $# -gt 1 ]; do
      case $1 in
        --bundle|-b) bundle=$2; shift 2 ;;
        --pid-file) pidfile=$2; shift 2 ;;
        --console-socket) console=$2; shift 2 ;;
        *) echo "fake-runtime: create: unknown option '$1'" >&2; exit 2 ;;
      esac
    done
    id=$1
    [ -z "$console" ] || { echo "fake-runtime: --console-socket is not supported" >&2; exit 1; }
    [ -x "$bundle/run.sh" ] || { echo "fake-runtime: bundle '$bundle' has no executable run.sh" >&2; exit 1; }
    mkdir -p "$root"
    mkdir "$root/$id" 2>/dev/null || { echo "fake-runtime: container '$id' already exists" >&2; exit 1; }
    mkfifo "$root/$id/exec.fifo"
    # An asynchronous list gets /dev/null as stdin: hand the real one over on fd 3.
    exec 3<&0
    sh -c 'read go < "$1"; exec "$2" <&3 3<&-' fake-init "$root/$id/exec.fifo" "$bundle/run.sh" &
    echo $! > "$root/$id/pid"
    [ -z "$pidfile" ] || echo $! > "$pidfile"
    ;;
  start)
    pid=$(pid_of "$1")
    alive "$pid" || { echo "fake-runtime: container '$1' is not running" >&2; exit 1; }
    echo go > "$root/$1/exec.fifo"
    ;;
  state)
    pid=$(pid_of "$1")
    if alive "$pid"; then status=running; else status=stopped; fi
    printf '{"ociVersion":"1.0.2","id":"%s","pid":%s,"status":"%s"}\n' "$1" "$pid" "$status"
    ;;
  kill)
    pid=$(pid_of "$1")
    sig=${2:-TERM}; sig=${sig#SIG}
    kill -s "$sig" "$pid"
    ;;
  delete)
    force=no
    [ "${1:-}" = --force ] && { force=yes; shift; }
    pid=$(pid_of "$1")
    if alive "$pid"; then
      [ $force = yes ] || { echo "fake-runtime: container '$1' is running" >&2; exit 1; }
      kill -s KILL "$pid"
    fi
    rm -rf "$root/$1"
    ;;
  *) echo "fake-runtime: unknown command '$cmd'" >&2; exit 2 ;;
esac
