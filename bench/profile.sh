#!/usr/bin/env bash
# Where the two halves' CPU goes on small requests (what `make profile` runs).
#
#   bench/profile.sh [BINARY]        (build/qproxy-static by default)
#
# redis-benchmark GET, 50 clients, N requests (N=200000 by default), once straight to
# redis-server in a network namespace and once through both qproxy halves (the bench's
# topology: host half in the root namespace, a Unix socket for vsock, the enclave half
# beside the server), the halves under `perf record`. Prints both rates, the halves' CPU
# per 100,000 requests, what a null system call costs here, and the halves' samples by
# where they fall: the system calls' work in the kernel, the way in and out of the kernel,
# and user space (qproxy and libc). Takes about a minute. Needs root and `perf`
# (Debian's linux-perf). Figures from a run are in bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-$here/../build/qproxy-static}
n=${N:-200000}
die() {
	echo "profile: $*" >&2
	exit 1
}

command -v perf >/dev/null || die "perf not found: apt-get install linux-perf"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found: apt-get install redis-server"
[ -x "$binary" ] || die "$binary: no such binary (make static)"
. "$here/netns-run.sh"

# The halves' user+system CPU time so far, in clock ticks.
ticks() {
	awk '{ t += $14 + $15 } END { print t }' "/proc/$1/stat" "/proc/$2/stat"
}
# requests per second from redis-benchmark -q's last line
bench_get() {
	redis-benchmark "$@" -t get -n "$n" -c 50 -q | tr '\r' '\n' | awk '/requests per second/ { print $2 }'
}

ip netns exec "$ns" redis-server --save "" --appendonly no --port 16379 --bind 127.0.0.1 \
	>"$work/redis.log" &
pids+=($!)
cat >"$work/qproxy.toml" <<EOF
[[inbound_connections]]
host_port = 16380
enclave_port = 16379
vsock_port = 9100
EOF
ip netns exec "$ns" "$binary" enclave --config="$work/qproxy.toml" --vsock-dir "$work" --cid 4 \
	2>"$work/enclave.log" &
enclave=$!
pids+=("$enclave")
"$binary" host --config="$work/qproxy.toml" --vsock-dir "$work" 4 2>"$work/host.log" &
host=$!
pids+=("$host")
for _ in $(seq 50); do
	redis-cli -p 16380 ping 2>/dev/null | grep -q PONG && break
	sleep 0.1
done
redis-cli -p 16380 ping | grep -q PONG || die "no PONG through qproxy: $(cat "$work"/*.log)"

direct=$(ip netns exec "$ns" bash -c "$(declare -f bench_get); n=$n bench_get -p 16379")
perf record -q -g -o "$work/host.data" -p "$host" 2>/dev/null &
perf_host=$!
perf record -q -g -o "$work/enclave.data" -p "$enclave" 2>/dev/null &
perf_enclave=$!
sleep 0.5
t0=$(ticks "$host" "$enclave")
proxied=$(bench_get -p 16380)
t1=$(ticks "$host" "$enclave")
kill -INT "$perf_host" "$perf_enclave"
wait "$perf_host" "$perf_enclave" || true
hz=$(getconf CLK_TCK)
null_us=$(perf bench syscall basic 2>/dev/null | awk '/usecs\/op/ { print $1 }')

echo "redis GET, 50 clients, $n requests: direct $direct req/s, through qproxy $proxied req/s" \
	"($(awk -v a="$proxied" -v b="$direct" 'BEGIN { printf "%.2f", a / b }')x)"
echo "both halves: $(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$n" \
	'BEGIN { printf "%.2f", t / hz / n * 100000 }') CPU s per 100k requests;" \
	"a null system call costs ${null_us:-?} us here"
echo
# A symbol's share of the samples with its callees ("children"), from perf's flat report.
share() {
	perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null |
		awk -v s="$2" '$NF == s && !done { sub("%", "", $1); print $1; done = 1 }'
}
user() {
	perf report -i "$1" --no-children --sort dso --stdio -g none 2>/dev/null |
		awk '/%/ && $2 != "[kernel.kallsyms]" { sub("%", "", $1); u += $1 } END { print u + 0 }'
}
printf '%-52s %8s %8s\n' "share of each half's CPU samples, %" host enclave
for row in "TCP send (with the peer's receive, in softirq):tcp_sendmsg" \
	"Unix send (vsock's stand-in):unix_stream_sendmsg" \
	"TCP receive:tcp_recvmsg" \
	"Unix receive:unix_stream_recvmsg" \
	"epoll_wait:do_epoll_wait"; do
	printf '%-52s %8s %8s\n' "${row%%:*}" "$(share "$work/host.data" "${row##*:}")" \
		"$(share "$work/enclave.data" "${row##*:}")"
done
for half in host enclave; do
	u=$(user "$work/$half.data")
	k=$(share "$work/$half.data" entry_SYSCALL_64_after_hwframe)
	work_in=0
	for s in tcp_sendmsg unix_stream_sendmsg tcp_recvmsg unix_stream_recvmsg do_epoll_wait; do
		work_in=$(awk -v a="$work_in" -v b="$(share "$work/$half.data" $s)" 'BEGIN { print a + b }')
	done
	printf -v "entry_$half" '%.2f' "$(awk -v k="$k" -v w="$work_in" 'BEGIN { print k - w }')"
	printf -v "user_$half" '%.2f' "$u"
done
# shellcheck disable=SC2154 # set by printf -v above
{
	printf '%-52s %8s %8s\n' "system call entry and exit, the rest of the calls" "$entry_host" "$entry_enclave"
	printf '%-52s %8s %8s\n' "user space (qproxy and libc)" "$user_host" "$user_enclave"
}
