#!/usr/bin/env bash
# Install, with apt-get, the Debian packages that qproxy's build (`build`) or its
# build and tests (`all`, the default) need.
# Idempotent: packages already installed are left alone, and `apt-get update` runs
# only when something is missing. Needs root only when something is missing.
#
# Usage: scripts/install-deps.sh [build|static-CPU|all]   (CPU: x86_64, aarch64)
set -euo pipefail

profile=${1:-all}
build_packages=(gcc libc6-dev linux-libc-dev make musl-tools libinih-dev)
host_arch=$(uname -m)

# The static build for a CPU (uname -m spelling): the native toolchain, or make and
# Debian's cross compiler with musl, inih and the kernel headers of that architecture
# (all Dockerfile.build installs).
static_packages() {
	case "$1" in
	"$host_arch") echo "${build_packages[@]}" ;;
	aarch64) echo make gcc-aarch64-linux-gnu musl-dev:arm64 libinih-dev:arm64 linux-libc-dev:arm64 ;;
	x86_64) echo make gcc-x86-64-linux-gnu musl-dev:amd64 libinih-dev:amd64 linux-libc-dev:amd64 ;;
	*)
		echo "install-deps: no static build for CPU '$1' (x86_64 or aarch64)" >&2
		return 1
		;;
	esac
}

case "$profile" in
build) packages=("${build_packages[@]}") ;;
static-*)
	list=$(static_packages "${profile#static-}") || exit 2
	read -r -a packages <<<"$list"
	;;
all) packages=("${build_packages[@]}"
	build-essential libcmocka-dev libcbor-dev clang
	# tests: unit, config golden, end-to-end
	python3-pytest socat curl netcat-openbsd iproute2 openssl procps valgrind
	# dig, against the DNS server (unit and end-to-end)
	dnsutils
	# promtool, which checks the metrics endpoint's live page in the end-to-end tests
	prometheus
	# real servers and clients for the end-to-end tests and benchmarks
	redis-server nginx-light apache2-utils iperf3
	# the egress DNS mode's benchmark
	dnsperf
	# the benchmarks' pgbench (with its own throwaway cluster: see bench/README.md)
	postgresql
	# make profile: where the halves' CPU goes (perf record); bench/sockmap: libbpf
	linux-perf libbpf-dev
	# the VM tests (static binary in an initramfs under QEMU, real AF_VSOCK), both CPUs
	busybox-static qemu-system-x86 qemu-system-arm linux-image-amd64 kmod xz-utils zstd
	# the aarch64 build, run under qemu-user in the end-to-end tests
	qemu-user-static gcc-aarch64-linux-gnu musl-dev:arm64 libinih-dev:arm64 linux-libc-dev:arm64
	# the container images (make test-image): podman with a base made by mmdebstrap
	podman mmdebstrap uidmap
) ;;
*)
	echo "usage: $0 [build|static-CPU|all]" >&2
	exit 2
	;;
esac

# A package of another architecture (name:arm64) needs that architecture enabled.
foreign=$(printf '%s\n' "${packages[@]}" | sed -n 's/^[^:]*:\(.*\)$/\1/p' | sort -u)
missing=()
for p in "${packages[@]}"; do
	# Qualified, so that a package installed for two architectures gives one answer.
	q=$p
	case "$q" in *:*) ;; *) q=$q:$(dpkg --print-architecture) ;; esac
	status=$(dpkg-query -W -f='${db:Status-Status}' "$q" 2>/dev/null || true)
	# Architecture-independent packages (Architecture: all) answer unqualified only.
	[ -n "$status" ] || status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
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
for a in $foreign; do
	if [ "$a" != "$(dpkg --print-architecture)" ] &&
		! dpkg --print-foreign-architectures | grep -qx "$a"; then
		echo "install-deps: dpkg --add-architecture $a"
		dpkg --add-architecture "$a"
	fi
done
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
# postgresql's install creates a cluster (15/main, port 5432) and would start it, and
# again at every boot: the bench makes a throwaway cluster of its own, so the one the
# install creates is stopped and set to start by hand only (pg_ctlcluster 15 main start).
clusters_before=$(pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}' || true)
apt-get install -y --no-install-recommends "${missing[@]}"
if command -v pg_lsclusters >/dev/null 2>&1; then
	pg_lsclusters -h | while read -r version name _port status _rest; do
		if printf '%s\n' "$clusters_before" | grep -qx "$version/$name"; then
			continue
		fi
		case $status in online*) pg_ctlcluster "$version" "$name" stop || true ;; esac
		conf=/etc/postgresql/$version/$name/start.conf
		if [ -f "$conf" ]; then
			sed -i 's/^auto$/manual/' "$conf"
			echo "install-deps: postgresql cluster $version/$name: stopped, starts by hand only"
		fi
	done
fi
echo "install-deps: installed: ${missing[*]}"
