#!/bin/bash
# Boots an enclave image the way `qt enclave make-img` packs it: Debian's kernel plus an
# initramfs made of the image's filesystem, whose init runs the image's CMD with its ENV
# and WORKDIR. Ours (init.sh, under /qproxy-test/ beside the image's files) also runs the
# host half and fetches the guide's "Hello world!" over real AF_VSOCK inside the guest.
# See tests/image/README.md.
#
#   tests/image/boot.sh IMAGE HOST_BINARY CONFIG
#
# IMAGE is a podman image (make test-image builds Dockerfile.enclave as
# test_qproxy_enclave); HOST_BINARY the static qproxy run as the host half with CONFIG.
# podman finds the image through its usual configuration, or CONTAINERS_STORAGE_CONF.
# Environment: IMAGE_VM_TIMEOUT (seconds, default 240), VM_KERNEL and VM_KVER,
# VM_ACCEL=kvm|tcg (see tests/vm/accel.sh), VM_VERBOSE=1 (stream the console).
# Exit 0 only when the guest prints "IMAGE-TEST: PASS"; 1 on any failure, with the console.
#
# Nothing here opens a socket on this machine: AF_VSOCK is used only inside the guest.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/tests/image
OUT=$ROOT/build/image/eif
LOG=$OUT/console.log
INITRD=$OUT/initramfs.cpio
TIMEOUT=${IMAGE_VM_TIMEOUT:-240}
BUSYBOX=/bin/busybox

die() {
	echo "boot.sh: $*" >&2
	echo "IMAGE-TEST: FAIL $*" >&2
	exit 1
}

[ $# -eq 3 ] || {
	echo "usage: tests/image/boot.sh IMAGE HOST_BINARY CONFIG" >&2
	exit 2
}
IMAGE=$1
BIN=$(realpath -e -- "$2") || die "no binary: $2"
CONFIG=$(realpath -e -- "$3") || die "no config: $3"

for tool in podman qemu-system-x86_64 timeout readelf; do
	command -v "$tool" >/dev/null || die "missing $tool (scripts/install-deps.sh)"
done
for f in "$BUSYBOX" "$BIN"; do
	if ! [ -x "$f" ] || readelf -l "$f" 2>/dev/null | grep -q 'program interpreter'; then
		die "$f is not a static executable (busybox-static, make static)"
	fi
done
podman image exists "$IMAGE" || die "no podman image $IMAGE"

# shellcheck source=tests/vm/lib.sh
. "$HERE/../vm/lib.sh"
vm_pick_kernel || die "$VM_ERROR"

mkdir -p "$OUT"
STAGE=$(mktemp -d "$OUT/stage.XXXXXX")
MNT=
cleanup() {
	[ -z "$MNT" ] || podman image unmount "$IMAGE" >/dev/null || true
	rm -rf "$STAGE"
}
trap cleanup EXIT
T=$STAGE/qproxy-test
mkdir -p "$T/image"
vm_stage_modules "$T/modules" vsock_loopback || die "$VM_ERROR"
cp "$HERE/init.sh" "$T/init"
cp "$HERE/../vm/guest.sh" "$T/guest.sh"
cp "$BUSYBOX" "$T/busybox"
cp "$BIN" "$T/qproxy"
cp "$CONFIG" "$T/config_qproxy.toml"
chmod 755 "$STAGE" "$T" "$T/init"

# What the EIF's init runs, one word or variable a line: ENTRYPOINT then CMD, ENV, WORKDIR.
# (podman ends its output with a newline of its own, which $(...) drops.)
inspect() {
	local s
	s=$(podman image inspect --format "$1" "$IMAGE") || die "podman image inspect $IMAGE failed"
	[ -z "$s" ] || printf '%s\n' "$s"
}
inspect '{{range .Config.Entrypoint}}{{println .}}{{end}}{{range .Config.Cmd}}{{println .}}{{end}}' >"$T/image/cmd"
inspect '{{range .Config.Env}}{{println .}}{{end}}' >"$T/image/env"
inspect '{{.Config.WorkingDir}}' >"$T/image/workdir"
read -r n_entry n_cmd n_env < <(inspect '{{len .Config.Entrypoint}} {{len .Config.Cmd}} {{len .Config.Env}}')
if [ "$(wc -l <"$T/image/cmd")" != $((n_entry + n_cmd)) ] || [ "$(wc -l <"$T/image/env")" != "$n_env" ]; then
	die "$IMAGE: a CMD word or ENV value holds a newline; init.sh reads one a line"
fi
[ -s "$T/image/cmd" ] || die "$IMAGE has no CMD"
case "$(head -n 1 "$T/image/cmd")" in *=*) die "$IMAGE: CMD's first word has '=': env would take it for a variable" ;; esac
echo "boot.sh: $IMAGE runs $(tr '\n' ' ' <"$T/image/cmd")in $(grep . "$T/image/workdir" || echo /) with: $(tr '\n' ' ' <"$T/image/env")"

# The image's filesystem as it is, then ours: the kernel unpacks concatenated archives
# in turn. Uncompressed, since under TCG unpacking a gzip costs more than loading the bytes.
MNT=$(podman image mount "$IMAGE") || die "podman image mount $IMAGE failed"
(cd "$MNT" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc) >"$INITRD" 2>/dev/null ||
	die "cannot archive $IMAGE's filesystem"
(cd "$STAGE" && find qproxy-test | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0) >>"$INITRD" 2>/dev/null ||
	die "cannot archive the test's files"
podman image unmount "$IMAGE" >/dev/null
MNT=

# shellcheck source=tests/vm/accel.sh
. "$ROOT/tests/vm/accel.sh"
vm_pick_accel qemu-system-x86_64 "$KERNEL" || die "bad VM_ACCEL"
echo "boot.sh: booting $KERNEL with $IMAGE ($(du -h "$INITRD" | cut -f1) initramfs, $ACCEL_NAME, timeout ${TIMEOUT}s)"

vm_boot IMAGE-TEST "$LOG" "$TIMEOUT" qemu-system-x86_64 "${ACCEL[@]}" -m 1024 -smp 2 \
	-nodefaults -no-reboot -display none -serial stdio \
	-kernel "$KERNEL" -initrd "$INITRD" \
	-append "console=ttyS0 panic=-1 quiet rdinit=/qproxy-test/init" ||
	die "$VM_ERROR ($VM_SECS s; console in build/image/eif/console.log)"
echo "IMAGE-TEST: PASS (boot and test $VM_SECS s; console in build/image/eif/console.log)"
