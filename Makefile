# gpup — see README.md. `make demo` and `make check` are all a newcomer needs.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
COMPLDIR   ?= $(PREFIX)/share/bash-completion/completions
SCHEMADIR  ?= $(PREFIX)/share/gpup/schema
DESTDIR    ?=
SHARED     ?= $(abspath ../shared)
BUILD      ?= build
CC         ?= cc
# SANITIZE=address,undefined builds everything with those sanitizers.
SANITIZE   ?=

PKGS       := libvhdi libntfs-3g libarchive uuid json-c libcrypto hivex zlib
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Werror
MODULES    := imaging drivers hostconf

ifneq ($(SANITIZE),)
  SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  # override: BUILD=build-x given on the command line still gets its own -san dir
  override BUILD := $(BUILD)-san
  # Third-party leaks (libntfs-3g, hivex, ...) only; see tests/lsan.supp.
  export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
  export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0
endif

# Lazily expanded: pkg-config runs only after the deps step installed it.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) $(CFLAGS) $(SANFLAGS) \
             $(addprefix -I,$(MODULES)) $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)

LIB_SRCS   := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJS   := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIBGPUP    := $(BUILD)/libgpup.a
TOOL_SRCS  := $(wildcard tools/*.c)
TOOL_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(TOOL_SRCS))
GPUP       := $(BUILD)/gpup

# One Criterion binary per tests/<dir>, linked with tests/common/*.c.
TEST_DIRS  := $(filter-out tests/common tests/fixtures,$(patsubst %/,%,$(sort $(dir $(wildcard tests/*/test_*.c)))))
TEST_COMMON_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/common/*.c))
TEST_BINS  := $(patsubst tests/%,$(BUILD)/tests/test-%,$(TEST_DIRS))

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps check demo install clean tests bench fuzz
all: $(GPUP)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tools/install-deps.sh
	@sh tools/install-deps.sh
	@mkdir -p $(@D) && touch $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBGPUP): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(GPUP): $(TOOL_OBJS) $(LIBGPUP)
	$(CC) $(ALL_LDFLAGS) -o $@ $(TOOL_OBJS) $(LIBGPUP) $(PKG_LIBS) -lm

# Test binaries: test_*.c of one directory + common helpers + the library.
# Tests also see tests/common for helpers.h.
define test_rule
$(BUILD)/tests/test-$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/$(1)/test_*.c)) $(TEST_COMMON_OBJS) $(LIBGPUP)
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(shell pkg-config --libs criterion) -lm
endef
$(foreach d,$(TEST_DIRS),$(eval $(call test_rule,$(notdir $(d)))))

$(BUILD)/tests/%.o: tests/%.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/common -c -o $@ $<

tests: $(GPUP) $(TEST_BINS)

# PowerShell 7 for the host-script tests (tests/hostconf/test_pwsh.c), from
# NuGet through the .NET SDK into ~/.dotnet/tools (often not on PATH; the
# tests and gpup look there). Nothing to do when it is there. Without
# dotnet, or when the install fails outside CI, the pwsh tests report
# themselves skipped by name; under CI (CI=true) either fails.
PWSH_VERSION := 7.6.10
PWSH_INSTALL := dotnet tool install --global PowerShell --version $(PWSH_VERSION)
.PHONY: pwsh
pwsh:
	@if [ -x "$$HOME/.dotnet/tools/pwsh" ]; then :; \
	elif command -v dotnet >/dev/null 2>&1 && $(PWSH_INSTALL); then :; \
	elif [ "$${CI:-}" = true ]; then \
	  echo "make pwsh: cannot install PowerShell ($(PWSH_INSTALL)); CI needs it" >&2; exit 1; \
	else \
	  echo "make pwsh: no PowerShell; the pwsh tests will be skipped (install the .NET SDK, then: $(PWSH_INSTALL))" >&2; \
	fi

# The whole suite. Each test binary runs with the paths it needs in its
# environment; tests/run-tests.sh prints one "N passed, N failed, N skipped"
# line. One seed for the whole run (tests/common/helpers.h, t_seed()): every
# binary prints it first; GPUP_TEST_SEED=N make check replays a run.
check: tests pwsh
	@GPUP_TEST_SEED=$${GPUP_TEST_SEED:-$$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')} \
	  GPUP_BIN=$(abspath $(GPUP)) GPUP_SRC=$(CURDIR) GPUP_SHARED=$(SHARED) \
	  GPUP_BUILD=$(abspath $(BUILD)) sh tests/run-tests.sh $(TEST_BINS)

demo: $(GPUP)
	@GPUP_BIN=$(abspath $(GPUP)) GPUP_SRC=$(CURDIR) GPUP_SHARED=$(SHARED) \
	  sh tests/fixtures/demo.sh $(BUILD)/demo

# ---- mutate (issue 23) -------------------------------------------------------
# `make mutate`: tests/mutants/run.sh applies each tests/mutants/*.patch (one
# realistic bug) alone to a copy of the tree in $(BUILD)/mutate/src, rebuilds
# it incrementally in $(BUILD)/mutate/build, runs the test binaries the patch
# names and prints the mutation score and the survivors. Not part of `make
# check`; MUTANTS="tests/mutants/a.patch ..." runs a subset, MUTATE_FULL=1
# also runs the whole suite against a mutant its own tests miss. Time and
# format: tests/mutants/README.md.
MUTANTS ?=
.PHONY: mutate
mutate: tests
	@BUILD=$(BUILD) SHARED=$(SHARED) sh tests/mutants/run.sh $(MUTANTS)

# ---- bench (issue 9) --------------------------------------------------------
# `make bench`: builds gpup, then bench/run.sh generates an NVIDIA-sized host
# package and an 8 GiB guest VHDX under $(BUILD)/bench, times gpup against the
# cp floor and the qemu-img/loop/ntfs-3g pipeline and rewrites the generated
# part of bench/RESULTS.md. Knobs: BENCH_SCALES="1 2 4" BENCH_REPS=3 BENCH_KEEP=0
# BENCH_FILES="1000 10000 100000".
bench: $(GPUP)
	@GPUP_BIN=$(abspath $(GPUP)) GPUP_SRC=$(CURDIR) GPUP_SHARED=$(SHARED) \
	  sh bench/run.sh $(BUILD)/bench
# ---- end bench ----------------------------------------------------------------

install: $(GPUP)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(COMPLDIR) \
	  $(DESTDIR)$(SCHEMADIR)
	install -m 0755 $(GPUP) $(DESTDIR)$(BINDIR)/gpup
	install -m 0644 tools/gpup.1 $(DESTDIR)$(MANDIR)/man1/gpup.1
	install -m 0644 tools/gpup.bash-completion $(DESTDIR)$(COMPLDIR)/gpup
	install -m 0644 doc/schema/*.schema.json $(DESTDIR)$(SCHEMADIR)

clean:
	rm -rf build build-san

# ---- fuzz: libFuzzer harnesses (fuzz/fuzz_NAME.c; tests/RELIABILITY.md) ----
# `make fuzz FUZZ_SECONDS=N` builds each harness with clang
# -fsanitize=fuzzer,address,undefined (the library sources are compiled again
# with clang into $(FUZZ_BUILD)/libgpup-fuzz.a, instrumented) and runs each
# for N seconds through fuzz/run.sh, which prints the executions per harness.
# `make fuzz-build` only builds. FUZZ_ARGS passes extra libFuzzer flags.
# FUZZ_SANITIZERS picks the sanitizers: the default address,undefined
# catches the most; `FUZZ_SANITIZERS=undefined` (in its own BUILD) runs 5-6x
# more inputs per second for the harnesses whose inputs need large buffers
# (vhdx, bundle), which ASan maps and poisons afresh for every input.
FUZZ_SECONDS ?= 10
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= $(BUILD)/fuzz
FUZZ_ARGS    ?=
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SANITIZERS ?= address,undefined
FUZZ_SAN     := -fsanitize=$(FUZZ_SANITIZERS) -fno-sanitize-recover=all -fno-omit-frame-pointer
# fuzz/nocov.txt: sources left without coverage instrumentation (checksum
# loops: no input-dependent branch, only cost); ASan/UBSan stay on.
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (the libFuzzer/OSS-Fuzz
# convention) scales down size limits that cost time per input, never a check.
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -g -O1 -Wall -Wextra \
                -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link -fsanitize-coverage-ignorelist=fuzz/nocov.txt \
                $(addprefix -I,$(MODULES)) $(PKG_CFLAGS) -MMD -MP
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(LIB_SRCS))
FUZZ_LIB     := $(FUZZ_BUILD)/libgpup-fuzz.a
FUZZ_BINS    := $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_NAMES))

.PHONY: fuzz-build
$(FUZZ_BUILD)/%.o: %.c fuzz/nocov.txt | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BINS)
# Keep the harness objects (make would delete them as intermediates).
.SECONDARY: $(patsubst %,$(FUZZ_BUILD)/fuzz/fuzz_%.o,$(FUZZ_NAMES))

fuzz: fuzz-build
	@GPUP_SHARED=$(SHARED) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_ARGS="$(FUZZ_ARGS)" \
	  sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_NAMES)

-include $(FUZZ_LIB_OBJS:.o=.d) $(patsubst %,$(FUZZ_BUILD)/fuzz/fuzz_%.d,$(FUZZ_NAMES))
# ---- end fuzz ----

-include $(LIB_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(TEST_COMMON_OBJS:.o=.d)
-include $(patsubst %.c,$(BUILD)/%.d,$(wildcard tests/*/test_*.c))
