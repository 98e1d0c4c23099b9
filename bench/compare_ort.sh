#!/usr/bin/env bash
# bench/compare_ort.sh — time the same ONNX file in vkfuse (strategy cpu) and in
# ONNX Runtime, with the same input shape, threads, warm-up and repetitions,
# and print the vkfuse/ORT latency ratios.
#
# Usage: bench/compare_ort.sh [--build DIR] [--threads "2 1"] [--warmup 5] [--reps 30] [--ncnn] MODEL.onnx...
#   --build DIR   a vkfuse build folder holding bench/vkfuse_bench (default: build)
#   --ncnn        also time ncnn's CPU path (PyPI ncnn; models converted by pnnx)
# xcore_ns: a cache line's round trip between two threads just before the row
# (vkfuse_bench --core-latency); on a VM whose vCPUs at times sit far apart it
# says which rows ran in a slow phase.
# ONNX Runtime is installed from PyPI into a scratch virtual environment
# ($VKFUSE_ORT_VENV, default ~/.cache/vkfuse/ort-venv), once; with --ncnn, ncnn
# and its converter pnnx into $VKFUSE_NCNN_VENV (default ~/.cache/vkfuse/ncnn-venv),
# the converted models kept under ~/.cache/vkfuse/ncnn-models. torchvision
# models to compare come from tools/export_torchvision.py, e.g.
#   python3 tools/export_torchvision.py --out /tmp/tv --models resnet18,inception_v3
#   bench/compare_ort.sh /tmp/tv/resnet18.onnx /tmp/tv/inception_v3.onnx
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build"
threads="2 1"
warmup=5
reps=30
ncnn=0
models=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --ncnn) ncnn=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
if [[ ${#models[@]} -eq 0 ]]; then
  echo "usage: $0 [--build DIR] [--threads \"2 1\"] [--warmup N] [--reps N] MODEL.onnx..." >&2
  exit 2
fi
bench="$build/bench/vkfuse_bench"
if [[ ! -x "$bench" ]]; then
  echo "compare_ort.sh: $bench not found; build the vkfuse_bench target first" >&2
  exit 1
fi

venv=${VKFUSE_ORT_VENV:-$HOME/.cache/vkfuse/ort-venv}
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import onnxruntime" 2>/dev/null; then
  echo "installing onnxruntime into $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet onnxruntime numpy >&2
fi

ort_time() {  # model threads -> one JSON line
  "$venv/bin/python" - "$1" "$2" "$warmup" "$reps" <<'PY'
import json, sys, time
import numpy as np
import onnxruntime as ort
path, threads, warmup, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
t0 = time.perf_counter()
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
load_ms = (time.perf_counter() - t0) * 1e3
feeds = {}
rng = np.random.default_rng(1)
for i in sess.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
for _ in range(warmup):
    sess.run(None, feeds)
ms = []
for _ in range(reps):
    a = time.perf_counter()
    sess.run(None, feeds)
    ms.append((time.perf_counter() - a) * 1e3)
ms.sort()
print(json.dumps({"load_ms": load_ms, "min_ms": ms[0], "median_ms": ms[len(ms) // 2], "max_ms": ms[-1]}))
PY
}

ncnn_venv=${VKFUSE_NCNN_VENV:-$HOME/.cache/vkfuse/ncnn-venv}
ncnn_models=$HOME/.cache/vkfuse/ncnn-models
if [[ $ncnn == 1 ]] && { [[ ! -x "$ncnn_venv/bin/pnnx" ]] || ! "$ncnn_venv/bin/python" -c "import ncnn" 2>/dev/null; }; then
  echo "installing ncnn and pnnx into $ncnn_venv ..." >&2
  python3 -m venv "$ncnn_venv"
  "$ncnn_venv/bin/pip" install --quiet --upgrade pip >&2
  "$ncnn_venv/bin/pip" install --quiet ncnn pnnx numpy >&2
fi

ncnn_time() {  # model threads -> one JSON line; the model converted by pnnx once, for its first input's shape
  local name dir
  name=$(basename "$1" .onnx)
  dir="$ncnn_models/$name"
  if [[ ! -f "$dir/$name.ncnn.param" ]]; then
    mkdir -p "$dir" && cp "$1" "$dir/$name.onnx"
    "$venv/bin/python" -c "import onnxruntime as o, sys; s = o.InferenceSession(sys.argv[1]).get_inputs()[0].shape
print(','.join(str(d if isinstance(d, int) else 1) for d in s))" "$1" >"$dir/input_shape"
    (cd "$dir" && "$ncnn_venv/bin/pnnx" "$name.onnx" "inputshape=[$(cat input_shape)]" >pnnx.log 2>&1) || {
      echo "compare_ort.sh: pnnx could not convert $1 (see $dir/pnnx.log)" >&2
      echo '{}'
      return
    }
  fi
  "$ncnn_venv/bin/python" - "$dir/$name.ncnn.param" "$dir/$name.ncnn.bin" "$2" "$warmup" "$reps" \
    "$(cut -d, -f2- "$dir/input_shape")" <<'PY'
import json, sys, time
import numpy as np
import ncnn
param, weights, threads, warmup, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
net = ncnn.Net()
net.opt.use_vulkan_compute = False
net.opt.num_threads = threads
t0 = time.perf_counter()
net.load_param(param)
net.load_model(weights)
load_ms = (time.perf_counter() - t0) * 1e3
# pnnx names a single input in0 and output out0; ncnn takes one image (C, H, W).
x = np.random.default_rng(1).standard_normal([int(d) for d in sys.argv[6].split(",")]).astype(np.float32)
def run():
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x).clone())
    ex.extract("out0")
for _ in range(warmup):
    run()
ms = []
for _ in range(reps):
    a = time.perf_counter()
    run()
    ms.append((time.perf_counter() - a) * 1e3)
ms.sort()
print(json.dumps({"load_ms": load_ms, "min_ms": ms[0], "median_ms": ms[len(ms) // 2], "max_ms": ms[-1]}))
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; warm-up $warmup, $reps timed runs, medians"
if [[ $ncnn == 1 ]]; then
  printf "%-28s %7s %12s %12s %8s %12s %8s %12s %12s %8s\n" model threads vkfuse_ms ort_ms ratio ncnn_ms vk/ncnn vk_load_ms ort_load_ms xcore_ns
else
  printf "%-28s %7s %12s %12s %8s %12s %12s %8s\n" model threads vkfuse_ms ort_ms ratio vk_load_ms ort_load_ms xcore_ns
fi
for m in "${models[@]}"; do
  for t in $threads; do
    xc=$("$bench" --core-latency)
    vk=$("$bench" --median="$m" --threads="$t" --warmup="$warmup" --reps="$reps")
    ort=$(ort_time "$m" "$t")
    nc='{}'
    [[ $ncnn == 1 ]] && nc=$(ncnn_time "$m" "$t")
    python3 - "$m" "$t" "$vk" "$ort" "$nc" "$xc" <<'PY'
import json, os, sys
m, t, vk, ort, nc = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
xc = json.loads(sys.argv[6])["core_round_trip_ns"]
cols = "%-28s %7s %12.2f %12.2f %8.2f" % (os.path.basename(m), t, vk["median_ms"], ort["median_ms"],
                                           vk["median_ms"] / ort["median_ms"])
if nc != "{}":
    nc = json.loads(nc)
    cols += " %12.2f %8.2f" % (nc["median_ms"], vk["median_ms"] / nc["median_ms"])
print(cols + " %12.1f %12.1f %8.0f" % (vk["load_ms"], ort["load_ms"], xc))
PY
  done
done
