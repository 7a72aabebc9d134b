#!/usr/bin/env bash
# Install (once) and cache everything `make kmod` needs to cross-build
# kmod/rzil.ko on a Debian bookworm (Linux, amd64) machine:
#
#   * clang-19, ld.lld-19, llvm-19 (objdump/objcopy/ar) and libclang-19
#     (for bindgen) from Debian's archive via apt-get install.  clang-14 is
#     not enough: it reaches __stack_chk_guard through the GOT
#     (R_X86_64_REX_GOTPCRELX), which FreeBSD's kernel linker does not apply.
#   * A rustc and the rust-src of exactly the same version, so that
#     -Zbuild-std=core can compile `core` for our soft-float, no-red-zone
#     kernel target: Debian's rustc-web + rust-web-src (bookworm-security),
#     fetched with apt-get download and unpacked with dpkg -x under .cache/
#     (never installed system-wide, so rustup's rustc stays the default).
#   * FreeBSD 15 kernel headers (the _KERNEL parts included) from the PyPI
#     wheel `ziglang`: only lib/libc/include/{generic-freebsd,
#     x86_64-freebsd-none} are extracted from it.
#
# Everything lands in .cache/kmod/ (git-ignored).  The script is idempotent:
# a second run only checks that the pieces are there (well under a second).
# It prints nothing but a summary unless something is installed.
#
# Environment:
#   RZIL_KMOD_CACHE     cache folder (default: <repo>/.cache/kmod)
#   RZIL_ZIGLANG_VERSION  ziglang wheel version (default below)
#   RZIL_RUST_WEB_SERIES  expected rustc-web upstream series (default 1.96)
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${RZIL_KMOD_CACHE:-$repo_root/.cache/kmod}"
ziglang_version="${RZIL_ZIGLANG_VERSION:-0.17.1}"
rust_series="${RZIL_RUST_WEB_SERIES:-1.96}"
llvm_major=19
apt_packages=(clang-$llvm_major lld-$llvm_major llvm-$llvm_major libclang-$llvm_major-dev)
# Shared libraries Debian's libLLVM (used by rustc-web) needs at run time;
# clang-19's own libLLVM pulls the same set, named here so a partial
# machine still gets them.
apt_runtime=(libz3-4 libxml2 libedit2 libffi8 libzstd1 zlib1g)

mkdir -p "$cache"
log() { printf 'kmod-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A machine's apt lists may be older than the mirror (a superseded security
# build is gone from it), so any cold install starts with one update; the
# cached case never touches apt.  Without root the lists stay as they are.
apt_updated=0
apt_update_once() {
	if [ "$apt_updated" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2 ||
		    log "apt-get update reported errors; going on with the lists at hand"
		apt_updated=1
	fi
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "$1 (run this script as root once, or install: ${apt_packages[*]})"
}

# --- 1. LLVM 19 toolchain (apt) -------------------------------------------
llvm_ok() {
	command -v clang-$llvm_major >/dev/null &&
	    command -v ld.lld-$llvm_major >/dev/null &&
	    command -v llvm-objdump-$llvm_major >/dev/null &&
	    command -v llvm-objcopy-$llvm_major >/dev/null &&
	    command -v llvm-ar-$llvm_major >/dev/null &&
	    [ -e /usr/lib/llvm-$llvm_major/lib/libclang.so ]
}
if ! llvm_ok; then
	need_root "clang-$llvm_major/lld-$llvm_major are missing"
	apt_update_once
	log "apt-get install ${apt_packages[*]} ${apt_runtime[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    "${apt_packages[@]}" "${apt_runtime[@]}" >&2
	llvm_ok || die "LLVM $llvm_major tools still missing after apt-get install"
fi

# --- 2. Debian rustc-web + rust-web-src, unpacked under .cache -------------
rust_root="$cache/rust-web"
rust_stamp="$rust_root/.complete"
rustc_wrapper="$cache/bin/rustc"
if [ ! -e "$rust_stamp" ]; then
	version_of() {
		apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
	}
	apt_update_once
	rust_version="$(version_of rustc-web)"
	case "$rust_version" in
	"$rust_series".*) ;;
	*) die "rustc-web candidate is '$rust_version', expected $rust_series.x (bookworm-security)";;
	esac
	# libstd-rust-web-<series> carries librustc_driver and names the
	# libllvm it was built against.
	libstd="libstd-rust-web-$rust_series"
	libllvm="$(apt-cache show "$libstd=$rust_version" |
	    sed -n 's/^Depends:.*\(libllvm[0-9][0-9]*\).*/\1/p' | head -n 1)"
	[ -n "$libllvm" ] || die "cannot find the libllvm that $libstd depends on"
	debs="$cache/debs"
	rm -rf "$debs" "$rust_root"
	mkdir -p "$debs" "$rust_root"
	log "apt-get download rustc-web=$rust_version rust-web-src $libstd libstd-rust-web-dev $libllvm"
	# apt's sandbox user cannot write into .cache; downloading as root
	# into our own folder is what we want here.
	(cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root \
	    "rustc-web=$rust_version" "rust-web-src=$rust_version" \
	    "$libstd=$rust_version" "libstd-rust-web-dev=$rust_version" \
	    "$libllvm" >&2)
	for deb in "$debs"/*.deb; do
		dpkg -x "$deb" "$rust_root"
	done
	rm -rf "$debs"
	printf '%s\n' "$rust_version" >"$rust_stamp"
fi
mkdir -p "$cache/bin"
# rustc-web's binary looks for librustc_driver and libLLVM in the system
# library folder; point the loader at the unpacked copies instead.
cat >"$rustc_wrapper.tmp" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$rust_root/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" \\
    exec "$rust_root/usr/bin/rustc" "\$@"
EOF
chmod +x "$rustc_wrapper.tmp"
mv -f "$rustc_wrapper.tmp" "$rustc_wrapper"
if ! "$rustc_wrapper" -vV >/dev/null 2>&1; then
	LD_LIBRARY_PATH="$rust_root/usr/lib/x86_64-linux-gnu" ldd "$rust_root/usr/bin/rustc" \
	    "$rust_root"/usr/lib/x86_64-linux-gnu/libLLVM.so.* | grep 'not found' >&2 || true
	die "the unpacked rustc does not run (missing shared libraries above?)"
fi
sysroot="$("$rustc_wrapper" --print sysroot)"
[ -e "$sysroot/lib/rustlib/src/rust/library/core/Cargo.toml" ] ||
    die "rust-src is not where $rustc_wrapper looks for it ($sysroot/lib/rustlib/src/rust/library)"

# --- 3. FreeBSD kernel headers from the ziglang wheel ----------------------
hdr_root="$cache/freebsd-include"
hdr_stamp="$hdr_root/.complete-$ziglang_version"
if [ ! -e "$hdr_stamp" ]; then
	wheels="$cache/wheels"
	rm -rf "$wheels" "$hdr_root"
	mkdir -p "$wheels"
	log "pip download ziglang==$ziglang_version (FreeBSD headers only are kept)"
	python3 -m pip download -q --no-deps --only-binary=:all: -d "$wheels" \
	    "ziglang==$ziglang_version" >&2
	python3 - "$wheels" "$hdr_root" <<'EOF'
import pathlib, sys, zipfile
wheels, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
prefix = "ziglang/lib/libc/include/"
keep = ("generic-freebsd/", "x86_64-freebsd-none/")
count = 0
for whl in wheels.glob("ziglang-*.whl"):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            rel = name[len(prefix):] if name.startswith(prefix) else None
            if rel and rel.startswith(keep) and not name.endswith("/"):
                dest = out / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(z.read(name))
                count += 1
if count == 0:
    sys.exit("no FreeBSD headers found in the ziglang wheel")
print(f"kmod-setup: extracted {count} FreeBSD headers", file=sys.stderr)
EOF
	rm -rf "$wheels"
	touch "$hdr_stamp"
fi
[ -e "$hdr_root/generic-freebsd/sys/param.h" ] || die "FreeBSD headers missing under $hdr_root"
[ -e "$hdr_root/x86_64-freebsd-none/machine/param.h" ] || die "amd64 machine headers missing under $hdr_root"

# --- summary (also read by kmod-build.sh) -----------------------------------
cat >"$cache/env.sh" <<EOF
# Generated by scripts/kmod-setup.sh; sourced by scripts/kmod-build.sh.
RZIL_KMOD_RUSTC="$rustc_wrapper"
RZIL_KMOD_FREEBSD_INCLUDE="$hdr_root"
RZIL_KMOD_LLVM_MAJOR="$llvm_major"
RZIL_KMOD_LIBCLANG_PATH="/usr/lib/llvm-$llvm_major/lib"
EOF
log "ready: $("$rustc_wrapper" -V | cut -d' ' -f1-2) (+rust-src), clang-$llvm_major, FreeBSD headers (ziglang $ziglang_version)"
