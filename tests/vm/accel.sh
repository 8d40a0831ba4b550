# shellcheck shell=bash
# Sourced by every script that boots a VM: picks QEMU's accelerator.
#
#   vm_pick_accel QEMU KERNEL [MACHINE_ARGS...]
#
# Sets ACCEL (an array of QEMU arguments) and ACCEL_NAME (kvm or tcg), and prints one
# line saying which was chosen and why. VM_ACCEL=kvm|tcg forces one.
#
# A writable /dev/kvm is not a working KVM: on some hosts the module serves another
# kind of guest, QEMU starts without complaint and the guest never runs a single
# instruction of the kernel proper (seen: the real-mode setup code prints "Probing
# EDD", then nothing). So KVM is used only when a probe boot of KERNEL prints the
# kernel's banner ("Linux version") within VM_KVM_PROBE_SECS (default 6; a working
# KVM takes well under one, TCG about seven); otherwise TCG. A broken KVM costs those
# seconds, never the run.

vm_probe_kvm() {
	local qemu=$1 kernel=$2 secs=${VM_KVM_PROBE_SECS:-6} log pid n
	shift 2
	log=$(mktemp)
	# No initrd: the kernel prints its banner at once, then panics and, with
	# -no-reboot and panic=-1, QEMU exits. We stop it as soon as the banner is seen.
	"$qemu" -accel kvm "$@" -m 256 -nodefaults -no-reboot -display none \
		-serial "file:$log" -kernel "$kernel" \
		-append "console=ttyS0 console=ttyAMA0 earlyprintk=serial,ttyS0 earlycon panic=-1" </dev/null >/dev/null 2>&1 &
	pid=$!
	n=$((secs * 10))
	while [ "$n" -gt 0 ]; do
		if grep -a -q 'Linux version' "$log" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			rm -f "$log"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		n=$((n - 1))
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$log"
	return 1
}

vm_pick_accel() {
	local qemu=$1 kernel=$2 host guest
	shift 2
	host=$(uname -m)
	case "$qemu" in
	*x86_64) guest=x86_64 ;;
	*aarch64) guest=aarch64 ;;
	*) guest=unknown ;;
	esac
	case "${VM_ACCEL:-}" in
	kvm | tcg)
		ACCEL_NAME=$VM_ACCEL
		echo "vm: accel $ACCEL_NAME (forced by VM_ACCEL)"
		;;
	"")
		ACCEL_NAME=tcg
		if [ "$guest" != "$host" ]; then
			echo "vm: accel tcg ($guest guest on a $host host)"
		elif [ ! -w /dev/kvm ]; then
			echo "vm: accel tcg (no usable /dev/kvm)"
		elif vm_probe_kvm "$qemu" "$kernel" "$@"; then
			ACCEL_NAME=kvm
			echo "vm: accel kvm (a probe guest booted)"
		else
			echo "vm: accel tcg (/dev/kvm is there, but a probe guest printed nothing" \
				"within ${VM_KVM_PROBE_SECS:-6} s)"
		fi
		;;
	*)
		echo "vm: VM_ACCEL must be kvm or tcg, not '$VM_ACCEL'" >&2
		return 2
		;;
	esac
	ACCEL=(-accel "$ACCEL_NAME")
	# TCG runs a 64-bit Arm guest best on the most capable emulated CPU; KVM takes the host's.
	if [ "$guest" = aarch64 ]; then
		if [ "$ACCEL_NAME" = kvm ]; then ACCEL+=(-cpu host); else ACCEL+=(-cpu max); fi
	fi
	return 0
}
