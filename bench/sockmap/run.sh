#!/usr/bin/env bash
# The sockmap experiment (README.md here): redis GET, 50 clients, straight to redis, through
# qproxy's two halves, and through two halves that move bytes by BPF sockmap redirect;
# ROUNDS rounds, interleaved. Prints each path's rate and the whole machine's busy CPU
# per 100,000 requests (the redirects run in softirq and kworkers, charged to no proxy).
#   bench/sockmap/run.sh [QPROXY_BINARY]
# Needs root, clang, libbpf-dev and redis-server; about a minute.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
qproxy=${1:-$repo/build/qproxy-static}
n=${N:-200000}
rounds=${ROUNDS:-3}
out=$repo/build/sockmap
. "$repo/bench/netns-run.sh"

mkdir -p "$out"
clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" -c "$here/redirect.bpf.c" \
	-o "$out/redirect.bpf.o"
cc -O2 -Wall -Wextra -o "$out/redirect" "$here/redirect.c" -lbpf

ip netns exec "$ns" redis-server --save "" --appendonly no --port 16379 --bind 127.0.0.1 \
	>/dev/null &
pids+=($!)
printf '[[inbound_connections]]\nhost_port = 16380\nenclave_port = 16379\nvsock_port = 9100\n' \
	>"$work/qproxy.toml"
sleep 0.3
ip netns exec "$ns" "$qproxy" enclave --config="$work/qproxy.toml" --vsock-dir "$work" --cid 4 \
	2>"$work/enclave.log" &
pids+=($!)
"$qproxy" host --config="$work/qproxy.toml" --vsock-dir "$work" 4 2>"$work/host.log" &
pids+=($!)
ip netns exec "$ns" "$out/redirect" enclave "$work/redirect.sock" 16379 "$out/redirect.bpf.o" &
pids+=($!)
sleep 0.3
"$out/redirect" host 16390 "$work/redirect.sock" "$out/redirect.bpf.o" &
pids+=($!)
sleep 0.5
for port in 16380 16390; do
	[ "$(redis-cli -p $port ping)" = PONG ] || { echo "no PONG on port $port" >&2; exit 1; }
done

busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
measure() {
	local label=$1 b0 b1 rate
	shift
	b0=$(busy)
	rate=$("$@" -t get -n "$n" -c 50 -q | tr '\r' '\n' | awk '/per second/ { print $2 }')
	b1=$(busy)
	printf '%-8s %10.0f req/s  %6.2f machine CPU s per 100k requests\n' "$label" "$rate" \
		"$(awk -v b=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
			'BEGIN { print b / hz / n * 100000 }')"
}
for r in $(seq "$rounds"); do
	echo "round $r, redis GET, 50 clients, $n requests"
	measure direct ip netns exec "$ns" redis-benchmark -p 16379
	measure qproxy redis-benchmark -p 16380
	measure sockmap redis-benchmark -p 16390
done
