#!/usr/bin/env bash
# Produce real OpenZFS 2.3.2 log blocks with OpenZFS's own userspace tools
# and check that rzil's parser decodes them exactly as zdb reports them.
#
#  1. Fetch (once, cached under .cache/openzfs) Debian's zfs-test and
#     zfsutils-linux 2.3.2 and their libraries from bookworm-backports
#     contrib through the private apt config of format-apt.sh, and unpack
#     them with dpkg -x: nothing is installed system-wide; the programs run
#     with LD_LIBRARY_PATH.
#  2. Run ztest on one plain file vdev. Once its pass process runs its
#     workload, gdb attaches and calls spa_freeze() on the pool (as the
#     shared test set's README describes): no later txg reaches disk but ZIL
#     blocks go on being written. A few seconds later the whole process
#     group gets SIGKILL, so the pool on disk holds long unreplayed ZIL
#     chains. Without gdb (or if the call fails) the kill alone still leaves
#     whatever chains were live, only fewer.
#  3. `zdb -e -p DIR -ivvvvv ztest` prints every chain (blocks, records).
#  4. A first block of each chain is read from the vdev file at DVA offset +
#     4 MiB and compared byte for byte with `zdb -R` (so the test reads what
#     zdb reads).
#  5. `cargo test --test format_ztest` walks every unencrypted chain from the
#     vdev file and compares with zdb's text: blocks, record types, seqs,
#     txgs, lengths, write fields, and where the chain ends.
# ztest takes its randomness from /dev/urandom: every run differs. A run
# whose pool holds no unencrypted record is retried (RZIL_ZTEST_TRIES).
set -euo pipefail
# shellcheck source=scripts/format-apt.sh
. "$(dirname "$0")/format-apt.sh"

version="${RZIL_OPENZFS_VERSION:-2.3.2}"
# Seconds of workload before the freeze, and of ZIL-only writes after it.
before_freeze_s="${RZIL_ZTEST_BEFORE_FREEZE_SECONDS:-5}"
after_freeze_s="${RZIL_ZTEST_AFTER_FREEZE_SECONDS:-8}"
# Bound on waiting for ztest's setup (pool creation and its zdb checks).
setup_polls_max=480
poll_s=0.5
tries="${RZIL_ZTEST_TRIES:-3}"
# Bytes of vdev label + boot area before DVA offset 0 (VDEV_LABEL_START_SIZE).
vdev_label_start_bytes=$((4 * 1024 * 1024))
root="$ozfs_cache/root-$version"
run="$ozfs_cache/ztest-run"

if [ ! -e "$root/.complete" ]; then
	ozfs_apt_update
	debver="$(apt-cache "${ozfs_apt[@]}" policy zfs-test 2>/dev/null |
	    awk '{ print $1 }' | grep -E "^$version-" | sort -V | tail -n 1 || true)"
	[ -n "$debver" ] || ozfs_die "zfs-test $version is not in bookworm-backports"
	debs="$ozfs_cache/debs-$version"
	rm -rf "$debs" "$root"
	mkdir -p "$debs" "$root"
	ozfs_log "apt-get download zfs-test zfsutils-linux and libraries $debver"
	(cd "$debs" && apt-get "${ozfs_apt[@]}" download -qq \
	    "zfs-test=$debver" "zfsutils-linux=$debver" "libnvpair3linux=$debver" \
	    "libuutil3linux=$debver" "libzfs6linux=$debver" "libzpool6linux=$debver" >&2)
	for deb in "$debs"/*.deb; do
		dpkg -x "$deb" "$root"
	done
	[ -x "$root/sbin/ztest" ] && [ -x "$root/sbin/zdb" ] || ozfs_die "ztest/zdb missing in $root"
	printf '%s\n' "$debver" >"$root/.complete"
fi
export LD_LIBRARY_PATH="$root/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# ztest runs zdb itself (by name) to check the pool it creates.
export PATH="$root/sbin:$PATH"
if ! command -v gdb >/dev/null; then
	if [ "$(id -u)" -eq 0 ]; then
		ozfs_log "apt-get install gdb"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gdb >&2 ||
		    ozfs_log "gdb unavailable: chains will be shorter"
	fi
fi
missing="$(ldd "$root/sbin/ztest" "$root/sbin/zdb" | awk '/not found/ { print $1 }' | sort -u)"
[ -z "$missing" ] || ozfs_die "shared libraries missing for ztest/zdb: $missing (install them with apt-get)"

# Freeze the pool from inside the running ztest process: take the
# namespace lock, look the pool up, drop the lock, spa_freeze().
gdb_script="$ozfs_cache/freeze.gdb"
cat >"$gdb_script" <<'GDB'
set pagination off
set confirm off
set unwindonsignal on
call (void)mutex_enter((void*)&spa_namespace_lock)
set $spa = (void*)spa_lookup("ztest")
call (void)mutex_exit((void*)&spa_namespace_lock)
call (void)spa_freeze($spa)
printf "rzil: spa_freeze done\n"
detach
quit
GDB

ztest_pid=
cleanup() {
	if [ -n "$ztest_pid" ]; then
		kill -KILL -- "-$ztest_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# The ztest child that runs the workload: many threads, not itself waiting
# for a zdb child (ztest checks the pool with zdb before each pass).
pass_child() {
	local c
	for c in $(ps -o pid=,nlwp=,comm= --ppid "$1" | awk '$3 == "ztest" && $2 > 8 { print $1 }'); do
		if [ -z "$(ps -o pid= --ppid "$c")" ]; then
			printf '%s\n' "$c"
			return
		fi
	done
}

attempt=1
while :; do
	rm -rf "$run"
	mkdir -p "$run/pool"
	ozfs_log "ztest run $attempt of $tries"
	setsid ztest -VV -f "$run/pool" -v 1 -m 0 -r 1 -K raidz -s 128m -d 7 -t 8 \
	    -T 600 -P 600 -k 0 -C special=off >"$run/ztest.log" 2>&1 &
	ztest_pid=$!
	child=
	for _ in $(seq 1 "$setup_polls_max"); do
		if [ "$(grep -c 'ZFS_DBGMSG(zdb) END' "$run/ztest.log" 2>/dev/null || true)" -ge 2 ]; then
			child="$(pass_child "$ztest_pid")"
			[ -n "$child" ] && break
		fi
		sleep "$poll_s"
	done
	if [ -n "$child" ]; then
		sleep "$before_freeze_s"
		if command -v gdb >/dev/null &&
		    timeout 120 gdb -q -batch -x "$gdb_script" -p "$child" 2>&1 | grep -q 'rzil: spa_freeze done'; then
			ozfs_log "pool frozen in ztest pid $child"
		else
			ozfs_log "spa_freeze via gdb failed; killing without a freeze"
		fi
		sleep "$after_freeze_s"
	else
		ozfs_log "ztest pass did not start in time"
	fi
	kill -KILL -- "-$ztest_pid" 2>/dev/null || true
	wait "$ztest_pid" 2>/dev/null || true
	ztest_pid=
	# A kill can land while ztest is between passes (the pool exported, or
	# its labels being rewritten); zdb then cannot open it. That run made
	# no blocks to check: try another, within the same bound.
	if zdb -e -p "$run/pool" -ivvvvv ztest >"$run/zdb.txt" 2>"$run/zdb.err"; then
		records="$(awk '/Block seqno/ { enc = ($0 ~ / encrypted /) } /^\t\tTX_[A-Z0-9_]+ +len/ && !enc { n++ } END { print n + 0 }' "$run/zdb.txt")"
		ozfs_log "zdb shows $records records in unencrypted chains"
	else
		records=0
		ozfs_log "zdb could not read this run's pool: $(tail -n 1 "$run/zdb.err")"
	fi
	if [ "$records" -gt 0 ]; then
		break
	fi
	[ "$attempt" -lt "$tries" ] || ozfs_die "no unencrypted ZIL record after $tries ztest runs"
	attempt=$((attempt + 1))
done

# Step 4: our read of a block equals zdb's own read (-R ... :r = raw).
line="$(grep -m 1 -E 'Block seqno .* unencrypted ' "$run/zdb.txt" || true)"
dva="$(printf '%s\n' "$line" | sed -n 's/.*DVA\[0\]=<\([0-9a-f]*\):\([0-9a-f]*\):\([0-9a-f]*\)>.*/\1 \2 \3/p')"
read -r vdev off asize <<<"$dva"
psize="$(printf '%s\n' "$line" | sed -n 's/.* size=[0-9a-f]*L\/\([0-9a-f]*\)P.*/\1/p')"
zdb -e -p "$run/pool" -R ztest "$vdev:$off:$psize:r" >"$run/zdb-R.bin" 2>/dev/null ||
    ozfs_die "zdb -R failed"
# ztest may have attached a mirror child (ztest.0b ...) to vdev 0: the
# block is on at least one child file.
same=
for f in "$run"/pool/ztest.*; do
	dd if="$f" of="$run/dd.bin" bs=512 skip=$(((0x$off + vdev_label_start_bytes) / 512)) \
	    count=$((0x$psize / 512)) status=none
	if cmp -s "$run/zdb-R.bin" "$run/dd.bin"; then
		same="$f"
		break
	fi
done
[ -n "$same" ] || ozfs_die "no vdev file holds zdb -R's bytes of <$vdev:$off:$psize> at offset + 4 MiB"
ozfs_log "block at <$vdev:$off:$psize>: $(basename "$same") bytes == zdb -R bytes"

cd "$repo_root"
RZIL_ZTEST_DIR="$run" cargo test --quiet --all-features --test format_ztest -- --nocapture
# The vdev files (~250 MB) are kept only when something failed above.
rm -f "$run"/pool/ztest.*
