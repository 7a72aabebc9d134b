#!/usr/bin/env bash
# Install gdb (Debian's, with Python) for `make test-gdb`, once. Idempotent:
# with gdb present it prints nothing and returns at once. Without root it
# fails with the command to run, so CI never skips the gdb test silently.
set -euo pipefail

log() { printf 'gdb-setup: %s\n' "$*" >&2; }

gdb_ok() {
	command -v gdb >/dev/null &&
	    gdb -nx -batch -ex 'python import gdb; print(gdb.VERSION)' >/dev/null 2>&1
}

gdb_ok && exit 0
if [ "$(id -u)" -ne 0 ]; then
	log "error: gdb with Python is missing (run as root: apt-get install gdb)"
	exit 1
fi
# The machine's apt lists may be older than the mirror: update once first.
log "apt-get update"
apt-get update -qq >&2 || log "apt-get update reported errors; going on with the lists at hand"
log "apt-get install gdb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdb >&2
gdb_ok || { log "error: gdb still missing or without Python after apt-get install"; exit 1; }
