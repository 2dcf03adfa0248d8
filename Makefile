# moat — top-level convenience targets. The build itself is CMake.
#   make demo   install missing Debian packages (as root), build, run the demo
#   make test   build and run every test (Release and, with TEST_ASAN=1, ASan+UBSan)
#   make bench  build and run the benchmarks
#   make fuzz   build the libFuzzer targets (clang) and run each for FUZZ_SECONDS (fuzz/README.md)
#   make test-clang  every test under clang's ASan+UBSan (the fuzz build; stricter UBSan than gcc's)

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_WORK  ?= fuzz-work
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEMO_DATA  ?= moat-data

DEB_PACKAGES = build-essential cmake pkg-config libssl-dev libsqlite3-dev libmicrohttpd-dev \
	libjansson-dev libyajl-dev libinih-dev libargon2-dev libroaring-dev libcurl4-openssl-dev \
	golang-go golang-golang-x-mod-dev wrk valgrind sqlite3 curl python3

.PHONY: all build asan demo test test-asan test-clang bench fuzz fuzz-build deps clean

all: build

deps:
	@./scripts/deps.sh $(DEB_PACKAGES)

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMOAT_SANITIZE=ON

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

asan: deps $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/moat demo --data $(DEMO_DATA)

bench: build
	./scripts/bench.sh $(BUILD)

# Each target fuzzes a scratch copy of its corpus ($(FUZZ_WORK)/<kind>); crashes
# are written there as crash-… files and stop the run.
fuzz-build: deps
	@./scripts/deps.sh clang libclang-rt-14-dev
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAT_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

test-clang: fuzz-build
	cd $(FUZZ_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

fuzz: fuzz-build
	@set -e; for src in fuzz/fuzz_*.c; do \
		t=$$(basename $$src .c); k=$${t#fuzz_}; mkdir -p $(FUZZ_WORK)/$$k; \
		cp -n fuzz/corpus/$$k/* $(FUZZ_WORK)/$$k/ 2>/dev/null || true; \
		d=""; [ -f fuzz/$$k.dict ] && d="-dict=fuzz/$$k.dict"; \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		$(FUZZ_BUILD)/fuzz/$$t $$d -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-artifact_prefix=$(FUZZ_WORK)/$$k- -print_final_stats=1 $(FUZZ_WORK)/$$k 2>&1 | \
			grep -E "stat::number_of_executed_units|ERROR|invariant|runtime error" ; \
		! ls $(FUZZ_WORK)/$$k-crash-* >/dev/null 2>&1 || { echo "$$t found a crash: $(FUZZ_WORK)/$$k-crash-*"; exit 1; }; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(FUZZ_WORK)
