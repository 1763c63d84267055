#!/usr/bin/env python3
"""Runs a wasm32-wasip1 command module under Wasmtime (the PyPI `wasmtime`
package), with the given host directories preopened at the same paths.

usage: run_wasi.py MODULE.wasm --dir HOST_DIR [--dir ...] -- ARGS...
"""
import sys

import wasmtime


def main():
    argv = sys.argv[1:]
    if "--" not in argv or not argv:
        sys.exit(__doc__)
    split = argv.index("--")
    opts, args = argv[:split], argv[split + 1:]
    module_path, dirs = opts[0], []
    i = 1
    while i < len(opts):
        if opts[i] == "--dir":
            dirs.append(opts[i + 1])
            i += 2
        else:
            sys.exit(f"unknown option {opts[i]}")
    config = wasmtime.Config()
    config.cache = True
    # Relaxed SIMD (the browser package's relaxed builds; uniml-linalg's wasm tests): on, and
    # non-deterministic like the browsers' (f32x4.relaxed_madd fused where the host has FMA).
    config.wasm_relaxed_simd = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module.from_file(engine, module_path)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasi = wasmtime.WasiConfig()
    wasi.argv = [module_path] + args
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for d in dirs:
        wasi.preopen_dir(d, d)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        sys.exit(e.code)


if __name__ == "__main__":
    main()
