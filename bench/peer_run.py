#!/usr/bin/env python3
"""Times one peer runtime on one model: load it, run it on the given input,
write its output, and print one JSON line. Run by bench/peers.py with the
peer's own virtual environment's python; needs only numpy and the peer.

Usage: peer_run.py ENGINE ARTIFACT INPUT.npy OUTPUT.npy THREADS WARMUP REPS BUDGET_S
  ENGINE    ort | iree-cpu | iree-vulkan | ncnn-cpu | ncnn-vulkan
  ARTIFACT  the .onnx file (ort), the compiled .vmfb (iree-*), or the
            .ncnn.param beside its .ncnn.bin (ncnn-*)
  WARMUP untimed runs, then REPS timed runs, or fewer once BUDGET_S seconds
  of timed runs are spent (at least one): a slow peer still gets a number.

Every timed run includes handing the input to the runtime and reading the
output back to host memory, as vkfuse's own runs do.
"""
import json
import os
import platform
import sys
import time

import numpy as np


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def ort_runner(path, x, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    device = f"CPU: {cpu_name()}, {threads} threads (onnxruntime {ort.__version__}, CPUExecutionProvider)"
    return (lambda: sess.run(None, {name: x})[0]), device


def iree_runner(path, x, threads, driver):
    import iree.runtime as rt
    if driver == "local-task":
        rt.flags.parse_flags(f"--task_topology_group_count={threads}")
    config = rt.Config(driver)
    with open(path, "rb") as f:
        vm = rt.VmModule.copy_buffer(config.vm_instance, f.read())
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(vm)
    entry = [n for n in vm.function_names if not n.endswith("$async") and not n.startswith("__")][0]
    fn = ctx.modules.module[entry]
    try:
        from importlib.metadata import version as package_version
        version = package_version("iree-base-runtime")
    except Exception:  # noqa: BLE001 - the version only labels the row
        version = "?"
    if driver == "vulkan":
        names = [d["name"] for d in rt.get_driver("vulkan").query_available_devices()]
        device = f"Vulkan: {names[0] if names else '?'} (IREE {version}, vulkan-spirv)"
    else:
        device = f"CPU: {cpu_name()}, {threads} workers (IREE {version}, llvm-cpu, target-cpu=host)"

    def run():
        out = fn(x)
        return (out[0] if isinstance(out, (tuple, list)) else out).to_host()
    return run, device


def ncnn_runner(param, x, threads, vulkan):
    import ncnn
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_vulkan_compute = vulkan
    if vulkan:
        if ncnn.get_gpu_count() == 0:
            raise RuntimeError("ncnn finds no Vulkan device")
        net.set_vulkan_device(0)
    net.load_param(param)
    net.load_model(param[: -len(".param")] + ".bin")
    if vulkan:
        device = f"Vulkan: {ncnn.get_gpu_info(0).device_name()} (ncnn {ncnn.__version__}, its default fp16 storage)"
    else:
        device = f"CPU: {cpu_name()}, {threads} threads (ncnn {ncnn.__version__})"
    # pnnx names a single input in0 and output out0; ncnn takes one image without the batch.
    image = np.ascontiguousarray(x[0])

    def run():
        ex = net.create_extractor()
        ex.input("in0", ncnn.Mat(image).clone())
        _, out = ex.extract("out0")
        return np.array(out)[None]
    return run, device


def main():
    if len(sys.argv) != 9:
        sys.exit(__doc__)
    engine, artifact, inp, outp = sys.argv[1:5]
    threads, warmup, reps, budget = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
    x = np.load(inp).astype(np.float32)
    t0 = time.perf_counter()
    if engine == "ort":
        run, device = ort_runner(artifact, x, threads)
    elif engine in ("iree-cpu", "iree-vulkan"):
        run, device = iree_runner(artifact, x, threads, "local-task" if engine == "iree-cpu" else "vulkan")
    elif engine in ("ncnn-cpu", "ncnn-vulkan"):
        run, device = ncnn_runner(artifact, x, threads, engine == "ncnn-vulkan")
    else:
        sys.exit(f"peer_run: unknown engine {engine}")
    load_ms = (time.perf_counter() - t0) * 1e3
    a = time.perf_counter()
    y = run()
    first_ms = (time.perf_counter() - a) * 1e3
    for _ in range(max(0, warmup - 1)):
        run()
    ms = []
    spent = 0.0
    while len(ms) < max(1, reps) and (not ms or spent < budget):
        a = time.perf_counter()
        y = run()
        ms.append((time.perf_counter() - a) * 1e3)
        spent += ms[-1] / 1e3
    np.save(outp, np.asarray(y, dtype=np.float32))
    ms.sort()
    print(json.dumps({"engine": engine, "device": device, "load_ms": load_ms, "first_ms": first_ms,
                      "runs": len(ms), "min_ms": ms[0], "median_ms": ms[len(ms) // 2], "max_ms": ms[-1],
                      "pid": os.getpid()}))


if __name__ == "__main__":
    main()
