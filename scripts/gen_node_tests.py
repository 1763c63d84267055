#!/usr/bin/env python3
"""Writes the ONNX backend node test suite (onnx.backend.test.case.node) to disk.

Each case becomes DIR/<name>/model.onnx plus test_data_set_N/{input,output}_K.pb,
the layout of the ONNX repository's own test data. Also copies the wheel's
stored model suites (simple, pytorch-converted, pytorch-operator, light) when present.
Idempotent: an existing DIR/<name>/model.onnx is kept.

usage: gen_node_tests.py OUT_DIR
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases


def write_value(path, value, vi):
    # The graph's declared type decides the proto kind, as onnx's own cmd_tools does,
    # so sequences, optionals and maps are stored (and later compared) properly.
    t = vi.type
    if t.HasField("map_type"):
        data = numpy_helper.from_dict(value, vi.name)
    elif t.HasField("sequence_type"):
        data = numpy_helper.from_list(value, vi.name)
    elif t.HasField("optional_type"):
        data = numpy_helper.from_optional(value, vi.name)
    elif isinstance(value, onnx.TensorProto):
        data = value
    else:
        data = numpy_helper.from_array(np.asarray(value), vi.name)
    with open(path, "wb") as f:
        f.write(data.SerializeToString())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else ".cache/onnx-node"
    os.makedirs(out, exist_ok=True)
    cases = node_cases.collect_testcases()
    written = 0
    for case in cases:
        d = os.path.join(out, case.name)
        if os.path.exists(os.path.join(d, "model.onnx")):
            continue
        os.makedirs(d, exist_ok=True)
        model = case.model
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets or []):
            ds = os.path.join(d, f"test_data_set_{i}")
            os.makedirs(ds, exist_ok=True)
            for k, v in enumerate(inputs):
                write_value(os.path.join(ds, f"input_{k}.pb"), v, model.graph.input[k])
            for k, v in enumerate(outputs):
                write_value(os.path.join(ds, f"output_{k}.pb"), v, model.graph.output[k])
        with open(os.path.join(d, "tolerance.txt"), "w") as f:
            f.write(f"{case.rtol if case.rtol is not None else 1e-3} {case.atol if case.atol is not None else 1e-7}\n")
        written += 1
    print(f"node tests: {len(cases)} cases, {written} written to {out}", file=sys.stderr)
    data_root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for suite in ["simple", "pytorch-converted", "pytorch-operator", "light"]:
        src = os.path.join(data_root, suite)
        dst = os.path.join(os.path.dirname(out.rstrip("/")), "onnx-" + suite)
        if os.path.isdir(src) and not os.path.isdir(dst):
            shutil.copytree(src, dst)
            print(f"copied {suite} suite to {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
