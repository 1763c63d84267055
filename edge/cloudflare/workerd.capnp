# Local test configuration for workerd (the open-source Workers runtime):
#   workerd serve workerd.capnp --socket-addr http=127.0.0.1:8787 --directory-path models=<repo>/models
# build/uniml.wasm is crates/uniml-wasi-http built for wasm32-unknown-unknown (cargo xtask wasi-test
# copies it there). The MODELS binding is a read-only disk service over models/; on Cloudflare it
# is the Static Assets binding of wrangler.toml, with the same fetch() interface.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "models", disk = (path = "../../models", writable = false)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "src/worker.js"),
    (name = "uniml.wasm", wasm = embed "build/uniml.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  bindings = [(name = "MODELS", service = "models")],
);
