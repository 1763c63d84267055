//! Checks the low-precision conversions of `uniml_data::lowp` against an independent
//! reference: `ml_dtypes` (what onnx's own reference implementation and test data use)
//! and `onnx.numpy_helper`, run through the project's Python venv (`.venv`, created by
//! `cargo xtask test`/`conformance`; `UNIML_PYTHON` overrides). Every float8/float4 bit
//! pattern is decoded, and a few thousand f32 values (all pattern midpoints, their
//! neighbours, specials, random values over the whole range) are encoded with and
//! without saturation. Without the venv the test says so and checks nothing.

use std::path::PathBuf;
use std::process::Command;

use uniml_data::lowp::{self, LowFloat, SmallInt};
use uniml_data::DType;

const SCRIPT: &str = r#"
import sys, numpy as np, ml_dtypes as md
from onnx import numpy_helper as nh
types = {"float8_e4m3fn": md.float8_e4m3fn, "float8_e4m3fnuz": md.float8_e4m3fnuz,
         "float8_e5m2": md.float8_e5m2, "float8_e5m2fnuz": md.float8_e5m2fnuz,
         "float4_e2m1fn": md.float4_e2m1fn}
rng = np.random.default_rng(0)
vals = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30]
for name, t in types.items():
    n = 16 if name.startswith("float4") else 256
    decoded = np.arange(n, dtype=np.uint8).view(t).astype(np.float64)
    for c in range(n):
        print("dec", name, c, float(decoded[c]).hex())
    grid = np.unique(np.abs(decoded))
    grid = grid[np.isfinite(grid)]
    mids = (grid[1:] + grid[:-1]) / 2
    xs = np.concatenate([grid, mids, np.nextafter(mids.astype(np.float32), np.float32(np.inf)),
        np.nextafter(mids.astype(np.float32), np.float32(-np.inf)), grid * 1.01, grid * 1.5,
        rng.uniform(-2, 2, 200) * float(grid.max()) * 1.2, np.array(vals)]).astype(np.float32)
    xs = np.concatenate([xs, -xs])
    with np.errstate(all="ignore"):
        # onnx Cast: saturate_cast for float8 with saturate=1, plain astype otherwise
        # (float4 has no non-saturating form).
        sat = nh.saturate_cast(xs, t) if n == 256 else xs.astype(t)
        raw = xs.astype(t)
    sat_b = np.frombuffer(sat.tobytes(), np.uint8)
    raw_b = np.frombuffer(raw.tobytes(), np.uint8)
    for i, x in enumerate(xs):
        print("enc", name, float(x).hex(), int(sat_b[i]), int(raw_b[i]))
ints = {"int4": md.int4, "uint4": md.uint4, "int2": md.int2, "uint2": md.uint2}
fx = np.concatenate([np.arange(-20, 20, 0.25), [np.nan, np.inf, -np.inf, 1e9]]).astype(np.float32)
ix = np.arange(-300, 300, 7, dtype=np.int32)
for name, t in ints.items():
    # Floats whose truncation is out of range are undefined in ONNX ("fixed point:
    # undefined if OOR") and ml_dtypes' answer for them varies between runs (a C++
    # out-of-range conversion), so only in-range values are compared.
    info = md.iinfo(t)
    ok = fx[np.isfinite(fx) & (np.trunc(fx) >= info.min) & (np.trunc(fx) <= info.max)]
    with np.errstate(all="ignore"):
        for x, y in zip(ok, ok.astype(t)):
            print("f2i", name, float(x).hex(), int(y))
        for x, y in zip(ix, ix.astype(t)):
            print("i2i", name, int(x), int(y))
e8 = np.concatenate([2.0 ** np.arange(-130, 128), [0.124, 1.1, 1.5, 1.75, 3.0, 0.75, 3e38, 1e-39, np.inf, np.nan, 0.0]]).astype(np.float32)
for sat in (True, False):
    for mode in ("up", "down", "nearest"):
        out = nh.to_float8e8m0(e8, sat, mode).view(np.uint8)
        for x, y in zip(e8, out):
            print("e8m0", int(sat), mode, float(x).hex(), int(y))
"#;

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("UNIML_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".venv/bin/python");
    p.exists().then_some(p)
}

fn hexf(s: &str) -> f64 {
    // Python float.hex(): [-]0x1.abcp+3, inf, nan.
    match s {
        "inf" => return f64::INFINITY,
        "-inf" => return f64::NEG_INFINITY,
        "nan" | "-nan" => return f64::NAN,
        _ => {}
    }
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix("0x").expect("hex float");
    let (mant, exp) = s.split_once('p').expect("exponent");
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = u64::from_str_radix(int, 16).unwrap() as f64;
    for (i, c) in frac.chars().enumerate() {
        v += c.to_digit(16).unwrap() as f64 * 16f64.powi(-(i as i32 + 1));
    }
    let v = v * 2f64.powi(exp.parse().unwrap());
    if neg {
        -v
    } else {
        v
    }
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

fn float_fmt(name: &str) -> (DType, lowp::MiniFloat) {
    match name {
        "float8_e4m3fn" => (DType::F8E4M3FN, lowp::E4M3FN),
        "float8_e4m3fnuz" => (DType::F8E4M3FNUZ, lowp::E4M3FNUZ),
        "float8_e5m2" => (DType::F8E5M2, lowp::E5M2),
        "float8_e5m2fnuz" => (DType::F8E5M2FNUZ, lowp::E5M2FNUZ),
        "float4_e2m1fn" => (DType::F4E2M1, lowp::E2M1),
        _ => panic!("{name}"),
    }
}

fn small_int(name: &str, mut f: impl FnMut(&dyn Fn(f64) -> i32, &dyn Fn(i128) -> i32)) {
    match name {
        "int4" => f(&|v| lowp::I4::from_f64_cast(v).value(), &|v| lowp::I4::wrapping(v).value()),
        "uint4" => f(&|v| lowp::U4::from_f64_cast(v).value(), &|v| lowp::U4::wrapping(v).value()),
        "int2" => f(&|v| lowp::I2::from_f64_cast(v).value(), &|v| lowp::I2::wrapping(v).value()),
        "uint2" => f(&|v| lowp::U2::from_f64_cast(v).value(), &|v| lowp::U2::wrapping(v).value()),
        _ => panic!("{name}"),
    }
}

#[test]
fn conversions_match_ml_dtypes() {
    let Some(py) = python() else {
        eprintln!("SKIPPED: no .venv/bin/python (run `cargo xtask conformance` once, or set UNIML_PYTHON)");
        return;
    };
    let out = Command::new(&py).arg("-c").arg(SCRIPT).output().expect("running python");
    assert!(out.status.success(), "reference script failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0usize;
    let mut bad = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "dec" => {
                let (_, fmt) = float_fmt(w[1]);
                let code: u8 = w[2].parse().unwrap();
                if !same(fmt.decode(code), hexf(w[3])) {
                    bad.push(format!("decode {} {code:#04x}: {} vs {}", w[1], fmt.decode(code), hexf(w[3])));
                }
            }
            "enc" => {
                let (_, fmt) = float_fmt(w[1]);
                let x = hexf(w[2]);
                let (sat, raw): (u8, u8) = (w[3].parse().unwrap(), w[4].parse().unwrap());
                for (s, want) in [(true, sat), (false, raw)] {
                    let got = fmt.encode(x, s);
                    // NaN payloads may differ; E2M1 has no NaN and ml_dtypes gives a zero
                    // of either sign for it, we give +0.
                    let (g, wv) = (fmt.decode(got), fmt.decode(want));
                    let nan_ok = (g.is_nan() && wv.is_nan()) || (x.is_nan() && g == 0.0 && wv == 0.0);
                    if got != want && !nan_ok {
                        bad.push(format!("encode {} {x} saturate={s}: {got:#04x} vs {want:#04x}", w[1]));
                    }
                }
            }
            "f2i" | "i2i" => small_int(w[1], |from_f, from_i| {
                let want: i32 = w[3].parse().unwrap();
                let got = if w[0] == "f2i" { from_f(hexf(w[2])) } else { from_i(w[2].parse().unwrap()) };
                if got != want {
                    bad.push(format!("{} {} {}: {got} vs {want}", w[0], w[1], w[2]));
                }
            }),
            "e8m0" => {
                let sat = w[1] == "1";
                let mode = match w[2] {
                    "up" => lowp::RoundMode::Up,
                    "down" => lowp::RoundMode::Down,
                    _ => lowp::RoundMode::Nearest,
                };
                let x = hexf(w[3]);
                let want: u8 = w[4].parse().unwrap();
                let got = lowp::F8E8M0::from_f64(x, sat, mode).0;
                if got != want {
                    bad.push(format!("e8m0 {x} sat={sat} {mode:?}: {got} vs {want}"));
                }
            }
            other => panic!("unexpected line kind {other}"),
        }
        checked += 1;
    }
    assert!(checked > 5000, "only {checked} reference values");
    assert!(bad.is_empty(), "{} of {checked} differ from ml_dtypes:\n{}", bad.len(), bad[..bad.len().min(40)].join("\n"));
}
