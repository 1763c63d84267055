//! Value comparison with the ONNX backend runner's rules.

use uniml::{DType, Tensor, Value};

pub fn values(got: &Value, want: &Value, rtol: f64, atol: f64) -> Result<(), String> {
    match (got, want) {
        (Value::Tensor(g), Value::Tensor(w)) => tensors(g, w, rtol, atol),
        (Value::Sequence(g), Value::Sequence(w)) => {
            if g.len() != w.len() {
                return Err(format!("sequence length {} != expected {}", g.len(), w.len()));
            }
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                tensors(a, b, rtol, atol).map_err(|m| format!("element {i}: {m}"))?;
            }
            Ok(())
        }
        (Value::None, Value::None) => Ok(()),
        (g, w) => Err(format!("value kind {} != expected {}", kind(g), kind(w))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Tensor(_) => "tensor",
        Value::Sequence(_) => "sequence",
        Value::None => "empty optional",
    }
}

pub fn tensors(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} != expected {}", got.dtype(), want.dtype()));
    }
    if got.shape() != want.shape() {
        return Err(format!("shape {:?} != expected {:?}", got.shape(), want.shape()));
    }
    if got.dtype() == DType::String {
        let (g, w) = (got.as_strings().map_err(|e| e.to_string())?, want.as_strings().map_err(|e| e.to_string())?);
        return match g.iter().zip(w).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!("string {i}: {:?} != expected {:?}", g[i], w[i])),
        };
    }
    let g = got.to_f64_vec().map_err(|e| e.to_string())?;
    let w = want.to_f64_vec().map_err(|e| e.to_string())?;
    // Integers (4-/2-bit included) compare exactly; floats (float8/float4 by value: any
    // one-step difference there is far beyond the tolerances, -0 == 0, any NaN == NaN)
    // with the suite's tolerances.
    let exact = !(got.dtype().is_float() || got.dtype().is_low_precision_float());
    let mut bad = 0usize;
    let mut first = None;
    let mut max_diff = 0f64;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = if exact {
            a == b
        } else if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= atol + rtol * b.abs()
        };
        if !ok {
            bad += 1;
            max_diff = max_diff.max((a - b).abs());
            first.get_or_insert(i);
        }
    }
    match first {
        None => Ok(()),
        Some(i) => Err(format!("{bad}/{} elements differ (first at {i}: {} vs expected {}; max |diff| {max_diff:.3e})", g.len(), g[i], w[i])),
    }
}
