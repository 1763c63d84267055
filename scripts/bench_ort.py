#!/usr/bin/env python3
"""onnxruntime (CPU EP) latency on random inputs, printed as one JSON object with
the same fields as `uniml bench --json`, so `cargo xtask bench` can set the two
side by side from one run.

usage: bench_ort.py MODEL [--threads N] [--runs K] [--warmup W] [--dim NAME=V ...]
"""
import argparse
import json
import resource
import time

import numpy as np
import onnxruntime as ort

DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dim", action="append", default=[])
    a = ap.parse_args()
    dims = dict(d.split("=", 1) for d in a.dim)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    create_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else int(dims.get(d, 1)) if d else 1 for d in i.shape]
        dt = DTYPES[i.type]
        if np.issubdtype(dt, np.floating):
            feeds[i.name] = rng.random(shape).astype(dt)
        elif dt == np.bool_:
            feeds[i.name] = rng.random(shape) > 0.5
        else:
            feeds[i.name] = rng.integers(0, 10, shape).astype(dt)
    for _ in range(a.warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    pct = lambda p: times[round((len(times) - 1) * p)]
    print(json.dumps({
        "model": a.model, "threads": a.threads, "runs": a.runs,
        "min_ms": times[0], "median_ms": pct(0.5), "p90_ms": pct(0.9),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "session_create_ms": create_ms, "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
