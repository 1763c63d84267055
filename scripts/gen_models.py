#!/usr/bin/env python3
"""Generate the project's benchmark models (standard architectures, seeded random weights).

    python scripts/gen_models.py [mobilenetv2|resnet50|all] [--out .cache/models] [--force]

Written with onnx.helper + numpy only: opset 13, IR version 8, input `input` f32
[batch_size,3,224,224] (symbolic batch_size), output `logits` f32 [batch_size,1000].
Conv, BatchNormalization and the activation are separate nodes (so BN folding is exercised);
convs have no bias, the classifier is a Gemm with bias.

  mobilenetv2  MobileNetV2 1.0/224: stem conv 3x3 s2 32, inverted residual blocks (t,c,n,s) =
               (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1),
               1x1 conv 1280, GlobalAveragePool, Flatten, Gemm 1000; ReLU6 = Clip(0,6).
  resnet50     ResNet-50 v1 (original paper: the stride of a stage's first bottleneck sits on
               its first 1x1 conv and on the projection shortcut): 7x7 s2 conv 64, BN, Relu,
               MaxPool 3x3 s2 pad 1, bottleneck stages [3,4,6,3] of widths 64/128/256/512 (x4
               out), Add + Relu, GlobalAveragePool, Flatten, Gemm 1000.

Weights: He-normal (std sqrt(2/fan_in)) before ReLU/ReLU6, sqrt(1/fan_in) before a linear
output, and the last conv of every residual branch scaled by RESIDUAL_SCALE so that activations
stay O(1) through the depth. BN: gamma 1±0.1, beta 0±0.1, mean 0±0.1, var 1±0.1 (uniform).
numpy default_rng(0): the same bytes every run. A model is checked with onnx.checker and run
with onnxruntime on a random batch of 2 (outputs finite, 1e-3 < std < 1e3) before it is
written. An existing file is left alone unless --force.
"""
import argparse
import hashlib
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET, IR_VERSION = 13, 8
RESIDUAL_SCALE = 0.35


def log(msg):
    print(f"gen_models: {msg}", file=sys.stderr, flush=True)


class Builder:
    """Accumulates nodes and initializers; every weight comes from one seeded generator."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.relu6 = [], [], False

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x, name, cin, cout, k, stride=1, groups=1, gain=2.0):
        fan_in = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(gain / fan_in)
        self.const(f"{name}.weight", w.astype(np.float32))
        p = k // 2
        return self.node("Conv", [x, f"{name}.weight"], name, kernel_shape=[k, k],
                         strides=[stride, stride], pads=[p, p, p, p], group=groups)

    def bn(self, x, name, c):
        u = lambda lo, hi: self.rng.uniform(lo, hi, c).astype(np.float32)
        params = [self.const(f"{name}.{p}", a) for p, a in
                  (("scale", u(0.9, 1.1)), ("bias", u(-0.1, 0.1)), ("mean", u(-0.1, 0.1)), ("var", u(0.9, 1.1)))]
        return self.node("BatchNormalization", [x] + params, name, epsilon=1e-5)

    def conv_bn(self, x, name, cin, cout, k, stride=1, groups=1, act="relu", gain=None):
        y = self.conv(x, f"{name}.conv", cin, cout, k, stride, groups,
                      gain if gain is not None else (2.0 if act else 1.0))
        y = self.bn(y, f"{name}.bn", cout)
        if act == "relu6":
            if not self.relu6:  # the Clip bounds, shared by every ReLU6
                self.relu6 = self.const("relu6_min", np.array(0.0, np.float32))
                self.const("relu6_max", np.array(6.0, np.float32))
            y = self.node("Clip", [y, "relu6_min", "relu6_max"], f"{name}.relu6")
        elif act == "relu":
            y = self.node("Relu", [y], f"{name}.relu")
        return y

    def head(self, x, cin, classes=1000):
        y = self.node("GlobalAveragePool", [x], "pool")
        y = self.node("Flatten", [y], "flatten", axis=1)
        w = self.rng.standard_normal((classes, cin)) * np.sqrt(1.0 / cin)
        self.const("fc.weight", w.astype(np.float32))
        self.const("fc.bias", self.rng.uniform(-0.1, 0.1, classes).astype(np.float32))
        self.nodes.append(helper.make_node("Gemm", [y, "fc.weight", "fc.bias"], ["logits"],
                                           name="fc", transB=1))

    def model(self, graph_name):
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 3, 224, 224])
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", 1000])
        graph = helper.make_graph(self.nodes, graph_name, [inp], [out], self.inits)
        m = helper.make_model(graph, producer_name="uniml-gen_models", opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = IR_VERSION
        return m


def mobilenetv2():
    b = Builder(0)
    x = b.conv_bn("input", "stem", 3, 32, 3, stride=2, act="relu6")
    cin, i = 32, 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for r in range(n):
            stride, hidden, name = (s if r == 0 else 1), cin * t, f"block{i}"
            y = x
            if t != 1:
                y = b.conv_bn(y, f"{name}.expand", cin, hidden, 1, act="relu6")
            y = b.conv_bn(y, f"{name}.dw", hidden, hidden, 3, stride, groups=hidden, act="relu6")
            residual = stride == 1 and cin == c
            y = b.conv_bn(y, f"{name}.project", hidden, c, 1, act=None,
                          gain=RESIDUAL_SCALE ** 2 if residual else 1.0)
            x = b.node("Add", [x, y], f"{name}.add") if residual else y
            cin, i = c, i + 1
    x = b.conv_bn(x, "last", cin, 1280, 1, act="relu6")
    b.head(x, 1280)
    return b.model("mobilenetv2")


def resnet50():
    b = Builder(0)
    x = b.conv_bn("input", "stem", 3, 64, 7, stride=2, act="relu")
    x = b.node("MaxPool", [x], "stem.maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (width, blocks) in enumerate(zip([64, 128, 256, 512], [3, 4, 6, 3]), start=1):
        for r in range(blocks):
            stride, cout, name = (2 if stage > 1 and r == 0 else 1), width * 4, f"layer{stage}.{r}"
            y = b.conv_bn(x, f"{name}.conv1", cin, width, 1, stride)
            y = b.conv_bn(y, f"{name}.conv2", width, width, 3)
            y = b.conv_bn(y, f"{name}.conv3", width, cout, 1, act=None, gain=2.0 * RESIDUAL_SCALE ** 2)
            if r == 0:
                x = b.conv_bn(x, f"{name}.downsample", cin, cout, 1, stride, act=None)
            x = b.node("Relu", [b.node("Add", [x, y], f"{name}.add")], f"{name}.relu")
            cin = cout
    b.head(x, 2048)
    return b.model("resnet50")


MODELS = {"mobilenetv2": mobilenetv2, "resnet50": resnet50}
# sha256 of the files this script wrote with numpy 2.4.6 / onnx 1.23.2 (see setup-python.sh).
SHA256 = {
    "mobilenetv2": "7da989a18a16093c78da059b428dd611e33c1ef072fc00a45b236d82010b309f",
    "resnet50": "4a8d4339a35a82001416b8b99b129662796cda7c16188e351afee08fc9851b74",
}


def check(model):
    """onnx.checker + one onnxruntime run on a random batch of 2; returns the logits std."""
    import onnxruntime as ort
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (y,) = sess.run(["logits"], {"input": x})
    std = float(y.std())
    if y.shape != (2, 1000) or not np.isfinite(y).all() or not 1e-3 < std < 1e3:
        raise SystemExit(f"gen_models: bad output: shape {y.shape}, finite {np.isfinite(y).all()}, std {std}")
    return std


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="?", default="all", choices=list(MODELS) + ["all"])
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache", "models"))
    ap.add_argument("--force", action="store_true", help="regenerate even if the file exists")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in MODELS if args.which == "all" else [args.which]:
        path = os.path.join(args.out, f"{name}.onnx")
        if os.path.exists(path) and not args.force:
            log(f"skip {path} (exists; --force to regenerate)")
            continue
        t0 = time.perf_counter()
        log(f"building {name}")
        model = MODELS[name]()
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        std = check(model)
        data = model.SerializeToString()
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
        digest = hashlib.sha256(data).hexdigest()
        log(f"wrote {path}: {len(model.graph.node)} nodes, {params:,} params, logits std {std:.3g}, "
            f"{time.perf_counter() - t0:.1f}s")
        log(f"sha256 {digest} " + ("(as recorded)" if digest == SHA256[name] else
                                   f"WARNING: recorded {SHA256[name]} (other numpy/onnx version?)"))


if __name__ == "__main__":
    main()
