//! Helpers shared by op kernels: dtype dispatch, broadcasting, axis handling.

use uniml_data::{bail, Dim, Result, SymbolicShape};

use crate::op::Fact;

/// Runs `$body` with `$T` bound to the Rust element type of `$dtype`, for
/// every numeric dtype. Falls through to `$fallback` for bool/string.
#[macro_export]
macro_rules! dispatch_numeric {
    ($dtype:expr, $T:ident => $body:expr, _ => $fallback:expr) => {{
        use $crate::DType as __D;
        match $dtype {
            __D::F32 => { type $T = f32; $body }
            __D::F64 => { type $T = f64; $body }
            __D::F16 => { type $T = $crate::ops::util::f16; $body }
            __D::BF16 => { type $T = $crate::ops::util::bf16; $body }
            __D::I8 => { type $T = i8; $body }
            __D::U8 => { type $T = u8; $body }
            __D::I16 => { type $T = i16; $body }
            __D::U16 => { type $T = u16; $body }
            __D::I32 => { type $T = i32; $body }
            __D::U32 => { type $T = u32; $body }
            __D::I64 => { type $T = i64; $body }
            __D::U64 => { type $T = u64; $body }
            #[allow(unreachable_patterns)]
            _ => $fallback,
        }
    }};
}

/// Like [`dispatch_numeric!`] but bool is treated as `u8` (0/1), so
/// data-movement kernels (gather, slice, transpose, concat…) cover every
/// non-string dtype with one generic body. The low-precision types (float8,
/// float4, 4-/2-bit ints) are one byte per element in memory, so they move as
/// `u8` too.
#[macro_export]
macro_rules! dispatch_pod {
    ($dtype:expr, $T:ident => $body:expr, _ => $fallback:expr) => {{
        use $crate::DType as __D;
        match $dtype {
            __D::F32 | __D::I32 | __D::U32 => { type $T = u32; $body }
            __D::F64 | __D::I64 | __D::U64 => { type $T = u64; $body }
            __D::F16 | __D::BF16 | __D::I16 | __D::U16 => { type $T = u16; $body }
            __D::I8 | __D::U8 | __D::Bool
            | __D::F8E4M3FN | __D::F8E4M3FNUZ | __D::F8E5M2 | __D::F8E5M2FNUZ | __D::F8E8M0
            | __D::F4E2M1 | __D::U4 | __D::I4 | __D::U2 | __D::I2 => { type $T = u8; $body }
            #[allow(unreachable_patterns)]
            _ => $fallback,
        }
    }};
}

pub use uniml_data::{bf16, f16};

/// Normalises a possibly negative axis against `rank` (ONNX convention).
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) && !(r == 0 && a == 0) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Row-major strides of a shape (in elements).
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` as seen from the broadcast `out` shape: 0 on broadcast dims.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { own[i - off] }).collect()
}

/// Calls `f(out_index, [offset of each input])` for each element of `out`,
/// walking the output in row-major order. `ins` are input shapes broadcastable to `out`.
pub fn for_each_broadcast<const N: usize>(out: &[usize], ins: [&[usize]; N], mut f: impl FnMut(usize, [usize; N])) {
    let total: usize = out.iter().product();
    if total == 0 {
        return;
    }
    let st: Vec<Vec<usize>> = ins.iter().map(|s| broadcast_strides(s, out)).collect();
    let rank = out.len();
    let mut idx = vec![0usize; rank];
    let mut offs = [0usize; N];
    for o in 0..total {
        f(o, offs);
        // Odometer increment.
        for d in (0..rank).rev() {
            idx[d] += 1;
            for (k, s) in st.iter().enumerate() {
                offs[k] += s[d];
            }
            if idx[d] < out[d] {
                break;
            }
            for (k, s) in st.iter().enumerate() {
                offs[k] -= s[d] * out[d];
            }
            idx[d] = 0;
        }
    }
}

/// Broadcasts symbolic shapes (for shape inference).
pub fn broadcast_symbolic(shapes: &[&SymbolicShape]) -> Result<SymbolicShape> {
    let rank = shapes.iter().map(|s| s.rank()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in shapes {
        let off = rank - s.rank();
        for (i, d) in s.0.iter().enumerate() {
            let o = &mut out[off + i];
            *o = match (&*o, d) {
                (Dim::Known(1), x) => x.clone(),
                (x, Dim::Known(1)) => x.clone(),
                (Dim::Known(a), Dim::Known(b)) if a != b => bail!("dims {a} and {b} cannot be broadcast"),
                (Dim::Known(a), _) | (_, Dim::Known(a)) => Dim::Known(*a),
                (Dim::Sym(a), Dim::Sym(b)) if a == b => Dim::Sym(a.clone()),
                _ => Dim::Unknown,
            };
        }
    }
    Ok(SymbolicShape(out))
}

/// Output fact of an elementwise op: broadcast of input shapes, given dtype.
pub fn broadcast_fact(inputs: &[&Fact], dtype: Option<uniml_data::DType>) -> Result<Fact> {
    let shapes: Option<Vec<&SymbolicShape>> = inputs.iter().map(|f| f.shape.as_ref()).collect();
    let shape = match shapes {
        Some(s) => Some(broadcast_symbolic(&s)?),
        None => None,
    };
    Ok(Fact { dtype, shape, konst: None, is_sequence: false })
}

/// Reads a 1-D (or scalar) integer tensor (i64 or i32) as i64s.
pub fn read_i64s(t: &uniml_data::TensorView) -> Result<Vec<i64>> {
    use uniml_data::DType;
    Ok(match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.to_vec(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&v| v as i64).collect(),
        DType::U8 | DType::Bool => t.as_slice::<u8>()?.iter().map(|&v| v as i64).collect(),
        other => bail!("expected an int64 or int32 tensor, got {other}"),
    })
}

/// Reads a float tensor of any float dtype as f32s.
pub fn read_f32s(t: &uniml_data::TensorView) -> Result<Vec<f32>> {
    Ok(t.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn broadcast_walk_matches_numpy_order() {
        let mut seen = vec![];
        for_each_broadcast(&[2, 3], [&[2, 1], &[3]], |o, [a, b]| seen.push((o, a, b)));
        assert_eq!(seen, vec![(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 1, 0), (4, 1, 1), (5, 1, 2)]);
    }
    #[test]
    fn axes_normalise() {
        assert_eq!(norm_axis(-1, 4).unwrap(), 3);
        assert!(norm_axis(4, 4).is_err());
    }
}
