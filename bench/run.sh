#!/usr/bin/env bash
# qproxy against socat and against no proxy, side by side (what `make bench` runs).
#
#   bench/run.sh [--quick] [--rev REV | BINARY]
#
# What is measured: build/qproxy-static by default (HEAD, plus whatever the working tree
# holds); with --rev REV, the static binary of that commit, built by `make static` in a
# clean `git archive` export (for before/after comparisons); or BINARY as given.
#
# The full run takes 9-12 minutes on 2 cores and writes bench/RESULTS.md;
# --quick (or QUICK=1) takes under a minute and writes bench/RESULTS-quick.md,
# so that a regression check never overwrites the reference figures.
# OUT=FILE writes elsewhere; BINARY_NOTE=TEXT says in it where BINARY comes from;
# ONLY=scale,iperf,... runs only those parts (startup, scale, iperf, redis, ab, pgbench, egress,
# dns);
# WAIT_QUIET=SECONDS first waits up to that long for the machine to be idle.
# Needs root (network namespaces). See bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
quick=${QUICK:-0}
binary=
rev=
usage() {
	echo "usage: $0 [--quick] [--rev REV | BINARY]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--rev)
		[ $# -ge 2 ] || usage
		rev=$2
		shift
		;;
	--rev=*) rev=${1#--rev=} ;;
	-h | --help)
		sed -n "2,16p" "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*) usage ;;
	*) binary=$1 ;;
	esac
	shift
done
[ "$quick" = 1 ] || quick=0
[ -z "$rev" ] || [ -z "$binary" ] || usage
commit=
note=${BINARY_NOTE:-}
if [ -n "$rev" ]; then
	commit=$(git -C "$repo" rev-parse --short "$rev^{commit}" 2>/dev/null) || {
		echo "bench: error: $rev is not a commit of $repo" >&2
		exit 2
	}
elif [ -z "$binary" ]; then
	binary=$repo/build/qproxy-static
	if [ -x "$binary" ] && ! make -q -C "$repo" build/qproxy-static >/dev/null 2>&1; then
		note="${note:+$note; }older than its sources (make static was not run since the last change)"
	fi
else
	note=${note:-given on the command line; its commit is not known}
	commit=${COMMIT:-unknown}
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: error: must run as root (network namespaces)" >&2
	exit 2
fi
if [ -z "$rev" ] && [ ! -x "$binary" ]; then
	echo "bench: error: $binary is not an executable (run make static first)" >&2
	exit 2
fi
missing=()
for tool in ip socat iperf3 redis-server redis-benchmark redis-cli nginx ab timeout setpriv \
	dnsperf curl /usr/bin/python3; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# pgbench's server runs as postgres (it refuses root): the package makes the user.
compgen -G "/usr/lib/postgresql/*/bin/pgbench" >/dev/null && id postgres >/dev/null 2>&1 ||
	missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench: error: missing: ${missing[*]}" >&2
	echo "  apt-get install -y iproute2 socat iperf3 redis-server redis-tools nginx-light apache2-utils coreutils util-linux postgresql python3" >&2
	exit 2
fi

if [ "$quick" = 1 ]; then
	out=${OUT:-$here/RESULTS-quick.md}
	limit=240
else
	out=${OUT:-$here/RESULTS.md}
	limit=1500
fi
# Namespaces of earlier runs that were killed outright (their run.sh is gone).
for stale in /run/netns/qpbench-*; do
	[ -e "$stale" ] || continue
	pid=${stale##*/qpbench-}
	case $pid in '' | *[!0-9]*) continue ;; esac
	[ -d "/proc/$pid" ] || ip netns delete "qpbench-$pid" 2>/dev/null || true
done
ns=qpbench-$$
# Short: the vsock emulation's Unix socket paths must fit in 108 bytes.
work=$(mktemp -d /tmp/qpb.XXXXXX)

# bench.py cleans up after itself; this is for when it could not (killed, timed out).
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$rc" -ne 0 ] && [ -f "$work/pgids" ]; then
		while read -r pgid; do
			kill -KILL -- "-$pgid" 2>/dev/null || true
		done <"$work/pgids"
		# A postgres killed outright leaves its SysV shared memory segment behind (it is
		# removed once the last process detaches); postmaster.pid's line 7 names it.
		pidfile=$work/pg/data/postmaster.pid
		if [ -f "$pidfile" ]; then
			shmid=$(sed -n 7p "$pidfile" | awk '{print $2}')
			[ -z "$shmid" ] || ipcrm -m "$shmid" 2>/dev/null || true
		fi
	fi
	if ip netns list | grep -qw "^$ns"; then
		ip netns delete "$ns" 2>/dev/null || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

if [ -n "$rev" ]; then
	echo "bench: building $rev ($commit) with make static in a clean export"
	mkdir "$work/src"
	git -C "$repo" archive "$commit" | tar -x -C "$work/src"
	# The packages are installed (checked above); the stamps keep make from asking apt.
	mkdir -p "$work/src/build"
	touch "$work/src/build/.deps-build" "$work/src/build/.deps-all"
	if ! make -C "$work/src" static >"$work/build.log" 2>&1; then
		tail -n 30 "$work/build.log" >&2
		echo "bench: error: make static failed for $rev" >&2
		exit 1
	fi
	binary=$work/src/build/qproxy-static
	note="${note:+$note; }built from $commit by make static in a clean git archive export"
fi

args=(--binary "$binary" --workdir "$work" --netns "$ns" --out "$out" --binary-note "$note")
[ -n "$commit" ] && args+=(--commit "$commit")
[ "$quick" = 1 ] && args+=(--quick)
[ -n "${ONLY:-}" ] && args+=(--only "$ONLY")
wait_quiet=${WAIT_QUIET:-0}
args+=(--wait-quiet "$wait_quiet")
limit=$((limit + ${wait_quiet%.*}))
# A hard bound on the whole run: TERM lets bench.py clean up, KILL 30 s later if not.
# In the background, so that a TERM or INT sent to this script is passed on at once
# (bash runs traps only between foreground commands).
timeout --kill-after=30 "$limit" /usr/bin/python3 "$here/bench.py" "${args[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM HUP
while :; do
	wait "$child" && rc=0 || rc=$?
	kill -0 "$child" 2>/dev/null || break
done
exit "$rc"
