//! `MatMul` (numpy semantics: batched, broadcast batch dims, 1-D operands
//! promoted and the unit dim removed) and `MatMulInteger`.
//!
//! f32 runs on the SGEMM; a constant 2-D B is packed once and, with a 2-D B,
//! all batches of A become one tall GEMM. Integer dtypes use an exact i64 loop.
//! On the CPU a following bias `Add` and activation join the GEMM's epilogue
//! (`passes::fuse_matmul_bias`): the bias is then a third input.

use std::sync::Arc;

use uniml_data::{
    bail, broadcast_shapes, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView,
};

use super::gemm_glue::{gemm, gemm_packed_b_rows, par_gemm_rows, Epi, Mat, PackedB, WeightCache};
use super::{float_data, with_f32_output_overwritten, FusedActivation};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{broadcast_strides, broadcast_symbolic};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone, Default)]
pub struct MatMul {
    pub packed: WeightCache<PackedB>,
    /// Applied in the GEMM epilogue after the optional bias (third input,
    /// `N` f32 values added to every row). Both come from CPU fusions only;
    /// an imported `MatMul` has neither.
    pub activation: FusedActivation,
}

impl MatMul {
    /// Packs a constant 2-D f32 B now.
    pub fn prepack(&self, b: &Arc<Tensor>) {
        self.packed.ensure(b, |t| {
            if t.dtype() != DType::F32 || t.rank() != 2 {
                return None;
            }
            Some(PackedB::pack(Mat::new(
                t.as_slice::<f32>().ok()?,
                t.shape()[0],
                t.shape()[1],
            )))
        });
    }
}

/// Output shape rule shared by MatMul and MatMulInteger.
fn matmul_fact(a: &Fact, b: &Fact, dtype: Option<DType>) -> Result<Fact> {
    let shape = match (&a.shape, &b.shape) {
        (Some(sa), Some(sb)) => {
            ensure!(
                sa.rank() >= 1 && sb.rank() >= 1,
                "MatMul operands must have rank >= 1, got {sa} and {sb}"
            );
            let ba = SymbolicShape(sa.0[..sa.rank().saturating_sub(2)].to_vec());
            let bb = SymbolicShape(sb.0[..sb.rank().saturating_sub(2)].to_vec());
            let mut d = broadcast_symbolic(&[&ba, &bb])?.0;
            if sa.rank() >= 2 {
                d.push(sa.0[sa.rank() - 2].clone());
            }
            if sb.rank() >= 2 {
                d.push(sb.0[sb.rank() - 1].clone());
            }
            if let (Some(ka), Some(kb)) = (
                sa.0[sa.rank() - 1].known(),
                sb.0[sb.rank().saturating_sub(2)].known(),
            ) {
                ensure!(ka == kb, "MatMul inner dims differ: {sa} x {sb}");
            }
            let _ = Dim::Unknown;
            Some(SymbolicShape(d))
        }
        _ => None,
    };
    Ok(Fact {
        dtype,
        shape,
        konst: None,
        is_sequence: false,
    })
}

/// Resolved batched-matmul geometry.
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    out_shape: Vec<usize>,
    /// Per output batch: offsets (in elements) of the A and B matrices.
    pairs: Vec<(usize, usize)>,
    b_is_2d: bool,
}

fn plan(sa: &[usize], sb: &[usize]) -> Result<Plan> {
    ensure!(
        !sa.is_empty() && !sb.is_empty(),
        "MatMul operands must have rank >= 1, got {sa:?} and {sb:?}"
    );
    let a2: Vec<usize> = if sa.len() == 1 {
        vec![1, sa[0]]
    } else {
        sa.to_vec()
    };
    let b2: Vec<usize> = if sb.len() == 1 {
        vec![sb[0], 1]
    } else {
        sb.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    ensure!(k == kb, "MatMul inner dims differ: {sa:?} x {sb:?}");
    let ba = &a2[..a2.len() - 2];
    let bb = &b2[..b2.len() - 2];
    let batch = broadcast_shapes(&[ba, bb])?;
    let mut out_shape = batch.clone();
    if sa.len() >= 2 {
        out_shape.push(m);
    }
    if sb.len() >= 2 {
        out_shape.push(n);
    }
    let sta = broadcast_strides(ba, &batch);
    let stb = broadcast_strides(bb, &batch);
    let nb: usize = batch.iter().product();
    let mut pairs = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..nb {
        let oa: usize = idx.iter().zip(&sta).map(|(i, s)| i * s).sum();
        let ob: usize = idx.iter().zip(&stb).map(|(i, s)| i * s).sum();
        pairs.push((oa * m * k, ob * k * n));
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Plan {
        m,
        k,
        n,
        out_shape,
        pairs,
        b_is_2d: bb.iter().all(|&d| d == 1),
    })
}

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "MatMul"
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        if let Some(k) = inputs.get(1).and_then(|f| f.konst.as_ref()) {
            self.prepack(k);
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let a = inputs.first().copied().cloned().unwrap_or_default();
        let b = inputs.get(1).copied().cloned().unwrap_or_default();
        Ok(vec![matmul_fact(&a, &b, a.dtype)?])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "MatMul")?;
        let b = input(inputs, 1, "MatMul")?;
        ensure!(
            a.dtype() == b.dtype(),
            "MatMul operands have different dtypes: {} and {}",
            a.dtype(),
            b.dtype()
        );
        let p = plan(a.shape(), b.shape())?;
        let dt = a.dtype();
        if dt.is_integer() {
            ensure!(
                inputs.get(2).is_none_or(|v| v.is_none())
                    && self.activation == FusedActivation::None,
                "MatMul with a fused bias or activation needs float operands, got {dt}"
            );
            let (av, bv) = (read_ints(a)?, read_ints(b)?);
            let y = int_batched(&p, &av, &bv, |_| 0, |_| 0);
            let mut out = ctx.alloc(dt, &p.out_shape)?;
            store_ints(&y, &mut out)?;
            return Ok(vec![out]);
        }
        if !dt.is_float() {
            bail!("MatMul does not support {dt} inputs");
        }
        let ad = float_data(a, "MatMul A")?;
        let bd = float_data(b, "MatMul B")?;
        let bias = match inputs.get(2).and_then(|v| v.as_ref()) {
            Some(t) => {
                let v = float_data(t, "MatMul bias")?;
                ensure!(
                    v.len() == p.n,
                    "MatMul bias has {} values for {} output columns",
                    v.len(),
                    p.n
                );
                Some(v)
            }
            None => None,
        };
        let cached = if dt == DType::F32 && b.shape().len() == 2 {
            self.packed.get(b)
        } else {
            None
        };
        // Every path writes every element (the products do not accumulate).
        let y = with_f32_output_overwritten(ctx, dt, &p.out_shape, |ctx, out| {
            let (m, k, n) = (p.m, p.k, p.n);
            let epi = Epi {
                bias_col: bias.as_deref(),
                act: self.activation,
                ..Epi::default()
            };
            if p.b_is_2d
                && (p
                    .pairs
                    .iter()
                    .enumerate()
                    .all(|(i, &(oa, _))| oa == i * m * k))
            {
                // All batches of A stacked into one tall matrix.
                let rows = p.pairs.len() * m;
                let am = Mat::new(&ad[..rows * k], rows, k);
                match &cached {
                    Some(pb) => gemm_packed_b_rows(ctx.par, rows, am, &pb.packed, out, &epi),
                    None => par_gemm_rows(ctx.par, am, Mat::new(&bd[..k * n], k, n), out, &epi),
                }
                return Ok(());
            }
            let per = m * n;
            if p.pairs.len() >= ctx.par.threads() * 2 || per == 0 {
                par_chunks_mut(ctx.par, out, per.max(1), &|i, o| {
                    if let Some(&(oa, ob)) = p.pairs.get(i) {
                        gemm(
                            m,
                            n,
                            k,
                            Mat::new(&ad[oa..oa + m * k], m, k),
                            Mat::new(&bd[ob..ob + k * n], k, n),
                            o,
                            n,
                            &epi,
                        );
                    }
                });
            } else {
                for (i, &(oa, ob)) in p.pairs.iter().enumerate() {
                    let o = &mut out[i * per..(i + 1) * per];
                    par_gemm_rows(
                        ctx.par,
                        Mat::new(&ad[oa..oa + m * k], m, k),
                        Mat::new(&bd[ob..ob + k * n], k, n),
                        o,
                        &epi,
                    );
                }
            }
            Ok(())
        })?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

fn int_batched(
    p: &Plan,
    av: &[i64],
    bv: &[i64],
    a_zp: impl Fn(usize) -> i64,
    b_zp: impl Fn(usize) -> i64,
) -> Vec<i64> {
    let (m, k, n) = (p.m, p.k, p.n);
    let mut y = vec![0i64; p.pairs.len() * m * n];
    for (bi, &(oa, ob)) in p.pairs.iter().enumerate() {
        int_matmul(
            m,
            n,
            k,
            |i, q| av[oa + i * k + q].wrapping_sub(a_zp(i)),
            |q, j| bv[ob + q * n + j].wrapping_sub(b_zp(j)),
            &mut y[bi * m * n..(bi + 1) * m * n],
        );
    }
    y
}

/// `y[m×n] = a · b` over i64 with wrapping arithmetic.
pub(crate) fn int_matmul(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> i64,
    b: impl Fn(usize, usize) -> i64,
    y: &mut [i64],
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0i64;
            for p in 0..k {
                acc = acc.wrapping_add(a(i, p).wrapping_mul(b(p, j)));
            }
            y[i * n + j] = acc;
        }
    }
}

/// Reads any integer tensor as i64 (u64 wraps).
pub(crate) fn read_ints(t: &TensorView) -> Result<Vec<i64>> {
    macro_rules! rd {
        ($t:ty) => {
            t.as_slice::<$t>()?.iter().map(|&v| v as i64).collect()
        };
    }
    Ok(match t.dtype() {
        DType::I8 => rd!(i8),
        DType::U8 => rd!(u8),
        DType::I16 => rd!(i16),
        DType::U16 => rd!(u16),
        DType::I32 => rd!(i32),
        DType::U32 => rd!(u32),
        DType::I64 => rd!(i64),
        DType::U64 => rd!(u64),
        other => bail!("expected an integer tensor, got {other}"),
    })
}

/// Stores i64 values into an integer tensor (wrapping casts).
pub(crate) fn store_ints(v: &[i64], out: &mut Tensor) -> Result<()> {
    macro_rules! st {
        ($t:ty) => {{
            let o = out.as_slice_mut::<$t>()?;
            ensure!(o.len() == v.len(), "internal: output size mismatch");
            o.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t);
        }};
    }
    match out.dtype() {
        DType::I8 => st!(i8),
        DType::U8 => st!(u8),
        DType::I16 => st!(i16),
        DType::U16 => st!(u16),
        DType::I32 => st!(i32),
        DType::U32 => st!(u32),
        DType::I64 => st!(i64),
        DType::U64 => st!(u64),
        other => bail!("expected an integer output, got {other}"),
    }
    Ok(())
}

/// `MatMulInteger`: (u)int8 matmul with optional zero points, int32 result.
#[derive(Debug, Clone, Default)]
pub struct MatMulInteger;

impl Op for MatMulInteger {
    fn name(&self) -> &'static str {
        "MatMulInteger"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let a = inputs.first().copied().cloned().unwrap_or_default();
        let b = inputs.get(1).copied().cloned().unwrap_or_default();
        Ok(vec![matmul_fact(&a, &b, Some(DType::I32))?])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "MatMulInteger")?;
        let b = input(inputs, 1, "MatMulInteger")?;
        for t in [a, b] {
            ensure!(
                matches!(t.dtype(), DType::I8 | DType::U8),
                "MatMulInteger needs int8/uint8 inputs, got {}",
                t.dtype()
            );
        }
        let p = plan(a.shape(), b.shape())?;
        let zp = |i: usize, len: usize, what: &str| -> Result<Vec<i64>> {
            match inputs.get(i).and_then(|z| z.as_ref()) {
                None => Ok(vec![0]),
                Some(z) => {
                    let v = read_ints(z)?;
                    ensure!(
                        v.len() == 1 || v.len() == len,
                        "MatMulInteger {what} has {} values, expected 1 or {len}",
                        v.len()
                    );
                    Ok(v)
                }
            }
        };
        let azp = zp(2, p.m, "a_zero_point")?;
        let bzp = zp(3, p.n, "b_zero_point")?;
        let (av, bv) = (read_ints(a)?, read_ints(b)?);
        let pick = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let y = int_batched(&p, &av, &bv, |i| pick(&azp, i), |j| pick(&bzp, j));
        let mut out = ctx.alloc(DType::I32, &p.out_shape)?;
        store_ints(&y, &mut out)?;
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, run_with, t, FakePar};

    fn naive(sa: &[usize], a: &[f32], sb: &[usize], b: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let p = plan(sa, sb).unwrap();
        let mut y = vec![0f32; p.pairs.len() * p.m * p.n];
        for (bi, &(oa, ob)) in p.pairs.iter().enumerate() {
            for i in 0..p.m {
                for j in 0..p.n {
                    y[bi * p.m * p.n + i * p.n + j] = (0..p.k)
                        .map(|q| a[oa + i * p.k + q] * b[ob + q * p.n + j])
                        .sum();
                }
            }
        }
        (p.out_shape, y)
    }

    #[test]
    fn shapes_and_values() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[3], &[3], &[]),
            (&[3], &[2, 3, 4], &[2, 4]),
            (&[2, 3, 4], &[4], &[2, 3]),
            (&[5, 1, 3, 4], &[2, 4, 6], &[5, 2, 3, 6]),
            (&[2, 3, 4], &[4, 5], &[2, 3, 5]),
            (&[64, 32], &[32, 40], &[64, 40]),
            (&[1, 2, 3, 4], &[3, 1, 4, 2], &[3, 2, 3, 2]),
        ];
        for (i, &(sa, sb, so)) in cases.iter().enumerate() {
            let a = rand_vec(sa.iter().product(), i as u64);
            let b = rand_vec(sb.iter().product(), 100 + i as u64);
            let (ws, want) = naive(sa, &a, sb, &b);
            assert_eq!(ws, so);
            let op = MatMul::default();
            let bt = Arc::new(t(sb, &b));
            let got = run(&op, &[Some(&t(sa, &a)), Some(&bt)]).unwrap();
            assert_eq!(got[0].shape(), so);
            assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-5);
            op.prepack(&bt);
            let got = run_with(&FakePar, &op, &[Some(&t(sa, &a)), Some(&bt)]).unwrap();
            assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-5);
        }
        assert!(run(
            &MatMul::default(),
            &[Some(&t(&[2, 3], &[0.0; 6])), Some(&t(&[2, 3], &[0.0; 6]))]
        )
        .is_err());
        assert!(run(
            &MatMul::default(),
            &[
                Some(&t(&[2, 2, 3], &[0.0; 12])),
                Some(&t(&[3, 3, 1], &[0.0; 9]))
            ]
        )
        .is_err());
    }

    #[test]
    fn integer_matmuls() {
        let a = Tensor::from_slice(&[2, 2], &[1i64, 2, 3, 4]).unwrap();
        let y = run(&MatMul::default(), &[Some(&a), Some(&a)]).unwrap();
        assert_eq!(y[0].as_slice::<i64>().unwrap(), &[7, 10, 15, 22]);
        let a = Tensor::from_slice(&[1, 2], &[3u8, 4]).unwrap();
        let b = Tensor::from_slice(&[2, 1], &[5u8, 6]).unwrap();
        let za = Tensor::from_slice(&[], &[1u8]).unwrap();
        let y = run(&MatMulInteger, &[Some(&a), Some(&b), Some(&za), None]).unwrap();
        assert_eq!(y[0].as_slice::<i32>().unwrap(), &[2 * 5 + 3 * 6]);
    }
}
