#!/usr/bin/env bash
# The evaluation: the thesis' experiments (5.2 sensitivity to k, 5.3 the link's
# bandwidth, 5.4 the ablation of selective fusion, 5.5 several architectures),
# measured here and predicted for what-if accelerators, turned into CSV
# tables, PNG plots and a Markdown report.
#
# Usage: bench/evaluate.sh [quick|full] [BUILD_DIR] [OUT_DIR]
#   quick     ResNet-18, 3 bandwidth points, 4 values of k (about a minute)
#   full      ResNet-18, Inception v3 and the torchvision exports present in
#             BUILD_DIR/testdata/torchvision (GoogLeNet, MobileNet v2,
#             SqueezeNet 1.1, ResNet-50); 8 bandwidth points, 8 values of k
#   BUILD_DIR a build with vkfuse_bench and the vkfuse CLI (default: build)
#   OUT_DIR   default bench/results (quick: BUILD_DIR/eval-quick)
# Peers (bench/peers.py: ONNX Runtime, IREE llvm-cpu and Vulkan, ncnn CPU and
# Vulkan, installed from PyPI into scratch virtual environments on first use)
# run on the same models after vkfuse's rows: in full mode always, in quick
# mode when VKFUSE_EVAL_PEERS=1; VKFUSE_EVAL_PEERS=0 skips them.
# Needs /usr/bin/python3 with python3-matplotlib (tools/install-deps.sh).
# Google Benchmark prints one line per row as it finishes (the progress);
# its JSON is OUT_DIR/eval.json, the report OUT_DIR/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
build=${2:-build}
case $mode in quick|full) ;; *) echo "evaluate.sh: mode is quick or full, not '$mode'" >&2; exit 2 ;; esac
out=${3:-$([[ $mode == full ]] && echo bench/results || echo "$build/eval-quick")}
bench=$build/bench/vkfuse_bench
cli=$build/cli/vkfuse
[[ -x $bench && -x $cli ]] || { echo "evaluate.sh: build $build first (no $bench or $cli)" >&2; exit 1; }
py=/usr/bin/python3
[[ -x $py ]] || py=python3
mkdir -p "$out"

models=()
if [[ $mode == full ]]; then
  for m in googlenet mobilenet_v2 squeezenet1_1 resnet50; do
    f=$build/testdata/torchvision/$m.onnx
    [[ -f $f ]] && models+=("--model=$f")
  done
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) hardware threads"
  echo "build: vkfuse $(git describe --always --dirty 2>/dev/null || echo '?') ($build)"
  echo "devices (vkfuse devices):"
  "$cli" devices | sed 's/^/  /'
} > "$out/machine.txt"

echo "== evaluate ($mode): measured Eval/ rows, then PREDICTED ONLY WhatIf/ rows ==" >&2
"$bench" --eval="$mode" "${models[@]}" --benchmark_filter='^(Eval|WhatIf)/' \
  --benchmark_out="$out/eval.json" --benchmark_out_format=json
peers=${VKFUSE_EVAL_PEERS:-$([[ $mode == full ]] && echo 1 || echo 0)}
peer_args=()
rm -f "$out/peers.json" "$out/peers.csv" "$out/peers.png"  # never a previous run's
if [[ $peers == 1 ]]; then
  names=(resnet18)
  [[ $mode == full ]] && names+=(inception_v3 googlenet mobilenet_v2 squeezenet1_1 resnet50)
  present=()
  for m in "${names[@]}"; do
    [[ -f $build/testdata/torchvision/$m.onnx && -f $build/testdata/torchvision/$m.output.npy ]] && present+=("$m")
  done
  if [[ ${#present[@]} -eq 0 ]]; then
    echo "evaluate.sh: no torchvision exports with PyTorch's outputs in $build/testdata/torchvision: peers skipped" >&2
  else
    echo "== evaluate ($mode): vkfuse and its peers on ${present[*]} ==" >&2
    if "$py" bench/peers.py --build "$build" --out "$out" --timeout 90 "${present[@]}"; then
      peer_args=(--peers "$out/peers.json")
    else
      echo "evaluate.sh: the peers' run failed (above); the report goes without them" >&2
    fi
  fi
fi
"$py" bench/report.py "$out/eval.json" "$out" --machine "$out/machine.txt" --mode "$mode" "${peer_args[@]}"
