#!/usr/bin/env bash
# Install, with apt-get, the Debian packages that qproxy's build (`build`) or its
# build and tests (`all`, the default) need.
# Idempotent: packages already installed are left alone, and `apt-get update` runs
# only when something is missing. Needs root only when something is missing.
#
# Usage: scripts/install-deps.sh [build|all]
set -euo pipefail

profile=${1:-all}
# Keep in step with Dockerfile.build, which installs the same list itself.
build_packages=(gcc libc6-dev linux-libc-dev make musl-tools libinih-dev)
case "$profile" in
build) packages=("${build_packages[@]}") ;;
all) packages=("${build_packages[@]}"
	build-essential libcmocka-dev libcbor-dev clang
	# tests: unit, config golden, end-to-end
	python3-pytest socat curl netcat-openbsd iproute2 openssl procps valgrind
	# real servers and clients for the end-to-end tests and benchmarks
	redis-server nginx-light apache2-utils iperf3
	# the VM test (static binary in an initramfs under QEMU, real AF_VSOCK)
	busybox-static qemu-system-x86 linux-image-amd64
) ;;
*)
	echo "usage: $0 [build|all]" >&2
	exit 2
	;;
esac

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	if [ "$status" != installed ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages ($profile) already installed"
	exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: error: must run as root to install them (try: sudo $0)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# Services such as redis-server and nginx must not start at install time: the tests
# start their own instances. policy-rc.d 101 = "action forbidden" for invoke-rc.d.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: installed: ${missing[*]}"
