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

.PHONY: all static test test-unit test-config test-e2e demo deps clean format

all: build/qproxy

build/obj/%.o: src/%.c $(wildcard src/*.h) | build/obj build/.deps
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

build/qproxy: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

static: build/qproxy-static

build/qproxy-static: $(SRCS) $(wildcard src/*.h) | build/musl-include build/.deps
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

build/tests/%: tests/unit/%.c $(LIB_OBJS) | build/tests
	$(CC) $(CPPFLAGS) $(WARN) -Wno-missing-prototypes $(CFLAGS) -Isrc -o $@ $^ $(LDLIBS) -lcmocka

build build/obj build/tests:
	mkdir -p $@

# A fresh machine gets its packages on the first build; the stamp keeps later builds quiet.
build/.deps: scripts/install-deps.sh | build
	scripts/install-deps.sh
	touch $@

test: test-unit test-config test-e2e

test-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

test-config: build/qproxy
	tests/config/run.sh build/qproxy

test-e2e: build/qproxy build/qproxy-static
	$(PYTHON) -m pytest -q tests/e2e

demo: build/qproxy
	scripts/demo.sh build/qproxy

deps:
	scripts/install-deps.sh
	@mkdir -p build && touch build/.deps

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c

clean:
	rm -rf build
