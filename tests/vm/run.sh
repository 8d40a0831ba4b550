#!/bin/bash
# The VM test: the static qproxy in a tiny initramfs under QEMU, both halves talking
# over real AF_VSOCK (vsock_loopback) inside the guest. See tests/vm/README.md.
#
#   tests/vm/run.sh [--arch CPU] [BINARY]
#
# CPU is x86_64 or aarch64 (default: this machine's); BINARY defaults to
# build/CPU/qproxy-static. The guest's kernel and busybox are this machine's when
# CPU is its own and it has them, else Debian's packages for CPU, fetched with
# apt-get download and kept in build/vm/CPU/.
#
# Environment: VM_TIMEOUT (seconds, default 240 on x86_64, 480 on aarch64),
# VM_KERNEL and VM_KVER (a kernel and its /lib/modules version), VM_ACCEL=kvm|tcg
# (default: KVM only if a probe guest boots on it, see accel.sh), VM_VERBOSE=1
# (stream the console while it runs).
# Exit 0 only when the guest prints "VM-TEST: PASS"; 1 on any failure.
#
# Nothing here opens a socket on this machine: AF_VSOCK is used only inside the guest.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/vm
# The guest loads these and whatever they depend on.
MODULES="vsock_loopback"

die() {
	echo "run.sh: $*" >&2
	echo "VM-TEST: FAIL $*" >&2
	exit 1
}
usage() {
	echo "usage: tests/vm/run.sh [--arch x86_64|aarch64] [BINARY]" >&2
	exit 2
}

ARCH=$(uname -m)
BIN=
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) [ $# -ge 2 ] || usage; ARCH=$2; shift 2 ;;
	--arch=*) ARCH=${1#--arch=}; shift ;;
	-*) usage ;;
	*) [ -z "$BIN" ] || usage; BIN=$1; shift ;;
	esac
done

# Per CPU: QEMU and its board, the serial console, Debian's and readelf's names.
case "$ARCH" in
x86_64)
	QEMU=qemu-system-x86_64 QEMU_PKG=qemu-system-x86 MACHINE=() CONSOLE=ttyS0
	DEB_ARCH=amd64 ELF_MACHINE="X86-64" DEFAULT_TIMEOUT=240
	;;
aarch64)
	QEMU=qemu-system-aarch64 QEMU_PKG=qemu-system-arm MACHINE=(-M virt) CONSOLE=ttyAMA0
	DEB_ARCH=arm64 ELF_MACHINE="AArch64" DEFAULT_TIMEOUT=480
	;;
*) die "no VM test for CPU '$ARCH' (x86_64 or aarch64)" ;;
esac
NATIVE=0
[ "$ARCH" = "$(uname -m)" ] && NATIVE=1
OUT=$ROOT/build/vm/$ARCH
LOG=$OUT/console.log
TIMEOUT=${VM_TIMEOUT:-$DEFAULT_TIMEOUT}
mkdir -p "$OUT"

if [ -n "$BIN" ]; then
	BIN=$(realpath -e -- "$BIN") || die "no binary: $BIN"
else
	BIN=$ROOT/build/$ARCH/qproxy-static
	[ -e "$BIN" ] || make -C "$ROOT" static ARCH="$ARCH" >&2 || die "make static ARCH=$ARCH failed"
fi
[ -x "$BIN" ] || die "not executable: $BIN"
is_static() { ! readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'; }
is_arch() { readelf -h "$1" 2>/dev/null | grep -q "Machine:.*$ELF_MACHINE"; }
is_static "$BIN" || die "$BIN is dynamically linked; the guest has no libc: build it with 'make static'"
is_arch "$BIN" || die "$BIN is not an $ARCH binary (make static ARCH=$ARCH)"

# The helper is built as the Makefile builds the static binary: musl's specs around
# the GNU compiler for the CPU.
CC_MUSL=("$ARCH-linux-gnu-gcc" -specs "/usr/lib/$ARCH-linux-musl/musl-gcc.specs")
if ! command -v "${CC_MUSL[0]}" >/dev/null || [ ! -e "${CC_MUSL[2]}" ]; then
	die "missing the $ARCH musl compiler (scripts/install-deps.sh static-$ARCH)"
fi
for tool in "$QEMU" gzip timeout readelf; do
	command -v "$tool" >/dev/null ||
		die "missing $tool (apt-get install -y $QEMU_PKG gzip coreutils binutils)"
done
# shellcheck source=tests/vm/lib.sh
. "$HERE/lib.sh"

# Debian packages for the guest's CPU, fetched once into build/vm/CPU/ and unpacked
# there with dpkg-deb (never installed). A foreign CPU needs its architecture in
# dpkg and its package lists: run.sh adds them when it runs as root.
APT_READY=0
apt_knows() { apt-cache show --no-all-versions "$1:$DEB_ARCH" >/dev/null 2>&1; }
apt_ready() {
	[ "$APT_READY" = 0 ] || return 0
	APT_READY=1
	if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
		die "cannot fetch $DEB_ARCH packages: no apt-get or dpkg-deb"
	fi
	apt_knows "busybox-static" && return 0
	[ "$(id -u)" = 0 ] ||
		die "no $DEB_ARCH package lists; as root: dpkg --add-architecture $DEB_ARCH && apt-get update"
	if [ "$DEB_ARCH" != "$(dpkg --print-architecture)" ] &&
		! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
		echo "run.sh: dpkg --add-architecture $DEB_ARCH"
		dpkg --add-architecture "$DEB_ARCH"
	fi
	echo "run.sh: apt-get update"
	apt-get update -qq || die "apt-get update failed"
}
# deb_unpack PACKAGE DIR: download PACKAGE for the guest's CPU and unpack it in DIR.
deb_unpack() {
	local pkg=$1 dir=$2 tmp
	apt_ready
	apt_knows "$pkg" || die "apt knows no $pkg:$DEB_ARCH"
	echo "run.sh: fetching $pkg:$DEB_ARCH"
	tmp=$(mktemp -d "$OUT/fetch.XXXXXX")
	(cd "$tmp" && apt-get download -q "$pkg:$DEB_ARCH" 2>&1 | grep -v '^W: Download is performed unsandboxed') ||
		true
	compgen -G "$tmp/*.deb" >/dev/null || { rm -rf "$tmp"; die "apt-get download $pkg:$DEB_ARCH failed"; }
	dpkg-deb -x "$tmp"/*.deb "$dir" || { rm -rf "$tmp"; die "dpkg-deb -x $pkg failed"; }
	rm -rf "$tmp"
}

# The kernel release the machine's own linux-image-ARCH stands for, on the guest's CPU,
# so both CPUs test one kernel; else the newest that Debian's linux-image-ARCH names.
kernel_package() {
	local abi
	abi=$(dpkg-query -W -f '${Depends}' "linux-image-$(dpkg --print-architecture)" 2>/dev/null |
		sed -n 's/^linux-image-\([0-9.]*-[0-9]*\)-.*/\1/p')
	if [ -n "$abi" ] && apt_knows "linux-image-$abi-$DEB_ARCH"; then
		echo "linux-image-$abi-$DEB_ARCH"
		return
	fi
	apt-cache show --no-all-versions "linux-image-$DEB_ARCH:$DEB_ARCH" 2>/dev/null |
		sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n 1
}

# A fetched kernel is kept as build/vm/CPU/linux-VER/vmlinuz, with the modules the guest
# loads staged beside it in modules/ (the package unpacks to ~350 MB).
fetch_kernel() {
	local pkg tmp kver image dest
	apt_ready
	pkg=$(kernel_package)
	[ -n "$pkg" ] || die "no kernel package linux-image-$DEB_ARCH:$DEB_ARCH known to apt"
	tmp=$(mktemp -d "$OUT/kernel.XXXXXX")
	deb_unpack "$pkg" "$tmp"
	kver=$(basename "$(compgen -G "$tmp/lib/modules/*" | head -n 1)")
	image=$tmp/boot/vmlinuz-$kver
	if [ -z "$kver" ] || [ ! -r "$image" ]; then
		rm -rf "$tmp"
		die "$pkg holds no vmlinuz and modules"
	fi
	dest=$OUT/linux-$kver
	rm -rf "$dest"
	mkdir -p "$dest"
	# QEMU boots an arm64 Image only uncompressed; Debian's is, but gzip would not do.
	if [ "$(od -An -N2 -tx1 "$image" | tr -d ' ')" = 1f8b ]; then
		gzip -dc "$image" >"$dest/vmlinuz"
	else
		cp "$image" "$dest/vmlinuz"
	fi
	MODDIR=$tmp/lib/modules/$kver
	vm_stage_modules "$dest/modules" $MODULES || { rm -rf "$tmp"; die "$VM_ERROR"; }
	rm -rf "$tmp"
	touch "$dest/.staged"
}

# The kernel: VM_KERNEL, or the machine's own newest with vsock_loopback when the CPU is
# its own (lib.sh's vm_pick_kernel); else Debian's package for the CPU, fetched once, its
# modules staged already (STAGED).
STAGED=
if [ -n "${VM_KERNEL:-}" ]; then
	vm_pick_kernel || die "$VM_ERROR"
elif [ "$NATIVE" = 1 ] && vm_pick_kernel; then
	: # this machine's
else
	cached=$(compgen -G "$OUT/linux-*/.staged" | sort -rV | head -n 1 || true)
	if [ -z "$cached" ]; then
		fetch_kernel
		cached=$(compgen -G "$OUT/linux-*/.staged" | sort -rV | head -n 1)
	fi
	dir=$(dirname "$cached")
	KVER=${dir##*/linux-}
	KERNEL=$dir/vmlinuz
	STAGED=$dir/modules
	[ -r "$KERNEL" ] || die "no kernel: cannot read $KERNEL"
fi

# Busybox: the machine's busybox-static when the CPU is its own, else Debian's for the CPU.
BUSYBOX=/bin/busybox
if [ "$NATIVE" = 0 ] || ! [ -x "$BUSYBOX" ] || ! is_static "$BUSYBOX"; then
	BUSYBOX=$OUT/busybox
	if ! [ -x "$BUSYBOX" ]; then
		tmp=$(mktemp -d "$OUT/busybox.XXXXXX")
		deb_unpack busybox-static "$tmp"
		cp "$tmp/bin/busybox" "$BUSYBOX" || die "busybox-static:$DEB_ARCH holds no bin/busybox"
		rm -rf "$tmp"
	fi
fi
if ! is_static "$BUSYBOX" || ! is_arch "$BUSYBOX"; then
	die "$BUSYBOX is not a static $ARCH busybox"
fi

# The configs, checked here when the binary runs here (another CPU's may not).
if "$BIN" --version >/dev/null 2>&1; then
	for conf in "$HERE"/*.toml "$HERE"/pid1/*.toml; do
		"$BIN" check-config --config "$conf" >/dev/null || die "$BIN check-config rejects ${conf#"$ROOT"/}"
	done
fi
STAGE=$(mktemp -d "$OUT/initramfs.XXXXXX")
chmod 755 "$STAGE"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/etc" "$STAGE/lib/modules"

# Modules decompressed for busybox insmod, with the order to load them in.
if [ -n "$STAGED" ]; then
	cp "$STAGED"/* "$STAGE/lib/modules/" || die "cannot copy $STAGED"
else
	vm_stage_modules "$STAGE/lib/modules" $MODULES || die "$VM_ERROR"
fi

"${CC_MUSL[@]}" -static -Os -s -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -o "$STAGE/bin/halfclose" "$HERE/halfclose.c" ||
	die "cannot build tests/vm/halfclose.c with ${CC_MUSL[*]}"

# clockhost speaks the control link through qproxy's own codec; AF_VSOCK's header
# is the kernel's, lent to musl as the Makefile does.
make -s -C "$ROOT" "build/$ARCH/musl-include" || die "make build/$ARCH/musl-include failed"
"${CC_MUSL[@]}" -static -Os -s -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -isystem "$ROOT/build/$ARCH/musl-include" \
	-I"$ROOT/src" -o "$STAGE/bin/clockhost" "$HERE/clockhost.c" "$ROOT/src/message.c" \
	"$ROOT/src/cbor.c" || die "cannot build tests/vm/clockhost.c with ${CC_MUSL[*]}"

cp "$BUSYBOX" "$STAGE/bin/busybox"
cp "$BIN" "$STAGE/bin/qproxy"
cp "$HERE/init.sh" "$STAGE/init"
chmod 755 "$STAGE/init"
cp "$HERE/guest.sh" "$STAGE/guest.sh"
cp "$HERE"/*.toml "$STAGE/etc/"
echo "127.0.0.1 localhost" >"$STAGE/etc/hosts"

# This machine's busybox as the archiver (the guest's may be another CPU's).
[ -x /bin/busybox ] || die "missing /bin/busybox, the archiver (apt-get install -y busybox-static)"
INITRD=$OUT/initramfs.cpio.gz
(cd "$STAGE" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0) 2>/dev/null |
	gzip -9n >"$INITRD"

# shellcheck source=tests/vm/accel.sh
. "$HERE/accel.sh"
vm_pick_accel "$QEMU" "$KERNEL" "${MACHINE[@]}" || die "bad VM_ACCEL"
echo "run.sh: booting $ARCH $KERNEL with $(basename "$BIN") ($(du -h "$INITRD" | cut -f1) initramfs, $ACCEL_NAME, timeout ${TIMEOUT}s)"

QEMU_ARGS=("$QEMU" "${MACHINE[@]}" "${ACCEL[@]}" -m 512 -smp 2 -nodefaults -no-reboot
	-display none -serial stdio -kernel "$KERNEL")

# The second boot (x86_64 only, to keep the run short): qproxy enclave is process 1,
# with tests/vm/pid1/app.sh as its app; no init but it. /init only execs it, as an
# EIF's init execs the image's CMD: the kernel's command line cannot carry the app's
# "--" (the kernel takes the first "--" as the end of its own arguments, and the
# second as the end of init's). The guest cannot judge itself, since the proof comes
# after its app has ended: this reads the host half's log on the console.
pid1_boot() {
	local stage=$OUT/pid1 log=$OUT/console-pid1.log initrd=$OUT/initramfs-pid1.cpio.gz
	local console start secs failed=
	rm -rf "$stage"
	mkdir -p "$stage/bin" "$stage/etc" "$stage/lib"
	cp -a "$STAGE/lib/modules" "$stage/lib/"
	cp "$BUSYBOX" "$stage/bin/busybox"
	cp "$BIN" "$stage/bin/qproxy"
	printf '%s\n' '#!/bin/busybox sh' \
		'exec /bin/qproxy enclave --config=/etc/pid1.toml --parent-cid=1 -- /bin/busybox sh /app.sh' \
		>"$stage/init"
	chmod 755 "$stage/init"
	cp "$HERE/pid1/app.sh" "$stage/app.sh"
	cp "$HERE/pid1/qproxy.toml" "$stage/etc/pid1.toml"
	(cd "$stage" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0) 2>/dev/null |
		gzip -9n >"$initrd"
	rm -rf "$stage"
	echo "run.sh: booting $ARCH with $(basename "$BIN") enclave -- app.sh as process 1"
	start=$(date +%s)
	timeout -k 5 "$TIMEOUT" "${QEMU_ARGS[@]}" -initrd "$initrd" -append \
		"console=$CONSOLE panic=-1 quiet" \
		</dev/null >"$log" 2>&1 || true
	secs=$(($(date +%s) - start))
	console=$(tr -d '\r' <"$log")
	pid1_check() {
		if grep -a -q -E "$2" <<<"$console"; then
			echo "ok   pid1: $1"
		else
			echo "FAIL pid1: $1"
			failed="$failed${failed:+, }$1"
		fi
	}
	pid1_check "qproxy enclave ran as process 1" 'INFO  \[enclave\] qproxy .* enclave started: .*, as process 1$'
	pid1_check "it mounted /proc and /dev" 'INFO  \[app\] qproxy mounted /proc and /dev$'
	pid1_check "lo up" 'INFO  \[app\] lo is up$'
	pid1_check "the app's fetch through the outbound rule, in the host half's log" \
		'INFO  \[app\] fetched: Hello from the parent!$'
	pid1_check "a stderr line at warn" 'WARN  \[app\] stderr line$'
	pid1_check "the last line without a newline" 'INFO  \[app\] the last line, without a newline$'
	pid1_check "the host half heard the app's exit" 'INFO  enclave app exited with status 0; 0 restarts$'
	pid1_check "the VM powered off" 'reboot: Power down'
	if grep -a -q 'Kernel panic' <<<"$console"; then
		echo "FAIL pid1: kernel panic: $(grep -a -m1 'Kernel panic' <<<"$console")"
		failed="$failed${failed:+, }kernel panic"
	fi
	if [ -n "$failed" ]; then
		echo "---- console ($log) ----" >&2
		echo "$console" >&2
		echo "---- end of console ----" >&2
		VM_ERROR="pid1 boot: $failed"
		return 1
	fi
	echo "run.sh: pid1 boot passed ($secs s; console in ${log#"$ROOT"/})"
}

rel=${LOG#"$ROOT"/}
if ! vm_boot VM-TEST "$LOG" "$TIMEOUT" "${QEMU_ARGS[@]}" -initrd "$INITRD" \
	-append "console=$CONSOLE panic=-1 quiet"; then
	echo "run.sh: $VM_ERROR ($ARCH, $VM_SECS s; console in $rel)" >&2
	echo "VM-TEST: FAIL $VM_ERROR" >&2
	exit 1
fi
secs=$VM_SECS
if [ "$ARCH" = x86_64 ] && ! pid1_boot; then
	echo "VM-TEST: FAIL $VM_ERROR" >&2
	exit 1
fi
echo "VM-TEST: PASS ($ARCH, $secs s; console in $rel)"
exit 0
