#!/usr/bin/env bash
# Installs the dependencies, builds the runner, and runs the built-in default
# model (ResNet-18 with synthetic weights) on a random input.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target vkfuse
./build/cli/vkfuse run "$@"
