#!/bin/bash
# make test-image: builds Dockerfile.build (for aarch64 and x86_64), Dockerfile.enclave and
# Dockerfile.enclave-supervised with the commands the README gives users, checks the binaries that come out, then boots
# each enclave image as an EIF boots it (boot.sh). See tests/image/README.md.
#
#   tests/image/run.sh
#
# podman stands in for docker; the only flag added to the README's commands is
# --isolation=chroot, because this machine's cgroups refuse podman's default runtime.
# The base image, debian:bookworm-slim, is made here by mmdebstrap (no registry is
# reachable), cached as build/image/base.tar and imported when podman lacks it.
# podman keeps its images under build/image/storage (CONTAINERS_STORAGE_CONF), so that
# nothing here meets another checkout's images. Each run builds from scratch and removes
# what it built, keeping only the base image.
#
# Environment: IMAGE_ARCHS (default "aarch64 x86_64": the Dockerfile.build variants to
# build; x86_64 is always built, the enclave image needs it), IMAGE_BUILD_TIMEOUT (seconds
# per build, default 600), and boot.sh's.
# Exit 0 only when every build, check and the boot pass.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/image
WORK=$OUT/workspace
BASE_TAR=$OUT/base.tar
BASE_IMAGE=docker.io/library/debian:bookworm-slim
ENCLAVE_IMAGE=test_qproxy_enclave
# Dockerfile.enclave-supervised: the same app with qproxy as its supervisor, no start.sh
SUPERVISED_IMAGE=test_qproxy_enclave_supervised
BUILD_TIMEOUT=${IMAGE_BUILD_TIMEOUT:-600}
ARCHS=${IMAGE_ARCHS:-aarch64 x86_64}
# What this machine needs beside the README's commands (see above).
PODMAN_FLAGS=(--isolation=chroot)

die() {
	echo "run.sh: $*" >&2
	echo "IMAGE-TEST: FAIL $*" >&2
	exit 1
}

for tool in podman mmdebstrap readelf qemu-aarch64-static timeout; do
	command -v "$tool" >/dev/null || die "missing $tool (scripts/install-deps.sh)"
done
[ "$(id -u)" = 0 ] || die "must run as root (podman builds, image mounts)"

mkdir -p "$OUT"
export CONTAINERS_STORAGE_CONF=$OUT/storage.conf
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$OUT/storage"
runroot = "$OUT/run"
EOF

T0=$(date +%s)
STEP_START=$T0
timed() {
	local now
	now=$(date +%s)
	echo "run.sh: $* ($((now - STEP_START)) s)"
	STEP_START=$now
}

cleanup() {
	podman rmi "$ENCLAVE_IMAGE" "$SUPERVISED_IMAGE" >/dev/null 2>&1 || true
	# Everything untagged in this store is what the builds left: their layers.
	podman image prune -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A stand-in for Docker's debian:bookworm-slim: minbase, merged /usr without the usrmerge
# package, no manuals, locales or docs but copyrights, and apt keeping no caches or
# downloaded packages in the image; CMD and PATH as Docker's image has them.
if [ ! -s "$BASE_TAR" ]; then
	echo "run.sh: making $BASE_TAR with mmdebstrap"
	# shellcheck disable=SC2016 # $1 is the hook's: the root it customizes
	timeout "$BUILD_TIMEOUT" mmdebstrap --quiet --format=tar --variant=minbase \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--customize-hook='printf "%s\n" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" "APT::Keep-Downloaded-Packages \"false\";" >"$1/etc/apt/apt.conf.d/docker-clean"; rm -f "$1"/var/cache/apt/*.bin' \
		bookworm "$BASE_TAR.tmp" >"$OUT/mmdebstrap.log" 2>&1 ||
		{ tail -n 20 "$OUT/mmdebstrap.log" >&2; rm -f "$BASE_TAR.tmp"; die "mmdebstrap failed"; }
	mv "$BASE_TAR.tmp" "$BASE_TAR"
	timed "base tarball made"
fi
if ! podman image exists "$BASE_IMAGE"; then
	podman import --change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$BASE_TAR" "$BASE_IMAGE" >"$OUT/import.log" 2>&1 ||
		{ cat "$OUT/import.log" >&2; die "podman import $BASE_TAR failed"; }
	timed "base image imported as $BASE_IMAGE"
fi

# The user's workspace: a copy of this checkout, so that out/ and ./qproxy land there.
rm -rf "$WORK"
mkdir -p "$WORK"
tar -C "$ROOT" --exclude=./build --exclude=./.git --exclude=./out --exclude=./qproxy -cf - . |
	tar -C "$WORK" -xf -
cd "$WORK"

# $1: log name; the rest: a command run in the workspace, its output kept in build/image.
build() {
	local log=$OUT/$1.log
	shift
	echo "run.sh: $*"
	local rc=0
	timeout "$BUILD_TIMEOUT" "$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		tail -n 30 "$log" >&2
		die "exit code $rc: $* (log in build/image/$(basename "$log"))"
	fi
}

# What a binary for an enclave with no libc must be, and that it runs: BINARY MACHINE RUNNER.
check_binary() {
	local bin=$1 machine=$2 run=$3 elf
	elf=$(readelf -h -d -l -S "$bin") || die "$bin is not an ELF file"
	grep -q "Machine:.*$machine" <<<"$elf" || die "$bin is not for $machine: $(grep Machine: <<<"$elf")"
	! grep -q NEEDED <<<"$elf" || die "$bin has NEEDED entries"
	! grep -q INTERP <<<"$elf" || die "$bin asks for a program interpreter"
	! grep -q '\.symtab' <<<"$elf" || die "$bin is not stripped"
	$run "$bin" --version | grep -qx 'qproxy [0-9.]*' || die "$bin --version"
	$run "$bin" check-config examples/quickstart/config_qproxy.toml >/dev/null ||
		die "$bin check-config examples/quickstart/config_qproxy.toml"
	echo "ok   $bin: $machine, static, stripped, $(stat -c %s "$bin") bytes;" \
		"${run:+under $run, }--version and check-config of the quickstart config pass"
}

for arch in $ARCHS; do
	[ "$arch" != x86_64 ] || continue
	case "$arch" in
	aarch64) machine=AArch64 run=qemu-aarch64-static ;;
	*) die "IMAGE_ARCHS: no Dockerfile.build variant '$arch' (aarch64, x86_64)" ;;
	esac
	rm -rf out
	build "build-$arch" podman build "${PODMAN_FLAGS[@]}" -f Dockerfile.build --build-arg ARCH="$arch" --output type=local,dest=out .
	check_binary ./out/qproxy "$machine" "$run"
	timed "Dockerfile.build ARCH=$arch built and checked"
done

rm -rf out
build build-x86_64 podman build "${PODMAN_FLAGS[@]}" -f Dockerfile.build --output type=local,dest=out .
cp out/qproxy qproxy
check_binary ./qproxy X86-64 ""
timed "Dockerfile.build built and checked"

build build-enclave podman build "${PODMAN_FLAGS[@]}" -f Dockerfile.enclave -t "$ENCLAVE_IMAGE" .
timed "Dockerfile.enclave built as $ENCLAVE_IMAGE"

"$ROOT/tests/image/boot.sh" "$ENCLAVE_IMAGE" qproxy examples/quickstart/config_qproxy.toml ||
	die "the enclave image's boot failed"
timed "enclave image booted and tested"

build build-supervised podman build "${PODMAN_FLAGS[@]}" -f Dockerfile.enclave-supervised -t "$SUPERVISED_IMAGE" .
timed "Dockerfile.enclave-supervised built as $SUPERVISED_IMAGE"
"$ROOT/tests/image/boot.sh" "$SUPERVISED_IMAGE" qproxy examples/quickstart/config_qproxy.toml ||
	die "the supervised enclave image's boot failed"
timed "supervised enclave image booted and tested"

echo "IMAGE-TEST: PASS ($(($(date +%s) - T0)) s in all)"
