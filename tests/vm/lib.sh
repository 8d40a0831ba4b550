# shellcheck shell=bash disable=SC2034 # KERNEL, VM_ERROR and the rest are for the caller
# Sourced by the scripts that boot Debian's kernel under QEMU with vsock_loopback
# (tests/vm/run.sh, tests/image/boot.sh):
#
#   vm_pick_kernel            sets KERNEL, KVER and MODDIR; VM_KERNEL and VM_KVER override
#   vm_stage_modules DIR M... copies modules M and what they depend on (modinfo -F depends)
#                             into DIR as NAME.ko, decompressed, and lists them in
#                             DIR/load-order, dependencies first, for busybox insmod
#   vm_boot TAG LOG SECS QEMU_COMMAND...
#                             runs the guest for SECS at most, its console in LOG (and on
#                             stdout with VM_VERBOSE=1), and judges the guest's last
#                             "TAG: PASS" or "TAG: FAIL reason" line; VM_SECS is how long
#
# Each returns non-zero with the reason in VM_ERROR, for the caller to say its own way.

vm_has_loopback() { compgen -G "/lib/modules/$1/kernel/net/vmw_vsock/vsock_loopback.ko*" >/dev/null; }

# The newest /boot/vmlinuz-VER whose /lib/modules/VER has vsock_loopback.
vm_pick_kernel() {
	local k v
	KERNEL=${VM_KERNEL:-}
	KVER=${VM_KVER:-}
	if [ -z "$KERNEL" ]; then
		for k in $(printf "%s\n" /boot/vmlinuz-* | sort -rV); do
			v=${k#/boot/vmlinuz-}
			if vm_has_loopback "$v"; then
				KERNEL=$k
				KVER=$v
				break
			fi
		done
		if [ -z "$KERNEL" ]; then
			VM_ERROR="no kernel: no /boot/vmlinuz-VER with /lib/modules/VER/kernel/net/vmw_vsock/vsock_loopback.ko (apt-get install -y linux-image-amd64)"
			return 1
		fi
	fi
	[ -n "$KVER" ] || KVER=${KERNEL##*/vmlinuz-}
	MODDIR=/lib/modules/$KVER
	if [ ! -r "$KERNEL" ]; then
		VM_ERROR="no kernel: cannot read $KERNEL"
		return 1
	fi
	if ! vm_has_loopback "$KVER"; then
		VM_ERROR="no kernel modules: $MODDIR has no vsock_loopback.ko"
		return 1
	fi
}

vm_stage_modules() {
	local dir=$1 modinfo
	shift
	modinfo=$(command -v modinfo || echo /usr/sbin/modinfo)
	if [ ! -x "$modinfo" ]; then
		VM_ERROR="missing modinfo (apt-get install -y kmod)"
		return 1
	fi
	if ! mkdir -p "$dir" || ! : >"$dir/load-order"; then
		VM_ERROR="cannot write $dir"
		return 1
	fi
	local staged=" " m
	for m in "$@"; do
		vm_stage_module "$m" || return 1
	done
}

# One module after its dependencies; $dir, $modinfo and $staged are vm_stage_modules'.
vm_stage_module() {
	local name=$1 file dep
	case "$staged" in *" $name "*) return 0 ;; esac
	file=$(find "$MODDIR/kernel" -name "$name.ko*" -print -quit)
	[ -n "$file" ] || file=$(find "$MODDIR/kernel" -name "${name//_/-}.ko*" -print -quit)
	if [ -z "$file" ]; then
		VM_ERROR="no kernel module $name under $MODDIR"
		return 1
	fi
	for dep in $("$modinfo" -F depends "$file" | tr ',' ' '); do
		vm_stage_module "$dep" || return 1
	done
	case "$file" in
	*.ko) cp "$file" "$dir/$name.ko" ;;
	*.ko.xz) xz -dc "$file" >"$dir/$name.ko" ;;
	*.ko.zst) zstd -qdc "$file" >"$dir/$name.ko" ;;
	*.ko.gz) gzip -dc "$file" >"$dir/$name.ko" ;;
	*) false ;;
	esac || {
		VM_ERROR="cannot unpack $file"
		return 1
	}
	echo "$name" >>"$dir/load-order"
	staged="$staged$name "
}

vm_boot() {
	local tag=$1 log=$2 secs=$3 rc start verdict
	shift 3
	start=$(date +%s)
	if [ "${VM_VERBOSE:-0}" = 1 ]; then
		if timeout -k 5 "$secs" "$@" </dev/null 2>&1 | tee "$log"; then rc=0; else rc=${PIPESTATUS[0]}; fi
	else
		if timeout -k 5 "$secs" "$@" </dev/null >"$log" 2>&1; then rc=0; else rc=$?; fi
	fi
	VM_SECS=$(($(date +%s) - start))
	# The serial console ends lines with \r\n.
	verdict=$(tr -d '\r' <"$log" | grep -a "^$tag: " | tail -n 1 || true)
	if [ "$verdict" = "$tag: PASS" ]; then
		# The guest's own lines: "tag: ..." notes and one "ok" or "FAIL" a check.
		tr -d '\r' <"$log" | grep -a -E "^(${tag,,}:|ok |FAIL )" || true
		return 0
	fi
	if [ -n "$verdict" ]; then
		VM_ERROR="the guest reported: ${verdict#"$tag: FAIL "}"
	elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		VM_ERROR="timeout: no verdict from the guest after ${secs}s"
	elif grep -a -q 'Kernel panic' "$log"; then
		VM_ERROR="guest kernel panic: $(tr -d '\r' <"$log" | grep -a -m1 'Kernel panic')"
	else
		VM_ERROR="the guest stopped without a verdict (qemu exit code $rc)"
	fi
	echo "---- console ($log) ----" >&2
	tr -d '\r' <"$log" >&2
	echo "---- end of console ----" >&2
	return 1
}
