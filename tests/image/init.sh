#!/qproxy-test/busybox sh
# shellcheck shell=dash disable=SC2086 # $ENC_NS is a command prefix, split on purpose
# The image test's init (rdinit=/qproxy-test/init). The rest of the initramfs is the
# enclave image's filesystem, unmodified; this does with it what an EIF's init does:
# mount /proc, /sys and /dev, then run the image's ENTRYPOINT and CMD with its ENV in its
# WORKDIR (boot.sh wrote them to /qproxy-test/image/ from podman image inspect). For the
# test it also loads the vsock modules (both sides are CID 1 over vsock_loopback), gives
# the CMD a network namespace of its own with loopback down, as an enclave has, and
# QPROXY_PARENT_CID=1 beside the image's ENV, runs the host half (our static binary) in
# the root namespace, and fetches the guide's "Hello world!" through host_port 5050.
# One line per check, then "IMAGE-TEST: PASS" or "IMAGE-TEST: FAIL <reason>"; power off.

T=/qproxy-test
$T/busybox mkdir -p $T/bin $T/log /proc /sys /dev
$T/busybox --install -s $T/bin
export PATH=$T/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

GUEST_TAG=IMAGE-TEST
GUEST_LOGS="$T/log/*.log"
# shellcheck source=tests/vm/guest.sh
. $T/guest.sh

netns() { readlink "/proc/$1/ns/net"; }

echo "image-test: kernel $(uname -r), $(nproc) cpu, image CMD: $(tr '\n' ' ' <$T/image/cmd)"

while read -r m; do
	insmod "$T/modules/$m.ko" || abort "insmod $m"
done <$T/modules/load-order
grep -q '^vsock_loopback ' /proc/modules || abort "vsock_loopback is not loaded"
ip link set lo up || abort "root netns: ip link set lo up"

# The enclave's network namespace, held by a sleeper so that it can be looked at
# before the CMD runs in it.
unshare -n sleep 100000 &
ENC=$!
PIDS="$PIDS $ENC"
other_netns() { [ "$(netns "$ENC")" != "$(netns 1)" ]; }
poll 50 other_netns || abort "unshare -n: no new network namespace"
ENC_NS="nsenter -t $ENC -n"
$ENC_NS ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' && abort "enclave netns: lo is up before the CMD"

# The host half first, as the guide starts it after the enclave: either order works.
RUST_LOG=info $T/qproxy host --config $T/config_qproxy.toml 1 >$T/log/host.log 2>&1 &
PIDS="$PIDS $!"

# The image's CMD: env -i with exactly the image's ENV and QPROXY_PARENT_CID=1, the
# ENTRYPOINT and CMD words after it (boot.sh refused a first word with '=').
set --
while IFS= read -r l; do set -- "$@" "$l"; done <$T/image/env
set -- "$@" QPROXY_PARENT_CID=1
while IFS= read -r l; do set -- "$@" "$l"; done <$T/image/cmd
WORKDIR=$(cat $T/image/workdir)
(cd "${WORKDIR:-/}" && exec $ENC_NS env -i "$@") </dev/null >$T/log/cmd.log 2>&1 &
PIDS="$PIDS $!"

poll 300 listening 1 5050 || abort "qproxy host not listening on port 5050"
poll 300 listening "$ENC" 5050 || abort "the image's app.sh not listening on 127.0.0.1:5050 in its namespace"
poll 300 has_line $T/log/host.log "control: link to the enclave half up" ||
	abort "the image's qproxy enclave never reached the host half over vsock"
echo "image-test: the image's CMD and the host half are up"

# (1) The image's own qproxy enclave: in the enclave's namespace, with the environment given.
QE=
for d in /proc/[0-9]*; do
	[ "$(readlink "$d/exe" 2>/dev/null)" = /root/qproxy ] && QE=${d#/proc/}
done
if [ -z "$QE" ]; then
	bad cmd "no process runs /root/qproxy"
elif [ "$(netns "$QE")" != "$(netns "$ENC")" ]; then
	bad cmd "/root/qproxy (pid $QE) is not in the enclave's network namespace"
elif ! tr '\0' '\n' <"/proc/$QE/environ" | grep -qx QPROXY_PARENT_CID=1; then
	bad cmd "/root/qproxy (pid $QE) lacks QPROXY_PARENT_CID=1 in its environment"
else
	ok "cmd: $(tr '\0' ' ' <"/proc/$QE/cmdline")(pid $QE) in the enclave netns, QPROXY_PARENT_CID=1"
fi

# (2) The control channel over real vsock: the image's config matches the host's.
if grep -q "control: link to the enclave half up (vsock 1:" $T/log/host.log &&
	poll 100 has_line $T/log/host.log "control: the enclave half's rules match this one's"; then
	ok "control: the enclave half connected from CID 1, configs match"
else
	bad control "no 'link ... up (vsock 1:' or no rules-match line in the host's log"
fi

# (3) The quick start, twice. app.sh's nc keeps the connection open after its reply
# (no -N), as curl on the parent shows: the answer is read, then wget is stopped. That
# close has to go through both halves to nc before app.sh starts the next nc listening.
fetch() {
	poll 300 listening "$ENC" 5050 || {
		got="app.sh not listening again on 127.0.0.1:5050"
		return 1
	}
	local out=$T/log/wget.out w
	: >$out
	wget -q -O - http://127.0.0.1:5050/ >$out 2>$T/log/wget.err &
	w=$!
	poll 300 has_line $out 'Hello world!'
	kill "$w" 2>/dev/null
	wait "$w" 2>/dev/null
	got=$(cat $out)
	[ "$got" = "Hello world!" ]
}
if fetch && fetch; then
	ok "quickstart: wget 127.0.0.1:5050 -> host half -> vsock 9995 -> the image's app.sh: 'Hello world!' x2"
else
	bad quickstart "answer '$got' ($(cat $T/log/wget.err))"
fi

# (4) The host half's log: each request went to CID 1, port 9995, and came back.
carried() {
	[ "$(grep -c 'inbound 5050: .* -> vsock 1:9995: connected' $T/log/host.log)" = 2 ] &&
		[ "$(grep -c 'inbound 5050: closed; [1-9][0-9]* bytes up, [1-9][0-9]* down' $T/log/host.log)" = 2 ]
}
if poll 100 carried; then
	ok "logs: the host half carried both requests through vsock 1:9995, bytes both ways"
else
	bad logs "not 2 'inbound 5050: ... -> vsock 1:9995: connected' and 2 'closed; N bytes up, M down' lines"
fi

verdict
