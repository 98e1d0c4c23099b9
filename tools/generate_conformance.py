#!/usr/bin/env python3
"""Generate the ONNX backend *node* conformance cases into a folder.

The equivalent of onnx's `backend-test-tools generate-data -o DIR`, restricted
to node cases:

    DIR/node/<case>/model.onnx
    DIR/node/<case>/test_data_set_0/input_<j>.pb, output_<j>.pb

It runs the generator from Python rather than through the console script so
that it can first restore the NumPy aliases (np.float, np.int, np.bool,
np.object, ...) that NumPy 1.24 removed and that onnx 1.12's case code still
uses. Each case module is imported on its own: a module that fails to import
(and so fails to produce its cases) is reported and skipped instead of
aborting the whole run.

Idempotent: when DIR/node holds cases and a stamp written by the same onnx
version and the same version of this script, it exits at once.

Usage: generate_conformance.py --out DIR [--op-type Conv] [--force]
"""

import argparse
import importlib
import os
import pkgutil
import shutil
import sys
import time
import traceback
import warnings

# Bump when the layout or the selection of generated data changes, so that
# existing stamps are invalidated.
SCRIPT_VERSION = "1"
STAMP_NAME = ".vkfuse-conformance-stamp"


def restore_numpy_aliases():
    """Bring back the scalar aliases that NumPy 1.20 deprecated and 1.24 removed."""
    import numpy as np

    aliases = {
        "float": float,
        "int": int,
        "bool": bool,
        "object": object,
        "str": str,
        "complex": complex,
        "long": int,
        "unicode": str,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value in aliases.items():
            try:
                getattr(np, name)
            except AttributeError:
                setattr(np, name, value)


def stamp_text():
    import onnx

    return f"onnx={onnx.__version__} script={SCRIPT_VERSION}\n"


def up_to_date(node_dir):
    stamp = os.path.join(node_dir, STAMP_NAME)
    if not os.path.isfile(stamp):
        return False
    with open(stamp) as f:
        if f.read() != stamp_text():
            return False
    return any(os.path.isfile(os.path.join(node_dir, d, "model.onnx")) for d in os.listdir(node_dir))


def collect_node_cases(op_type):
    """Imports every module under onnx.backend.test.case.node one at a time.

    Returns (cases, failed_modules). Importing a module runs its export_*
    functions, which append to node._NodeTestCases."""
    import onnx.backend.test.case.node as node_pkg

    node_pkg._TargetOpType = op_type
    failed = []

    def walk(package):
        for _loader, name, ispkg in pkgutil.iter_modules(package.__path__):
            module_name = f"{package.__name__}.{name}"
            try:
                module = importlib.import_module(module_name)
            except Exception as e:  # noqa: BLE001 - any failure only skips that module
                failed.append((module_name, f"{type(e).__name__}: {e}"))
                continue
            if ispkg:
                walk(module)

    walk(node_pkg)
    return list(node_pkg._NodeTestCases), failed


def write_case(case, case_dir):
    from onnx import numpy_helper

    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())

    def serialize(value, value_info):
        t = value_info.type
        if t.HasField("map_type"):
            return numpy_helper.from_dict(value, value_info.name)
        if t.HasField("sequence_type"):
            return numpy_helper.from_list(value, value_info.name)
        if t.HasField("optional_type"):
            return numpy_helper.from_optional(value, value_info.name)
        return numpy_helper.from_array(value, value_info.name)

    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        data_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(data_dir)
        for j, value in enumerate(inputs):
            with open(os.path.join(data_dir, f"input_{j}.pb"), "wb") as f:
                f.write(serialize(value, graph.input[j]).SerializeToString())
        for j, value in enumerate(outputs):
            with open(os.path.join(data_dir, f"output_{j}.pb"), "wb") as f:
                f.write(serialize(value, graph.output[j]).SerializeToString())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder; cases go to OUT/node/<case>/")
    parser.add_argument("--op-type", default=None, help="only cases whose node has this op type")
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    parser.add_argument("--verbose", action="store_true", help="print a traceback for each failure")
    args = parser.parse_args()

    start = time.monotonic()
    node_dir = os.path.join(os.path.abspath(args.out), "node")

    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        sys.exit(f"generate_conformance.py: {e}; run it with a Python that has onnx and numpy "
                 f"(this is {sys.executable})")

    if not args.force and not args.op_type and os.path.isdir(node_dir) and up_to_date(node_dir):
        count = sum(1 for d in os.listdir(node_dir) if os.path.isfile(os.path.join(node_dir, d, "model.onnx")))
        print(f"ONNX node conformance cases up to date: {count} cases in {node_dir}")
        return 0

    restore_numpy_aliases()
    # The case code triggers NumPy deprecation and overflow warnings on purpose
    # (e.g. casts); they are noise here.
    warnings.simplefilter("ignore")
    import numpy as np

    old_err = np.seterr(all="ignore")
    cases, failed_modules = collect_node_cases(args.op_type)
    np.seterr(**old_err)

    # Write into a fresh sibling folder and swap it in, so an interrupted run
    # never leaves a half-written folder behind a valid stamp.
    tmp_dir = node_dir + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    # A few names are defined twice by onnx's case code; like
    # backend-test-tools, the later definition wins.
    by_name = {}
    for case in cases:
        if case.kind == "node" and case.model is not None and case.data_sets:
            by_name[case.name] = case
    written, failed_cases = 0, []
    for case in by_name.values():
        try:
            write_case(case, os.path.join(tmp_dir, case.name))
            written += 1
        except Exception as e:  # noqa: BLE001
            shutil.rmtree(os.path.join(tmp_dir, case.name), ignore_errors=True)
            failed_cases.append((case.name, f"{type(e).__name__}: {e}"))
            if args.verbose:
                traceback.print_exc()

    with open(os.path.join(tmp_dir, STAMP_NAME), "w") as f:
        f.write(stamp_text())
    shutil.rmtree(node_dir, ignore_errors=True)
    os.rename(tmp_dir, node_dir)

    for name, why in failed_modules:
        print(f"  skipped module {name}: {why}")
    for name, why in failed_cases:
        print(f"  skipped case {name}: {why}")
    print(f"ONNX node conformance cases: {written} written to {node_dir}, "
          f"{len(failed_modules)} case modules failed to generate, {len(failed_cases)} cases failed to write "
          f"({time.monotonic() - start:.1f} s)")
    if written == 0:
        print("generate_conformance.py: no case was generated", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
