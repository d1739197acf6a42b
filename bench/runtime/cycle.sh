#!/bin/sh
# One create+start+delete cycle of a /bin/true container, timed as a whole by
# hyperfine. Usage: cycle.sh RUNTIME ROOT BUNDLE ID
set -e
"$1" --root "$2" create --bundle "$3" "$4"
"$1" --root "$2" start "$4"
"$1" --root "$2" delete --force "$4"
