# shellcheck shell=dash
# Sourced by a test guest's /init (busybox sh): one line a check, polling instead of
# sleeping, and the end of the run. The init sets GUEST_TAG (its verdict is
# "GUEST_TAG: PASS" or "GUEST_TAG: FAIL <reasons>") and GUEST_LOGS (a glob of the log files
# shown on failure), and adds to PIDS what finish stops before powering off.

PIDS=
FAILED=

finish() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	sync
	poweroff -f
	sleep 30
}

show_logs() {
	for f in $GUEST_LOGS; do
		[ -s "$f" ] || continue
		echo "--- $f"
		cat "$f"
	done
}

# A setup failure ends the run at once; check failures are collected by bad.
abort() {
	echo "$GUEST_TAG: FAIL $*"
	show_logs
	finish
}

ok() { echo "ok   $*"; }
bad() {
	echo "FAIL $*"
	FAILED="$FAILED${FAILED:+, }$1"
}

verdict() {
	if [ -z "$FAILED" ]; then
		echo "$GUEST_TAG: PASS"
	else
		show_logs
		echo "$GUEST_TAG: FAIL $FAILED"
	fi
	finish
}

# $1 tenths of a second at most for the rest to succeed.
poll() {
	local n="$1"
	shift
	until "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

# A listening TCP socket on port $2 in the network namespace of pid $1.
listening() { grep -q ":$(printf %04X "$2") 00000000:0000 0A" "/proc/$1/net/tcp"; }
has_line() { grep -q "$2" "$1" 2>/dev/null; }
