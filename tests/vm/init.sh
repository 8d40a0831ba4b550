#!/bin/busybox sh
# shellcheck shell=dash disable=SC2086 # $ENC_NS is a command prefix, split on purpose
# /init of the VM test's initramfs: both qproxy halves in one guest over real AF_VSOCK
# (vsock_loopback, local CID 1), the host half in the root network namespace, the
# enclave half and its applications in a namespace of their own. Prints one line per
# check, then "VM-TEST: PASS" or "VM-TEST: FAIL <reason>", and powers off.
# If /init ever exits the kernel panics; run.sh reads that as a failure too.

/bin/busybox mkdir -p /proc /sys /dev /tmp /www/enclave /www/parent
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

CONF=/etc/qproxy.toml
FAILED=
PIDS=

finish() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	sync
	poweroff -f
	sleep 30
}

show_logs() {
	for f in /tmp/*.log; do
		[ -s "$f" ] || continue
		echo "--- $f"
		cat "$f"
	done
}

# Setup failures end the run at once; check failures are collected.
abort() {
	echo "VM-TEST: FAIL $*"
	show_logs
	finish
}

ok() { echo "ok   $*"; }
bad() {
	echo "FAIL $*"
	FAILED="$FAILED${FAILED:+, }$1"
}

# Polls, never fixed sleeps: $1 tenths of a second at most for the rest to succeed.
poll() {
	local n="$1"
	shift
	while ! "$@"; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || return 1
		sleep 0.1
	done
}

# Readiness from /proc/PID/net/tcp, which shows the sockets of PID's namespace.
listening() { grep -q ":$(printf %04X "$2") 00000000:0000 0A" "/proc/$1/net/tcp"; }
has_line() { grep -q "$2" "$1" 2>/dev/null; }
other_netns() { [ "$(readlink "/proc/$1/ns/net")" != "$(readlink /proc/1/ns/net)" ]; }

# Runs a client for at most $1 seconds; its output, or why there is none, in $out.
client() {
	local secs="$1"
	shift
	out=$(timeout "$secs" "$@" 2>&1) && return 0
	[ $? = 143 ] && out="${out:+$out; }no answer within $secs s"
	return 1
}

# Starts a daemon in the background and remembers it; $! is the program itself,
# since nsenter and env exec rather than fork.
spawn() {
	local log="$1"
	shift
	"$@" >"$log" 2>&1 &
	PIDS="$PIDS $!"
	LAST=$!
}

echo "vm-test: kernel $(uname -r), $(nproc) cpu"

while read -r m; do
	insmod "/lib/modules/$m.ko" || abort "insmod $m"
done </lib/modules/load-order
grep -q '^vsock_loopback ' /proc/modules || abort "vsock_loopback is not loaded"

ip link set lo up || abort "root netns: ip link set lo up"

# The enclave's network namespace, held open by a sleeper; everything of the
# enclave enters it with nsenter.
unshare -n sleep 100000 &
ENC=$!
PIDS="$PIDS $ENC"
poll 50 other_netns "$ENC" || abort "unshare -n: no new network namespace"
# A command prefix, not a function, so that timeout and spawn can exec it.
ENC_NS="nsenter -t $ENC -n"
# Loopback stays down here, as in an enclave booted by a tiny init: qproxy enclave
# brings it up itself, and check (0) below holds it to that.
$ENC_NS ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' && abort "enclave netns: lo is up before qproxy"

# Servers beside the host half, for the outbound rules.
echo "Hello from the parent!" >/www/parent/index.html
spawn /tmp/httpd-6000.log httpd -f -p 127.0.0.1:6000 -h /www/parent
spawn /tmp/httpd-6002.log httpd -f -p 127.0.0.1:6002 -h /www/parent
spawn /tmp/halfclose-6001.log /bin/halfclose serve 127.0.0.1 6001

spawn /tmp/enclave.log $ENC_NS env RUST_LOG=info /bin/qproxy enclave --config "$CONF" --parent-cid 1
QE=$LAST
spawn /tmp/host.log env RUST_LOG=info /bin/qproxy host --config "$CONF" 1
QH=$LAST
poll 100 has_line /tmp/enclave.log started || abort "qproxy enclave did not start"
poll 100 has_line /tmp/host.log started || abort "qproxy host did not start"
# The SIGTERM check below must signal qproxy itself, not a wrapper.
for p in $QE $QH; do
	[ "$(readlink "/proc/$p/exe")" = /bin/qproxy ] || abort "pid $p is not qproxy"
done

# The enclave's applications, started after qproxy enclave as in the guide's start.sh.
echo "Hello world!" >/www/enclave/index.html
spawn /tmp/httpd-5050.log $ENC_NS httpd -f -p 127.0.0.1:5050 -h /www/enclave
spawn /tmp/halfclose-5051.log $ENC_NS /bin/halfclose serve 127.0.0.1 5051

for p in 5050 5051; do
	poll 100 listening "$ENC" "$p" || abort "enclave app not listening on 127.0.0.1:$p"
	poll 100 listening 1 "$p" || abort "qproxy host not listening on port $p"
done
for p in 6000 6001 6002; do
	poll 100 listening 1 "$p" || abort "parent server not listening on 127.0.0.1:$p"
	poll 100 listening "$ENC" "$p" || abort "qproxy enclave not listening on 127.0.0.1:$p"
done
echo "vm-test: both halves up over AF_VSOCK, CID 1"

# (0) Loopback in the enclave's namespace: without it every connection there fails
# with "Network unreachable", though listening on 127.0.0.1 works.
if $ENC_NS ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' &&
	grep -q "the loopback interface lo was down: brought it up" /tmp/enclave.log; then
	ok "enclave netns: qproxy enclave brought loopback up"
else
	bad enclave-loopback "lo is down in the enclave's network namespace"
fi

# (1) The guide's quick start, three times: the listener keeps accepting.
n=0
for _ in 1 2 3; do
	client 15 wget -q -O - http://127.0.0.1:5050/
	[ "$out" = "Hello world!" ] || break
	n=$((n + 1))
done
if [ "$n" = 3 ]; then
	ok "quickstart: root netns wget 127.0.0.1:5050 -> vsock 9995 -> enclave app: 'Hello world!' x3"
else
	bad quickstart "only $n of 3 requests got 'Hello world!'; last answer: '$out'"
fi

# (2) Outbound: a client in the enclave reaches the server beside the host half.
client 15 $ENC_NS wget -q -O - http://127.0.0.1:6000/
if [ "$out" = "Hello from the parent!" ]; then
	ok "outbound: enclave wget 127.0.0.1:6000 -> vsock 7777 -> root netns server: '$out'"
else
	bad outbound "got '$out'"
fi

# (3) Half-close both ways: the answer can only come after the server saw EOF.
if client 40 /bin/halfclose send 127.0.0.1 5051 1048576; then
	ok "half-close inbound: $out"
else
	bad half-close-inbound "$out"
fi
if client 40 $ENC_NS /bin/halfclose send 127.0.0.1 6001 1048576; then
	ok "half-close outbound: $out"
else
	bad half-close-outbound "$out"
fi

# (4) Outbound by name: hostname "localhost", resolved by the static binary.
client 15 $ENC_NS wget -q -O - http://127.0.0.1:6002/
if [ "$out" = "Hello from the parent!" ]; then
	ok "outbound by name: enclave 127.0.0.1:6002 -> vsock 7779 -> localhost:6002: '$out'"
else
	bad outbound-by-name "got '$out'"
fi

# (5) The logs show the vsock side, with the peer CID the halves checked.
if grep -q 'vsock 1:[0-9]* -> 127.0.0.1:5050: connected' /tmp/enclave.log &&
	grep -q 'vsock 1:[0-9]* -> .*:6000.*: connected' /tmp/host.log; then
	ok "logs: both halves accepted vsock peers with CID 1"
else
	bad logs "no 'vsock 1:PORT -> ... connected' lines"
fi

# (6) The control channel over real vsock: rules compared, the enclave's log on the host.
if grep -q "control: the enclave half's rules match this one's" /tmp/host.log &&
	grep -q '\[enclave\] c[0-9]* inbound 5050: .*: connected' /tmp/host.log; then
	ok "control: configs match, enclave log lines in the host's log"
else
	bad control "no match line or no [enclave] lines in the host's log"
fi

# (7) SIGTERM: both halves exit 0, promptly. A zombie has exited; wait reaps it.
# The shell may reap it first and keep its status for wait.
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
kill -TERM "$QH" "$QE"
if poll 50 gone "$QH" && poll 50 gone "$QE"; then
	wait "$QH"
	rh=$?
	wait "$QE"
	re=$?
	if [ "$rh" = 0 ] && [ "$re" = 0 ]; then
		ok "sigterm: host and enclave exited 0"
	else
		bad sigterm "host exited $rh, enclave exited $re"
	fi
else
	bad sigterm "still running 5 s after SIGTERM"
fi

if [ -z "$FAILED" ]; then
	echo "VM-TEST: PASS"
else
	show_logs
	echo "VM-TEST: FAIL $FAILED"
fi
finish
