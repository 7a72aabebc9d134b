#!/usr/bin/env bash
# Cross-build kmod/rzil.ko for FreeBSD/amd64 on Linux, the way bsd.kmod.mk
# builds it on FreeBSD:
#
#   1. cargo builds kmod/rust as a static library for the kernel target
#      (kmod/x86_64-rzil-freebsd-kernel.json) with -Zbuild-std=core, using
#      Debian's rustc-web and its matching rust-src (scripts/kmod-setup.sh);
#      bindgen in build.rs reads the FreeBSD headers with the C flags below.
#   2. clang-19 compiles the C shim with the kernel's amd64 flags.
#   3. ld.lld-19 -m elf_x86_64_fbsd -r links one relocatable object: amd64
#      kernel modules are ET_REL files that the kernel linker relocates at
#      kldload time (link_elf_obj.c).
#   4. Every defined global symbol is made local (bsd.kmod.mk's
#      EXPORT_SYMS=NO), so rzil.ko exports nothing into the kernel's symbol
#      namespace; undefined kernel symbols stay global.
#
# Output: kmod/rzil.ko (objects under kmod/.build, cargo's under
# kmod/target).  Prints the times of each step.
#
# `kmod-build.sh lint` instead checks the kernel crate the way the host
# workspace is checked (rustfmt --check; clippy -D warnings; the unit tests
# of its pure parts, the log-block ring and the state tracer), run by
# rustup's stable toolchain for the host target, since Debian's rustc-web
# ships no clippy: the same source, the same bindgen input.
set -euo pipefail
mode="${1:-build}"

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
kmod="$repo_root/kmod"
cache="${RZIL_KMOD_CACHE:-$repo_root/.cache/kmod}"
build="$kmod/.build"
target_json="$kmod/x86_64-rzil-freebsd-kernel.json"
target_name="x86_64-rzil-freebsd-kernel"

"$repo_root/scripts/kmod-setup.sh"
# shellcheck source=/dev/null
. "$cache/env.sh"
llvm="$RZIL_KMOD_LLVM_MAJOR"
inc="$RZIL_KMOD_FREEBSD_INCLUDE"

# A FreeBSD 15 version number (the headers are 15.0's). Not a multiple of
# 100000: MODULE_KERNEL_MAXVER rounds up to the next major and subtracts
# one, so 1500000 would yield the empty range [1500000, 1499999], which
# kldload refuses (kmod-check.py checks the range). The native build takes
# it from the running system instead.
freebsd_version=1500001

# Kernel C flags, as sys/conf/kern.mk and kmod.mk set them for amd64.
cflags=(
	-target x86_64-unknown-freebsd15.0
	-D_KERNEL -DKLD_MODULE -DKDTRACE_HOOKS
	-D__FreeBSD_version=$freebsd_version
	-nostdinc -I"$kmod" -I"$inc/x86_64-freebsd-none" -I"$inc/generic-freebsd"
	-mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float
	-mno-aes -mno-avx -ffreestanding -fwrapv -fno-common
	-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
	-fno-asynchronous-unwind-tables -fstack-protector
	-std=gnu99 -D__printf__=__freebsd_kprintf__
)
cwarn=(
	-Wall -Wredundant-decls -Wnested-externs -Wstrict-prototypes
	-Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wno-pointer-sign
	-Werror
)
copt=(-O2 -pipe -g -fno-strict-aliasing)

mkdir -p "$build"
t0=$(date +%s.%N)
stamp() { printf 'kmod-build: %-34s %6.1f s\n' "$1" "$(echo "$(date +%s.%N) - $t0" | bc)"; }

# --- 1. Rust static library ------------------------------------------------
# bindgen gets the same flags (one per line), minus warnings and codegen.
RZIL_KMOD_CLANG_ARGS="$(printf '%s\n' "${cflags[@]}")"
export RZIL_KMOD_CLANG_ARGS
export LIBCLANG_PATH="$RZIL_KMOD_LIBCLANG_PATH"
export RUSTC="$RZIL_KMOD_RUSTC"
# rustc-web is a stable compiler; -Zbuild-std and the JSON target need the
# unstable flags it carries.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$kmod/target"
# Host tools (build.rs, bindgen) are built by the same rustc.
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
if [ "$mode" = lint ]; then
	unset RUSTC RUSTC_BOOTSTRAP
	(cd "$kmod/rust" &&
	    rustfmt +stable --edition 2021 --check build.rs src/*.rs &&
	    CARGO_TARGET_DIR="$kmod/target/lint" cargo +stable clippy \
	    --quiet --lib --tests -- -D warnings &&
	    CARGO_TARGET_DIR="$kmod/target/lint" cargo +stable test \
	    --quiet --lib)
	stamp "rustfmt + clippy + unit tests (kernel crate)"
	exit 0
fi
# No --locked: kmod/rust/Cargo.lock pins what it lists, and a dependency
# the core gains later is added to it rather than failing the build.
(cd "$kmod/rust" && cargo +stable build --release \
    -Zbuild-std=core -Zjson-target-spec --target "$target_json")
staticlib="$kmod/target/$target_name/release/librzil_kmod.a"
[ -e "$staticlib" ] || { echo "kmod-build: $staticlib missing" >&2; exit 1; }
stamp "cargo (core + rzil + kmod crate)"

# --- 2. C shim -------------------------------------------------------------
objs=()
for src in "$kmod"/rzil_*.c; do
	obj="$build/$(basename "${src%.c}").o"
	clang-$llvm "${cflags[@]}" "${copt[@]}" "${cwarn[@]}" -c "$src" -o "$obj"
	objs+=("$obj")
done
# The user-space side of the ioctl ABI: kmod/tools/rzilctl.c must compile
# against FreeBSD's userland headers (no _KERNEL) with rzil_ioctl.h.
clang-$llvm -target x86_64-unknown-freebsd15.0 -D__FreeBSD_version=$freebsd_version \
    -nostdinc -isystem "$inc/x86_64-freebsd-none" -isystem "$inc/generic-freebsd" \
    -I"$kmod" -O2 -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Werror \
    -c "$kmod/tools/rzilctl.c" -o "$build/rzilctl.o"
stamp "clang-$llvm (C shim, rzilctl)"

# --- 3. link: one relocatable object -----------------------------------------
# First the Rust side alone, pulling from the archive only what the
# rzil_core_* entry points need.  Linking the C objects straight against the
# archive would let compiler_builtins satisfy C references meant for the
# kernel: it defines libm's `log`, which would silently replace log(9).
ld.lld-$llvm -m elf_x86_64_fbsd -r -o "$build/rzil_rust.o" \
    --undefined-glob='rzil_core_*' "$staticlib"
ld.lld-$llvm -m elf_x86_64_fbsd -r -d -o "$build/rzil.ko.full" \
    "${objs[@]}" "$build/rzil_rust.o"
# --- 4. export nothing (EXPORT_SYMS=NO), split the debug info -----------------
# Keeping one made-up name global makes llvm-objcopy localize every other
# defined symbol; undefined (kernel) symbols are not affected.
llvm-objcopy-$llvm --keep-global-symbol=rzil_exports_nothing \
    "$build/rzil.ko.full" "$build/rzil.ko.local"
# As bsd.kmod.mk does: rzil.ko.debug keeps the DWARF for kgdb, rzil.ko is
# stripped of it (the kernel linker never reads it).
llvm-objcopy-$llvm --only-keep-debug "$build/rzil.ko.local" "$kmod/rzil.ko.debug"
llvm-objcopy-$llvm --strip-debug --add-gnu-debuglink="$kmod/rzil.ko.debug" \
    "$build/rzil.ko.local" "$kmod/rzil.ko"
stamp "ld.lld-$llvm -r + llvm-objcopy"
printf 'kmod-build: %s (%s bytes; debug info in rzil.ko.debug, %s bytes)\n' \
    "kmod/rzil.ko" "$(stat -c %s "$kmod/rzil.ko")" "$(stat -c %s "$kmod/rzil.ko.debug")"
