#!/usr/bin/env bash
# Install gdb (Debian's, with Python) for `make test-gdb`, once. Idempotent:
# with gdb present it prints nothing and returns at once. Without root it
# fails with the command to run, so CI never skips the gdb test silently.
set -euo pipefail
exec "$(dirname "$0")/apt-ensure.sh" gdb-setup gdb \
	gdb -nx -batch -ex 'python import gdb; print(gdb.VERSION)'
