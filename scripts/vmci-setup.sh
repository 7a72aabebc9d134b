#!/usr/bin/env bash
# Install, once, what `make check-vmci` needs: shellcheck (Debian's) for
# scripts/freebsd-vm-test.sh, and PyYAML for reading the two CI definitions
# (python3's own when it has one, else pip-installed into the git-ignored
# .cache/vmci/pylib). Idempotent: with both present it prints nothing and
# returns at once. Without root and without shellcheck it fails with the
# command to run, so CI never skips the shellcheck silently.
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
pylib="$repo_root/.cache/vmci/pylib"
log() { printf 'vmci-setup: %s\n' "$*" >&2; }

if ! command -v shellcheck >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		log "error: shellcheck is missing (run as root: apt-get install shellcheck)"
		exit 1
	fi
	# The machine's apt lists may be older than the mirror: update once first.
	log "apt-get update"
	apt-get update -qq >&2 || log "apt-get update reported errors; going on with the lists at hand"
	log "apt-get install shellcheck"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >&2
	command -v shellcheck >/dev/null || { log "error: shellcheck still missing after apt-get install"; exit 1; }
fi

if ! PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}" python3 -c 'import yaml' 2>/dev/null; then
	log "pip install pyyaml into $pylib"
	mkdir -p "$pylib"
	python3 -m pip install -q --disable-pip-version-check --target "$pylib" pyyaml >&2
	PYTHONPATH="$pylib" python3 -c 'import yaml' ||
	    { log "error: PyYAML still not importable from $pylib"; exit 1; }
fi
