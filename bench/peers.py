#!/usr/bin/env python3
"""vkfuse and its peers on the same ONNX files, input and thread count,
measured in interleaved rounds, each output checked against PyTorch's.

Usage: peers.py [options] MODEL...
  MODEL   a torchvision export (tools/export_torchvision.py): NAME.onnx with
          NAME.input.npy and NAME.output.npy (PyTorch's output) beside it; or
          just NAME, looked up in BUILD/testdata/torchvision.

Engines (--engines, default all):
  vkfuse-cpu     vkfuse, strategy cpu (Halide host kernels)
  vkfuse-gpu     vkfuse, strategy gpu (everything on the Vulkan device)
  vkfuse-fused   vkfuse's default plan
  ort            ONNX Runtime, CPU execution provider
  iree-cpu       IREE (iree-base-compiler's ONNX importer), llvm-cpu, target-cpu=host
  iree-vulkan    IREE, vulkan-spirv, its default Vulkan target, the first Vulkan device
  ncnn-cpu       ncnn, the model converted by pnnx
  ncnn-vulkan    ncnn on its first Vulkan device

The peers are installed from PyPI on first use, each into its own scratch
virtual environment under the cache folder ($VKFUSE_CACHE_DIR, default
~/.cache/vkfuse): ort-venv (onnxruntime), iree-venv (iree-base-compiler,
iree-base-runtime, onnx), ncnn-venv (ncnn, pnnx). Compiled and converted
models are kept under peers/ there. An engine that cannot be installed, or
cannot compile, convert or run a model, gets a row saying why.

Each round runs every engine on every model in turn (a fresh process per
run); an engine's latency is the median of its rounds' medians. A run that
exceeds --timeout is reported as a lower bound (">N") and not retried.
Writes OUT/peers.json and OUT/peers.csv and prints a table.
"""
import argparse
import csv
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

from peer_run import cpu_name

HERE = os.path.dirname(os.path.abspath(__file__))
# The columns of peers.csv (report.py writes the same table beside its report).
CSV_FIELDS = ["model", "engine", "median_ms", "min_ms", "runs", "rounds", "load_ms", "max_abs_err", "rel_err", "top1",
              "check", "status", "lower_bound_ms", "device"]
ENGINES = ["vkfuse-cpu", "vkfuse-gpu", "vkfuse-fused", "ort", "iree-cpu", "iree-vulkan", "ncnn-cpu", "ncnn-vulkan"]
VENVS = {  # venv folder -> (pip packages, import check)
    "ort-venv": (["onnxruntime", "numpy"], "import onnxruntime"),
    "iree-venv": (["iree-base-compiler", "iree-base-runtime", "onnx", "numpy"], "import iree.runtime, iree.compiler"),
    "ncnn-venv": (["ncnn", "pnnx", "numpy"], "import ncnn"),
}
ENGINE_VENV = {"ort": "ort-venv", "iree-cpu": "iree-venv", "iree-vulkan": "iree-venv",
               "ncnn-cpu": "ncnn-venv", "ncnn-vulkan": "ncnn-venv"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class EngineError(Exception):
    pass


def cache_dir():
    return os.environ.get("VKFUSE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "vkfuse")


def ensure_venv(name):
    """The venv's python, installing it on first use; raises EngineError if that fails."""
    path = os.path.join(cache_dir(), name)
    py = os.path.join(path, "bin", "python")
    packages, check = VENVS[name]
    if os.path.exists(py) and subprocess.run([py, "-c", check], capture_output=True).returncode == 0:
        return py
    log(f"peers: installing {' '.join(packages)} from PyPI into {path} (once) ...")
    steps = [[sys.executable, "-m", "venv", path], [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
             [py, "-m", "pip", "install", "--quiet"] + packages]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise EngineError(f"could not install {name} ({' '.join(cmd[-3:])}): {r.stderr.strip()[-300:]}")
    return py


def file_key(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def run_logged(cmd, log_path, timeout, cwd=None):
    with open(log_path, "w") as lf:
        r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd)
    if r.returncode != 0:
        tail = open(log_path).read().strip().splitlines()[-3:]
        raise EngineError(f"{os.path.basename(cmd[0])} failed (log {log_path}): {' / '.join(tail)[-300:]}")


def artifact(engine, model, shape, timeout):
    """What the peer loads: the ONNX file itself, a compiled IREE module, or ncnn's converted model."""
    if engine == "ort":
        return model
    py = ensure_venv(ENGINE_VENV[engine])
    bindir = os.path.dirname(py)
    stem = os.path.basename(model)[: -len(".onnx")]
    folder = os.path.join(cache_dir(), "peers", engine.split("-")[0], f"{stem}-{file_key(model)}")
    os.makedirs(folder, exist_ok=True)
    if engine.startswith("iree"):
        mlir = os.path.join(folder, stem + ".mlir")
        if not os.path.exists(mlir):
            run_logged([os.path.join(bindir, "iree-import-onnx"), model, "-o", mlir + ".tmp", "--opset-version", "17"],
                       os.path.join(folder, "import.log"), timeout)
            os.replace(mlir + ".tmp", mlir)
        target = engine.split("-")[1]
        vmfb = os.path.join(folder, target + ".vmfb")
        if not os.path.exists(vmfb):
            flags = (["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
                      "--iree-llvmcpu-target-cpu=host"] if target == "cpu" else ["--iree-hal-target-device=vulkan"])
            log(f"peers: compiling {stem} with IREE for {target} ...")
            run_logged([os.path.join(bindir, "iree-compile"), mlir, *flags, "-o", vmfb + ".tmp"],
                       os.path.join(folder, f"compile-{target}.log"), timeout)
            os.replace(vmfb + ".tmp", vmfb)
        return vmfb
    param = os.path.join(folder, stem + ".ncnn.param")
    if not os.path.exists(param):
        local = os.path.join(folder, stem + ".onnx")
        if not os.path.exists(local):
            os.symlink(os.path.abspath(model), local)
        log(f"peers: converting {stem} for ncnn with pnnx ...")
        run_logged([os.path.join(bindir, "pnnx"), stem + ".onnx", "inputshape=[" + ",".join(map(str, shape)) + "]"],
                   os.path.join(folder, "pnnx.log"), timeout, cwd=folder)
        if not os.path.exists(param):
            raise EngineError(f"pnnx wrote no ncnn model (log {folder}/pnnx.log)")
    return param



def run_vkfuse(a, engine, model, inp, outp, budget_reps):
    strategy = engine.split("-")[1]
    cmd = [a.cli, "run", model, "-s", strategy, "-i", inp, "-o", outp, "--json", "-q",
           "-n", str(budget_reps), "-w", str(a.warmup), "-t", str(a.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if r.returncode != 0:
        raise EngineError(r.stderr.strip()[-300:] or f"exit {r.returncode}")
    d = json.loads(r.stdout)
    lat = d["latency_ms"]
    backend = d["backend"]
    on_device = d["dispatches"] > 0
    host_segments = "0 host segments" not in backend
    where = ("CPU + Vulkan" if host_segments else "Vulkan") if on_device else "CPU"
    m = re.search(r" on gpu: (.*?), \d+ dispatches", backend)
    gpu = m.group(1) if m else ""
    device = f"{where}: " + ", ".join(x for x in [gpu if on_device else "", cpu_name() if where != "Vulkan" else "",
                                                   f"{a.threads} threads" if where != "Vulkan" else ""] if x)
    return {"device": f"{device} (vkfuse, strategy {strategy}: {d['dispatches']} dispatches)", "load_ms": d["load_ms"],
            "runs": d["iterations"], "min_ms": lat["min"], "median_ms": lat["median"], "max_ms": lat["max"]}


def run_peer(a, engine, art, inp, outp):
    py = ensure_venv(ENGINE_VENV[engine])
    cmd = [py, os.path.join(HERE, "peer_run.py"), engine, art, inp, outp, str(a.threads), str(a.warmup),
           str(a.reps), str(a.budget)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if r.returncode != 0:
        raise EngineError(r.stderr.strip().splitlines()[-1][-300:] if r.stderr.strip() else f"exit {r.returncode}")
    if not r.stdout.strip():
        raise EngineError("printed no result")
    return json.loads(r.stdout.strip().splitlines()[-1])


def accuracy(out_path, ref):
    y = np.load(out_path).astype(np.float64).reshape(-1)
    r = ref.astype(np.float64).reshape(-1)
    if y.size != r.size:
        return {"max_abs_err": None, "rel_err": None, "top1": None, "check": f"output has {y.size} values, "
                f"PyTorch's {r.size}"}
    err = float(np.max(np.abs(y - r)))
    rel = err / max(float(np.max(np.abs(r))), 1e-30)
    top1 = bool(np.argmax(y) == np.argmax(r))
    return {"max_abs_err": err, "rel_err": rel, "top1": top1, "check": "ok" if rel < 1e-2 and top1 else "MISMATCH"}


def resolve(a, m):
    path = m if m.endswith(".onnx") else os.path.join(a.build, "testdata", "torchvision", m + ".onnx")
    base = path[: -len(".onnx")]
    for f in (path, base + ".input.npy", base + ".output.npy"):
        if not os.path.exists(f):
            sys.exit(f"peers: {f} not found; export the model with its PyTorch input and output: "
                     f"python3 tools/export_torchvision.py --out DIR --models NAME")
    return path, base + ".input.npy", base + ".output.npy"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--build", default="build", help="a vkfuse build folder with cli/vkfuse (default: build)")
    ap.add_argument("--out", default=None, help="where peers.json and peers.csv go (default: BUILD/peers)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated, from the list above")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="host threads for every engine (default: all)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs before each timed series")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per round (fewer once --budget is spent)")
    ap.add_argument("--budget", type=float, default=5.0, help="seconds of timed runs per round and engine")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds one run may take, load included")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless every engine ran and matched PyTorch's output (for tests)")
    a = ap.parse_args()
    a.cli = os.path.join(a.build, "cli", "vkfuse")
    bench = os.path.join(a.build, "bench", "vkfuse_bench")
    if not os.access(a.cli, os.X_OK):
        sys.exit(f"peers: {a.cli} not found; build vkfuse first")
    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"peers: unknown engine '{e}' (engines: {', '.join(ENGINES)})")
    out = a.out or os.path.join(a.build, "peers")
    os.makedirs(out, exist_ok=True)
    scratch = os.path.join(out, "outputs")
    os.makedirs(scratch, exist_ok=True)

    models = [resolve(a, m) for m in a.models]
    results = {}  # (model, engine) -> row
    for mpath, inp, ref_path in models:
        name = os.path.basename(mpath)[: -len(".onnx")]
        shape = list(np.load(inp).shape)
        for e in engines:
            row = {"model": name, "engine": e, "device": "", "status": "ok", "rounds": [], "load_ms": None}
            results[(name, e)] = row
            if e.startswith("vkfuse"):
                continue
            try:
                row["artifact"] = artifact(e, mpath, shape, a.timeout * 4)
            except (EngineError, subprocess.TimeoutExpired, OSError) as ex:
                row["status"] = f"not run: {ex}"
                log(f"peers: {name} {e}: {row['status']}")

    xcore = []
    for rnd in range(1, a.rounds + 1):
        if os.access(bench, os.X_OK):
            r = subprocess.run([bench, "--core-latency"], capture_output=True, text=True)
            if r.returncode == 0:
                xcore.append(json.loads(r.stdout)["core_round_trip_ns"])
        for mpath, inp, ref_path in models:
            name = os.path.basename(mpath)[: -len(".onnx")]
            ref = np.load(ref_path)
            for e in engines:
                row = results[(name, e)]
                if row["status"] != "ok":
                    continue
                outp = os.path.join(scratch, f"{name}.{e}.npy")
                t0 = time.perf_counter()
                try:
                    if e.startswith("vkfuse"):
                        d = run_vkfuse(a, e, mpath, inp, outp, a.reps)
                    else:
                        d = run_peer(a, e, row["artifact"], inp, outp)
                except subprocess.TimeoutExpired:
                    row["status"] = f"no result within {a.timeout:.0f} s"
                    row["lower_bound_ms"] = a.timeout * 1e3
                    log(f"peers: round {rnd} {name} {e}: no result within {a.timeout:.0f} s (a lower bound, not retried)")
                    continue
                except (EngineError, ValueError, KeyError, OSError) as ex:  # a peer's failure is its row's, not the run's
                    row["status"] = f"failed: {ex}"
                    log(f"peers: round {rnd} {name} {e}: {row['status']}")
                    continue
                row["device"] = d["device"]
                row["load_ms"] = d["load_ms"] if row["load_ms"] is None else min(row["load_ms"], d["load_ms"])
                row["rounds"].append({"median_ms": d["median_ms"], "min_ms": d["min_ms"], "runs": d["runs"]})
                try:
                    row.update(accuracy(outp, ref))
                except (OSError, ValueError) as ex:
                    row.update({"max_abs_err": None, "rel_err": None, "top1": None, "check": f"no output: {ex}"})
                err = f"{row['rel_err']:.1e}" if row["rel_err"] is not None else row["check"]
                log(f"peers: round {rnd}/{a.rounds} {name:<14} {e:<13} {d['median_ms']:10.2f} ms median of {d['runs']:>2}"
                    f"  rel err {err}  ({time.perf_counter() - t0:.0f} s)  {d['device']}")

    rows = []
    for (name, e), row in results.items():
        rs = row.pop("rounds")
        row.pop("artifact", None)
        row["median_ms"] = statistics.median(r["median_ms"] for r in rs) if rs else None
        row["min_ms"] = min(r["min_ms"] for r in rs) if rs else None
        row["runs"] = sum(r["runs"] for r in rs)
        row["rounds"] = len(rs)
        rows.append(row)
    doc = {"date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "cpu": cpu_name(), "threads": a.threads,
           "rounds": a.rounds, "warmup": a.warmup, "reps": a.reps, "budget_s": a.budget, "timeout_s": a.timeout,
           "core_round_trip_ns": xcore, "rows": rows}
    with open(os.path.join(out, "peers.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out, "peers.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"{'model':<14} {'engine':<13} {'median ms':>10} {'rel err':>8} {'top-1':>6}  device / status")
    for r in rows:
        ms = (f"{r['median_ms']:10.2f}" if r["median_ms"] is not None else
              f"{'>' + format(r['lower_bound_ms'], '.0f'):>10}" if r.get("lower_bound_ms") else f"{'—':>10}")
        err = f"{r['rel_err']:8.1e}" if r.get("rel_err") is not None else f"{'—':>8}"
        top1 = {True: "yes", False: "NO", None: "—"}[r.get("top1")]
        print(f"{r['model']:<14} {r['engine']:<13} {ms} {err} {top1:>6}  "
              f"{r['device'] if r['status'] == 'ok' else r['status']}")
    print(f"peers: {out}/peers.json, {out}/peers.csv")
    bad = [f"{r['model']} {r['engine']}" for r in rows if r["status"] != "ok" or r.get("check") != "ok"]
    if a.check and bad:
        sys.exit(f"peers: not run or not matching PyTorch: {', '.join(bad)}")


if __name__ == "__main__":
    main()
