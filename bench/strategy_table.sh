#!/usr/bin/env bash
# Measured and predicted latency of every strategy under every link, for one
# model, as a Markdown table: the planner's claim ("fused never loses") checked
# on this machine. Usage: bench/strategy_table.sh [MODEL] [ITERS] [VKFUSE]
set -euo pipefail
model=${1:-resnet18}
iters=${2:-5}
vkfuse=${3:-./build/cli/vkfuse}
links=(measured local edge)
strategies=(cpu gpu naive fused fuse-all per-op)

printf '| strategy |'
for l in "${links[@]}"; do printf ' %s: measured (predicted) ms |' "$l"; done
printf '\n|---|'
for _ in "${links[@]}"; do printf -- '---|'; done
printf '\n'
for s in "${strategies[@]}"; do
  printf '| %s |' "$s"
  for l in "${links[@]}"; do
    json=$("$vkfuse" run "$model" --strategy "$s" --link "$l" --iters "$iters" --warmup 1 --json -q)
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(" %.1f (%.1f) |" % (j["latency_ms"]["median"], j["predicted_ms"]), end="")' "$json"
  done
  printf '\n'
done
"$vkfuse" devices | head -1 | sed 's/^/device: /'
