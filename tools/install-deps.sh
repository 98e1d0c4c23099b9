#!/usr/bin/env bash
# Installs everything vkfuse builds, tests and benchmarks with, from Debian 12
# packages only. Idempotent: packages already present are left as they are.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  # graph/: ONNX protobuf definitions
  libonnx-dev libprotobuf-dev protobuf-compiler
  # cli/ and reports
  libcli11-dev nlohmann-json3-dev graphviz
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # host backend
  libhalide14-0-dev
  # Vulkan backend (lavapipe is the device on machines without a GPU)
  libvulkan-dev mesa-vulkan-drivers vulkan-tools vulkan-validationlayers
  glslang-dev glslang-tools spirv-tools
  # reference data: ONNX conformance cases and torchvision exports
  python3 python3-numpy python3-onnx python3-torch python3-torchvision
  # timm (tools/timm-venv.sh): a virtual environment over Debian's torch
  python3-venv
  # the evaluation's plots (bench/report.py)
  python3-matplotlib
  # examples/ (images in, through libpng and libjpeg) and their test images
  libpng-dev libjpeg-dev python3-pil
  # CI's fuzzing leg (tools/fuzz.sh): clang's libFuzzer
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  if [[ ! -d /var/lib/apt/lists/partial ]] || [[ -z "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null)" ]] \
     || [[ -n "${VKFUSE_APT_UPDATE:-}" ]]; then
    apt-get update
  fi
  if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
    # A stale package list is the usual cause: refresh once and retry.
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi
