"""The peer's column of the conformance report: runs onnxruntime (CPU) over the
suites that `cargo xtask conformance` generated into .cache/onnx-*, with the
same tolerances as our runner (rtol 1e-3, atol 1e-7 unless a case says
otherwise; NaN equals NaN), and writes docs/conformance-onnxruntime.md.

    .venv/bin/python scripts/conformance_ort.py [--cache .cache] [--out docs/conformance-onnxruntime.md]

Tensors, sequences and optionals are loaded with onnx's own protobuf types.
A test counts as passed when every data set's every output matches; a model
onnxruntime refuses to load or run counts as failed, with the reason.
"""

import argparse
import glob
import os
import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

SUITES = ["onnx-node", "onnx-simple", "onnx-pytorch-converted", "onnx-pytorch-operator", "onnx-light"]


def load_value(path, type_proto):
    data = open(path, "rb").read()
    which = type_proto.WhichOneof("value") if type_proto is not None else "tensor_type"
    if which == "sequence_type":
        p = onnx.SequenceProto()
        p.ParseFromString(data)
        return numpy_helper.to_list(p)
    if which == "optional_type":
        p = onnx.OptionalProto()
        p.ParseFromString(data)
        return numpy_helper.to_optional(p)
    if which == "map_type":
        p = onnx.MapProto()
        p.ParseFromString(data)
        return numpy_helper.to_dict(p)
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def close(got, want, rtol, atol):
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(close(g, w, rtol, atol) for g, w in zip(got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(close(got[k], want[k], rtol, atol) for k in want)
    if want is None:
        return got is None
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False
    if want.dtype.kind in "OUS":
        return bool(np.all(got.astype(str) == want.astype(str)))
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        both_nan = np.isnan(g) & np.isnan(w)
        ok = np.isclose(g, w, rtol=rtol, atol=atol) | both_nan
        return bool(np.all(ok))
    return bool(np.array_equal(got, want))


def run_case(case_dir):
    model_path = os.path.join(case_dir, "model.onnx")
    if not os.path.exists(model_path):  # the light suite: light_X.onnx beside light_X/
        model_path = case_dir.rstrip("/") + ".onnx"
    tol = {"rtol": 1e-3, "atol": 1e-7}
    meta = os.path.join(case_dir, "tolerance.txt")
    if os.path.exists(meta):
        rtol, atol = open(meta).read().split()[:2]
        tol = {"rtol": float(rtol), "atol": float(atol)}
    model = onnx.load(model_path)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    inits = {i.name for i in model.graph.initializer}
    ins = [v for v in model.graph.input if v.name not in inits]
    outs = list(model.graph.output)
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        feed = {}
        for i, v in enumerate(ins):
            p = os.path.join(ds, f"input_{i}.pb")
            if os.path.exists(p):
                feed[v.name] = load_value(p, v.type)
        got = sess.run([o.name for o in outs], feed)
        for j, o in enumerate(outs):
            want = load_value(os.path.join(ds, f"output_{j}.pb"), o.type)
            if not close(got[j], want, tol["rtol"], tol["atol"]):
                return False, f"output '{o.name}' differs"
    return True, ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=".cache")
    ap.add_argument("--out", default="docs/conformance-onnxruntime.md")
    a = ap.parse_args()
    rows = []
    reasons = Counter()
    for suite in SUITES:
        base = os.path.join(a.cache, "models/light") if suite == "onnx-light" else os.path.join(a.cache, suite)
        cases = sorted(d for d in glob.glob(os.path.join(base, "*")) if os.path.isdir(d))
        if not cases:
            continue
        passed = 0
        for i, c in enumerate(cases):
            try:
                ok, why = run_case(c)
            except Exception as e:  # noqa: BLE001 -- a refused model is a failed test, with its reason
                ok, why = False, str(e).split("\n")[0][:90]
            passed += ok
            if not ok and suite == "onnx-node":
                short = why.split(" : ")[-1] if why.startswith("[ONNXRuntimeError]") else why
                reasons[short[:70]] += 1
            if (i + 1) % 200 == 0:
                print(f"{suite}: {i + 1}/{len(cases)}", file=sys.stderr)
        rows.append((suite, len(cases), passed))
        print(f"{suite}: {passed}/{len(cases)}", file=sys.stderr)
    lines = [
        "# ONNX conformance: onnxruntime on the same generated suites",
        "",
        f"`scripts/conformance_ort.py` ran onnxruntime {ort.__version__} (CPUExecutionProvider) over the suites",
        f"`cargo xtask conformance` generated from onnx {onnx.__version__}, with our runner's tolerances. Our",
        "counts are in [conformance.md](conformance.md).",
        "",
        "| suite | tests | onnxruntime passed |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {n} | {p} |" for s, n, p in rows]
    lines += ["", "Most frequent onnxruntime failure reasons (node suite). `Numpy_type N can't be converted` means",
              "onnxruntime's Python binding refused an ml_dtypes (float8/float4/int4/int2) input array: those",
              "cases fail in this harness, not necessarily in its C API.", ""]
    lines += [f"- {r or 'mismatch'} ({n})" for r, n in reasons.most_common(12)]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    open(a.out, "w").write("\n".join(lines) + "\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
