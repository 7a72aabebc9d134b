#!/usr/bin/env bash
# Make sure a Debian package is usable, once, for a test that needs it:
#   scripts/apt-ensure.sh LOG-TAG PACKAGE CHECK-COMMAND [ARGS...]
# runs the check (a command that succeeds when the package is usable) and
# returns at once if it does. Otherwise it installs PACKAGE with apt-get as
# root, or, without root, fails with the command to run, so CI never skips
# the test silently; then checks again.
set -euo pipefail

if [ "$#" -lt 3 ]; then
	printf 'usage: %s LOG-TAG PACKAGE CHECK-COMMAND [ARGS...]\n' "$0" >&2
	exit 2
fi
tag=$1
pkg=$2
shift 2
log() { printf '%s: %s\n' "$tag" "$*" >&2; }

"$@" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
	log "error: $pkg is missing or unusable (run as root: apt-get install $pkg)"
	exit 1
fi
# The machine's apt lists may be older than the mirror: update once first.
log "apt-get update"
apt-get update -qq >&2 || log "apt-get update reported errors; going on with the lists at hand"
log "apt-get install $pkg"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >&2 || {
	log "error: apt-get install $pkg failed (see above)"
	exit 1
}
"$@" >/dev/null 2>&1 || {
	log "error: $pkg still missing or unusable after apt-get install"
	exit 1
}
