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

"$repo_root/scripts/apt-ensure.sh" vmci-setup shellcheck shellcheck --version

if ! PYTHONPATH="$pylib${PYTHONPATH:+:$PYTHONPATH}" python3 -c 'import yaml' 2>/dev/null; then
	log "pip install pyyaml into $pylib"
	mkdir -p "$pylib"
	python3 -m pip install -q --disable-pip-version-check --target "$pylib" pyyaml >&2
	PYTHONPATH="$pylib" python3 -c 'import yaml' ||
	    { log "error: PyYAML still not importable from $pylib"; exit 1; }
fi
