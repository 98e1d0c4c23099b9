#!/usr/bin/env bash
# Predicted against measured latency of each plan, per model x strategy x link,
# as a Markdown table: how well the cost model (after `vkfuse calibrate`)
# predicts this machine. The target is |measured/predicted - 1| <= 25%.
# Usage: bench/prediction_table.sh [ITERS] [VKFUSE] [MODELS...]
#   ITERS   timed runs per cell (default 5; the lavapipe strategies take
#           seconds; cpu and fused get at least 10)
#   VKFUSE  the runner (default ./build/cli/vkfuse)
#   MODELS  built-in names or ONNX files (default: resnet18 inception_v3)
# Environment: STRATEGIES, LINKS (space-separated) override the defaults
# "cpu gpu naive fused" and "measured edge"; PYTHON the interpreter (default
# /usr/bin/python3, else the python3 on PATH: a GPU machine may have only that).
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

echo "| model | strategy | link | predicted ms | measured ms (median) | measured/predicted | within 25% |"
echo "|---|---|---|---:|---:|---:|:-:|"
for m in "${models[@]}"; do
  for s in "${strategies[@]}"; do
    for l in "${links[@]}"; do
      # The host-only plans take milliseconds: more runs against noise.
      n=$iters
      case "$s" in cpu | fused) n=$(( iters > 10 ? iters : 10 )) ;; esac
      # A cell that fails (the runner's error is on stderr) does not end the table.
      if ! json=$("$vkfuse" run "$m" --strategy "$s" --link "$l" --iters "$n" --warmup 1 --json -q); then
        echo "| $m | $s | $l | | failed | | no |"
        continue
      fi
      "$py" -c '
import json, sys
j = json.loads(sys.argv[1])
# Runners before the "prediction" report: the same numbers from the old fields.
p = j.get("prediction", {"predicted_ms": j["predicted_ms"], "measured_ms": j["latency_ms"]["median"]})
r = p["measured_ms"] / p["predicted_ms"]
print("| %s | %s | %s | %.1f | %.1f | %.2f | %s |" % (sys.argv[2], sys.argv[3], sys.argv[4], p["predicted_ms"],
      p["measured_ms"], r, "yes" if 0.75 <= r <= 1.25 else "no"))' "$json" "$m" "$s" "$l"
      if [ -n "${VERBOSE:-}" ]; then
        "$py" -c '
import json, sys
for s in json.loads(sys.argv[1]).get("prediction", {}).get("steps", []):
    print("    %-24s %-11s predicted %9.3f ms  measured %9.3f ms  %9d B" % (s["name"], s["device"], s["predicted_ms"], s["measured_ms"], s["bytes"]))' "$json" >&2
      fi
    done
  done
done
echo
echo "device: $("$vkfuse" devices | head -1); host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
