#!/usr/bin/env bash
# The vendor guide's quick start, on one machine, without an enclave:
#   - a network namespace with loopback only stands in for the enclave;
#   - qproxy's --vsock-dir replaces vsock with Unix sockets in a directory,
#     which both namespaces can reach because it is just the filesystem.
#
#   curl localhost:5050 -> qproxy host (root netns, 0.0.0.0:5050)
#     -> DIR/4.9995 (the "vsock") -> qproxy enclave (netns, --cid 4)
#     -> 127.0.0.1:5050 in the netns -> hello-world app
#
# Usage: scripts/demo.sh BINARY     (what `make demo` runs; needs root for `ip netns`)
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BINARY" >&2
	exit 2
fi
binary=$(realpath "$1")
if [ ! -x "$binary" ]; then
	echo "demo: error: $1 is not an executable (run make first)" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: error: must run as root (network namespaces)" >&2
	exit 2
fi

python=/usr/bin/python3
ns=qpdemo-$$
work=$(mktemp -d /tmp/qpdemo.XXXXXX)
vsock_dir=$work/vsock
mkdir "$vsock_dir"
pids=()
ns_created=0

step() { printf '\n== %s\n' "$*"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	step "Cleaning up"
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$ns_created" = 1 ]; then
		ip netns delete "$ns" 2>/dev/null || true
		echo "deleted network namespace $ns"
	fi
	if [ "$rc" -ne 0 ]; then
		for f in "$work"/*.log; do
			[ -s "$f" ] || continue
			echo "--- $(basename "$f"):"
			cat "$f"
		done
	fi
	rm -rf "$work"
	echo "removed $work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for DESCRIPTION PID COMMAND...: poll COMMAND every 50 ms for up to 10 s,
# failing early if the process PID died meanwhile.
wait_for() {
	local what=$1 pid=$2
	shift 2
	local i
	for i in $(seq 200); do
		if "$@" >/dev/null 2>&1; then
			echo "ready: $what"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "demo: error: process for '$what' exited early" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "demo: error: timed out waiting for $what" >&2
	return 1
}

for port in 5050 5443; do
	if ss -Htln "sport = :$port" | grep -q .; then
		echo "demo: error: port $port is already in use in this namespace; free it first" >&2
		exit 1
	fi
done

step "1. Create network namespace $ns to stand in for the enclave (loopback only)"
ip netns add "$ns"
ns_created=1
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip -br addr

step "2. Write the guide's config_qproxy.toml (no [log_location]: logs go to stderr)"
config=$work/config_qproxy.toml
cat >"$config" <<'TOML'
[[inbound_connections]]
host_port = 5050
enclave_port = 5050
vsock_port = 9995

[[inbound_connections]]
host_port = 5443
enclave_port = 5443
vsock_port = 9994
TOML
cat "$config"

step "3. Start the hello-world app on 127.0.0.1:5050 inside the enclave namespace"
# Like the guide's app.sh (nc -l in a loop), but a small HTTP server that answers
# every request, so there is no gap between two connections.
cat >"$work/app.py" <<'PY'
import http.server, socketserver

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"Hello world!\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass

socketserver.TCPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("127.0.0.1", 5050), Hello).serve_forever()
PY
ip netns exec "$ns" "$python" "$work/app.py" 2>"$work/app.log" &
app_pid=$!
pids+=("$app_pid")
wait_for "app on 127.0.0.1:5050 in $ns" "$app_pid" ip netns exec "$ns" nc -z 127.0.0.1 5050

step "4. Start the enclave half inside the namespace: $binary enclave --config=... --vsock-dir $vsock_dir --cid 4"
RUST_LOG=info ip netns exec "$ns" "$binary" enclave --config="$config" --vsock-dir "$vsock_dir" --cid 4 \
	2>"$work/enclave.log" &
enclave_pid=$!
pids+=("$enclave_pid")
wait_for "enclave half listening on $vsock_dir/4.9995 (vsock port 9995 of CID 4)" "$enclave_pid" \
	test -S "$vsock_dir/4.9995"

step "5. Start the host half in the root namespace: $binary host --config=... --vsock-dir $vsock_dir 4"
RUST_LOG=info "$binary" host --config="$config" --vsock-dir "$vsock_dir" 4 2>"$work/host.log" &
host_pid=$!
pids+=("$host_pid")
wait_for "host half listening on 0.0.0.0:5050" "$host_pid" \
	sh -c 'ss -Htln "sport = :5050" | grep -q .'

step "6. curl -sS localhost:5050 (root namespace, like the guide's last step)"
output=$(curl -sS --max-time 5 localhost:5050) || {
	echo "demo: error: curl failed" >&2
	exit 1
}
echo "$output"

step "7. Check the answer"
if [ "$output" != "Hello world!" ]; then
	echo "demo: FAIL: expected 'Hello world!', got '$output'" >&2
	exit 1
fi
echo "OK: the request went through qproxy host -> vsock (emulated) -> qproxy enclave -> app"

echo
echo "--- host half's log (RUST_LOG=info):"
cat "$work/host.log"
echo "--- enclave half's log (RUST_LOG=info):"
cat "$work/enclave.log"
