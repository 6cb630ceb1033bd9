# w8a8 - build the library, the command and the tests.
#
#   make            build/w8a8 (optimized)
#   make test       both builds (normal and ASan+UBSan) and the whole suite
#   make asan       build/asan/w8a8 and sanitized tests
#   make fuzz       libFuzzer targets (clang) in build/fuzz/
#
# ISA-specific kernel files (*_avx2.c, *_avx512.c) get their own -m flags; the
# rest is built for baseline x86-64 so the binary runs on any machine and
# picks its kernels at run time.

# build in parallel on every core unless the caller chose (-j on the command line)
ifeq (,$(filter -j%,$(MAKEFLAGS)))
MAKEFLAGS += -j$(shell nproc)
endif

CC      ?= gcc
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -MMD -MP
OPT     ?= -O2 -g
LIBS    = -ljansson -lonig -lutf8proc -lmicrohttpd -lm -lpthread
TESTLIBS = -lcurl
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  = $(wildcard src/*.c) $(wildcard src/jinja/*.c) $(wildcard src/quant/*.c) $(wildcard src/serve/*.c) $(wildcard src/kernels/*.c) \
           $(wildcard src/tokenizer/*.c)
CLI_SRC  = $(wildcard cli/*.c)
TEST_SRC = $(wildcard tests/test_*.c)

define objs
$(patsubst %.c,$(1)/obj/%.o,$(2))
endef

B = build
A = build/asan

all: $(B)/w8a8

# ---- normal build
$(B)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) $(AVX2_FLAGS) -c $< -o $@
$(B)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) $(AVX512_FLAGS) -c $< -o $@
$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) -c $< -o $@

$(B)/libw8a8.a: $(call objs,$(B),$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(B)/w8a8: $(call objs,$(B),$(CLI_SRC)) $(B)/libw8a8.a
	$(CC) $(CFLAGS_BASE) $(OPT) $^ -o $@ $(LIBS)

$(B)/tests/%: $(B)/obj/tests/%.o $(B)/libw8a8.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT) $^ -o $@ $(LIBS) $(TESTLIBS)

# ---- kernel micro-benchmark (tools/, not part of the test suite)
$(B)/bench_kernels: $(B)/obj/tools/bench_kernels.o $(B)/libw8a8.a
	$(CC) $(CFLAGS_BASE) $(OPT) $^ -o $@ $(LIBS)

# ---- sanitized build
$(A)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) $(AVX2_FLAGS) -c $< -o $@
$(A)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) $(AVX512_FLAGS) -c $< -o $@
$(A)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) -c $< -o $@

$(A)/libw8a8.a: $(call objs,$(A),$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(A)/w8a8: $(call objs,$(A),$(CLI_SRC)) $(A)/libw8a8.a
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) $^ -o $@ $(LIBS)

$(A)/tests/%: $(A)/obj/tests/%.o $(A)/libw8a8.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) $^ -o $@ $(LIBS) $(TESTLIBS)

# fuzz targets linked to a plain main() that replays corpora (ASan build)
$(A)/fuzz/%: $(A)/obj/fuzz/%.o $(A)/obj/fuzz/replay.o $(A)/libw8a8.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) $^ -o $@ $(LIBS)

FUZZ_SRC = $(wildcard fuzz/fuzz_*.c)
TESTS      = $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
ASAN_TESTS = $(patsubst tests/%.c,$(A)/tests/%,$(TEST_SRC))
REPLAYS    = $(patsubst fuzz/%.c,$(A)/fuzz/%,$(FUZZ_SRC))

asan: $(A)/w8a8 $(ASAN_TESTS)

tests: $(B)/w8a8 $(TESTS) $(A)/w8a8 $(ASAN_TESTS) $(REPLAYS)

# FUZZ_SECONDS: how long each libFuzzer target runs inside `make test` (0: none)
FUZZ_SECONDS ?= 20
test: tests
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run.sh $(B) $(A)

# ---- fuzzing (clang + libFuzzer)
FUZZ_LIB_SRC = $(LIB_SRC)
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fopenmp -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
$(B)/fuzz/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(AVX2_FLAGS) -c $< -o $@
$(B)/fuzz/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(AVX512_FLAGS) -c $< -o $@
$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(B)/fuzz/libw8a8.a: $(call objs,$(B)/fuzz,$(FUZZ_LIB_SRC))
	@rm -f $@
	ar rcs $@ $^
$(B)/fuzz/%: fuzz/%.c $(B)/fuzz/libw8a8.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@ $(LIBS)
fuzz: $(patsubst fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))

demo: $(B)/w8a8
	scripts/demo.sh

clean:
	rm -rf build

.PHONY: all asan tests test fuzz demo clean
.SECONDARY:

-include $(shell find build -name '*.d' 2>/dev/null)
