#!/usr/bin/env python3
"""Tiny ONNX models for the web package tests: dtype round trips and an unsupported op.

    python web/test/make_test_models.py OUT_DIR
"""
import os
import sys

import onnx
from onnx import TensorProto, helper


def save(out, name, nodes, inputs, outputs, opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="uniml-web-test")
    m.ir_version = 8
    onnx.save(m, os.path.join(out, f"{name}.onnx"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    T = helper.make_tensor_value_info
    # int64 add with a symbolic batch dim: z = x + y
    save(out, "add_int64", [helper.make_node("Add", ["x", "y"], ["z"])],
         [T("x", TensorProto.INT64, ["batch", 3]), T("y", TensorProto.INT64, ["batch", 3])],
         [T("z", TensorProto.INT64, ["batch", 3])])
    # int32 → bool and uint8 outputs: b = x > 2 (bool), n = Not(b), c = Cast(x, uint8)
    save(out, "int32_bool", [
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.INT32, [], [2])),
        helper.make_node("Greater", ["x", "two"], ["b"]),
        helper.make_node("Not", ["b"], ["n"]),
        helper.make_node("Cast", ["x"], ["c"], to=TensorProto.UINT8),
    ], [T("x", TensorProto.INT32, [4])],
        [T("b", TensorProto.BOOL, [4]), T("n", TensorProto.BOOL, [4]), T("c", TensorProto.UINT8, [4])])
    # an op no engine implements
    save(out, "unsupported_op", [helper.make_node("NotARealOp", ["x"], ["y"], name="mystery")],
         [T("x", TensorProto.FLOAT, [2])], [T("y", TensorProto.FLOAT, [2])])
    print(f"make_test_models: wrote 3 models to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
