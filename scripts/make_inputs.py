#!/usr/bin/env python3
"""Write deterministic model inputs as .npy files (one per graph input, named after it with `/`
and `:` replaced by `_`), so that uniml and onnxruntime (scripts/reference.py) see the same bytes.

  make_inputs.py image KIND IMAGE OUT_DIR [--invert]
      efficientnet      RGB, resize short side to 256 (PIL bilinear, long side rounded),
                        centre-crop 224 (offset floor((side-224)/2)), x = (pixel - 127) / 128,
                        f32 NCHW [1,3,224,224] -> input.npy
      selfie            RGB resized to 256x256 (PIL bilinear), pixel/255, f32 NHWC [1,256,256,3]
      selfie_landscape  RGB resized to 256 wide x 144 high, f32 NHWC [1,144,256,3]
      digits            grayscale, resized to 8x8 (PIL bilinear), pixel/255, f32 [1,1,8,8]
                        (--invert: 1 - x; scikit-learn's digits are light ink on dark)
      ppocr_det         (for ppocrv4_det.onnx) BGR, long side scaled to <= 960 (never up), each
                        side rounded to a multiple of 32, (pixel/255 - 0.5)/0.5, f32 [1,3,H,W] -> x.npy
  make_inputs.py digits-synthetic OUT_DIR [--seed 0]
      f32 [4,1,8,8] uniform in [0,1) from numpy default_rng(seed) -> input.npy
  make_inputs.py random MODEL OUT_DIR [--dim NAME=V ...] [--shape INPUT=D0,D1,...] [--set INPUT=V]
                 [--seed 0] [--unit]
      every graph input that is not an initializer, in graph order, from default_rng(seed):
      floats uniform [-1,1) ([0,1) with --unit), ints in [0,10), bools fair coin. A symbolic
      dim takes its --dim value (default 1), an unnamed one 1; --shape gives an input's whole
      shape, --set fills an input with one value (e.g. silero_vad.onnx: --set sr=16000).
  make_inputs.py text TOKENIZER_JSON OUT_DIR SENTENCE [--max-len 128]
      BERT WordPiece with the `tokenizers` package if it is installed, else the pure-python
      equivalent below; [CLS] ... [SEP], truncated/padded to max-len; writes input_ids,
      attention_mask, token_type_ids as int64 [1,max-len] (token_type_ids all 0; models that do
      not take it, like paraphrase-MiniLM-L3-v2.onnx, just ignore that file).
"""
import argparse
import json
import os
import sys
import unicodedata

import numpy as np


def log(msg):
    print(f"make_inputs: {msg}", file=sys.stderr, flush=True)


def save(out_dir, name, arr):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name.replace("/", "_").replace(":", "_") + ".npy")
    np.save(path, arr)
    log(f"wrote {path}: {arr.dtype} {list(arr.shape)}")


# ---------------------------------------------------------------- images
def image_input(kind, path, invert=False):
    from PIL import Image
    img = Image.open(path)
    bl = Image.BILINEAR
    if kind == "efficientnet":
        img = img.convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((256, round(h * s)) if w <= h else (round(w * s), 256), bl)
        w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        x = (np.asarray(img, np.float32) - 127.0) / 128.0
        return "input", x.transpose(2, 0, 1)[None].copy()
    if kind in ("selfie", "selfie_landscape"):
        size = (256, 256) if kind == "selfie" else (256, 144)
        x = np.asarray(img.convert("RGB").resize(size, bl), np.float32) / 255.0
        return "input", x[None].copy()
    if kind == "digits":
        x = np.asarray(img.convert("L").resize((8, 8), bl), np.float32) / 255.0
        return "input", (1.0 - x if invert else x)[None, None].copy()
    if kind == "ppocr_det":
        img = img.convert("RGB")
        w, h = img.size
        s = min(1.0, 960 / max(w, h))
        img = img.resize((max(32, round(w * s / 32) * 32), max(32, round(h * s / 32) * 32)), bl)
        x = (np.asarray(img, np.float32)[:, :, ::-1] / 255.0 - 0.5) / 0.5
        return "x", x.transpose(2, 0, 1)[None].astype(np.float32)
    raise SystemExit(f"make_inputs: unknown image kind {kind!r}")


# ---------------------------------------------------------------- random
def random_inputs(model_path, dims, shapes, sets, seed, unit):
    import onnx
    from onnx import helper
    g = onnx.load(model_path, load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    rng = np.random.default_rng(seed)
    for vi in g.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        shape = shapes.get(vi.name) or [d.dim_value if d.HasField("dim_value") else dims.get(d.dim_param, 1)
                                        for d in tt.shape.dim]
        if vi.name in sets:
            arr = np.full(shape, sets[vi.name], dtype)
        elif np.issubdtype(dtype, np.floating):
            arr = rng.uniform(0.0 if unit else -1.0, 1.0, shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            arr = rng.integers(0, 10, shape).astype(dtype)
        elif dtype == np.bool_:
            arr = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            raise SystemExit(f"make_inputs: input {vi.name!r}: dtype {dtype} not supported")
        yield vi.name, arr


# ---------------------------------------------------------------- text
def _is_punct(ch):
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 \
        or unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
               (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def wordpiece(text, vocab, unk="[UNK]", max_chars=100):
    """BERT uncased: clean text, space CJK, lower-case, strip accents, split on whitespace and
    punctuation, then greedy longest-match-first WordPiece with the '##' prefix."""
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ord(ch) in (0, 0xFFFD) or (cat.startswith("C") and ch not in "\t\n\r"):
            continue
        chars.append(" " if ch in " \t\n\r" or cat == "Zs" else f" {ch} " if _is_cjk(ord(ch)) else ch)
    text = unicodedata.normalize("NFD", "".join(chars).lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    words = []
    for tok in text.split():
        cur = ""
        for ch in tok:
            if _is_punct(ch):
                words += [cur, ch] if cur else [ch]
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    pieces = []
    for w in words:
        if len(w) > max_chars:
            pieces.append(unk)
            continue
        start, sub = 0, []
        while start < len(w):
            end = len(w)
            while end > start and (("##" if start else "") + w[start:end]) not in vocab:
                end -= 1
            if end == start:
                sub = [unk]
                break
            sub.append(("##" if start else "") + w[start:end])
            start = end
        pieces += sub
    return pieces


def text_inputs(tokenizer_json, sentence, max_len):
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(tokenizer_json)
        tok.enable_truncation(max_len)
        tok.enable_padding(length=max_len, pad_id=0, pad_token="[PAD]")
        enc = tok.encode(sentence)
        log(f"tokenizers package: {enc.tokens[:sum(enc.attention_mask)]}")
        ids, mask = enc.ids, enc.attention_mask
    except ImportError:
        with open(tokenizer_json, encoding="utf-8") as f:
            vocab = json.load(f)["model"]["vocab"]
        tokens = ["[CLS]"] + wordpiece(sentence, vocab)[:max_len - 2] + ["[SEP]"]
        log(f"pure-python WordPiece: {tokens}")
        ids = [vocab[t] for t in tokens] + [0] * (max_len - len(tokens))
        mask = [1] * len(tokens) + [0] * (max_len - len(tokens))
    ids = np.array([ids], np.int64)
    return {"input_ids": ids, "attention_mask": np.array([mask], np.int64),
            "token_type_ids": np.zeros_like(ids)}


# ---------------------------------------------------------------- CLI
def pairs(items, conv):
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        if not v:
            raise SystemExit(f"make_inputs: expected NAME=VALUE, got {it!r}")
        out[k] = conv(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("image")
    p.add_argument("kind", choices=["efficientnet", "selfie", "selfie_landscape", "digits", "ppocr_det"])
    p.add_argument("image")
    p.add_argument("out_dir")
    p.add_argument("--invert", action="store_true", help="digits: 1 - x")
    p = sub.add_parser("digits-synthetic")
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("random")
    p.add_argument("model")
    p.add_argument("out_dir")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=V")
    p.add_argument("--shape", action="append", default=[], metavar="INPUT=D0,D1,...")
    p.add_argument("--set", action="append", default=[], metavar="INPUT=V")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unit", action="store_true", help="floats in [0,1) instead of [-1,1)")
    p = sub.add_parser("text")
    p.add_argument("tokenizer_json")
    p.add_argument("out_dir")
    p.add_argument("sentence")
    p.add_argument("--max-len", type=int, default=128)
    a = ap.parse_args()

    if a.cmd == "image":
        save(a.out_dir, *image_input(a.kind, a.image, a.invert))
    elif a.cmd == "digits-synthetic":
        save(a.out_dir, "input", np.random.default_rng(a.seed).random((4, 1, 8, 8), dtype=np.float32))
    elif a.cmd == "random":
        shapes = pairs(a.shape, lambda v: [int(d) for d in v.split(",")])
        for name, arr in random_inputs(a.model, pairs(a.dim, int), shapes, pairs(a.set, float), a.seed, a.unit):
            save(a.out_dir, name, arr)
    else:
        for name, arr in text_inputs(a.tokenizer_json, a.sentence, a.max_len).items():
            save(a.out_dir, name, arr)


if __name__ == "__main__":
    main()
