#!/usr/bin/env python3
"""A minimal Open Inference Protocol v2 server over onnxruntime (stdlib http.server),
the peer of `uniml serve` in `cargo xtask serve-bench`. JSON subset only:

  GET  /v2/health/live, /v2/health/ready
  POST /v2/models/{name}/infer   {"inputs": [{"name", "shape", "datatype", "data"}]}

  ort_server.py MODEL... [--port 0] [--threads 1]

Prints `listening on http://127.0.0.1:PORT` when ready. One thread per
connection (ThreadingHTTPServer); onnxruntime releases the GIL while it runs.
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8, "INT8": np.int8, "BOOL": np.bool_}
NAMES = {np.dtype(v).name: k for k, v in DTYPES.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per session")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sessions = {os.path.splitext(os.path.basename(m))[0]: ort.InferenceSession(m, opts, providers=["CPUExecutionProvider"]) for m in args.models}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path in ("/v2/health/live", "/v2/health/ready"):
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            parts = self.path.strip("/").split("/")
            if len(parts) != 4 or parts[:2] != ["v2", "models"] or parts[3] != "infer" or parts[2] not in sessions:
                return self.reply(404, {"error": f"no route {self.path}"})
            sess = sessions[parts[2]]
            try:
                req = json.loads(raw)
                feeds = {i["name"]: np.asarray(i["data"], dtype=DTYPES[i["datatype"]]).reshape(i["shape"]) for i in req["inputs"]}
                outs = sess.run(None, feeds)
            except Exception as e:  # noqa: BLE001 — the peer answers 400 like uniml does
                return self.reply(400, {"error": str(e)})
            resp = {"model_name": parts[2], "outputs": [
                {"name": o.name, "datatype": NAMES.get(v.dtype.name, "BYTES"), "shape": list(v.shape), "data": v.ravel().tolist()}
                for o, v in zip(sess.get_outputs(), outs)]}
            if "id" in req:
                resp["id"] = req["id"]
            self.reply(200, resp)

    # The stdlib default listen backlog (5) resets connections under a burst of clients.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
