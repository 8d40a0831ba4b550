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

STATIC_CFLAGS  := -Os -ffunction-sections -fdata-sections
# Debian's libinih.a is built for glibc but uses only plain stdio, so it links under musl.
STATIC_LDFLAGS := -static -s -Wl,--gc-sections
# By path: -L to Debian's lib dir would let glibc's libc.a in too.
STATIC_LDLIBS  := /usr/lib/x86_64-linux-gnu/libinih.a

SRCS     := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:src/%.c=build/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=build/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)

.PHONY: all static test test-unit test-sanitize test-e2e-asan bench bench-quick soak test-config test-e2e test-vm fuzz demo deps clean format

all: build/qproxy

build/obj/%.o: src/%.c $(wildcard src/*.h) | build/obj build/.deps-build
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

build/qproxy: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

static: build/qproxy-static

build/qproxy-static: $(SRCS) $(wildcard src/*.h) | build/musl-include build/.deps-build
	$(MUSL_CC) $(CPPFLAGS) $(WARN) $(STATIC_CFLAGS) -isystem build/musl-include \
		-o $@ $(SRCS) $(STATIC_LDFLAGS) $(STATIC_LDLIBS)

# musl-gcc sees only musl's headers. Lend it the few that are not libc's:
# inih's and the kernel's (for AF_VSOCK), and nothing of glibc's.
build/musl-include: | build
	mkdir -p $@
	ln -sfn /usr/include/ini.h $@/ini.h
	ln -sfn /usr/include/linux $@/linux
	ln -sfn /usr/include/asm-generic $@/asm-generic
	ln -sfn /usr/include/x86_64-linux-gnu/asm $@/asm

build/tests/%: tests/unit/%.c $(LIB_OBJS) | build/tests build/.deps-all
	$(CC) $(CPPFLAGS) $(WARN) -Wno-missing-prototypes $(CFLAGS) -Isrc -o $@ $^ $(LDLIBS) $(TEST_LDLIBS) -lcmocka

# libcbor is the codec's reference in its tests, never a dependency of qproxy itself.
build/tests/test_cbor build/asan/test_cbor: TEST_LDLIBS = -lcbor

# The unit tests again under ASan and UBSan: the codec and the parsers take hostile bytes.
SAN_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
build/asan/%: tests/unit/%.c $(LIB_SRCS) $(wildcard src/*.h) | build/.deps-all
	@mkdir -p build/asan
	clang $(CPPFLAGS) $(SAN_FLAGS) -Isrc -o $@ $< $(LIB_SRCS) $(LDLIBS) $(TEST_LDLIBS) -lcmocka

test-sanitize: $(UNIT_SRCS:tests/unit/%.c=build/asan/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# The whole binary under ASan and UBSan, for the end-to-end suite (make test-e2e-asan).
build/qproxy-asan: $(SRCS) $(wildcard src/*.h) | build/.deps-all
	clang $(CPPFLAGS) $(SAN_FLAGS) -o $@ $(SRCS) $(LDLIBS)

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

test: test-unit test-sanitize test-config test-e2e test-e2e-asan test-vm fuzz

test-unit: $(UNIT_BINS) | build/.deps-all
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

test-config: build/qproxy | build/.deps-all
	tests/config/run.sh build/qproxy

test-e2e: build/qproxy build/qproxy-static | build/.deps-all
	$(PYTHON) -m pytest -q tests/e2e

# The static binary in a tiny initramfs under QEMU, over real AF_VSOCK (vsock_loopback).
test-vm: build/qproxy-static | build/.deps-all
	tests/vm/run.sh build/qproxy-static

# libFuzzer with ASan and UBSan; FUZZ_SECONDS per target, from the committed corpus.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

build/fuzz/%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(wildcard src/*.h) | build/.deps-all
	@mkdir -p build/fuzz
	clang $(CPPFLAGS) $(FUZZ_FLAGS) -Isrc -o $@ $< $(LIB_SRCS) -linih -lpthread

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
