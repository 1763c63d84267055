#!/usr/bin/env python3
"""PyTorch CUDA eager peer timings for the GPU benchmark (run on the GPU machine).

No torchvision: each model is built from our ONNX file itself. The graph is
walked node by node and every node becomes the equivalent eager torch op on
the GPU, with the weights loaded from the ONNX initializers
(`onnx.numpy_helper`). That is the same architecture and weights as uniml
runs, executed the way an eager PyTorch model executes (one kernel launch per
op, cuDNN convolutions, cuBLAS GEMMs). Also a 4096^3 f32 GEMM in TFLOP/s.

Usage:
  python scripts/bench_torch.py [--runs 50] [--tf32] [--half] [--only efficientnet_lite0,mobilenetv2,paraphrase-MiniLM-L3-v2,gemm] [--batches 1,32]
Prints one JSON object per case (model, batch, median/min ms).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def pads_of(a, nd, spatial, kernel):
    """Begin/end pads, resolving auto_pad SAME_UPPER/SAME_LOWER from the input size."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        strides, dil = a.get("strides", [1] * nd), a.get("dilations", [1] * nd)
        pb, pe = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dil):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pb.append(small if auto == "SAME_UPPER" else big)
            pe.append(big if auto == "SAME_UPPER" else small)
        return pb, pe
    p = list(a.get("pads", [0] * (2 * nd)))
    return p[:nd], p[nd:]


class OnnxEager:
    """Runs an ONNX graph as eager torch ops (the op set of our benchmark models)."""

    def __init__(self, path, device, half=False):
        self.half = half
        m = onnx.load(path)
        self.g = m.graph
        self.dev = device
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).to(device) for t in self.g.initializer}
        for n in self.g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = torch.from_numpy(numpy_helper.to_array(n.attribute[0].t).copy()).to(device)
        if half:
            self.consts = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in self.consts.items()}
        self.nodes = [(n, attrs(n)) for n in self.g.node if n.op_type != "Constant"]

    @torch.no_grad()
    def __call__(self, feeds):
        env = dict(self.consts)
        env.update(feeds)
        for n, a in self.nodes:
            x = [env[i] if i else None for i in n.input]
            outs = self.op(n.op_type, x, a)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, v in zip(n.output, outs):
                env[name] = v
        return [env[o.name] for o in self.g.output]

    def op(self, t, x, a):
        if t == "Conv":
            nd = x[1].dim() - 2
            pb, pe = pads_of(a, nd, list(x[0].shape[2:]), list(x[1].shape[2:]))
            inp = x[0]
            if pb != pe:
                flat = []
                for b, e in zip(reversed(pb), reversed(pe)):
                    flat += [b, e]
                inp, pb = F.pad(inp, flat), [0] * nd
            conv = F.conv2d if nd == 2 else F.conv1d
            return conv(inp, x[1], x[2] if len(x) > 2 else None, a.get("strides", [1] * nd), pb, a.get("dilations", [1] * nd), a.get("group", 1))
        if t == "BatchNormalization":
            return F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.0, a.get("epsilon", 1e-5))
        if t == "Relu":
            return F.relu(x[0])
        if t == "Clip":
            lo = x[1].item() if len(x) > 1 and x[1] is not None else a.get("min", None)
            hi = x[2].item() if len(x) > 2 and x[2] is not None else a.get("max", None)
            return torch.clamp(x[0], lo, hi)
        if t == "Add":
            return x[0] + x[1]
        if t == "Sub":
            return x[0] - x[1]
        if t == "Mul":
            return x[0] * x[1]
        if t == "Div":
            return x[0] / x[1]
        if t == "Pow":
            return torch.pow(x[0], x[1])
        if t == "Sqrt":
            return torch.sqrt(x[0])
        if t == "Erf":
            return torch.erf(x[0])
        if t == "Tanh":
            return torch.tanh(x[0])
        if t == "Sigmoid":
            return torch.sigmoid(x[0])
        if t == "GlobalAveragePool":
            return x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)
        if t == "Flatten":
            ax = a.get("axis", 1)
            return x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
        if t == "Gemm":
            A = x[0].t() if a.get("transA", 0) else x[0]
            B = x[1].t() if a.get("transB", 0) else x[1]
            y = a.get("alpha", 1.0) * (A @ B)
            if len(x) > 2 and x[2] is not None:
                y = y + a.get("beta", 1.0) * x[2]
            return y
        if t == "MatMul":
            return torch.matmul(x[0], x[1])
        if t == "Softmax":
            return torch.softmax(x[0], dim=a.get("axis", -1))
        if t == "LayerNormalization":
            ax = a.get("axis", -1)
            shape = x[0].shape[ax:] if ax != -1 else x[0].shape[-1:]
            return F.layer_norm(x[0], shape, x[1], x[2] if len(x) > 2 else None, a.get("epsilon", 1e-5))
        if t == "ReduceMean":
            axes = a.get("axes", x[1].tolist() if len(x) > 1 and x[1] is not None else None)
            return x[0].mean(dim=axes, keepdim=bool(a.get("keepdims", 1)))
        if t == "ReduceSum":
            axes = a.get("axes", x[1].tolist() if len(x) > 1 and x[1] is not None else None)
            return x[0].sum(dim=axes, keepdim=bool(a.get("keepdims", 1)))
        if t == "Transpose":
            return x[0].permute(*a["perm"])
        if t == "Reshape":
            shape = [int(s) for s in x[1].tolist()]
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return x[0].reshape(shape)
        if t == "Unsqueeze":
            axes = a.get("axes", x[1].tolist() if len(x) > 1 else None)
            y = x[0]
            for ax in sorted(int(v) % (y.dim() + len(axes)) for v in axes):
                y = y.unsqueeze(ax)
            return y
        if t == "Squeeze":
            axes = a.get("axes", x[1].tolist() if len(x) > 1 else None)
            return x[0].squeeze(tuple(axes)) if axes else x[0].squeeze()
        if t == "Shape":
            return torch.tensor(list(x[0].shape), dtype=torch.int64, device=self.dev)
        if t == "Gather":
            ax = a.get("axis", 0)
            return torch.index_select(x[0], ax, x[1].reshape(-1).long()).reshape(x[0].shape[:ax] + x[1].shape + x[0].shape[ax + 1:]) if x[1].dim() > 0 else x[0].select(ax, int(x[1].item()))
        if t == "Concat":
            return torch.cat(x, dim=a["axis"])
        if t == "Cast":
            to = {1: torch.float16 if self.half else torch.float32, 7: torch.int64, 9: torch.bool, 6: torch.int32}[a["to"]]
            return x[0].to(to)
        if t == "ConstantOfShape":
            v = a.get("value", None)
            val = numpy_helper.to_array(v).item() if v is not None else 0.0
            return torch.full([int(s) for s in x[0].tolist()], val, device=self.dev)
        if t == "Equal":
            return x[0] == x[1]
        if t == "Where":
            return torch.where(x[0], x[1], x[2])
        if t == "Expand":
            return x[0] * torch.ones([int(s) for s in x[1].tolist()], dtype=x[0].dtype, device=self.dev)
        if t == "Slice":
            y = x[0]
            starts, ends = x[1].tolist(), x[2].tolist()
            axes = x[3].tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
            steps = x[4].tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
            idx = [slice(None)] * y.dim()
            for s, e, ax, st in zip(starts, ends, axes, steps):
                idx[ax] = slice(s, min(e, y.shape[ax]), st)
            return y[tuple(idx)]
        if t in ("Identity", "Dropout"):
            return x[0]
        raise NotImplementedError(f"bench_torch.py: op {t} not mapped")


def timeit(fn, runs, sync):
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2], times[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 (default: strict f32, like uniml)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--only", default="", help="comma-separated model labels (and/or 'gemm')")
    ap.add_argument("--half", action="store_true", help="f16 weights and activations (PyTorch eager .half())")
    ap.add_argument("--batches", default="1,32")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    models = os.path.join(ROOT, ".cache/models")
    cases = [
        ("efficientnet_lite0", os.path.join(ROOT, "models/efficientnet_lite0.onnx"), "image"),
        ("mobilenetv2", os.path.join(models, "mobilenetv2.onnx"), "image"),
        ("paraphrase-MiniLM-L3-v2", os.path.join(models, "paraphrase-MiniLM-L3-v2.onnx"), "text"),
    ]
    only = [x for x in args.only.split(",") if x]
    for label, path, kind in cases:
        if only and label not in only:
            continue
        if not os.path.exists(path):
            print(f"skipping {label}: {path} not found (cargo xtask models)", file=sys.stderr)
            continue
        m = OnnxEager(path, dev, args.half)
        for batch in [int(b) for b in args.batches.split(",")]:
            if kind == "image":
                feeds = {m.g.input[0].name: torch.randn(batch, 3, 224, 224, device=dev, dtype=torch.float16 if args.half else torch.float32)}
            else:
                ids = torch.randint(1000, 20000, (batch, 128), device=dev)
                feeds = {i.name: (ids if i.name == "input_ids" else torch.zeros_like(ids) if i.name == "token_type_ids" else torch.ones_like(ids)) for i in m.g.input if i.name not in m.consts}
            try:
                med, mn = timeit(lambda: m(feeds), args.runs, sync)
            except Exception as e:  # report, go on with the next case
                print(json.dumps({"engine": "torch-eager", "model": label, "batch": batch, "half": args.half, "error": repr(e)}))
                continue
            print(json.dumps({"engine": "torch-eager", "device": name, "model": label, "batch": batch, "median_ms": med, "min_ms": mn, "tf32": args.tf32, "half": args.half}))
    if only and "gemm" not in only:
        return
    n = 4096
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)
    med, mn = timeit(lambda: a @ b, args.runs, sync)
    print(json.dumps({"engine": "torch", "device": name, "case": "gemm_4096_f32", "median_ms": med, "tflops": 2 * n**3 / (med * 1e-3) / 1e12, "tf32": args.tf32}))


if __name__ == "__main__":
    main()
