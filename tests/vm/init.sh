#!/bin/busybox sh
# shellcheck shell=dash disable=SC2086 # $ENC_NS is a command prefix, split on purpose
# /init of the VM test's initramfs: both qproxy halves in one guest over real AF_VSOCK
# (vsock_loopback, local CID 1), the host half in the root network namespace, the
# enclave half and its applications in a namespace of their own. The halves run four
# times: splicing where the kernel can, copying (QPROXY_SPLICE=0), with a host half
# that expects CID 5, with an enclave half that expects parent CID 5; then the enclave
# half alone sets the clock from a stand-in host half (clockhost). Prints one line
# per check, then "VM-TEST: PASS" or "VM-TEST: FAIL <reason>", and powers off.
# If /init ever exits the kernel panics; run.sh reads that as a failure too.

/bin/busybox mkdir -p /proc /sys /dev /tmp /www/enclave /www/parent
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

CONF=/etc/qproxy.toml
GUEST_TAG=VM-TEST
GUEST_LOGS="/tmp/*.log"
# shellcheck source=tests/vm/guest.sh
. /guest.sh

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
# brings it up itself, and the first run's loopback check holds it to that.
$ENC_NS ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' && abort "enclave netns: lo is up before qproxy"

# Servers beside the host half, for the outbound rules.
echo "Hello from the parent!" >/www/parent/index.html
spawn /tmp/httpd-6000.log httpd -f -p 127.0.0.1:6000 -h /www/parent
spawn /tmp/httpd-6002.log httpd -f -p 127.0.0.1:6002 -h /www/parent
spawn /tmp/halfclose-6001.log /bin/halfclose serve 127.0.0.1 6001
spawn /tmp/halfclose-6003.log /bin/halfclose serve-first 127.0.0.1 6003 1048576

# The enclave's applications. In the first run they start after qproxy enclave, as in
# the guide's start.sh; later runs find them there.
echo "Hello world!" >/www/enclave/index.html
start_enclave_apps() {
	spawn /tmp/httpd-5050.log $ENC_NS httpd -f -p 127.0.0.1:5050 -h /www/enclave
	spawn /tmp/halfclose-5051.log $ENC_NS /bin/halfclose serve 127.0.0.1 5051
	spawn /tmp/halfclose-5052.log $ENC_NS /bin/halfclose serve-first 127.0.0.1 5052 1048576
}

# start_halves RUN HOST_CID PARENT_CID [ENV...]: both halves, logging to
# /tmp/host-RUN.log and /tmp/enclave-RUN.log, up and listening on every rule's port.
start_halves() {
	local run="$1" hcid="$2" pcid="$3"
	shift 3
	HLOG=/tmp/host-$run.log
	ELOG=/tmp/enclave-$run.log
	spawn "$ELOG" $ENC_NS env RUST_LOG=info "$@" /bin/qproxy enclave --config "$CONF" --parent-cid "$pcid"
	QE=$LAST
	spawn "$HLOG" env RUST_LOG=info "$@" /bin/qproxy host --config "$CONF" "$hcid"
	QH=$LAST
	poll 100 has_line "$ELOG" started || abort "$run: qproxy enclave did not start"
	poll 100 has_line "$HLOG" started || abort "$run: qproxy host did not start"
	# The SIGTERM check below must signal qproxy itself, not a wrapper.
	for p in $QE $QH; do
		[ "$(readlink "/proc/$p/exe")" = /bin/qproxy ] || abort "$run: pid $p is not qproxy"
	done
	[ -n "$APPS" ] || start_enclave_apps
	APPS=1
	for p in 5050 5051 5052; do
		poll 100 listening "$ENC" "$p" || abort "enclave app not listening on 127.0.0.1:$p"
		poll 100 listening 1 "$p" || abort "$run: qproxy host not listening on port $p"
	done
	for p in 6000 6001 6002 6003; do
		poll 100 listening 1 "$p" || abort "parent server not listening on 127.0.0.1:$p"
		poll 100 listening "$ENC" "$p" || abort "$run: qproxy enclave not listening on 127.0.0.1:$p"
	done
	echo "vm-test: $run: both halves up over AF_VSOCK (host expects CID $hcid, enclave parent CID $pcid)"
}

# SIGTERM: both halves exit 0, promptly. A zombie has exited; wait reaps it.
# The shell may reap it first and keep its status for wait.
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
stop_halves() {
	local run="$1" rh re
	kill -TERM "$QH" "$QE"
	if poll 50 gone "$QH" && poll 50 gone "$QE"; then
		wait "$QH"
		rh=$?
		wait "$QE"
		re=$?
		if [ "$rh" = 0 ] && [ "$re" = 0 ]; then
			ok "$run: sigterm: host and enclave exited 0"
		else
			bad "$run-sigterm" "host exited $rh, enclave exited $re"
		fi
	else
		bad "$run-sigterm" "still running 5 s after SIGTERM"
	fi
}

# nth_line_is FILE N TEXT: line N of FILE is TEXT.
nth_line_is() { [ "$(sed -n "$2p" "$1" 2>/dev/null)" = "$3" ]; }

# Half-close, server first: the server sends 1 MiB and shuts its write side; the client
# checks those bytes and EOF, then sends most of its 1 MiB. The server logs what it got.
server_first() {
	local run="$1" dir="$2" port="$3" log="$4" n sent
	shift 4
	n=$(grep -c '^received ' "$log")
	if ! client 40 "$@" /bin/halfclose recv-first 127.0.0.1 "$port" 1048576; then
		bad "$run-half-close-server-first-$dir" "$out"
		return
	fi
	sent=${out##* sent }
	if poll 100 nth_line_is "$log" $((n + 1)) "received $sent"; then
		ok "$run: half-close $dir, server first: $out; the server received $sent"
	else
		bad "$run-half-close-server-first-$dir" "client: $out; server: $(sed -n "$((n + 1))p" "$log")"
	fi
}

# The checks that carry data, in each relay mode.
data_checks() {
	local run="$1" n
	# The guide's quick start, three times: the listener keeps accepting.
	n=0
	for _ in 1 2 3; do
		client 15 wget -q -O - http://127.0.0.1:5050/
		[ "$out" = "Hello world!" ] || break
		n=$((n + 1))
	done
	if [ "$n" = 3 ]; then
		ok "$run: quickstart: root netns wget 127.0.0.1:5050 -> vsock 9995 -> enclave app: 'Hello world!' x3"
	else
		bad "$run-quickstart" "only $n of 3 requests got 'Hello world!'; last answer: '$out'"
	fi

	# Outbound: a client in the enclave reaches the server beside the host half.
	client 15 $ENC_NS wget -q -O - http://127.0.0.1:6000/
	if [ "$out" = "Hello from the parent!" ]; then
		ok "$run: outbound: enclave wget 127.0.0.1:6000 -> vsock 7777 -> root netns server: '$out'"
	else
		bad "$run-outbound" "got '$out'"
	fi

	# Half-close both ways, client first: the answer can only come after the server saw EOF.
	if client 40 /bin/halfclose send 127.0.0.1 5051 1048576; then
		ok "$run: half-close inbound, client first: $out"
	else
		bad "$run-half-close-inbound" "$out"
	fi
	if client 40 $ENC_NS /bin/halfclose send 127.0.0.1 6001 1048576; then
		ok "$run: half-close outbound, client first: $out"
	else
		bad "$run-half-close-outbound" "$out"
	fi
	server_first "$run" inbound 5052 /tmp/halfclose-5052.log
	server_first "$run" outbound 6003 /tmp/halfclose-6003.log $ENC_NS

	# Outbound by name: hostname "localhost", resolved by the static binary.
	client 15 $ENC_NS wget -q -O - http://127.0.0.1:6002/
	if [ "$out" = "Hello from the parent!" ]; then
		ok "$run: outbound by name: enclave 127.0.0.1:6002 -> vsock 7779 -> localhost:6002: '$out'"
	else
		bad "$run-outbound-by-name" "got '$out'"
	fi
}

# How each half moved the bytes of the inbound server-first connection (1 MiB each way),
# from its own close line (the host's log also holds the enclave's, marked [enclave]):
# "up splice|copy, down splice|copy". In the host half up is TCP -> vsock; in the
# enclave half up is vsock -> TCP. Sets MODE_H_UP, MODE_H_DOWN, MODE_E_UP, MODE_E_DOWN
# and $modes, which says all four.
closed_5052() {
	local line
	line=$(grep -v '\[enclave\]' "$1" |
		grep -o 'inbound 5052: closed; 1048576 bytes up, 1048576 down, [0-9]* ms; up [a-z]*, down [a-z]*' |
		tail -n 1)
	[ -n "$line" ] && echo "$line"
}
relay_modes() {
	local h e m
	poll 100 closed_5052 "$HLOG" >/dev/null && poll 100 closed_5052 "$ELOG" >/dev/null || return 1
	h=$(closed_5052 "$HLOG")
	e=$(closed_5052 "$ELOG")
	MODE_H_UP=${h##*; up } MODE_H_UP=${MODE_H_UP%%,*} MODE_H_DOWN=${h##*, down }
	MODE_E_UP=${e##*; up } MODE_E_UP=${MODE_E_UP%%,*} MODE_E_DOWN=${e##*, down }
	modes="host half: tcp->vsock $MODE_H_UP, vsock->tcp $MODE_H_DOWN; enclave half: vsock->tcp $MODE_E_UP, tcp->vsock $MODE_E_DOWN"
	for m in "$MODE_H_UP" "$MODE_H_DOWN" "$MODE_E_UP" "$MODE_E_DOWN"; do
		case "$m" in splice | copy) ;; *) return 1 ;; esac
	done
}

APPS=

# Run 1: the default, splice where this kernel can.
start_halves splice 1 1

# Loopback in the enclave's namespace: without it every connection there fails
# with "Network unreachable", though listening on 127.0.0.1 works.
if $ENC_NS ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' &&
	grep -q "the loopback interface lo was down: brought it up" "$ELOG"; then
	ok "enclave netns: qproxy enclave brought loopback up"
else
	bad enclave-loopback "lo is down in the enclave's network namespace"
fi

data_checks splice

# The logs show the vsock side, with the peer CID the halves checked.
if grep -q 'vsock 1:[0-9]* -> 127.0.0.1:5050: connected' "$ELOG" &&
	grep -q 'vsock 1:[0-9]* -> .*:6000.*: connected' "$HLOG"; then
	ok "splice: logs: both halves accepted vsock peers with CID 1"
else
	bad logs "no 'vsock 1:PORT -> ... connected' lines"
fi

# The control channel over real vsock: rules compared, the enclave's log on the host.
if grep -q "control: the enclave half's rules match this one's" "$HLOG" &&
	grep -q '\[enclave\] c[0-9]* inbound 5050: .*: connected' "$HLOG"; then
	ok "splice: control: configs match, enclave log lines in the host's log"
else
	bad control "no match line or no [enclave] lines in the host's log"
fi

# Whether this kernel splices AF_VSOCK is its business; one kernel must at least give
# both halves the same answer for the same kind of socket.
if ! relay_modes; then
	bad splice-modes "no close line with 1 MiB each way and both modes for inbound 5052"
elif [ "$MODE_H_UP" = "$MODE_E_DOWN" ] && [ "$MODE_H_DOWN" = "$MODE_E_UP" ]; then
	ok "splice: over AF_VSOCK on $(uname -r): $modes"
else
	bad splice-modes "the halves disagree: $modes"
fi
stop_halves splice

# Run 2: read/write only, the same data checks.
start_halves copy 1 1 QPROXY_SPLICE=0
data_checks copy
if ! relay_modes; then
	bad copy-modes "no close line with 1 MiB each way and both modes for inbound 5052"
elif [ "$MODE_H_UP$MODE_H_DOWN$MODE_E_UP$MODE_E_DOWN" = copycopycopycopy ]; then
	ok "copy: QPROXY_SPLICE=0: $modes"
else
	bad copy-modes "QPROXY_SPLICE=0, yet $modes"
fi
stop_halves copy

# refused RUN WHAT LOG PATTERN [CLIENT...]: LOG says a peer was refused, and the client,
# which would get an answer through correctly configured halves, gets none.
refused() {
	local run="$1" what="$2" log="$3" pattern="$4"
	shift 4
	out=
	[ $# = 0 ] || client 15 "$@"
	case "$out" in *Hello*)
		bad "$run-$what" "the connection went through: '$out'"
		return
		;;
	esac
	if poll 100 grep -q "$pattern" "$log"; then
		ok "$run: $what refused: $(grep -o "$pattern" "$log" | head -n 1)"
	else
		bad "$run-$what" "no '$pattern' in $log"
	fi
}

# Run 3: the host half expects the enclave at CID 5; the enclave half connects from CID 1.
start_halves host-cid-5 5 1
refused host-cid-5 outbound "$HLOG" 'outbound 127.0.0.1:6000: refused vsock 1:[0-9]*: only CID 5 may connect' \
	$ENC_NS wget -q -O - http://127.0.0.1:6000/
refused host-cid-5 control "$HLOG" 'control: refused vsock 1:[0-9]*: only CID 5 may connect'
stop_halves host-cid-5

# Run 4: the enclave half expects its parent at CID 5; the host half connects from CID 1.
start_halves parent-cid-5 1 5
refused parent-cid-5 inbound "$ELOG" 'inbound 5050: refused vsock 1:[0-9]*: only CID 5 may connect' \
	wget -q -O - http://127.0.0.1:5050/
stop_halves parent-cid-5

# Run 5, last, since it moves the guest's clock: [enclave] sync_clock against clockhost,
# a stand-in host half whose answers are an hour ahead (one kernel has one clock, so a
# real host half could never differ). The enclave half must step the clock by about
# +3600 s, with the step logged.
spawn /tmp/clockhost.log /bin/clockhost 6667 3600
poll 100 has_line /tmp/clockhost.log listening || abort "clock: clockhost did not start"
before=$(date +%s)
spawn /tmp/enclave-clock.log $ENC_NS env RUST_LOG=info /bin/qproxy enclave \
	--config /etc/clock.toml --parent-cid 1 --control-port 6667
QE=$LAST
if poll 150 has_line /tmp/enclave-clock.log "clock: stepped by +3[56][0-9][0-9]\.[0-9]* s"; then
	after=$(date +%s)
	if [ $((after - before)) -ge 3500 ] && [ $((after - before)) -le 3700 ]; then
		ok "clock: $(grep -o 'stepped by .*' /tmp/enclave-clock.log | head -n 1); the guest's clock moved $((after - before)) s"
	else
		bad clock "the log says it stepped, but the clock moved $((after - before)) s"
	fi
else
	bad clock "no step in the enclave's log ($(grep -c 'answered TIME_REQ' /tmp/clockhost.log) answers given)"
fi
kill -TERM "$QE"

verdict
