#!/usr/bin/env python3
"""Export torchvision classifiers with random weights to ONNX, with reference data.

For each model NAME it writes, into --out DIR:

    NAME.onnx                       the model (batch 1, fixed input shape)
    NAME.input.npy,  NAME.input.bin    one fixed random input (float32; .bin is
                                       raw little-endian, row-major NCHW)
    NAME.output.npy, NAME.output.bin   PyTorch's output for it in eval mode

Weights are random (torchvision's own initialization, seeded per model); no
pretrained weights are downloaded. So that deep networks stay in a sane
numeric range, the BatchNorm running statistics are calibrated before export:
every BatchNorm gets momentum=None (a cumulative average) and fresh running
statistics, the model runs in train mode on a few random batches, then goes
to eval mode.

Idempotent: a model whose five files already exist is skipped.

By default it exports the set that CI tests (--models ci); --models full adds
the smallest classifier of more torchvision families (ctest -L zoo_full).

Usage: export_torchvision.py --out DIR [--models ci|full|resnet18,googlenet] [--opset 13]
"""

import argparse
import os
import sys
import time
import zlib

# name -> (constructor name, keyword arguments, input height/width)
MODELS = {
    "resnet18": ("resnet18", {}, 224),
    "resnet50": ("resnet50", {}, 224),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": True, "transform_input": False}, 299),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True, "transform_input": False}, 224),
    "mobilenet_v2": ("mobilenet_v2", {}, 224),
    "squeezenet1_1": ("squeezenet1_1", {}, 224),
    # Segmentation: dilated backbones, ASPP / LR-ASPP heads, bilinear Resize.
    "lraspp_mobilenet_v3_large": ("segmentation.lraspp_mobilenet_v3_large", {"weights_backbone": None}, 224),
    "deeplabv3_mobilenet_v3_large": ("segmentation.deeplabv3_mobilenet_v3_large",
                                     {"weights_backbone": None, "aux_loss": False}, 224),
}
# More of torchvision's classifiers, the smallest of each family (the larger
# ones of a family bring no other ops): --models full.
MODELS.update({name: (name, {}, 224) for name in (
    "alexnet", "resnet34", "resnext50_32x4d", "densenet121", "squeezenet1_0", "shufflenet_v2_x1_0",
    "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet1_0", "efficientnet_b0", "regnet_x_400mf",
    "regnet_y_400mf", "vgg11", "wide_resnet50_2", "efficientnet_v2_s", "convnext_tiny", "swin_t", "vit_b_16",
    "maxvit_t")})
SETS = {
    "ci": ["resnet18", "resnet50", "inception_v3", "googlenet", "mobilenet_v2", "squeezenet1_1",
           "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"],
    "full": list(MODELS),
}

CALIBRATION_BATCHES = 4
CALIBRATION_BATCH_SIZE = 2
SUFFIXES = (".onnx", ".input.npy", ".input.bin", ".output.npy", ".output.bin")


def model_seed(name):
    # Stable across runs and Python versions (unlike hash()).
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def calibrate_batchnorm(torch, model, size, generator):
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None  # cumulative moving average over the calibration batches
        bn.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            model(torch.randn(CALIBRATION_BATCH_SIZE, 3, size, size, generator=generator))
    model.eval()
    return len(bns)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def export_one(name, out_dir, opset):
    import torch
    import torchvision

    ctor, kwargs, size = MODELS[name]
    torch.manual_seed(model_seed(name))
    make = torchvision.models
    for part in ctor.split("."):
        make = getattr(make, part)
    model = make(weights=None, **kwargs)
    return export_module(name, model, size, out_dir, opset)


def export_module(name, model, size, out_dir, opset):
    """Calibrates `model`'s BatchNorms, exports it and writes its reference data.

    Shared with export_timm.py, so that every zoo's test data is made the same way."""
    import numpy as np
    import onnx
    import torch

    seed = model_seed(name)
    generator = torch.Generator().manual_seed(seed + 1)
    # A classifier head initialized to zero (torchvision's ViT) would make
    # every output 0, which no error could show.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and not m.weight.any():
                m.weight.normal_(0.0, 0.02, generator=generator)
    bn_count = calibrate_batchnorm(torch, model, size, generator)

    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed + 2))
    with torch.no_grad():
        y = model(x)
    if isinstance(y, dict):  # segmentation models: {"out": ...}
        y = y["out"]
    elif not isinstance(y, torch.Tensor):  # e.g. a named tuple with aux outputs
        y = y[0]

    base = os.path.join(out_dir, name)
    onnx_tmp = base + ".onnx.tmp"
    torch.onnx.export(model, x, onnx_tmp, opset_version=opset, do_constant_folding=True,
                      input_names=["input"], output_names=["output"])
    onnx.checker.check_model(onnx.load(onnx_tmp))

    xin = np.ascontiguousarray(x.numpy(), dtype="<f4")
    yout = np.ascontiguousarray(y.numpy(), dtype="<f4")
    if not np.all(np.isfinite(yout)):
        raise RuntimeError(f"{name}: non-finite values in the reference output")
    for suffix, arr in ((".input", xin), (".output", yout)):
        np.save(base + suffix + ".npy.tmp.npy", arr)
        os.replace(base + suffix + ".npy.tmp.npy", base + suffix + ".npy")
        write_atomic(base + suffix + ".bin", arr.tobytes())
    # The .onnx goes last: its presence with the others marks a complete export.
    os.replace(onnx_tmp, base + ".onnx")
    return bn_count, tuple(xin.shape), tuple(yout.shape), float(yout.mean()), float(yout.std()), float(np.abs(yout).max())


def run_exports(script, doc, models, export_fn, modules, sets):
    """The command line shared by the zoo exporters: parse, skip what is up to date, export the rest.

    `sets` names lists of models that --models takes by name ("ci", the default, and "full")."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--models", default="ci",
                        help=" or ".join(sets) + " (sets), or a comma-separated subset of: " + ",".join(models))
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: one per core)")
    parser.add_argument("--force", action="store_true", help="re-export models that already exist")
    args = parser.parse_args()

    names = sets[args.models] if args.models in sets else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in models]
    if unknown:
        sys.exit(f"{script}: unknown model(s) {', '.join(unknown)}; known: {', '.join(models)}")
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    todo = [n for n in names if args.force or not all(os.path.isfile(os.path.join(out_dir, n + s)) for s in SUFFIXES)]
    for n in names:
        if n not in todo:
            print(f"{n}: up to date", flush=True)
    if not todo:
        return 0

    try:
        import importlib
        for m in modules:
            importlib.import_module(m)
    except ImportError as e:
        sys.exit(f"{script}: {e}; run it with a Python that has {', '.join(modules)} (this is {sys.executable})")
    import warnings
    import torch
    warnings.filterwarnings("ignore")  # tracer and shape-inference chatter
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))

    total = time.monotonic()
    for n in todo:
        start = time.monotonic()
        print(f"{n}: exporting (opset {args.opset}) ...", flush=True)
        bn_count, xs, ys, mean, std, amax = export_fn(n, out_dir, args.opset)
        print(f"{n}: done in {time.monotonic() - start:.1f} s; {bn_count} BatchNorms calibrated; "
              f"input {list(xs)}, output {list(ys)} mean {mean:.4g} std {std:.4g} max|y| {amax:.4g}", flush=True)
    print(f"exported {len(todo)} model(s) to {out_dir} in {time.monotonic() - total:.1f} s", flush=True)
    return 0


def main():
    return run_exports("export_torchvision.py", __doc__, MODELS, export_one, ["torch", "torchvision", "onnx", "numpy"],
                       SETS)


if __name__ == "__main__":
    sys.exit(main())
