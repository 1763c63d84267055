#!/usr/bin/env python3
"""`uniml serve` against a client we did not write: NVIDIA's tritonclient[http]
(pinned in scripts/requirements-server.txt), with onnxruntime (the project's
oracle) run in this script on the same inputs.

  test_server_triton.py [--uniml PATH_TO_UNIML_BINARY]

Starts `uniml serve models/digits8x8_cnn.onnx models/efficientnet_lite0.onnx
--port 0`, checks liveness, readiness and metadata, runs inference with JSON
and with binary tensors, compares to onnxruntime (max |diff| <= 1e-4 x scale),
classifies testdata/coffee.png (class 967, espresso), checks error handling,
then stops the server with SIGTERM and expects a clean exit.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_inputs import image_input  # noqa: E402  (same preprocessing as the golden tests)

RESULTS = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    if cond:
        RESULTS["passed"] += 1
        print(f"ok    {name}", flush=True)
    else:
        RESULTS["failed"] += 1
        print(f"FAIL  {name} {detail}", flush=True)


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache/uniml-target")
    for profile in ("release", "debug"):
        p = os.path.join(target, profile, "uniml")
        if os.path.exists(p):
            return p
    raise SystemExit("no uniml binary found: pass --uniml PATH (cargo xtask serve-test does)")


def start_server(binary, models):
    cmd = [binary, "serve", *models, "--port", "0", "--max-concurrency", "2"]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines = []
    threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True).start()
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"listening on http://([\d.]+:\d+)", line)
        if m:
            return proc, m.group(1), stderr_lines
    proc.kill()
    raise SystemExit("uniml serve did not print its URL:\n" + "".join(stderr_lines))


def max_rel_diff(got, want):
    scale = max(1.0, float(np.max(np.abs(want))))
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def infer(client, model, name, x, binary, output="logits"):
    inp = httpclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput(output, binary_data=binary)
    res = client.infer(model, [inp], outputs=[out], request_id=f"{model}-{int(binary)}")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uniml", default=None)
    args = ap.parse_args()
    binary = args.uniml or default_binary()
    models = ["models/digits8x8_cnn.onnx", "models/efficientnet_lite0.onnx"]
    proc, url, stderr_lines = start_server(binary, models)
    try:
        client = httpclient.InferenceServerClient(url=url, network_timeout=120.0, connection_timeout=30.0)
        check("server live", client.is_server_live())
        check("server ready", client.is_server_ready())
        meta = client.get_server_metadata()
        check("server metadata", meta.get("name") == "uniml" and "binary_tensor_data" in meta.get("extensions", []), meta)
        for m in ("digits8x8_cnn", "efficientnet_lite0"):
            check(f"{m} ready", client.is_model_ready(m))
        md = client.get_model_metadata("efficientnet_lite0")
        check("efficientnet metadata", md["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}
              and md["outputs"][0]["name"] == "logits" and md["outputs"][0]["datatype"] == "FP32", md)
        check("unknown model not ready", not client.is_model_ready("nope"))

        # digits: a batch of 4 random images, JSON and binary.
        x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
        ref = ort.InferenceSession(os.path.join(ROOT, models[0]), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        for b in (False, True):
            res = infer(client, "digits8x8_cnn", "input", x, b)
            got = res.as_numpy("logits")
            d = max_rel_diff(got, ref)
            check(f"digits8x8_cnn {'binary' if b else 'JSON'} vs onnxruntime (max rel diff {d:.2e})", got.shape == ref.shape and d <= 1e-4, (got.shape, d))
            check(f"digits8x8_cnn {'binary' if b else 'JSON'} id echoed", res.get_response().get("id") == f"digits8x8_cnn-{int(b)}")

        # efficientnet_lite0 on the coffee picture.
        name, img = image_input("efficientnet", os.path.join(ROOT, "testdata/coffee.png"))
        ref = ort.InferenceSession(os.path.join(ROOT, models[1]), providers=["CPUExecutionProvider"]).run(None, {name: img})[0]
        for b in (True, False):
            got = infer(client, "efficientnet_lite0", name, img, b).as_numpy("logits")
            d = max_rel_diff(got, ref)
            kind = "binary" if b else "JSON"
            check(f"efficientnet_lite0 {kind} vs onnxruntime (max rel diff {d:.2e})", got.shape == ref.shape and d <= 1e-4, (got.shape, d))
            check(f"efficientnet_lite0 {kind}: coffee.png is class 967 (espresso)", int(np.argmax(got)) == 967 and int(np.argmax(ref)) == 967, int(np.argmax(got)))

        # Errors reach the client as exceptions with the server's message.
        try:
            infer(client, "digits8x8_cnn", "input", np.zeros((1, 1, 8, 9), np.float32), False)
            check("wrong shape rejected", False)
        except InferenceServerException as e:
            check("wrong shape rejected with a message naming the input", "input 'input'" in str(e) and "[1, 1, 8, 9]" in str(e), str(e))
        try:
            infer(client, "nope", "input", x, True)
            check("unknown model rejected", False)
        except InferenceServerException as e:
            check("unknown model rejected", "unknown model" in str(e), str(e))
        check("server still live after errors", client.is_server_live())
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
    check("SIGTERM: clean exit", rc == 0, f"rc={rc}\n{''.join(stderr_lines)}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed", flush=True)
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
