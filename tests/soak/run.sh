#!/bin/sh
# make soak: SOAK_SECONDS (default 600) of mixed load through both halves of qproxy,
# every transfer checked, then a report (tests/soak/soak.py says what it does).
#
#   tests/soak/run.sh [BINARY]     default build/qproxy-static
#
# Whatever way soak.py ends (done, failed, interrupted, killed), nothing it started is
# left behind: its processes by the pids it recorded, its network namespace by name,
# its files with the work directory (kept, and named, when the soak failed).
set -u
cd "$(dirname "$0")/../.." || exit 2
bin=${1:-build/qproxy-static}
if [ "$(id -u)" != 0 ]; then
	echo "$0: needs root (network namespaces)" >&2
	exit 2
fi
work=$(mktemp -d /tmp/qpsoak.XXXXXX) || exit 2

SOAK_WORKDIR=$work /usr/bin/python3 tests/soak/soak.py "$bin" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
rc=0
wait "$pid" || rc=$?
# A trapped signal cuts wait short: wait again until soak.py has really finished.
while kill -0 "$pid" 2>/dev/null; do
	rc=0
	wait "$pid" || rc=$?
done
trap - INT TERM HUP

# What soak.py could not clean up itself (it was killed): only processes that are still
# the ones it started, recognised by their command line.
if [ -f "$work/pids" ]; then
	while read -r p; do
		[ -r "/proc/$p/cmdline" ] || continue
		if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -e "$work" -e "tests/e2e/servers.py"; then
			echo "$0: killing leftover process $p" >&2
			kill -KILL "$p" 2>/dev/null
		fi
	done <"$work/pids"
fi
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^qpsoak-$pid-"); do
	echo "$0: deleting leftover network namespace $ns" >&2
	ip netns delete "$ns"
done
if [ "$rc" = 0 ]; then
	rm -rf "$work"
else
	echo "$0: exit status $rc; logs in $work" >&2
fi
exit "$rc"
