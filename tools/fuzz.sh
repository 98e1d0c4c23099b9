#!/usr/bin/env bash
# Fuzzes the ONNX importer and the planner (tests/fuzz/fuzz_plan.cpp) with
# libFuzzer under AddressSanitizer and UndefinedBehaviorSanitizer for a
# bounded time, from the seed models in tests/fuzz/corpus. A clang build of
# the graph and planner libraries only (no kernels), in BUILD_DIR.
# Exits non-zero on a crash, a sanitizer report or an exception other than
# vkfuse::Error, leaving the input as BUILD_DIR/fuzz-crash-*: add it to
# tests/fuzz/corpus once fixed, so that every later run replays it.
# The run is deterministic (a fixed seed, a fixed number of inputs, the seed
# corpus copied afresh), so that it passes or fails the same way on every
# machine; VKFUSE_FUZZ_SEED=random explores further. SECONDS only caps it.
# Usage: tools/fuzz.sh [RUNS (default 200000)] [SECONDS (default 300)] [BUILD_DIR (default build-fuzz)]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-200000}
secs=${2:-300}
build=${3:-build-fuzz}
seed=${VKFUSE_FUZZ_SEED:-1}
[[ $seed == random ]] && seed=0  # libFuzzer: 0 picks one
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVKFUSE_FUZZ=ON -DVKFUSE_SANITIZE=address,undefined,fuzzer-no-link \
  -DVKFUSE_HALIDE_MULTITARGET=OFF >"$build.configure.log" 2>&1 ||
  { tail -20 "$build.configure.log" >&2; exit 1; }
cmake --build "$build" -j2 --target fuzz_plan
corpus=$build/fuzz-corpus
rm -rf "$corpus" && mkdir -p "$corpus"
cp tests/fuzz/corpus/* "$corpus/"
echo "fuzz.sh: $runs inputs (seed $seed, at most $secs s) into the importer and the planner from" \
  "$(ls tests/fuzz/corpus | wc -l) seeds" >&2
ASAN_OPTIONS=detect_leaks=0 "$build/tests/fuzz/fuzz_plan" -seed="$seed" -runs="$runs" -max_total_time="$secs" \
  -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build/fuzz-" "$corpus"
