#!/bin/bash
# The VM test: the static qproxy in a tiny initramfs under QEMU, both halves talking
# over real AF_VSOCK (vsock_loopback) inside the guest. See tests/vm/README.md.
#
#   tests/vm/run.sh [BINARY]      BINARY defaults to build/qproxy-static
#
# Environment: VM_TIMEOUT (seconds, default 240), VM_KERNEL and VM_KVER (a kernel and
# its modules version, default the newest /boot/vmlinuz-* with vsock_loopback),
# VM_ACCEL=kvm|tcg (default: KVM only if a probe guest boots on it, see accel.sh),
# VM_VERBOSE=1 (stream the console while it runs).
# Exit 0 only when the guest prints "VM-TEST: PASS"; 1 on any failure.
#
# Nothing here opens a socket on this machine: AF_VSOCK is used only inside the guest.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/vm
OUT=$ROOT/build/vm
LOG=$OUT/console.log
TIMEOUT=${VM_TIMEOUT:-240}
# The guest loads these and whatever they depend on.
MODULES="vsock_loopback"

die() {
	echo "run.sh: $*" >&2
	echo "VM-TEST: FAIL $*" >&2
	exit 1
}

if [ $# -gt 1 ]; then
	echo "usage: tests/vm/run.sh [BINARY]" >&2
	exit 2
fi
if [ $# -eq 1 ]; then
	BIN=$(realpath -e -- "$1") || die "no binary: $1"
else
	BIN=$ROOT/build/qproxy-static
	[ -e "$BIN" ] || make -C "$ROOT" static >&2 || die "make static failed"
fi
[ -x "$BIN" ] || die "not executable: $BIN"
if readelf -l "$BIN" 2>/dev/null | grep -q 'program interpreter'; then
	die "$BIN is dynamically linked; the guest has no libc: build it with 'make static'"
fi

for tool in qemu-system-x86_64 musl-gcc gzip timeout; do
	command -v "$tool" >/dev/null ||
		die "missing $tool (apt-get install -y qemu-system-x86 musl-tools gzip coreutils)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "missing $BUSYBOX (apt-get install -y busybox-static)"
if readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
	die "$BUSYBOX is dynamically linked: install busybox-static, not busybox"
fi
MODINFO=$(command -v modinfo || echo /usr/sbin/modinfo)
[ -x "$MODINFO" ] || die "missing modinfo (apt-get install -y kmod)"

# The kernel: the newest one whose modules directory has vsock_loopback.
has_loopback() { compgen -G "/lib/modules/$1/kernel/net/vmw_vsock/vsock_loopback.ko*" >/dev/null; }
KERNEL=${VM_KERNEL:-}
KVER=${VM_KVER:-}
if [ -z "$KERNEL" ]; then
	for k in $(printf "%s\n" /boot/vmlinuz-* | sort -rV); do
		v=${k#/boot/vmlinuz-}
		if has_loopback "$v"; then
			KERNEL=$k
			KVER=$v
			break
		fi
	done
	[ -n "$KERNEL" ] ||
		die "no kernel: no /boot/vmlinuz-VER with /lib/modules/VER/kernel/net/vmw_vsock/vsock_loopback.ko (apt-get install -y linux-image-amd64)"
fi
[ -n "$KVER" ] || KVER=${KERNEL##*/vmlinuz-}
[ -r "$KERNEL" ] || die "no kernel: cannot read $KERNEL"
MODDIR=/lib/modules/$KVER
has_loopback "$KVER" || die "no kernel modules: $MODDIR has no vsock_loopback.ko"

"$BIN" check-config --config "$HERE/qproxy.toml" >/dev/null ||
	die "$BIN check-config rejects tests/vm/qproxy.toml"

mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/initramfs.XXXXXX")
chmod 755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/etc" "$STAGE/lib/modules"

# Modules in load order, dependencies first, decompressed for busybox insmod.
LOADED=" "
add_module() {
	local name=$1 file dep
	case "$LOADED" in *" $name "*) return 0 ;; esac
	file=$(find "$MODDIR/kernel" -name "$name.ko*" -print -quit)
	[ -n "$file" ] || file=$(find "$MODDIR/kernel" -name "${name//_/-}.ko*" -print -quit)
	[ -n "$file" ] || die "no kernel module $name under $MODDIR"
	for dep in $("$MODINFO" -F depends "$file" | tr ',' ' '); do
		add_module "$dep"
	done
	case "$file" in
	*.ko) cp "$file" "$STAGE/lib/modules/$name.ko" ;;
	*.ko.xz) xz -dc "$file" >"$STAGE/lib/modules/$name.ko" ;;
	*.ko.zst) zstd -qdc "$file" >"$STAGE/lib/modules/$name.ko" ;;
	*.ko.gz) gzip -dc "$file" >"$STAGE/lib/modules/$name.ko" ;;
	*) die "cannot unpack $file" ;;
	esac || die "cannot unpack $file"
	echo "$name" >>"$STAGE/lib/modules/load-order"
	LOADED="$LOADED$name "
}
for m in $MODULES; do
	add_module "$m"
done

musl-gcc -static -Os -s -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -o "$STAGE/bin/halfclose" "$HERE/halfclose.c" ||
	die "cannot build tests/vm/halfclose.c with musl-gcc"

cp "$BUSYBOX" "$STAGE/bin/busybox"
cp "$BIN" "$STAGE/bin/qproxy"
cp "$HERE/init.sh" "$STAGE/init"
chmod 755 "$STAGE/init"
cp "$HERE/qproxy.toml" "$STAGE/etc/qproxy.toml"
echo "127.0.0.1 localhost" >"$STAGE/etc/hosts"

# Busybox's cpio, so the archiver is one the test needs anyway.
INITRD=$OUT/initramfs.cpio.gz
(cd "$STAGE" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0) 2>/dev/null |
	gzip -9n >"$INITRD"

# shellcheck source=tests/vm/accel.sh
. "$HERE/accel.sh"
vm_pick_accel qemu-system-x86_64 "$KERNEL" || die "bad VM_ACCEL"
echo "run.sh: booting $KERNEL with $(basename "$BIN") ($(du -h "$INITRD" | cut -f1) initramfs, $ACCEL_NAME, timeout ${TIMEOUT}s)"

start=$(date +%s)
qemu=(timeout -k 5 "$TIMEOUT" qemu-system-x86_64 "${ACCEL[@]}" -m 512 -smp 2
	-nodefaults -no-reboot -display none -serial stdio
	-kernel "$KERNEL" -initrd "$INITRD"
	-append "console=ttyS0 panic=-1 quiet")
set +e
if [ "${VM_VERBOSE:-0}" = 1 ]; then
	"${qemu[@]}" </dev/null 2>&1 | tee "$LOG"
	rc=${PIPESTATUS[0]}
else
	"${qemu[@]}" </dev/null >"$LOG" 2>&1
	rc=$?
fi
set -e
secs=$(($(date +%s) - start))

# The serial console ends lines with \r\n.
verdict=$(tr -d '\r' <"$LOG" | grep -a '^VM-TEST: ' | tail -n 1 || true)
if [ "$verdict" = "VM-TEST: PASS" ]; then
	tr -d '\r' <"$LOG" | grep -a -E '^(vm-test:|ok |FAIL )' || true
	echo "VM-TEST: PASS ($secs s; console in build/vm/console.log)"
	exit 0
fi

if [ -n "$verdict" ]; then
	why="the guest reported: ${verdict#VM-TEST: FAIL }"
elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	why="timeout: no verdict from the guest after ${TIMEOUT}s"
elif grep -a -q 'Kernel panic' "$LOG"; then
	why="guest kernel panic: $(tr -d '\r' <"$LOG" | grep -a -m1 'Kernel panic')"
elif [ "$rc" != 0 ]; then
	why="qemu failed with exit code $rc"
else
	why="the guest stopped without a verdict"
fi
echo "---- console (build/vm/console.log) ----" >&2
tr -d '\r' <"$LOG" >&2
echo "---- end of console ----" >&2
echo "run.sh: $why ($secs s)" >&2
echo "VM-TEST: FAIL $why" >&2
exit 1
