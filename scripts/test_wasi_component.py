#!/usr/bin/env python3
"""Tests the uniml WebAssembly component (WIT world uniml:inference/inference) under Wasmtime's
component-model API (the PyPI `wasmtime` package, pinned in scripts/setup-python.sh), against
onnxruntime computed now on the same inputs.

    python scripts/test_wasi_component.py COMPONENT.wasm

Cases: digits8x8_cnn (model passed as bytes through `session.load`), efficientnet_lite0 on
testdata/coffee.png (through `session.load-file` from a preopened directory: this Wasmtime
version lowers `list<u8>` element by element, too slow for an 18 MB model), and typed errors:
corrupt model -> invalid-model, unknown op -> unsupported-ops, wrong dims / missing input ->
invalid-input naming the input with expected and got, bad data length -> invalid-tensor, small
memory limit -> memory-limit.
Exits non-zero on any failure; prints one JSON summary line last.
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import wasmtime
from wasmtime import component as wc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_inputs import image_input  # noqa: E402

IFACE = "uniml:inference/runtime@0.1.0"
NP_OF = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8, "u8": np.uint8,
         "i16": np.int16, "u16": np.uint16, "i32": np.int32, "u32": np.uint32, "i64": np.int64,
         "u64": np.uint64, "bool": np.bool_}
TYPE_OF = {np.dtype(v): k for k, v in NP_OF.items()}
TOL = 1e-4
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def record(**fields):
    r = wc.Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


class Engine:
    """The component instantiated once; each exported function looked up by name."""

    def __init__(self, path, preopen):
        config = wasmtime.Config()
        config.cache = True
        self.engine = wasmtime.Engine(config)
        t0 = time.time()
        self.component = wc.Component.from_file(self.engine, path)
        self.compile_s = time.time() - t0
        linker = wc.Linker(self.engine)
        linker.add_wasip2()
        self.store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.inherit_stdout()
        wasi.inherit_stderr()
        wasi.preopen_dir(preopen, preopen)
        self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, self.component)
        self.iface = self.instance.get_export_index(self.store, IFACE)
        assert self.iface is not None, f"component does not export {IFACE}"

    def call(self, name, *args):
        idx = self.instance.get_export_index(self.store, name, self.iface)
        assert idx is not None, f"{IFACE} has no export {name}"
        f = self.instance.get_func(self.store, idx)
        out = f(self.store, *args)
        f.post_return(self.store)
        return out


def to_wit(arr):
    arr = np.ascontiguousarray(arr)
    return record(shape=[int(d) for d in arr.shape], dtype=TYPE_OF[arr.dtype], data=arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def from_wit(t):
    return np.frombuffer(bytes(t.data), dtype=np.dtype(NP_OF[t.dtype]).newbyteorder("<")).reshape([int(d) for d in t.shape])


def is_err(v):
    return isinstance(v, wc.Variant)


def unsupported_model():
    """A valid ONNX model with one op no engine knows."""
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example", name="mystery")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    return model.SerializeToString()


def run_and_compare(eng, session, model_path, feeds, label):
    t0 = time.time()
    out = eng.call("[method]session.run", session, [(n, to_wit(a)) for n, a in feeds.items()])
    run_s = time.time() - t0
    if is_err(out):
        check(False, f"{label}: run failed: {out.tag} {out.payload!r}")
        return None, None
    ours = {n: from_wit(t) for n, t in out}
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    worst = 0.0
    for name, want in ref.items():
        got = ours.get(name)
        if got is None or got.shape != want.shape or got.dtype != want.dtype:
            check(False, f"{label}: output {name}: got {None if got is None else (got.dtype, got.shape)}, want {want.dtype}{want.shape}")
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        check(diff / scale <= TOL, f"{label}: output '{name}' {list(want.shape)} max |diff| vs onnxruntime {diff:.3e} (scale {scale:.3g}, run {run_s * 1e3:.0f} ms)")
        worst = max(worst, diff)
    return ours, worst


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    models = os.path.realpath(os.path.join(ROOT, "models"))
    eng = Engine(sys.argv[1], models)
    print(f"component {sys.argv[1]}: {os.path.getsize(sys.argv[1])} bytes, compiled in {eng.compile_s:.1f} s; engine {eng.call('version')}")
    summary = {"host": f"wasmtime-py {__import__('importlib.metadata').metadata.version('wasmtime')}"}
    opts = record(memory_limit_bytes=None, optimize=True)

    # digits8x8_cnn: bytes in, batch of 4 (symbolic batch dim)
    digits = os.path.join(models, "digits8x8_cnn.onnx")
    with open(digits, "rb") as f:
        digits_bytes = f.read()
    s = eng.call("[static]session.load", digits_bytes)
    check(not is_err(s), f"digits: load from bytes ({len(digits_bytes)} B)")
    inputs = eng.call("[method]session.inputs", s)
    name = inputs[0].name
    print(f"      digits inputs: {[(i.name, i.dtype, [getattr(d, 'payload', None) if isinstance(d, wc.Variant) else d for d in i.shape]) for i in inputs]}")
    x = np.random.default_rng(0).uniform(0, 1, (4, 1, 8, 8)).astype(np.float32)
    _, summary["digits_max_diff"] = run_and_compare(eng, s, digits, {name: x}, "digits8x8_cnn")

    # errors: all typed variants, none a trap
    e = eng.call("[method]session.run", s, [(name, to_wit(np.zeros((1, 1, 8, 9), np.float32)))])
    check(is_err(e) and e.tag == "invalid-input" and e.payload.input == name and "8" in e.payload.expected and "9" in e.payload.got,
          f"wrong dims -> invalid-input: {e.tag if is_err(e) else e} input={getattr(e.payload, 'input', None)!r} "
          f"expected={getattr(e.payload, 'expected', None)!r} got={getattr(e.payload, 'got', None)!r}")
    print(f"      message: {eng.call('error-message', e)}")
    e = eng.call("[method]session.run", s, [])
    check(is_err(e) and e.tag == "invalid-input" and e.payload.input == name and e.payload.got == "nothing", f"missing input -> invalid-input ({getattr(e, 'payload', e).__dict__ if is_err(e) else e})")
    e = eng.call("[method]session.run", s, [(name, record(shape=[1, 1, 8, 8], dtype="f32", data=b"\0" * 7))])
    check(is_err(e) and e.tag == "invalid-tensor", f"data length != shape -> invalid-tensor: {getattr(e, 'payload', e)!r}")
    e = eng.call("[method]session.run", s, [(name, to_wit(np.zeros((1, 1, 8, 8), np.int64)))])
    check(is_err(e) and e.tag == "invalid-input" and "int64" in e.payload.got, f"wrong dtype -> invalid-input: {getattr(e.payload, 'message', e)!r}")
    s.drop(eng.store)
    e = eng.call("[static]session.load", b"\x08\x07garbage, not an ONNX model" * 3)
    check(is_err(e) and e.tag == "invalid-model", f"corrupt model -> invalid-model: {getattr(e, 'payload', e)!r}")
    e = eng.call("[static]session.load", digits_bytes[: len(digits_bytes) // 2])
    check(is_err(e) and e.tag == "invalid-model", f"truncated model -> invalid-model: {getattr(e, 'payload', e)!r}")
    e = eng.call("[static]session.load-with-options", digits_bytes, record(memory_limit_bytes=1000, optimize=True))
    check(is_err(e) and e.tag == "memory-limit" and e.payload.limit == 1000, f"memory limit 1000 B -> memory-limit: {getattr(e, 'payload', e).__dict__ if is_err(e) else e}")
    e = eng.call("[static]session.load", unsupported_model())
    u = e.payload[0] if is_err(e) and e.tag == "unsupported-ops" and e.payload else None
    check(u is not None and (u.op, u.domain, u.node) == ("NoSuchOp", "com.example", "mystery"),
          f"unsupported op -> unsupported-ops: {[x.__dict__ for x in e.payload] if is_err(e) and isinstance(e.payload, list) else e}")
    e = eng.call("[static]session.load-file", os.path.join(models, "no-such-model.onnx"), opts)
    check(is_err(e) and e.tag == "other", f"missing file -> other: {getattr(e, 'payload', e)!r}")

    # efficientnet_lite0 on coffee.png: model read from the preopened models/ directory
    eff = os.path.join(models, "efficientnet_lite0.onnx")
    t0 = time.time()
    s = eng.call("[static]session.load-file", eff, opts)
    check(not is_err(s), f"efficientnet_lite0: load-file ({os.path.getsize(eff)} B) in {time.time() - t0:.1f} s")
    if not is_err(s):
        name, x = image_input("efficientnet", os.path.join(ROOT, "testdata", "coffee.png"))
        ours, summary["efficientnet_max_diff"] = run_and_compare(eng, s, eff, {name: x}, "efficientnet_lite0 coffee.png")
        if ours:
            top1 = int(np.argmax(next(iter(ours.values()))))
            check(top1 == 967, f"efficientnet_lite0 coffee.png top-1 = {top1} (espresso is 967)")
            summary["coffee_top1"] = top1
        s.drop(eng.store)

    summary["failures"] = len(failures)
    print(json.dumps(summary))
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
