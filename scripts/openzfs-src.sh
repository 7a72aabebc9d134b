#!/usr/bin/env bash
# Fetch (once) and cache the OpenZFS source from Debian's `zfs-linux` source
# package (bookworm-backports contrib), for the `openzfs-layout` feature:
# build.rs runs bindgen over bindings/openzfs.h, which includes OpenZFS's own
# headers from this tree. Also makes sure libclang (for bindgen) is present.
#
# Prints the source root (for RZIL_OPENZFS_SRC) on stdout; logs go to stderr.
# Idempotent: a second run only checks a stamp file.
#
# Environment:
#   RZIL_OPENZFS_CACHE    cache folder (default: <repo>/.cache/openzfs)
#   RZIL_OPENZFS_VERSION  Debian upstream version wanted (default 2.3.2)
set -euo pipefail
# shellcheck source=scripts/format-apt.sh
. "$(dirname "$0")/format-apt.sh"

version="${RZIL_OPENZFS_VERSION:-2.3.2}"
src_root="$ozfs_cache/zfs-$version"
stamp="$src_root/.complete"

# libclang for bindgen: any Debian LLVM's libclang.so will do.
if ! ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so* >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || ozfs_die "libclang is missing: install Debian's libclang-dev"
	if ! apt-cache show libclang-dev >/dev/null 2>&1; then
		apt-get update -qq >&2
	fi
	ozfs_log "apt-get install libclang-dev"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libclang-dev >&2
fi

if [ ! -e "$stamp" ]; then
	ozfs_apt_update
	dl="$ozfs_cache/src-download"
	rm -rf "$dl"
	mkdir -p "$dl"
	# Pick the exact Debian version of the wanted upstream release.
	debver="$(apt-cache "${ozfs_apt[@]}" showsrc zfs-linux 2>/dev/null |
	    awk '/^Version:/ { print $2 }' | grep -E "^$version-" | sort -V | tail -n 1 || true)"
	[ -n "$debver" ] || ozfs_die "zfs-linux $version is not in bookworm-backports' source index"
	ozfs_log "apt-get source --download-only zfs-linux=$debver"
	# apt may exit 100 when it cannot verify a missing .dsc; the orig tarball
	# is what we need, so we check for it instead of trusting the status.
	(cd "$dl" && apt-get "${ozfs_apt[@]}" source --download-only -qq "zfs-linux=$debver" >&2) || true
	orig="$(ls "$dl"/zfs-linux_"$version"*.orig.tar.* 2>/dev/null | head -n 1 || true)"
	[ -n "$orig" ] || ozfs_die "zfs-linux_$version orig tarball was not downloaded"
	rm -rf "$src_root.tmp"
	mkdir -p "$src_root.tmp"
	tar -xf "$orig" -C "$src_root.tmp" --strip-components=1
	[ -e "$src_root.tmp/include/sys/zil.h" ] || ozfs_die "$orig holds no include/sys/zil.h"
	rm -rf "$src_root"
	mv "$src_root.tmp" "$src_root"
	printf '%s\n' "$debver" >"$stamp"
	rm -rf "$dl"
	ozfs_log "OpenZFS $debver source in $src_root"
fi
printf '%s\n' "$src_root"
