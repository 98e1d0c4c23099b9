#!/usr/bin/env bash
# The one-command real-GPU check (issue 12, deliverable 8): the Vulkan GPU
# tests, bench_vulkan's per-kernel GFLOP/s, `vkfuse run` of the built-in
# ResNet-18 and Inception v3 with --strategy gpu and fused (cpu beside them as
# the baseline and the output oracle), `vkfuse devices`, `vkfuse calibrate`,
# the prediction table and the strategy tables; then a Markdown summary to
# paste into the README. On lavapipe here (2 cores) it takes ≈ 3.5 minutes.
#
# It runs from the bundle tools/gpu-bundle.sh makes on the build machine,
# because the lent GPU machine (the `device` tool's bare NVIDIA H200 box: no
# network, no Halide/glslang/protobuf/GoogleTest, no Vulkan loader) cannot
# build vkfuse. In a session lent that machine:
#
#   1. Here (≈ 15-20 min on 2 cores the first time: the multi-target build):
#        tools/gpu-bundle.sh            # -> build-gpu-bundle/ (checks it fits in 64 MiB)
#   2. One device call (the machine's start ≈ 1-2 min, the ~36 MiB transfer,
#      then a few minutes of run - ≈ 3.5 on lavapipe here, so likely less
#      there; the check holds itself to GPU_CHECK_BUDGET_S=420 s, cutting
#      the last steps if need be, so timeout_s=480 leaves room):
#        run(command="bash tools/gpu-check.sh build-gpu-bundle",
#            carry=["build-gpu-bundle"], timeout_s=480)
#      then give_back unless rerunning at once.
#   3. The summary is the end of the call's output_tail, and
#      $OUT/summary.md under files_at; gpu-check.log (everything),
#      profiles.json (calibration) and details.tar.gz (each step's log, the
#      run JSONs, traces, gtest reports) come back beside it. Paste the
#      summary into the README's "Real-GPU check" results.
#
# Here, against lavapipe (the same script; GPU_CHECK_QUICK=1 cuts it to ≈ 2
# minutes: ResNet-18 only, fewer runs, smaller tables):
#   GPU_BUILD_DIR=build-dev tools/gpu-bundle.sh && GPU_CHECK_QUICK=1 tools/gpu-check.sh
#
# Usage: tools/gpu-check.sh [BUNDLE]      (default build-gpu-bundle)
# The bench_vulkan steps include a sweep of kernel shapes on the first model
# and ResNet-50 (VKFUSE_CONV_BLOCK=OCBxOPX, VKFUSE_CONV_FILL=N,
# VKFUSE_WORKGROUP=N, VKFUSE_CONV_TILED=0|1; a GPU's default: 8x4 (4x4 over 9
# taps), 32768, 64, register-blocked 1x1s) for issue 17's per-device tuning.
#
# Environment: OUT (results folder; the device tool sets it, default
#   build-gpu-check/), GPU_CHECK_QUICK=1, GPU_CHECK_BUDGET_S (default 420),
#   GPU_CHECK_MODELS (default "resnet18 inception_v3"; with the tables),
#   GPU_CHECK_EXTRA_MODELS (runs only; default "resnet50 mobilenet_v2"), GPU_CHECK_SHAPES
#   (the sweep's NAME:VAR=VALUE,... list), GPU_CHECK_SHAPE_MODELS (default:
#   the first model and resnet50; quick: the first), PYTHON,
#   GPU_CHECK_KEEP=1 (keep the work folder), GPU_CHECK_MODE=system|compat|glibc
#   (how the binaries find their libraries; default: the first that starts),
#   GPU_CHECK_UNPACK_LOADER=1 (unpack the loader .debs into / even off the
#   GPU machine, as root), GPU_CHECK_SCRIPT=FILE (a device experiment: the
#   setup, `vkfuse devices`, then only `bash FILE`, with the bundle's
#   binaries - vkfuse, bench_vulkan, the tests - first on PATH and $OUT to
#   write results into; within the budget), GPU_CHECK_SKIP (steps to skip,
#   by name prefix, e.g. "test- strategy-table" when device time is short).
# Every step runs under a time limit and a failing step does not stop the
# others: the summary always comes out, and says which steps failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin  # ldconfig, where a plain user's PATH lacks them
root=$PWD
bundle_arg=${1:-build-gpu-bundle}
[[ -d $bundle_arg/bin ]] || { echo "gpu-check: no bundle at '$bundle_arg' (make one with tools/gpu-bundle.sh)" >&2; exit 2; }
B=$(cd "$bundle_arg" && pwd)
OUT=${OUT:-$root/build-gpu-check}
mkdir -p "$OUT"
rm -f "$OUT"/{summary.md,gpu-check.log,profiles.json,details.tar.gz}
W=$(mktemp -d "${TMPDIR:-/tmp}/vkfuse-gpu-check.XXXXXX")
mkdir -p "$W"/{bin,logs,out,trace,tests}
quick=${GPU_CHECK_QUICK:-0}
budget=${GPU_CHECK_BUDGET_S:-420}
if [[ $quick == 1 ]]; then
  read -r -a models <<<"${GPU_CHECK_MODELS:-resnet18}"
  iters=3 warmup=1 bench_iters=3 table_iters=1
  extra_default=""
  shapes="fill0:VKFUSE_CONV_FILL=0 tiled:VKFUSE_CONV_TILED=1"
  shape_models_default=${models[0]}
  pred_strategies="gpu fused" pred_links="measured"
  strat_strategies="cpu gpu fused" strat_links="measured edge"
else
  read -r -a models <<<"${GPU_CHECK_MODELS:-resnet18 inception_v3}"
  iters=20 warmup=3 bench_iters=20 table_iters=5
  extra_default="resnet50 mobilenet_v2"
  # Kernel shapes to time besides a GPU's default (8x4 register block, 4x4
  # over 9 taps, layers split over input channels up to 32768 invocations,
  # workgroup 64, register-blocked 1x1s), on the first model and ResNet-50
  # (the most 1x1s), as NAME:VAR=VALUE,...: issue 17's tuning, measured. The
  # H200 runs of 2026-12-04 timed fill 8k/128k, 4x2 and workgroups 32/128
  # (all slower); the 1x1 GEMM tiled through shared memory is new.
  shapes="default:VKFUSE_CONV_TILED=0 tiled:VKFUSE_CONV_TILED=1 tiled256:VKFUSE_CONV_TILED=1,VKFUSE_WORKGROUP=256"
  shapes+=" fill0:VKFUSE_CONV_FILL=0 4x4:VKFUSE_CONV_BLOCK=4x4"
  shape_models_default="${models[0]} resnet50"
  pred_strategies="cpu gpu naive fused" pred_links="measured edge"
  strat_strategies="cpu gpu naive fused passes fuse-all per-op" strat_links="measured local edge"
fi
extra_models=${GPU_CHECK_EXTRA_MODELS-$extra_default}
# Calibrated profiles and the pipeline cache for this check alone (a fresh
# calibration on this machine, not one carried from elsewhere); the tests get
# their own, as under ctest.
export VKFUSE_CACHE_DIR=$W/cache
t0=$SECONDS

# A Python for JSON and .npy: the GPU machine's python3 has numpy; here the
# first python3 on PATH may be a pyenv shim without it.
pick_python() {
  local p
  for p in ${PYTHON:-} python3 /usr/bin/python3; do
    command -v "$p" >/dev/null 2>&1 && "$p" -c 'import numpy' 2>/dev/null && { echo "$p"; return; }
  done
  for p in ${PYTHON:-} python3 /usr/bin/python3; do command -v "$p" >/dev/null 2>&1 && { echo "$p"; return; }; done
  echo false
}
PY=$(pick_python)

# step [-q] NAME SECONDS CMD...: runs CMD under a time limit (capped by what is
# left of the budget), its output into logs/NAME.log (and on the console
# unless -q); records rc and seconds in steps.tsv. Never stops the check.
step() {
  local show=1
  [[ $1 == -q ]] && { show=0; shift; }
  local name=$1 limit=$2
  shift 2
  local left=$((budget - (SECONDS - t0))) skip
  for skip in ${GPU_CHECK_SKIP:-}; do
    if [[ $name == "$skip"* ]]; then
      echo "== $name: skipped (GPU_CHECK_SKIP)"
      printf '%s\tskipped\t0\n' "$name" >>"$W/steps.tsv"
      return 0
    fi
  done
  if ((left < 15)); then
    echo "== $name: skipped (time budget spent)"
    printf '%s\tskipped\t0\n' "$name" >>"$W/steps.tsv"
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "== $name (limit ${limit}s): $*"
  local s=$SECONDS rc
  set +e
  if ((show)); then
    timeout -k 10 "$limit" "$@" </dev/null 2>&1 | tee "$W/logs/$name.log"
    rc=${PIPESTATUS[0]}
  else
    timeout -k 10 "$limit" "$@" </dev/null >"$W/logs/$name.log" 2>&1
    rc=$?
    ((rc == 0)) || tail -5 "$W/logs/$name.log"
  fi
  set -e
  local what=ok
  ((rc == 124 || rc == 137)) && what=timeout
  ((rc != 0 && rc != 124 && rc != 137)) && what="failed($rc)"
  printf '%s\t%s\t%d\n' "$name" "$what" $((SECONDS - s)) >>"$W/steps.tsv"
  echo "-- $name: $what in $((SECONDS - s)) s"
}

# --- Setup: the Vulkan loader, the NVIDIA driver's ICD, and how our binaries
# find their libraries.

# The device README's recipe: the loader and GL dispatch .debs unpacked into /
# (the only packages that may go there) where the machine has no libvulkan.
# Into / only on the GPU machine (the NVIDIA driver's folder is there) or when
# asked; elsewhere into a private folder on LD_LIBRARY_PATH.
setup_loader() {
  local cache d
  cache=$(ldconfig -p 2>/dev/null || true)  # not `| grep -q`: under pipefail its early exit fails the pipe
  # The loader, and the GL dispatch library that the NVIDIA ICD (libGLX_nvidia) needs.
  if grep 'libvulkan\.so\.1' <<<"$cache" >/dev/null && grep 'libGLdispatch\.so\.0' <<<"$cache" >/dev/null; then
    echo "Vulkan loader: the machine's own ($(grep -m1 'libvulkan\.so\.1' <<<"$cache" | awk '{print $NF}'))"
  elif ! compgen -G "$B/debs/*.deb" >/dev/null || ! command -v dpkg >/dev/null; then
    echo "Vulkan loader: none on this machine, and no .debs in the bundle or no dpkg to unpack them"
  elif [[ $(id -u) == 0 && ( -d /usr/local/nvidia || ${GPU_CHECK_UNPACK_LOADER:-0} == 1 ) ]]; then
    for f in "$B"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "Vulkan loader: unpacked into / from the bundle's .debs ($(cd "$B/debs" && echo *.deb))"
  else
    for f in "$B"/debs/*.deb; do dpkg -x "$f" "$W/loader"; done
    export LD_LIBRARY_PATH=$W/loader/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "Vulkan loader: the bundle's, unpacked into $W/loader"
  fi
  # The NVIDIA libraries (libGLX_nvidia, which the ICD names) where the
  # image keeps them, in case the linker cache lacks them.
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [[ -d $d ]] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
  done
  return 0
}

# Wrappers in $W/bin run each bundled binary with the bundle's libraries, in
# the first of three modes that starts: the machine's glibc and libstdc++
# (preferred: the driver loaded into the process was built against them), the
# bundle's libstdc++ too, or the bundle's glibc through its own dynamic loader.
unpack_binaries() {  # the bundle's binaries are gzipped (to fit what may travel)
  local f
  mkdir -p "$W/exe"
  for f in "$B"/bin/*; do
    case "$f" in
      *.gz) gzip -dc "$f" >"$W/exe/$(basename "$f" .gz)" ;;
      *) cp "$f" "$W/exe/" ;;
    esac
  done
  chmod +x "$W"/exe/*
}
make_wrappers() {
  local mode=$1 b name
  # shellcheck disable=SC2016  # the wrappers expand $LD_LIBRARY_PATH and $@ when they run
  for b in "$W"/exe/*; do
    name=$(basename "$b")
    case "$mode" in
      system) printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$B/lib" "$b" ;;
      compat) printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$B/lib:$B/compat" "$b" ;;
      glibc) printf '#!/bin/sh\nexec "%s" --library-path "%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "%s" "$@"\n' \
        "$B/glibc/ld-linux-x86-64.so.2" "$B/lib:$B/compat:$B/glibc" "$b" ;;
    esac >"$W/bin/$name"
    chmod +x "$W/bin/$name"
  done
}
choose_mode() {
  local mode
  # GPU_CHECK_MODE forces one (to try the fallbacks here, or to pin one there).
  for mode in ${GPU_CHECK_MODE:-system compat glibc}; do
    make_wrappers "$mode"
    if "$W/bin/vkfuse" --help >/dev/null 2>"$W/logs/start-$mode.log"; then
      echo "libraries: $mode mode (bundle lib/$([[ $mode != system ]] && echo ", compat/")$([[ $mode == glibc ]] && echo ", glibc/ and its ld.so"))"
      echo "$mode" >"$W/mode"
      return 0
    fi
    echo "libraries: $mode mode does not start: $(head -c 300 "$W/logs/start-$mode.log")"
  done
  echo "gpu-check: vkfuse does not start in any mode; ldd says:"
  LD_LIBRARY_PATH="$B/lib:$B/compat" ldd "$W/exe/vkfuse" || true
  return 1
}

# The NVIDIA ICD: the image keeps its manifest under /usr/local/nvidia, where
# the loader does not look; point the loader at it if no GPU shows up.
gpu_devices() {  # the number of non-CPU Vulkan devices vkfuse sees
  "$W/bin/vkfuse" devices --json 2>/dev/null | "$PY" -c '
import json, sys
try: d = json.load(sys.stdin)
except Exception: d = []
print(sum(1 for x in d if x.get("type") != "cpu"))' 2>/dev/null || echo 0
}
setup_icd() {
  local n
  n=$(gpu_devices)
  if [[ $n == 0 ]]; then
    local icd egl
    icd=$(ls /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd*.json /usr/share/vulkan/icd.d/nvidia_icd*.json \
      /etc/vulkan/icd.d/nvidia_icd*.json 2>/dev/null | head -1 || true)
    egl=$(ls /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json 2>/dev/null || true)
    if [[ -n $icd ]]; then
      export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd  # new and old loaders' names
      [[ -n $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
      n=$(gpu_devices)
      echo "Vulkan ICD: $icd ($n GPU device(s) with it)"
    fi
  fi
  if [[ $n == 0 ]]; then
    echo "Vulkan ICD: no GPU device found; the check runs on what there is (lavapipe or the host alone)"
    if command -v nvidia-smi >/dev/null; then
      echo "WARNING: nvidia-smi sees a GPU but Vulkan does not; the loader says:"
      VK_LOADER_DEBUG=error,warn "$W/bin/vkfuse" devices 2>&1 | head -20 || true
    fi
  fi
  echo "$n" >"$W/gpus"
}

main() {
  echo "gpu-check: bundle $B ($(head -1 "$B/MANIFEST" 2>/dev/null)), results in $OUT, budget ${budget}s$([[ $quick == 1 ]] && echo ', quick')"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}'), python $PY"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >"$W/logs/nvidia-smi.log" 2>&1 || true
    echo "nvidia-smi: $(head -1 "$W/logs/nvidia-smi.log")"
  fi
  setup_loader
  unpack_binaries
  choose_mode || return 1
  setup_icd

  local v=$W/bin/vkfuse m s
  step devices 30 "$v" devices
  if [[ -n ${GPU_CHECK_SCRIPT:-} ]]; then
    # A device experiment instead of the check: the script runs with the
    # wrapped binaries first on PATH and $OUT to write into.
    PATH=$W/bin:$PATH OUT=$OUT step script "$budget" bash "$GPU_CHECK_SCRIPT"
    echo "gpu-check: done in $((SECONDS - t0)) s (GPU_CHECK_SCRIPT $GPU_CHECK_SCRIPT only)"
    return 0
  fi
  step -q devices-json 30 "$v" devices --json
  # Calibrate first: the cost-aware strategies and both tables plan with it.
  # shellcheck disable=SC2016  # expanded by the sh that step runs
  step -q calibrate 150 sh -c '"$0" calibrate --json >"$1"' "$v" "$W/profiles.json"

  # The models: cpu first (the baseline, and the oracle the GPU outputs are
  # compared against), then gpu in fp32 and fp16 (issue 17's targets) and
  # fused; then ResNet-50 and MobileNet v2 with gpu in fp32 and fp16.
  for m in "${models[@]}"; do
    for s in cpu gpu gpu_fp16 fused; do
      # shellcheck disable=SC2046  # --fp16 or nothing
      step -q "run-$m-$s" 120 "$v" run "$m" --strategy "${s%_fp16}" $([[ $s == *_fp16 ]] && echo --fp16) \
        --iters "$iters" --warmup "$warmup" --json -q --output "$W/out/$m-$s.npy" --trace "$W/trace/$m-$s.json"
    done
  done
  for m in ${extra_models:-}; do
    for s in cpu gpu gpu_fp16; do
      # shellcheck disable=SC2046  # --fp16 or nothing
      step -q "run-$m-$s" 120 "$v" run "$m" --strategy "${s%_fp16}" $([[ $s == *_fp16 ]] && echo --fp16) \
        --iters "$iters" --warmup "$warmup" --json -q --output "$W/out/$m-$s.npy"
    done
  done

  # The GPU tests, as ctest would run them (less its build-tree paths).
  local name bin args
  while IFS=$'\t' read -r -u 3 name bin args; do
    # shellcheck disable=SC2086  # args are ctest's, one word each
    VKFUSE_CACHE_DIR=$W/cache-tests step "test-$name" 240 "$W/bin/$bin" $args --gtest_brief=1 \
      --gtest_output="json:$W/tests/$name.json"
  done 3<"$B/tests.tsv"

  for m in "${models[@]}"; do
    step "bench_vulkan-$m" 120 "$W/bin/bench_vulkan" "$m" "$bench_iters" --profile
  done

  local shape sm
  for sm in ${GPU_CHECK_SHAPE_MODELS:-$shape_models_default}; do
    for shape in ${GPU_CHECK_SHAPES:-$shapes}; do
      # shellcheck disable=SC2046  # one VAR=VALUE word each
      (export $(tr ',' ' ' <<<"${shape#*:}") && step -q "shape-$sm-${shape%%:*}" 60 "$W/bin/bench_vulkan" "$sm" 10 --profile)
    done
  done

  STRATEGIES=$pred_strategies LINKS=$pred_links WHATIF= PYTHON=$PY \
    step prediction-table 200 bash bench/prediction_table.sh "$table_iters" "$v" "${models[@]}"
  # Last, as the least needed: cut first if the budget runs out.
  for m in "${models[@]}"; do
    STRATEGIES=$strat_strategies LINKS=$strat_links PYTHON=$PY \
      step "strategy-table-$m" 150 bash bench/strategy_table.sh "$m" "$table_iters" "$v"
  done

  summarize
}

# The Markdown summary: from the step logs, the run JSONs, the gtest reports.
summarize() {
  cp "$W/profiles.json" "$OUT/profiles.json" 2>/dev/null || true
  "$PY" - "$W" "$B" "$OUT/summary.md" "$quick" <<'EOF' || echo "gpu-check: the summary failed (python: $PY)"
import glob, json, os, sys, traceback
W, B, out, quick = sys.argv[1:5]

def read(p, default=""):
    try:
        with open(p) as f: return f.read()
    except OSError: return default

def last_json(p):
    """The last line of a step's log that parses as JSON (errors may precede it)."""
    for line in reversed(read(p).splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try: return json.loads(line)
            except ValueError: pass
    try: return json.loads(read(p))
    except ValueError: return None

steps = [l.split("\t") for l in read(f"{W}/steps.tsv").splitlines() if l.count("\t") == 2]
status = {s[0]: s[1] for s in steps}
L = []

def header():
    devs = last_json(f"{W}/logs/devices-json.log") or []
    dev = devs[0] if devs else {}
    L.append(f"- device: **{dev.get('name', 'no Vulkan device')}** ({dev.get('type', '-')}, Vulkan {dev.get('api_version', '-')}, "
             f"driver {dev.get('driver', '-')}, {dev.get('device_local_bytes', 0) / 2**30:.0f} GiB device-local, "
             f"subgroup {dev.get('subgroup_size', '-')}, fp16 {'yes' if dev.get('fp16') else 'no'})")
    smi = read(f"{W}/logs/nvidia-smi.log").strip().splitlines()
    if smi: L.append(f"- nvidia-smi: {smi[0]}")
    if read(f"{W}/gpus").strip() == "0":
        L.append("- **WARNING: no GPU Vulkan device was found: these are not GPU numbers**")
    cpu = next((l.split(":", 1)[1].strip() for l in read("/proc/cpuinfo").splitlines() if l.startswith("model name")), "?")
    L.append(f"- host: {cpu}, {os.cpu_count()} cores; bundle libraries in {read(f'{W}/mode').strip()} mode")

def build():
    manifest = read(f"{B}/MANIFEST").splitlines()
    opts = {}
    for l in manifest:
        if l.startswith("option") and "=" in l:
            k, v = l.split(None, 1)[1].split("=", 1)
            opts[k.split(":")[0]] = v
    if opts.get("VKFUSE_HALIDE_MULTITARGET") == "OFF":
        halide = f"single-target Halide kernels ({opts.get('VKFUSE_HALIDE_TARGET', '?')})"
    else:
        halide = "multi-target Halide kernels (" + ", ".join(
            t.split("-")[2] if t.count("-") > 2 else t for t in opts.get("VKFUSE_HALIDE_TARGETS", "?").split(";")) + ")"
    if manifest: L.append(f"- build: {manifest[0].split(None, 1)[-1]}, {opts.get('CMAKE_BUILD_TYPE', '?')}, {halide}")

def calibration():
    """The calibrated profiles (their schema may change: whatever of it is there)."""
    try: prof = json.loads(read(f"{W}/profiles.json", "{}") or "{}")
    except ValueError: prof = {}
    parts = []
    link = prof.get("link") or {}
    try:
        up, down = link["host_to_device"], link["device_to_host"]
        parts.append(f"link up {up['bandwidth_mbps']:.0f} MB/s + {up['latency_us']:.0f} us, "
                     f"down {down['bandwidth_mbps']:.0f} MB/s + {down['latency_us']:.0f} us")
    except (KeyError, TypeError): pass
    for side in ("accelerator", "host"):
        p = prof.get(side) or {}
        try: g = max(t["gflops"] for t in p["op_classes"]["direct_conv"]["throughput"])
        except (KeyError, TypeError, ValueError): g = None
        num = lambda k: isinstance(p.get(k), (int, float))
        bits = [f"best direct conv {g:.0f} GFLOP/s" if g else None,
                f"submit {p['submit_us']:.0f} us" if num("submit_us") and side == "accelerator" else None,
                f"dispatch {p['dispatch_us']:.1f} us" if num("dispatch_us") else None,
                f"fp16 factor {p['fp16_factor']:.2f}" if num("fp16_factor") and side == "accelerator" else None,
                f"others took {100 * p['others_cpu_share']:.0f}% of the CPUs" if num("others_cpu_share") and p["others_cpu_share"] > 0.2 else None,
                ("kernels tuned: " + ", ".join(f"{k} {v}" for k, v in p["kernel_shape"].items()) if p.get("kernel_shape")
                 else "kernels: the device type's defaults") if side == "accelerator" and p else None]
        bits = [b for b in bits if b]
        if bits: parts.append(f"{side} ({p.get('name', '?')}): " + ", ".join(bits))
    if parts: L.append("- calibrated (`vkfuse calibrate`): " + "; ".join(parts))

def plan_of(backend):
    """The runner's backend line without the plan's name and the link (the calibration line has it)."""
    b = backend.split("; link ")[0]
    return b.split(": ", 1)[1] if b.startswith("plan '") and ": " in b else b

def runs():
    try: import numpy as np
    except ImportError: np = None
    L.append("| model | strategy | median ms | min ms | predicted ms | load ms | pipelines ms | first result ms | dispatches | MB up | MB down | error vs cpu | plan |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, what, _ in steps:
        if not name.startswith("run-"): continue
        model, strategy = name[4:].rsplit("-", 1)
        j = last_json(f"{W}/logs/{name}.log")
        if not isinstance(j, dict):
            L.append(f"| {model} | {strategy} | {what} | | | | | | | | | | |")
            continue
        err = "-"
        if np is not None and strategy != "cpu":
            try:  # max |difference| over max |cpu output|, and whether the top class agrees
                a = np.load(f"{W}/out/{model}-{strategy}.npy").astype(np.float64)
                c = np.load(f"{W}/out/{model}-cpu.npy").astype(np.float64)
                err = f"{np.abs(a - c).max() / max(np.abs(c).max(), 1e-30):.1e}"
                if a.argmax() != c.argmax(): err += " (top-1 differs)"
            except Exception:
                err = "n/a"
        lat = j.get("latency_ms", {})
        L.append(f"| {model} | {strategy} | {lat.get('median', 0):.2f} | {lat.get('min', 0):.2f} | {j.get('predicted_ms', 0):.2f} | "
                 f"{j.get('load_ms', 0):.0f} | {j.get('load_phases_ms', {}).get('pipelines', 0):.0f} | "
                 f"{(format(j['first_result_ms'], '.0f') + ' (host)') if j.get('first_result_ms') else '-'} | {j.get('dispatches', 0)} | {j.get('bytes_uploaded', 0) / 1e6:.2f} | "
                 f"{j.get('bytes_downloaded', 0) / 1e6:.3f} | {err} | {plan_of(j.get('backend', ''))} |")
    L.append("")
    L.append("(error vs cpu: max |output - cpu output| / max |cpu output|; load ms includes compiling the shaders "
             "for the first load of each model, and calibration for the first cost-aware plan; pipelines ms: "
             "creating the GPU pipelines, where a driver like NVIDIA's compiles them; first result ms: from the "
             "host while the default plan's GPU part was built in the background)")

def tests():
    out = []
    for name, what, secs in steps:
        if not name.startswith("test-"): continue
        r = json.loads(read(f"{W}/tests/{name[5:]}.json", "{}") or "{}")
        n, fails = r.get("tests", 0), r.get("failures", 0)
        skipped = sum(1 for s in r.get("testsuites", []) for t in s.get("testsuite", []) if t.get("result") == "SKIPPED")
        out.append(f"{name[5:]} {what}: {n - fails - skipped} passed, {fails} failed, {skipped} skipped ({secs} s)")
    if out: L.append("- tests: " + "; ".join(out))

def by_kernel(lines, top=4):
    """bench_vulkan --profile's per-kernel lines: time and GFLOP/s summed by kernel variant, slowest first."""
    by = {}
    for l in lines:
        f = l.split()
        if l.startswith("  ") and len(f) >= 5 and f[-1] == "GFLOP/s" and f[-3] == "ms":
            try: ms, g = float(f[-4]), float(f[-2])
            except ValueError: continue
            v = by.setdefault(f[0], [0.0, 0.0, 0])
            v[0] += ms; v[1] += ms * g * 1e6; v[2] += 1
    order = sorted(by.items(), key=lambda kv: -kv[1][0])[:top]
    return ", ".join(f"{k} x{n} {ms:.2f} ms {fl / ms / 1e6 if ms else 0:.0f} GFLOP/s" for k, (ms, fl, n) in order)

def bench():
    """bench_vulkan: its headline lines, and kernel time and GFLOP/s by kernel variant."""
    for name, what, _ in steps:
        if not name.startswith("bench_vulkan-"): continue
        lines = read(f"{W}/logs/{name}.log").splitlines()
        pick = lambda p: next((l for l in lines if l.startswith(p)), "").strip()
        kern = by_kernel(lines)
        L.append(f"- bench_vulkan {name[13:]} [{what}]: {pick('latency ms')}; {pick('dispatches')}; {pick('kernel time total')}; {pick('load ms')}; {pick('pipelines created')}"
                 + (f"; by kernel: {kern}" if kern else ""))

def shapes():
    """The kernel-shape sweep: one line per shape (tools/gpu-check.sh's list)."""
    for name, what, _ in steps:
        if not name.startswith("shape-"): continue
        lines = read(f"{W}/logs/{name}.log").splitlines()
        pick = lambda p: next((l for l in lines if l.startswith(p)), "").strip()
        L.append(f"- {name[6:].replace('-', ', shape ', 1)} [{what}]: {pick('latency ms')}; {pick('kernel time total')}; "
                 f"{pick('pipelines created')}; by kernel: {by_kernel(lines, 3)}")

def tables():
    names = [("prediction-table", "Predicted vs measured (`bench/prediction_table.sh`)")]
    names += [(n, f"Strategies x links, {n[len('strategy-table-'):]}, measured (predicted) ms (`bench/strategy_table.sh`)")
              for n, _, _ in steps if n.startswith("strategy-table-")]
    for name, title in names:
        rows = [l for l in read(f"{W}/logs/{name}.log").splitlines() if l.startswith("|")]
        L.append("")
        L.append(f"{title} [{status.get(name, 'not run')}]:")
        L.append("")
        L.extend(rows)

L.append("### Real-GPU check" + (" (quick)" if quick == "1" else ""))
L.append("")
for section in (header, build, calibration, tests, bench, shapes):
    try: section()
    except Exception: L.append(f"- ({section.__name__}: {traceback.format_exc().splitlines()[-1]})")
L.append("")
for section in (runs, tables):
    try: section()
    except Exception: L.append(f"({section.__name__}: {traceback.format_exc().splitlines()[-1]})")
L.append("")
bad = [f"{n} {w}" for n, w, _ in steps if w != "ok"]
L.append("steps: " + (", ".join(bad) if bad else "all ok") + f"; {sum(int(s[2]) for s in steps)} s in all")
text = "\n".join(L) + "\n"
with open(out, "w") as f: f.write(text)
print("\n" + "=" * 25 + " summary (also in " + out + ") " + "=" * 25 + "\n")
print(text)
EOF
  # Everything else in one archive: $OUT brings back at most 8 files.
  tar -czf "$OUT/details.tar.gz" -C "$W" logs tests trace steps.tsv 2>/dev/null || true
  echo "gpu-check: done in $((SECONDS - t0)) s; $(ls "$OUT" | tr '\n' ' ')in $OUT"
}

set -o pipefail
rc=0
# (Under `||`, errexit is off inside main: each step's failure is recorded by
# step(), and the few things that must hold are checked explicitly.)
main 2>&1 | tee "$OUT/gpu-check.log" || rc=$?
if [[ ${GPU_CHECK_KEEP:-0} == 1 ]]; then echo "gpu-check: kept $W"; else rm -rf "$W"; fi
exit "$rc"
