#!/bin/sh
# freebsd-vm-test.sh: build rzil.ko natively on FreeBSD 15 (amd64), load it,
# drive it through an md(4) disk (or a spare disk) with `rzilctl stress`,
# `rzil run --kernel` and `rzil bench --kernel`, look in dmesg for panics,
# WITNESS and INVARIANTS complaints, and unload it. Run it as root, inside a
# throwaway FreeBSD 15 VM, from a checkout of this repository; the CI
# definitions (.cirrus.yml, .github/workflows/freebsd.yml) run nothing else.
# See kmod/README.md "Testing in a FreeBSD VM".
#
# POSIX sh on purpose: FreeBSD's base system has /bin/sh and no bash.
#
# Exit status: 0 all passed; 1 a step failed (the line before says which);
# 2 bad arguments or a missing prerequisite (not FreeBSD >= 15 on amd64,
# not root, no kernel sources).

set -eu

PROG=freebsd-vm-test
# Oldest FreeBSD major release the module is built for (kmod/README.md).
FREEBSD_MAJOR_MIN=15
# Longest --seconds accepted: a soak belongs in `rzil run` by hand.
SECONDS_MAX=3600
SECONDS_DEFAULT=5
# The md(4) disk made when no --provider is given: room for the log ring.
MD_SIZE=256m
# rzilctl stress: records, bytes per record, records per commit. 20000
# 4 KiB records (80 MiB) wrap the 256 MiB md disk's ring neither too little
# nor too long for CI (a few seconds).
STRESS_RECORDS=20000
STRESS_RECORD_BYTES=4096
STRESS_PER_COMMIT=16
RUN_THREADS=16
BENCH_THREADS=1,16
BENCH_SECONDS=1
# An `EBUSY` from kldunload right after a detach is retried this often, a
# second apart (the taskqueue may still be draining).
UNLOAD_TRIES=5
# Where logs (dmesg before and during the run) go; git-ignored.
OUT_DIR=target/freebsd-vm-test
# dmesg lines that fail the run: a panic, a WITNESS report (lock order
# reversal, sleeping with a non-sleepable lock held, a recursed or
# duplicate lock), an INVARIANTS assertion or UMA's use-after-free check.
DMESG_BAD='panic|lock order reversal|witness|non-sleepable lock|locks held|duplicate lock|recursed on non-recursive|assert|modified after free|Fatal trap|page fault'

SYSDIR=${SYSDIR:-/usr/src/sys}
RUST_TOOLCHAIN=${RUST_TOOLCHAIN:-nightly}
RZILCTL=target/rzilctl
RZIL=target/release/rzil

step=args
log() { printf '%s: [%s] %s\n' "$PROG" "$step" "$*"; }
warn() { printf '%s: [%s] warning: %s\n' "$PROG" "$step" "$*" >&2; }
# die STATUS REASON: one line, then out (the EXIT trap cleans up).
die() {
	status=$1
	shift
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit "$status"
}

usage() {
	cat <<EOF
usage: scripts/freebsd-vm-test.sh [--seconds N] [--provider NAME --yes-destroy-data]
                                  [--skip-build] [--fetch-src] [--dry-run] [--help]

Builds kmod/rzil.ko natively (make -C kmod), the host rzil and rzilctl, then,
as root on FreeBSD >= $FREEBSD_MAJOR_MIN (amd64): makes an md(4) disk, kldloads
the module, runs rzilctl stress, rzil run --kernel and rzil bench --kernel on
it, fails on panics or WITNESS/INVARIANTS complaints in dmesg, kldunloads the
module and destroys the disk (also on failure).

  --seconds N         seconds of rzil run --kernel (1..$SECONDS_MAX, default $SECONDS_DEFAULT)
  --provider NAME     use this existing GEOM provider (ada1, vtbd1, ...) instead
                      of a new md disk; everything on it is overwritten
  --yes-destroy-data  required with --provider
  --skip-build        use the kmod/rzil.ko, $RZIL and $RZILCTL built before
  --fetch-src         if SYSDIR ($SYSDIR) is missing, fetch the running release's
                      src.txz from download.freebsd.org and extract its sys/
  --dry-run           print the commands it would run, run nothing (any OS)
  --help              this text

Environment: SYSDIR (kernel sources, default /usr/src/sys), RUST_TOOLCHAIN
(default nightly). Exit status: 0 passed, 1 a step failed, 2 bad arguments or
a missing prerequisite.
EOF
}

seconds=$SECONDS_DEFAULT
provider=
yes_destroy=0
skip_build=0
fetch_src=0
dry_run=0
while [ $# -gt 0 ]; do
	case $1 in
	--seconds)
		[ $# -ge 2 ] || die 2 "--seconds needs a value (1..$SECONDS_MAX)"
		seconds=$2
		shift 2
		;;
	--seconds=*)
		seconds=${1#--seconds=}
		shift
		;;
	--provider)
		[ $# -ge 2 ] || die 2 "--provider needs a GEOM provider name (ada1, vtbd1, ...)"
		provider=$2
		shift 2
		;;
	--provider=*)
		provider=${1#--provider=}
		shift
		;;
	--yes-destroy-data) yes_destroy=1; shift ;;
	--skip-build) skip_build=1; shift ;;
	--fetch-src) fetch_src=1; shift ;;
	--dry-run) dry_run=1; shift ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die 2 "unknown argument '$1' (see --help)" ;;
	esac
done

case $seconds in
'' | *[!0-9]* | 0*) die 2 "--seconds '$seconds' is not a whole number in 1..$SECONDS_MAX" ;;
esac
# At most 4 digits before comparing, so a huge number cannot overflow test(1).
if [ ${#seconds} -gt 4 ] || [ "$seconds" -gt "$SECONDS_MAX" ]; then
	die 2 "--seconds '$seconds' is not a whole number in 1..$SECONDS_MAX"
fi
provider=${provider#/dev/}
if [ -n "$provider" ]; then
	case $provider in
	*[!A-Za-z0-9._/-]* | .* | */) die 2 "--provider '$provider' is not a GEOM provider name (ada1, vtbd1, ...)" ;;
	esac
	# The module's ioctl holds the name in 64 bytes (RZIL_PROVIDER_NAME_BYTES).
	[ ${#provider} -le 63 ] || die 2 "--provider '$provider' is longer than 63 bytes"
	[ "$yes_destroy" -eq 1 ] ||
	    die 2 "--provider $provider overwrites everything on it: add --yes-destroy-data if that is what you want"
elif [ "$yes_destroy" -eq 1 ]; then
	die 2 "--yes-destroy-data goes with --provider NAME"
fi

# run STEP-LOCAL COMMAND...: show the command, then run it (not in a dry
# run); a failure ends the script with the command named.
run() {
	log "\$ $*"
	[ "$dry_run" -eq 1 ] && return 0
	rc=0
	"$@" || rc=$?
	[ "$rc" -eq 0 ] || die 1 "[$step] failed (exit status $rc): $*"
}

# --- cleanup, on every exit --------------------------------------------------
md_unit=
made_md=0
loaded=0
instance=
cleanup() {
	status=$?
	trap - EXIT
	set +e
	if [ -n "$instance" ]; then
		step=cleanup
		log "\$ $RZILCTL detach $instance"
		"$RZILCTL" detach "$instance"
	fi
	if [ "$loaded" -eq 1 ]; then
		step=cleanup
		log "\$ kldunload rzil"
		kldunload rzil || warn "kldunload rzil failed: the module stays loaded"
	fi
	if [ -n "$md_unit" ]; then
		step=cleanup
		log "\$ mdconfig -d -u $md_unit"
		mdconfig -d -u "$md_unit" || warn "mdconfig -d -u $md_unit failed: md$md_unit stays"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The script works from the top of the checkout whatever the caller's cwd.
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# --- 1. prerequisites --------------------------------------------------------
step=check
if [ "$dry_run" -eq 1 ]; then
	log "dry run: would check FreeBSD >= $FREEBSD_MAJOR_MIN on amd64, root, kernel sources in $SYSDIR"
else
	os=$(uname -s)
	[ "$os" = FreeBSD ] ||
	    die 2 "needs FreeBSD $FREEBSD_MAJOR_MIN or later (this is $os): run it inside a FreeBSD $FREEBSD_MAJOR_MIN VM"
	release=$(uname -r)
	major=${release%%.*}
	case $major in
	'' | *[!0-9]*) die 2 "cannot read the FreeBSD version from uname -r '$release'" ;;
	esac
	[ "$major" -ge "$FREEBSD_MAJOR_MIN" ] ||
	    die 2 "needs FreeBSD $FREEBSD_MAJOR_MIN or later (this is $release)"
	machine=$(uname -m)
	[ "$machine" = amd64 ] ||
	    die 2 "needs amd64 (this is $machine): kmod/x86_64-rzil-freebsd-kernel.json is the only kernel target"
	[ "$(id -u)" -eq 0 ] || die 2 "needs root (kldload, mdconfig, pkg): run it with su or doas"
	log "FreeBSD $release $machine, root"

	if [ ! -f "$SYSDIR/conf/kmod.mk" ] && [ "$fetch_src" -eq 1 ] && [ "$SYSDIR" = /usr/src/sys ]; then
		# Strip the patch level: the distribution sets are per release.
		dist=${release%-p[0-9]*}
		case $dist in
		*-RELEASE | *-BETA* | *-RC*) tree=releases ;;
		*) tree=snapshots ;;
		esac
		url=https://download.freebsd.org/$tree/$machine/$dist/src.txz
		log "kernel sources missing: fetching $url (sys/ only)"
		mkdir -p "$OUT_DIR"
		run fetch -o "$OUT_DIR/src.txz" "$url"
		run tar -C / -xf "$OUT_DIR/src.txz" usr/src/sys
		rm -f "$OUT_DIR/src.txz"
	fi
	[ -f "$SYSDIR/conf/kmod.mk" ] ||
	    die 2 "no kernel sources in SYSDIR=$SYSDIR (no conf/kmod.mk): extract this release's src.txz distribution set (tar -C / -xf src.txz), or git clone --depth 1 -b releng/${release%%-*} https://git.FreeBSD.org/src.git /usr/src, or rerun with --fetch-src (which fills /usr/src/sys)"
	log "kernel sources: $SYSDIR"

	# The released GENERIC kernel has neither option; -CURRENT snapshots and
	# a GENERIC-based debug kernel have both (kmod/README.md).
	conf=$(sysctl -n kern.conftxt 2>/dev/null || true)
	has_invariants=0
	has_witness=0
	if printf '%s\n' "$conf" | grep -Eq '^options[[:space:]]+INVARIANTS$' ||
	    [ "$(sysctl -n kern.features.invariants 2>/dev/null || echo 0)" = 1 ]; then
		has_invariants=1
	fi
	if printf '%s\n' "$conf" | grep -Eq '^options[[:space:]]+WITNESS$' ||
	    sysctl -n debug.witness.watch >/dev/null 2>&1; then
		has_witness=1
	fi
	if [ "$has_invariants" -eq 1 ]; then
		log "kernel has INVARIANTS"
	else
		warn "kernel without INVARIANTS: use-after-free and KASSERT failures go unseen (build a GENERIC-based kernel with options INVARIANTS, INVARIANT_SUPPORT, or boot a -CURRENT snapshot)"
	fi
	if [ "$has_witness" -eq 1 ]; then
		log "kernel has WITNESS"
	else
		warn "kernel without WITNESS: lock order reversals go unseen (options WITNESS)"
	fi
fi

if [ -z "$provider" ]; then
	log "log device: a new $MD_SIZE md(4) swap disk"
else
	log "log device: /dev/$provider (everything on it is overwritten)"
	if [ "$dry_run" -eq 0 ]; then
		[ -c "/dev/$provider" ] || die 2 "--provider $provider: no /dev/$provider"
		if mount -p | awk '{print $1}' | grep -qx "/dev/$provider"; then
			die 2 "--provider $provider is mounted: pick a spare disk"
		fi
	fi
fi

# --- 2. toolchain and build --------------------------------------------------
CARGO_BIN=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
PATH=$CARGO_BIN:$PATH
# A fresh image's pkg is the bootstrap stub: let it install itself without
# asking (pkg(7) reads this), as `pkg install -y` does not reach it.
ASSUME_ALWAYS_YES=yes
export PATH ASSUME_ALWAYS_YES
if [ "$skip_build" -eq 0 ]; then
	step=toolchain
	# rustup (the kmod Makefile runs `cargo +nightly` with -Zbuild-std=core,
	# which needs rust-src) and llvm (libclang for bindgen).
	run pkg install -y rustup-init llvm
	if [ "$dry_run" -eq 1 ] || ! command -v rustup >/dev/null 2>&1; then
		run rustup-init -y --no-modify-path --profile minimal --default-toolchain "$RUST_TOOLCHAIN" --component rust-src
	else
		log "rustup already installed"
	fi
	run rustup toolchain install "$RUST_TOOLCHAIN" --profile minimal --component rust-src
	# bindgen loads libclang: name the newest pkg llvm's when none is set.
	if [ "$dry_run" -eq 0 ] && [ -z "${LIBCLANG_PATH:-}" ]; then
		for dir in /usr/local/llvm*/lib; do
			if [ -f "$dir/libclang.so" ]; then
				LIBCLANG_PATH=$dir
			fi
		done
		if [ -n "${LIBCLANG_PATH:-}" ]; then
			export LIBCLANG_PATH
			log "LIBCLANG_PATH=$LIBCLANG_PATH"
		fi
	fi

	step=build
	run make -C kmod SYSDIR="$SYSDIR"
	run cargo +"$RUST_TOOLCHAIN" build --release -p rzil-host
	run cc -O2 -Wall -Werror -I kmod -o "$RZILCTL" kmod/tools/rzilctl.c
fi

# bsd.kmod.mk builds in the object directory: kmod/ itself unless
# MAKEOBJDIRPREFIX or /usr/obj says otherwise.
step=build
if [ "$dry_run" -eq 1 ]; then
	ko=./kmod/rzil.ko
else
	objdir=$(make -C kmod -V .OBJDIR SYSDIR="$SYSDIR")
	ko=$objdir/rzil.ko
	[ "$objdir" = "$repo/kmod" ] && ko=./kmod/rzil.ko
	for built in "$ko" "$RZIL" "$RZILCTL"; do
		[ -f "$built" ] || die 2 "$built is missing: run without --skip-build first"
	done
fi

# --- 3. load, drive, check ---------------------------------------------------
if [ "$dry_run" -eq 0 ] && kldstat -q -m rzil; then
	die 2 "rzil.ko is loaded already (an earlier run?): kldunload rzil first"
fi

step=dmesg
# Keep the boot messages, then start the message buffer afresh so that the
# check below reads only what this run caused.
if [ "$dry_run" -eq 0 ]; then
	mkdir -p "$OUT_DIR"
	dmesg >"$OUT_DIR/dmesg.before"
	log "boot messages saved in $OUT_DIR/dmesg.before"
fi
run sysctl kern.msgbuf_clear=1

if [ -z "$provider" ]; then
	step=md
	log "\$ mdconfig -a -t swap -s $MD_SIZE"
	made_md=1
	if [ "$dry_run" -eq 1 ]; then
		provider=md0
		md_unit=0
	else
		provider=$(mdconfig -a -t swap -s "$MD_SIZE") || die 1 "[md] mdconfig -a -t swap -s $MD_SIZE failed"
		case $provider in
		md[0-9]*) md_unit=${provider#md} ;;
		*) die 1 "[md] mdconfig printed '$provider', not an md unit" ;;
		esac
	fi
	log "provider: $provider"
fi

step=load
run kldload "$ko"
[ "$dry_run" -eq 1 ] || loaded=1

step=stress
log "\$ $RZILCTL attach $provider"
if [ "$dry_run" -eq 1 ]; then
	id=0
else
	attached=$("$RZILCTL" attach "$provider") || die 1 "[stress] $RZILCTL attach $provider failed"
	printf '%s\n' "$attached"
	id=$(printf '%s\n' "$attached" | sed -n 's/^instance \([0-9][0-9]*\):.*/\1/p')
	[ -n "$id" ] || die 1 "[stress] no instance id in rzilctl's answer '$attached'"
	instance=$id
fi
run "$RZILCTL" stress "$id" "$STRESS_RECORDS" "$STRESS_RECORD_BYTES" "$STRESS_PER_COMMIT"
run "$RZILCTL" checkpoint "$id"
run "$RZILCTL" detach "$id"
instance=

step=run
run "$RZIL" run --kernel --provider "$provider" --threads "$RUN_THREADS" --seconds "$seconds"
step=bench
run "$RZIL" bench --kernel --provider "$provider" --threads "$BENCH_THREADS" --seconds "$BENCH_SECONDS"
run sysctl kern.rzil

step=dmesg
log "\$ dmesg"
if [ "$dry_run" -eq 0 ]; then
	dmesg >"$OUT_DIR/dmesg.run"
	sed 's/^/  | /' "$OUT_DIR/dmesg.run"
	if grep -Eiq "$DMESG_BAD" "$OUT_DIR/dmesg.run"; then
		grep -Ei "$DMESG_BAD" "$OUT_DIR/dmesg.run" | sed 's/^/  !! /' >&2
		die 1 "[dmesg] the kernel complained during the run (lines above; all of it in $OUT_DIR/dmesg.run)"
	fi
	log "no panic, WITNESS or INVARIANTS complaint"
fi

step=unload
unloaded=0
tries=0
while [ "$unloaded" -eq 0 ]; do
	tries=$((tries + 1))
	log "\$ kldunload rzil"
	if [ "$dry_run" -eq 1 ] || kldunload rzil; then
		unloaded=1
	elif [ "$tries" -ge "$UNLOAD_TRIES" ]; then
		die 1 "[unload] kldunload rzil failed $UNLOAD_TRIES times (an instance still attached?)"
	else
		sleep 1
	fi
done
loaded=0

if [ "$made_md" -eq 1 ]; then
	step=md
	run mdconfig -d -u "$md_unit"
	md_unit=
fi

step=result
log "passed: rzil.ko built, loaded, stressed, driven by rzil run/bench --kernel on $provider, unloaded"
