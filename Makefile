# libq7 - build, test, install.   make | make check | make demo | make install
.SUFFIXES:

VERSION_MAJOR := $(shell sed -n 's/^\#define Q7_VERSION_MAJOR \([0-9]*\)/\1/p' include/q7.h)
VERSION_MINOR := $(shell sed -n 's/^\#define Q7_VERSION_MINOR \([0-9]*\)/\1/p' include/q7.h)
VERSION_PATCH := $(shell sed -n 's/^\#define Q7_VERSION_PATCH \([0-9]*\)/\1/p' include/q7.h)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

CC ?= cc
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -Wwrite-strings \
                   -Wno-unused-parameter -D_GNU_SOURCE -Iinclude -MMD -MP
ifeq ($(SANITIZE),1)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),thread)
override CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=thread
endif
LIBS = -llmdb -lpthread

B = build
SONAME = libq7.so.$(VERSION_MAJOR)
SRCS = $(wildcard lib/*.c)
OBJS = $(SRCS:lib/%.c=$(B)/lib/%.o)
TEST_SRCS = $(wildcard tests/test_*.c)
TESTS = $(TEST_SRCS:tests/%.c=$(B)/tests/%)
EXAMPLE_SRCS = $(wildcard examples/*.c)
EXAMPLES = $(EXAMPLE_SRCS:examples/%.c=$(B)/examples/%)
TOOL_SRCS = $(wildcard tools/*.c)
TOOLS = $(if $(TOOL_SRCS),$(B)/tools/q7)
BENCH_SRCS = $(wildcard bench/*.c)
BENCHES = $(BENCH_SRCS:bench/%.c=$(B)/bench/%)
BENCH_DIR ?= /tmp/q7-bench

# Debian packages: the library, the tests, and the man page linter.
DEPS_BUILD = liblmdb-dev pkg-config libmicrohttpd-dev libjansson-dev
DEPS_CHECK = $(DEPS_BUILD) libcriterion-dev mandoc python3 librdkafka-dev chromium
DEPS_BENCH = $(DEPS_BUILD) libsqlite3-dev libhiredis-dev redis-server gnuplot-nox

all: $(B)/$(SONAME) $(B)/libq7.a $(TOOLS)

$(B)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(B)/$(SONAME): $(OBJS) lib/libq7.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libq7.map -Wl,-z,defs \
	  $(LDFLAGS) -o $@ $(OBJS) $(LIBS)
	ln -sf $(SONAME) $(B)/libq7.so

$(B)/libq7.a: $(OBJS)
	rm -f $@
	ar rcs $@ $(OBJS)

# The q7 tool links libq7 statically: one self-contained binary.  Its
# `kafka export|import` is built when librdkafka is there (pkg-config rdkafka).
RDKAFKA := $(shell pkg-config --exists rdkafka 2>/dev/null && echo yes)
TOOL_DEFS = $(if $(RDKAFKA),-DQ7_HAVE_RDKAFKA)
TOOL_LIBS = -lmicrohttpd -ljansson $(if $(RDKAFKA),$(shell pkg-config --libs rdkafka))
$(B)/tools/q7: $(TOOL_SRCS) $(wildcard tools/*.h) $(B)/libq7.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TOOL_DEFS) -o $@ $(TOOL_SRCS) $(B)/libq7.a $(LDFLAGS) $(TOOL_LIBS) $(LIBS)

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(B)/libq7.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Ilib -o $@ $< $(B)/libq7.a $(LDFLAGS) -lcriterion $(LIBS)

$(B)/examples/%: examples/%.c $(B)/$(SONAME)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< -L$(B) -lq7 -Wl,-rpath,$(abspath $(B)) $(LDFLAGS)

# Install missing Debian packages (as root), or say what to run.
deps-build:
	@sh tests/deps.sh $(DEPS_BUILD)
deps-check:
	@sh tests/deps.sh $(DEPS_CHECK)

build: all $(TESTS) $(EXAMPLES)

demo: deps-build
	$(MAKE) all $(B)/examples/quickstart
	rm -rf q7-demo
	$(B)/examples/quickstart q7-demo

check: deps-check
	$(MAKE) build
	sh tests/run.sh $(B) $(TESTS)

$(B)/bench/%: bench/%.c $(B)/$(SONAME)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O2 -o $@ $< -L$(B) -lq7 -Wl,-rpath,$(abspath $(B)) $(LDFLAGS) \
	  -llmdb -lsqlite3 -lhiredis -lpthread

# Benchmarks: ratios against raw LMDB doing the same work, in one run.
# BENCH_ARGS=--quick for small sizes; results in $(B)/bench/results.csv.
deps-bench:
	@sh tests/deps.sh $(DEPS_BENCH)
# libFuzzer (clang): each tests/fuzz/fuzz_*.c for FUZZ_SECONDS, saved
# crashes replayed first.
FUZZ_SECONDS ?= 60
fuzz:
	@sh tests/deps.sh clang libclang-rt-14-dev
	sh tests/fuzz/run.sh $(B) $(FUZZ_SECONDS)

# The long reliability runs: 200 crash rounds per test, 8+4 processes for 60 s.
$(B)/tests/stress/many_procs: tests/stress/many_procs.c tests/proc.h $(B)/libq7.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libq7.a $(LDFLAGS) $(LIBS)

stress: deps-check
	$(MAKE) build $(B)/tests/stress/many_procs
	sh tests/stress.sh $(B) 60

# Every thread of libq7 at once under ThreadSanitizer (Criterion itself
# cannot start under TSan, so a standalone driver).
check-tsan: deps-check
	$(MAKE) B=$(B)-tsan SANITIZE=thread $(B)-tsan/libq7.a
	$(CC) -std=c11 -g -O1 -fsanitize=thread -D_GNU_SOURCE -Iinclude -o $(B)-tsan/tsan-threads \
	  tests/tsan/threads.c $(B)-tsan/libq7.a -llmdb -lpthread
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan/tsan.supp halt_on_error=1" \
	  $(B)-tsan/tsan-threads /tmp/q7-tsan-$$$$ 5

# The core tests under valgrind (memcheck): slow, minutes.
VALGRIND_TESTS = conf record partitioner topic store producer consumer retention
check-valgrind: deps-check
	@sh tests/deps.sh valgrind
	$(MAKE) build
	sh tests/valgrind.sh $(B) $(VALGRIND_TESTS:%=$(B)/tests/test_%)

bench: deps-bench
	$(MAKE) all $(BENCHES)
	$(B)/bench/bench --dir $(BENCH_DIR) -o $(B)/bench/results.csv $(BENCH_ARGS)
	$(B)/bench/retention $(BENCH_DIR)-retention
	$(B)/bench/replica $(BENCH_DIR)-replica
	gnuplot -e "in='$(B)/bench/results.csv'; out='$(B)/bench/ratios.png'" bench/ratios.gp && \
	  echo "chart: $(B)/bench/ratios.png"

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/q7.h $(DESTDIR)$(INCLUDEDIR)/q7.h
	if [ -n "$(TOOLS)" ]; then install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 && \
	  install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/q7 && \
	  for f in man/man1/*.1; do [ -f "$$f" ] && install -m 644 $$f $(DESTDIR)$(MANDIR)/man1/; done; true; fi
	install -m 755 $(B)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libq7.so
	install -m 644 $(B)/libq7.a $(DESTDIR)$(LIBDIR)/libq7.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	  libpq7.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/libq7.pc
	cp $(DESTDIR)$(PKGCONFIGDIR)/libq7.pc $(DESTDIR)$(PKGCONFIGDIR)/libpq7.pc
	for f in man/man3/*.3; do [ -f "$$f" ] && install -m 644 $$f $(DESTDIR)$(MANDIR)/man3/; done; true
	for f in man/man7/*.7; do [ -f "$$f" ] && install -m 644 $$f $(DESTDIR)$(MANDIR)/man7/; done; true

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/q7.h $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libq7.so \
	  $(DESTDIR)$(LIBDIR)/libq7.a $(DESTDIR)$(PKGCONFIGDIR)/libq7.pc $(DESTDIR)$(PKGCONFIGDIR)/libpq7.pc
	for f in man/man3/*.3; do rm -f $(DESTDIR)$(MANDIR)/man3/$$(basename $$f); done
	for f in man/man7/*.7; do rm -f $(DESTDIR)$(MANDIR)/man7/$$(basename $$f); done
	for f in man/man1/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$$(basename $$f); done
	rm -f $(DESTDIR)$(PREFIX)/bin/q7

clean:
	rm -rf $(B) q7-demo

.PHONY: all build check check-valgrind check-tsan fuzz stress demo bench install uninstall clean deps-build deps-check deps-bench

-include $(OBJS:.o=.d)
