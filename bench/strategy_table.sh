#!/usr/bin/env bash
# Measured and predicted latency of every strategy under every link, for one
# model, as a Markdown table: the planner's claim ("fused never loses") checked
# on this machine. Usage: bench/strategy_table.sh [MODEL] [ITERS] [VKFUSE]
# Environment: STRATEGIES, LINKS (space-separated) override the defaults
# "cpu gpu naive fused passes fuse-all per-op" and "measured local edge" (a shorter
# table, e.g. for tools/gpu-check.sh's quick pass).
set -euo pipefail
model=${1:-resnet18}
iters=${2:-5}
vkfuse=${3:-./build/cli/vkfuse}
read -r -a links <<< "${LINKS:-measured local edge}"
read -r -a strategies <<< "${STRATEGIES:-cpu gpu naive fused passes fuse-all per-op}"
py=${PYTHON:-python3}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
errors=()

printf '| strategy |'
for l in "${links[@]}"; do printf ' %s: measured (predicted) ms |' "$l"; done
printf '\n|---|'
for _ in "${links[@]}"; do printf -- '---|'; done
printf '\n'
for s in "${strategies[@]}"; do
  printf '| %s |' "$s"
  for l in "${links[@]}"; do
    # A cell that fails does not end the table; the runner's error goes to
    # stderr after the table, so that it does not split a row.
    if json=$("$vkfuse" run "$model" --strategy "$s" --link "$l" --iters "$iters" --warmup 1 --json -q 2>"$err"); then
      "$py" -c 'import json,sys; j=json.loads(sys.argv[1]); print(" %.1f (%.1f) |" % (j["latency_ms"]["median"], j["predicted_ms"]), end="")' "$json"
    else
      printf ' failed |'
      errors+=("$s, $l: $(tail -1 "$err")")
    fi
  done
  printf '\n'
done
if ((${#errors[@]})); then printf '%s\n' "${errors[@]}" >&2; fi
"$vkfuse" devices | head -1 | sed 's/^/device: /'
