#!/bin/busybox sh
# shellcheck shell=dash
# The app of the VM test's second boot, run by qproxy enclave as process 1:
# it loads the vsock modules, starts the host half (its log on the console) and a
# server beside it, fetches a page through the enclave half's outbound rule, leaves
# an orphan, says what it saw and exits 0; qproxy then tells the host half, and powers
# the VM off. run.sh reads the host half's log on the console.
/bin/busybox --install -s /bin
export PATH=/bin

echo "pid $$, parent $PPID"
grep -q '^proc /proc ' /proc/mounts && grep -q '^devtmpfs /dev ' /proc/mounts &&
	echo "qproxy mounted /proc and /dev"
ip link show lo | grep -q '<[A-Z_,]*,UP[,>]' && echo "lo is up"
while read -r m; do
	insmod "/lib/modules/$m.ko" || { echo "insmod $m failed" >&2; exit 1; }
done </lib/modules/load-order

mkdir -p /www
echo "Hello from the parent!" >/www/index.html
httpd -f -p 127.0.0.1:6000 -h /www &
# Its own session: the app's process group goes when the app does, the host half must
# stay to hear the end. Its log goes to the console, not to the app's pipes.
setsid qproxy host --config=/etc/pid1.toml 1 </dev/null >/dev/console 2>&1 &

out=
for _ in $(seq 150); do
	out=$(timeout 5 wget -q -O - http://127.0.0.2:6000/ 2>/dev/null) && break
	sleep 0.2
done
echo "fetched: $out"
(sleep 1 &)
echo "stderr line" >&2
printf 'the last line, without a newline'
exit 0
