#!/usr/bin/env bash
# Predicted against measured latency of each plan, per model x plan x link, as
# a Markdown table: how well the cost model (after `vkfuse calibrate`)
# predicts this machine. The target is |measured/predicted - 1| <= 25%.
# Usage: bench/prediction_table.sh [ITERS] [VKFUSE] [MODELS...]
#   ITERS   timed runs per cell (default 5; the lavapipe strategies take
#           seconds; cpu and fused get at least 10)
#   VKFUSE  the runner (default ./build/cli/vkfuse)
#   MODELS  built-in names or ONNX files (default: resnet18 inception_v3)
# Environment: STRATEGIES, LINKS (space-separated) override the defaults
# "cpu gpu naive fused" and "measured edge". WHATIF (space-separated device
# profiles, default tools/profiles/whatif-2x-accelerator.json; "" for none)
# adds mixed plans: the placement vkfuse plans against that accelerator on
# the local link, saved and run here with --plan under each link (its
# predictions recomputed with this machine's profiles). PYTHON the
# interpreter (default /usr/bin/python3, else the python3 on PATH).
# Columns beyond the prediction: the sum of the measured steps (host
# segments, unit compute, uploads, downloads), how far below it the run
# finished (what overlapped), and the bytes moved per inference.
set -euo pipefail
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || command -v "$py" >/dev/null || py=python3
iters=${1:-5}
vkfuse=${2:-./build/cli/vkfuse}
shift $(( $# < 2 ? $# : 2 ))
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(resnet18 inception_v3)
read -r -a strategies <<< "${STRATEGIES:-cpu gpu naive fused}"
read -r -a links <<< "${LINKS:-measured edge}"
read -r -a whatifs <<< "${WHATIF-tools/profiles/whatif-2x-accelerator.json}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cell() {  # model, label, link, runs, runner arguments...
  local m=$1 label=$2 l=$3 n=$4 json
  shift 4
  # A cell that fails (the runner's error is on stderr) does not end the table.
  if ! json=$("$vkfuse" run "$m" "$@" --link "$l" --iters "$n" --warmup 1 --json -q); then
    echo "| $m | $label | $l | | failed | | | | | |"
    return
  fi
  "$py" -c '
import json, sys
j = json.loads(sys.argv[1])
p = j["prediction"]
r = p["measured_ms"] / p["predicted_ms"]
steps = p.get("steps_measured_ms", 0)
below = "%.0f%%" % (100 * (1 - p["measured_ms"] / steps)) if steps > 0 else ""
print("| %s | %s | %s | %.1f | %.1f | %.2f | %s | %.1f | %s | %.2f / %.2f |" % (sys.argv[2], sys.argv[3], sys.argv[4],
      p["predicted_ms"], p["measured_ms"], r, "yes" if 0.75 <= r <= 1.25 else "no", steps, below,
      j["bytes_uploaded"] / 1e6, j["bytes_downloaded"] / 1e6))' "$json" "$m" "$label" "$l"
  if [ -n "${VERBOSE:-}" ]; then
    "$py" -c '
import json, sys
for s in json.loads(sys.argv[1]).get("prediction", {}).get("steps", []):
    print("    %-24s %-11s predicted %9.3f ms  measured %9.3f ms  %9d B" % (s["name"], s["device"], s["predicted_ms"], s["measured_ms"], s["bytes"]))' "$json" >&2
  fi
}

echo "| model | plan | link | predicted ms | measured ms (median) | measured/predicted | within 25% | Σ steps ms | below Σ steps | MB up / down |"
echo "|---|---|---|---:|---:|---:|:-:|---:|---:|---|"
for m in "${models[@]}"; do
  for s in "${strategies[@]}"; do
    for l in "${links[@]}"; do
      # The host-only plans take milliseconds: more runs against noise.
      n=$iters
      case "$s" in cpu | fused) n=$(( iters > 10 ? iters : 10 )) ;; esac
      cell "$m" "$s" "$l" "$n" --strategy "$s"
    done
  done
  for w in "${whatifs[@]}"; do
    plan="$tmp/$(basename "$m" .onnx)-$(basename "$w" .json).plan.json"
    if ! "$vkfuse" plan "$m" --profile "$w" --link local --json "$plan" > /dev/null; then
      echo "| $m | $(basename "$w" .json) placement | | | failed | | | | | |"
      continue
    fi
    for l in "${links[@]}"; do
      cell "$m" "$(basename "$w" .json) placement" "$l" "$iters" --plan "$plan"
    done
  done
done
echo
echo "device: $("$vkfuse" devices | head -1); host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
