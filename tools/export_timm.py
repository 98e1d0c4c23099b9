#!/usr/bin/env python3
"""Export CNNs from timm (PyTorch Image Models) with random weights to ONNX, with reference data.

The same files and method as export_torchvision.py (seeded random weights,
calibrated BatchNorm statistics, one fixed random input, PyTorch's output):

    NAME.onnx, NAME.input.npy/.bin, NAME.output.npy/.bin

timm is not a Debian package: run this with a virtual environment made by
tools/timm-venv.sh (Debian's python3-torch plus `pip install --no-deps timm`).
By default it exports the representative subset that CI tests (--models ci);
--models full exports every family listed below.

Usage: export_timm.py --out DIR [--models ci|full|efficientnet_b0,...] [--opset 13]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torchvision as zoo  # noqa: E402

# name -> input height/width. One small member per family of the list;
# what each family brings to the importer is noted.
MODELS = {
    "efficientnet_b0": 224,        # SE (ReduceMean), SiLU as Sigmoid*Mul
    "mobilenetv3_large_100": 224,  # SE with HardSigmoid, HardSwish
    "regnetx_002": 224,
    "regnety_002": 224,            # SE
    "convnext_atto": 224,          # LayerNorm decomposed (ReduceMean, Pow, Sqrt, Div), GELU (Erf)
    "ghostnet_100": 224,           # Slice, Concat
    "rexnet_100": 224,             # Slice, Clip (ReLU6), SE
    "hrnet_w18_small": 224,        # Resize (nearest upsampling) + Add
    "dla34": 224,
    "vgg11": 224,                  # 7x7 Conv "fully connected" head with 411 MB of weights
    "mnasnet_100": 224,
    "resnext26ts": 224,            # SiLU
    "cspresnet50": 224,            # Split, LeakyReLU
    "dpn48b": 224,                 # Slice, Concat, BatchNorm after Concat
    "res2net50_14w_8s": 224,       # Split
    "selecsls42b": 224,
    "tinynet_e": 106,              # EfficientNet family at its native small input
}
SETS = {
    # What CI exports and tests: one model per operator family that the
    # torchvision set does not already cover.
    "ci": ["efficientnet_b0", "mobilenetv3_large_100", "convnext_atto", "ghostnet_100", "hrnet_w18_small",
           "cspresnet50"],
    "full": [n for n in MODELS if n != "vgg11"] + ["vgg11"],  # the big one last
}


def export_one(name, out_dir, opset):
    import timm
    import torch

    torch.manual_seed(zoo.model_seed(name))
    model = timm.create_model(name, pretrained=False)
    return zoo.export_module(name, model, MODELS[name], out_dir, opset)


def main():
    return zoo.run_exports("export_timm.py", __doc__, MODELS, export_one, ["torch", "timm", "onnx", "numpy"], SETS)

if __name__ == "__main__":
    sys.exit(main())
