# qproxy: `make` (dev binary), `make static` (musl, static), `make test`, `make demo`.

CC       ?= cc
MUSL_CC  ?= musl-gcc
PYTHON   ?= /usr/bin/python3
VERSION  := 0.1.0

WARN     := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(WERROR),1)
WARN     += -Werror
endif
CPPFLAGS := -D_GNU_SOURCE -DQPROXY_VERSION='"$(VERSION)"'
CFLAGS   ?= -O2 -g
LDLIBS   := -linih -lpthread

# The static musl binary, for the machine's own CPU or another: make static ARCH=aarch64.
# Each goes to build/ARCH/qproxy-static; the machine's own is also build/qproxy-static.
HOST_ARCH := $(shell uname -m)
ARCH      ?= $(HOST_ARCH)
# Debian's name for the CPU, for multiarch packages (install-deps.sh static-ARCH).
DEB_ARCH   = $(if $(filter x86_64,$(1)),amd64,$(if $(filter aarch64,$(1)),arm64,$(1)))
STATIC     = build/$(ARCH)/qproxy-static

# No unwind tables: C with no exceptions, stripped; a backtrace comes from the dev build.
STATIC_CFLAGS  := -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables \
	-fno-unwind-tables
# max-page-size: aarch64's linker pads each segment to 64 KiB by default, which is most
# of the difference in size from x86_64; every Linux on these CPUs runs 4 KiB pages.
STATIC_LDFLAGS := -static -s -Wl,--gc-sections -Wl,-z,max-page-size=4096 -Wl,--build-id=none
# musl's gcc specs around the GNU cross (or native) compiler for the CPU: musl-gcc is
# exactly this for x86_64. Debian's libinih.a is built for glibc but uses only plain
# stdio, so it links under musl; it is named by path, since -L to Debian's lib dir
# would let glibc's libc.a in too.
static_cc     = $(1)-linux-gnu-gcc -specs /usr/lib/$(1)-linux-musl/musl-gcc.specs
static_ldlibs = /usr/lib/$(1)-linux-gnu/libinih.a

SRCS     := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:src/%.c=build/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=build/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

.PHONY: all static test test-unit test-sanitize test-e2e-asan test-e2e-aarch64 bench bench-quick profile soak test-config test-e2e test-vm test-image fuzz demo deps clean format

all: build/qproxy

build/obj/%.o: src/%.c $(wildcard src/*.h) | build/obj build/.deps-build
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

build/qproxy: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

static: $(STATIC) $(if $(filter $(HOST_ARCH),$(ARCH)),build/qproxy-static)

build/qproxy-static: build/$(HOST_ARCH)/qproxy-static
	cp $< $@

build/%/qproxy-static: $(SRCS) $(wildcard src/*.h) Makefile | build/%/musl-include build/.deps-static-%
	$(call static_cc,$*) $(CPPFLAGS) $(WARN) $(STATIC_CFLAGS) -isystem build/$*/musl-include \
		-o $@ $(SRCS) $(STATIC_LDFLAGS) $(call static_ldlibs,$*)

# musl's specs see only musl's headers. Lend them the few that are not libc's:
# inih's and the kernel's (for AF_VSOCK), and nothing of glibc's.
build/%/musl-include:
	mkdir -p $@
	ln -sfn /usr/include/ini.h $@/ini.h
	ln -sfn /usr/include/linux $@/linux
	ln -sfn /usr/include/asm-generic $@/asm-generic
	ln -sfn /usr/include/$*-linux-gnu/asm $@/asm

build/tests/%: tests/unit/%.c $(LIB_OBJS) | build/tests build/.deps-all
	$(CC) $(CPPFLAGS) $(WARN) -Wno-missing-prototypes $(CFLAGS) -Isrc -o $@ $^ $(LDLIBS) $(TEST_LDLIBS) -lcmocka

# libcbor is the codec's reference in its tests, never a dependency of qproxy itself.
build/tests/test_cbor build/asan/test_cbor: TEST_LDLIBS = -lcbor

# Fault injection: the linker's --wrap sends the product's calls to FN to the test's
# __wrap_FN, which fails on demand or calls __real_FN. Nothing in src/ knows.
wrap = $(foreach f,$(1),-Wl,--wrap=$(f))
build/tests/test_proxy build/asan/test_proxy: TEST_LDLIBS = \
	$(call wrap,net_connect loop_timer_set loop_defer free)
build/tests/test_relay build/asan/test_relay: TEST_LDLIBS = $(call wrap,malloc)
build/tests/test_resolve build/asan/test_resolve: TEST_LDLIBS = $(call wrap,getaddrinfo)
build/tests/test_net build/asan/test_net: TEST_LDLIBS = $(call wrap,accept4 loop_pause)
build/tests/test_control build/asan/test_control: TEST_LDLIBS = $(call wrap,loop_add net_connect)
build/tests/test_status build/asan/test_status: TEST_LDLIBS = $(call wrap,malloc loop_timer_set)
build/tests/test_config build/asan/test_config: TEST_LDLIBS = $(call wrap,malloc realloc)
build/tests/test_dns build/asan/test_dns: TEST_LDLIBS = $(call wrap,loop_timer_set)

# The unit tests again under ASan and UBSan: the codec and the parsers take hostile bytes.
SAN_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
build/asan/%: tests/unit/%.c $(LIB_SRCS) $(wildcard src/*.h) | build/.deps-all
	@mkdir -p build/asan
	clang $(CPPFLAGS) $(WARN) -Wno-missing-prototypes $(SAN_FLAGS) -Isrc -o $@ $< $(LIB_SRCS) $(LDLIBS) $(TEST_LDLIBS) -lcmocka


test-sanitize: $(UNIT_SRCS:tests/unit/%.c=build/asan/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# The whole binary under ASan and UBSan, for the end-to-end suite (make test-e2e-asan).
build/qproxy-asan: $(SRCS) $(wildcard src/*.h) | build/.deps-all
	clang $(CPPFLAGS) $(WARN) $(SAN_FLAGS) -o $@ $(SRCS) $(LDLIBS)

test-e2e-asan: build/qproxy-asan | build/.deps-all
	ASAN_OPTIONS=abort_on_error=0:exitcode=86 UBSAN_OPTIONS=halt_on_error=1:exitcode=87 \
		QPROXY_E2E_BINARIES=$(CURDIR)/build/qproxy-asan $(PYTHON) -m pytest -q tests/e2e

build build/obj build/tests:
	mkdir -p $@

# A fresh machine gets its packages on the first build (and the test ones on the first
# test run); the stamps keep later runs quiet.
build/.deps-%: scripts/install-deps.sh | build
	scripts/install-deps.sh $*
	touch $@

# .SECONDARY: make must not delete the per-CPU include dirs and stamps as intermediates.
.SECONDARY:

test: test-unit test-sanitize test-config test-e2e test-e2e-aarch64 test-e2e-asan test-vm-all test-image fuzz

test-unit: $(UNIT_BINS) | build/.deps-all
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

test-config: build/qproxy | build/.deps-all
	tests/config/run.sh build/qproxy

test-e2e: build/qproxy build/qproxy-static build/aarch64/qproxy-static | build/.deps-all
	$(PYTHON) -m pytest -q tests/e2e

# The aarch64 binary under qemu-user, through the suite's core cases: the quick start,
# half-close both ways, outbound by name, 256 MiB both ways with checksums (spliced and
# copied), the control link.
E2E_CORE := tests/e2e/test_quickstart.py::test_curl_prints_hello_world \
	tests/e2e/test_halfclose.py tests/e2e/test_outbound.py tests/e2e/test_integrity.py \
	tests/e2e/test_control.py::test_matching_configs_say_so \
	tests/e2e/test_control.py::test_status_counts_match_the_traffic \
	tests/e2e/test_control.py::test_mismatched_configs_are_named_on_both_sides
test-e2e-aarch64: build/aarch64/qproxy-static | build/.deps-all
	QPROXY_E2E_BINARIES=$(CURDIR)/$< $(PYTHON) -m pytest -q $(E2E_CORE)

# The static binary in a tiny initramfs under QEMU, over real AF_VSOCK (vsock_loopback):
# make test-vm ARCH=aarch64 for the Arm one; test-vm-all runs both CPUs.
test-vm: $(STATIC) | build/.deps-all
	tests/vm/run.sh --arch $(ARCH) $(STATIC)

.PHONY: test-vm-all
test-vm-all:
	$(MAKE) test-vm ARCH=x86_64
	$(MAKE) test-vm ARCH=aarch64

# Dockerfile.build (both CPUs) and Dockerfile.enclave built with podman as the README tells
# users, the binaries checked, and the enclave image booted under QEMU as its EIF would be.
test-image: | build/.deps-all
	tests/image/run.sh

# libFuzzer with ASan and UBSan; FUZZ_SECONDS per target, from the committed corpus.
FUZZ_SECONDS ?= 15
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

build/fuzz/%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(wildcard src/*.h) | build/.deps-all
	@mkdir -p build/fuzz
	clang $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) -Isrc -o $@ $< $(LIB_SRCS) -linih -lpthread

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$t- \
			build/fuzz/corpus-$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
			|| { tail -n 40 build/fuzz/$$t.log; exit 1; }; \
		tail -n 1 build/fuzz/$$t.log; \
	done

# Benchmarks print figures side by side with socat and a direct path; never part of make test.
bench: build/qproxy-static | build/.deps-all
	bench/run.sh

bench-quick: build/qproxy-static | build/.deps-all
	bench/run.sh --quick

# Where the halves' CPU goes on small requests (perf, about a minute); not in make test.
profile: build/qproxy-static | build/.deps-all
	bench/profile.sh build/qproxy-static

# Ten minutes of mixed load with byte-exact checks (SOAK_SECONDS to change); not in make test.
soak: build/qproxy-static | build/.deps-all
	tests/soak/run.sh

demo: build/qproxy | build/.deps-all
	scripts/demo.sh build/qproxy

deps: build/.deps-all

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build
