#!/bin/sh
# Golden tests for "qproxy check-config": each NAME.toml here has its expected
# stdout, stderr and exit code in NAME.out, NAME.err and NAME.code; the output
# of a valid config must read back the same.
#
#   tests/config/run.sh BINARY           run them all
#   REGEN=1 tests/config/run.sh BINARY   rewrite the expected files (then review them)
set -u

if [ $# -ne 1 ]; then
	echo "usage: [REGEN=1] $0 BINARY" >&2
	exit 2
fi
case $1 in
/*) bin=$1 ;;
*/*) bin=$PWD/$1 ;;
*) bin=$(command -v "$1") || { echo "$0: $1: not found" >&2; exit 2; } ;;
esac
if [ ! -x "$bin" ]; then
	echo "$0: $bin: not an executable" >&2
	exit 2
fi
cd "$(dirname "$0")" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
# Only the command line may choose the control port.
unset QPROXY_CONTROL_PORT RUST_LOG

pass=0
fail=0
for toml in *.toml; do
	name=${toml%.toml}
	"$bin" check-config "$toml" >"$tmp/out" 2>"$tmp/err"
	echo $? >"$tmp/code"
	if [ "${REGEN:-0}" = 1 ]; then
		for ext in out err code; do
			cp "$tmp/$ext" "$name.$ext"
		done
	fi
	ok=true
	: >"$tmp/diff"
	for ext in out err code; do
		diff -u --label "$name.$ext" --label "actual $ext" "$name.$ext" "$tmp/$ext" \
			>>"$tmp/diff" 2>&1 || ok=false
	done
	# A valid config prints as canonical TOML that reads back the same.
	if $ok && [ "$(cat "$tmp/code")" = 0 ]; then
		cp "$tmp/out" "$tmp/again.toml"
		"$bin" check-config "$tmp/again.toml" >"$tmp/again" 2>/dev/null
		diff -u --label "$name.out" --label "check-config $name.out" "$tmp/out" "$tmp/again" \
			>>"$tmp/diff" 2>&1 || ok=false
	fi
	if $ok; then
		echo "ok $name"
		pass=$((pass + 1))
	else
		echo "FAIL $name"
		cat "$tmp/diff"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
