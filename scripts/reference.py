#!/usr/bin/env python3
"""onnxruntime oracle: run a model on saved inputs and save its outputs, for the Rust tests.

    python scripts/reference.py MODEL --inputs-dir DIR --outputs-dir OUT [--threads N]

Inputs are read from DIR, for each graph input that is not an initializer, either
  * `<name>.npy`, where <name> is the graph input's name with `/` and `:` replaced by `_`, or
  * the ONNX test-data layout `input_0.pb, input_1.pb, ...` (serialized TensorProto), taken in
    graph-input order (used when DIR has `input_0.pb`).
Extra files in DIR are ignored (with a note). An input's dtype must match the graph's exactly.

Runs onnxruntime's CPU execution provider (default graph optimisation level,
intra_op_num_threads=N, default 1) and writes every graph output as `OUT/<name>.npy` (name
sanitised the same way) and as `OUT/output_<i>.pb`. Prints one JSON line on stdout:
    {"model": ..., "outputs": [{"name", "file", "shape", "dtype"}, ...], "run_ms": ...}
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

# onnxruntime's type strings -> numpy dtypes, for checking the given inputs.
ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def sanitize(name):
    return name.replace("/", "_").replace(":", "_")


def log(msg):
    print(f"reference: {msg}", file=sys.stderr, flush=True)


def load_inputs(session, inputs_dir):
    """Return {graph input name: array} read from inputs_dir (.npy by name, or input_<i>.pb)."""
    graph_inputs = session.get_inputs()  # excludes initializers
    feeds, used = {}, set()
    pb_layout = os.path.exists(os.path.join(inputs_dir, "input_0.pb"))
    for i, gi in enumerate(graph_inputs):
        fname = f"input_{i}.pb" if pb_layout else sanitize(gi.name) + ".npy"
        path = os.path.join(inputs_dir, fname)
        if not os.path.exists(path):
            raise SystemExit(f"reference: missing {path} for graph input {gi.name!r} "
                             f"(expected inputs: {[g.name for g in graph_inputs]})")
        if pb_layout:
            t = onnx.TensorProto()
            with open(path, "rb") as f:
                t.ParseFromString(f.read())
            arr = numpy_helper.to_array(t)
        else:
            arr = np.load(path, allow_pickle=False)
        want = ORT_DTYPES.get(gi.type)
        if want is not None and arr.dtype != want:
            raise SystemExit(f"reference: {fname}: dtype {arr.dtype} but {gi.name!r} is {gi.type}")
        feeds[gi.name] = arr
        used.add(fname)
    extra = sorted(set(os.listdir(inputs_dir)) - used)
    if extra:
        log(f"ignoring files that are not inputs of this model: {extra}")
    return feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--inputs-dir", required=True)
    ap.add_argument("--outputs-dir", required=True)
    ap.add_argument("--threads", type=int, default=1, help="intra_op_num_threads (default 1)")
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    feeds = load_inputs(session, args.inputs_dir)
    for name, arr in feeds.items():
        log(f"input  {name}: {arr.dtype} {list(arr.shape)}")

    names = [o.name for o in session.get_outputs()]
    t0 = time.perf_counter()
    results = session.run(names, feeds)
    run_ms = (time.perf_counter() - t0) * 1e3

    os.makedirs(args.outputs_dir, exist_ok=True)
    report = []
    for i, (name, arr) in enumerate(zip(names, results)):
        arr = np.asarray(arr)
        fname = sanitize(name) + ".npy"
        np.save(os.path.join(args.outputs_dir, fname), arr)
        with open(os.path.join(args.outputs_dir, f"output_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(arr, name).SerializeToString())
        log(f"output {name}: {arr.dtype} {list(arr.shape)} -> {fname}, output_{i}.pb")
        report.append({"name": name, "file": fname, "shape": list(arr.shape), "dtype": str(arr.dtype)})
    print(json.dumps({"model": args.model, "outputs": report, "run_ms": round(run_ms, 3)}))


if __name__ == "__main__":
    main()
