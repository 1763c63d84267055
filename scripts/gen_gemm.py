#!/usr/bin/env python3
"""A one-MatMul ONNX model for GEMM throughput: Y[n,n] = A[n,n] @ B[n,n], B a
seeded random initializer. `uniml bench` on it gives ms; TFLOP/s = 2n^3 / t.

    python scripts/gen_gemm.py N OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

n, out = int(sys.argv[1]), sys.argv[2]
b = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["A", "B"], ["Y"])],
    f"gemm{n}",
    [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
    [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
    [numpy_helper.from_array(b, "B")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
print(f"gen_gemm: wrote {out} ({n}x{n})", file=sys.stderr)
