# Sourced by scripts/openzfs-src.sh and scripts/format-ztest-blocks.sh:
# a private apt configuration under .cache/openzfs/apt that adds Debian's
# bookworm-backports contrib (binaries and sources, where OpenZFS 2.3.2 lives)
# without touching the system's apt setup. The mirror is the one the system
# already uses for bookworm, read from its sources.
#
# Defines: repo_root, ozfs_cache, ozfs_apt (array of apt-get options),
# ozfs_apt_update (runs `apt-get update` on the private lists once per day).

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ozfs_cache="${RZIL_OPENZFS_CACHE:-$repo_root/.cache/openzfs}"
ozfs_apt_dir="$ozfs_cache/apt"

ozfs_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
ozfs_die() { ozfs_log "error: $*"; exit 1; }

ozfs_mirror() {
	local uri=""
	if [ -r /etc/apt/sources.list.d/debian.sources ]; then
		# deb822: the URIs line of the stanza whose Suites include "bookworm".
		uri="$(awk '
			/^URIs:/ { u = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = u }
			/^$/ { u = "" }
			END { print found }' /etc/apt/sources.list.d/debian.sources)"
	fi
	if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
		uri="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)"
	fi
	[ -n "$uri" ] || ozfs_die "cannot find the system's Debian bookworm mirror in /etc/apt"
	printf '%s\n' "$uri"
}

mkdir -p "$ozfs_apt_dir/lists/partial" "$ozfs_apt_dir/cache/archives/partial" "$ozfs_apt_dir/parts"
ozfs_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
ozfs_apt=(
	-o "Dir::Etc::SourceList=$ozfs_apt_dir/sources.list"
	-o "Dir::Etc::SourceParts=$ozfs_apt_dir/parts"
	-o "Dir::State::Lists=$ozfs_apt_dir/lists"
	-o "Dir::Cache=$ozfs_apt_dir/cache"
	-o "APT::Sandbox::User=root"
	-o "Debug::NoLocking=1"
	-o "Acquire::Retries=3"
)

ozfs_apt_update() {
	local mirror
	mirror="$(ozfs_mirror)"
	local want="deb [signed-by=$ozfs_keyring] $mirror bookworm-backports main contrib
deb-src [signed-by=$ozfs_keyring] $mirror bookworm-backports main contrib
deb [signed-by=$ozfs_keyring] $mirror bookworm main contrib"
	if [ "$(cat "$ozfs_apt_dir/sources.list" 2>/dev/null)" != "$want" ]; then
		printf '%s\n' "$want" >"$ozfs_apt_dir/sources.list"
		rm -f "$ozfs_apt_dir/.updated"
	fi
	if [ -z "$(find "$ozfs_apt_dir/.updated" -mmin -1440 2>/dev/null)" ]; then
		ozfs_log "apt-get update (private lists: bookworm-backports contrib)"
		apt-get "${ozfs_apt[@]}" update -qq >&2 || ozfs_die "apt-get update failed"
		touch "$ozfs_apt_dir/.updated"
	fi
}
