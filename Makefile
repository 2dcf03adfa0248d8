# moat — top-level convenience targets. The build itself is CMake.
#   make demo   install missing Debian packages (as root), build, run the demo
#   make test   build and run every test (Release and, with TEST_ASAN=1, ASan+UBSan)
#   make bench  build and run the benchmarks

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEMO_DATA  ?= moat-data

DEB_PACKAGES = build-essential cmake pkg-config libssl-dev libsqlite3-dev libmicrohttpd-dev \
	libjansson-dev libyajl-dev libinih-dev libargon2-dev libroaring-dev libcurl4-openssl-dev \
	golang-go golang-golang-x-mod-dev wrk sqlite3 curl python3

.PHONY: all build asan demo test test-asan bench deps clean

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

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
