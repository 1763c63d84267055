//! `MatMulInteger` and `QLinearMatMul`: numpy-style batched matmul of
//! (u)int8 operands with zero points (per tensor, per row of A, per column of
//! B), i32 accumulation on the integer GEMM ([`super::igemm`]).
//!
//! Zero points and scales of A broadcast against A's shape with its last dim
//! set to 1 (`[..., M, 1]`; a 1-D vector of M values is per row); those of B
//! against B's shape with dim -2 set to 1 (`[..., 1, N]`; a 1-D vector is per column).

use std::sync::Mutex;

use uniml_data::{
    bail, broadcast_shapes, ensure, DType, Element, Result, SymbolicShape, Tensor, TensorView,
};

use super::igemm::{fill_a_row, igemm, kpairs, pack_b};
use super::requant::{requantize, Mult};
use super::{read_scales, read_zero_points, round_to};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{broadcast_symbolic, for_each_broadcast};
use crate::parallel::{par_chunks_mut, Parallelism, Serial};

/// Symbolic output shape of a numpy matmul (None when unknown).
pub(crate) fn matmul_shape(a: &Fact, b: &Fact) -> Result<Option<SymbolicShape>> {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(None);
    };
    ensure!(
        sa.rank() >= 1 && sb.rank() >= 1,
        "matmul operands must have rank >= 1, got {sa} and {sb}"
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
        ensure!(ka == kb, "matmul inner dims differ: {sa} x {sb}");
    }
    Ok(Some(SymbolicShape(d)))
}

/// Resolved batched-matmul geometry.
struct MmPlan {
    m: usize,
    k: usize,
    n: usize,
    /// A's and B's shapes with 1-D operands promoted to 2-D.
    a2: Vec<usize>,
    b2: Vec<usize>,
    a_batches: usize,
    b_batches: usize,
    out_shape: Vec<usize>,
    /// Per output batch: the (A batch, B batch) it multiplies.
    pairs: Vec<(usize, usize)>,
}

fn plan(sa: &[usize], sb: &[usize]) -> Result<MmPlan> {
    ensure!(
        !sa.is_empty() && !sb.is_empty(),
        "matmul operands must have rank >= 1, got {sa:?} and {sb:?}"
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
    let (ra, rb) = (a2.len(), b2.len());
    let (m, k, kb, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 2], b2[rb - 1]);
    ensure!(k == kb, "matmul inner dims differ: {sa:?} x {sb:?}");
    let (ba, bb) = (&a2[..ra - 2], &b2[..rb - 2]);
    let batch = broadcast_shapes(&[ba, bb])?;
    let mut pairs = Vec::with_capacity(batch.iter().product());
    for_each_broadcast(&batch, [ba, bb], |_, [ia, ib]| pairs.push((ia, ib)));
    let mut out_shape = batch;
    if sa.len() >= 2 {
        out_shape.push(m);
    }
    if sb.len() >= 2 {
        out_shape.push(n);
    }
    let (a_batches, b_batches) = (ba.iter().product(), bb.iter().product());
    Ok(MmPlan {
        m,
        k,
        n,
        a2,
        b2,
        a_batches,
        b_batches,
        out_shape,
        pairs,
    })
}

impl MmPlan {
    /// A parameter (zero point or scale) of A expanded to one value per (A batch, row).
    fn a_param<T: Copy + Default>(
        &self,
        vals: &[T],
        shape: &[usize],
        what: &str,
    ) -> Result<Vec<T>> {
        let mut target = self.a2.clone();
        let r = target.len();
        target[r - 1] = 1;
        let shape: Vec<usize> = if shape.len() == 1 && shape[0] != 1 {
            vec![shape[0], 1]
        } else {
            shape.to_vec()
        };
        expand(vals, &shape, &target, what)
    }

    /// A parameter of B expanded to one value per (B batch, column).
    fn b_param<T: Copy + Default>(
        &self,
        vals: &[T],
        shape: &[usize],
        what: &str,
    ) -> Result<Vec<T>> {
        let mut target = self.b2.clone();
        let r = target.len();
        target[r - 2] = 1;
        expand(vals, shape, &target, what)
    }

    /// A minus its zero points as i16 rows in k-pair form (`a_batches·m` rows of `2·kp`).
    fn pack_a<T: Element + Into<i32>>(&self, a: &[T], zp: &[i32]) -> Vec<i16> {
        let (k, w) = (self.k, 2 * kpairs(self.k));
        let mut out = vec![0i16; self.a_batches * self.m * w];
        for (r, dst) in out
            .chunks_mut(w.max(1))
            .enumerate()
            .take(self.a_batches * self.m)
        {
            let z = zp[r];
            fill_a_row(
                dst,
                a[r * k..(r + 1) * k].iter().map(|&v| (v.into() - z) as i16),
            );
        }
        out
    }

    /// B minus its zero points, each batch packed in k-pair form.
    fn pack_b<T: Element + Into<i32>>(&self, b: &[T], zp: &[i32]) -> Vec<i16> {
        let (k, n) = (self.k, self.n);
        let per = kpairs(k) * 2 * n;
        let mut out = vec![0i16; self.b_batches * per];
        for bi in 0..self.b_batches {
            let (src, z) = (&b[bi * k * n..(bi + 1) * k * n], &zp[bi * n..(bi + 1) * n]);
            pack_b(k, n, &mut out[bi * per..(bi + 1) * per], |q, j| {
                (src[q * n + j].into() - z[j]) as i16
            });
        }
        out
    }

    /// `C = A' · B'` for every output batch into `c` (`pairs.len()·m·n`).
    fn run(&self, ctx: &EvalCtx, a: &[i16], b: &[i16], c: &mut [i32]) -> Result<()> {
        let (m, n, kp) = (self.m, self.n, kpairs(self.k));
        let (lda, per_b) = (2 * kp, kp * 2 * n);
        if self.b_batches == 1 && self.pairs.iter().enumerate().all(|(i, &(ia, _))| ia == i) {
            // One B for all batches: a single tall GEMM.
            return igemm(ctx.par, self.pairs.len() * m, kp, n, a, lda, b, 2 * n, c, n);
        }
        let one = |par: &dyn Parallelism, bi: usize, cb: &mut [i32]| -> Result<()> {
            let (ia, ib) = self.pairs[bi];
            let ab = &a[ia * m * lda..(ia + 1) * m * lda];
            let bb = &b[ib * per_b..(ib + 1) * per_b];
            igemm(par, m, kp, n, ab, lda, bb, 2 * n, cb, n)
        };
        let threads = ctx.par.threads();
        if threads > 1 && self.pairs.len() >= 2 * threads && m * n * kp < (1 << 18) {
            // Many small products: one task per batch.
            let err = Mutex::new(None);
            par_chunks_mut(ctx.par, c, m * n, &|bi, cb| {
                if let Err(e) = one(&Serial, bi, cb) {
                    if let Ok(mut slot) = err.lock() {
                        *slot = Some(e);
                    }
                }
            });
            if let Some(e) = err.into_inner().ok().flatten() {
                return Err(e);
            }
        } else {
            for (bi, cb) in c
                .chunks_mut((m * n).max(1))
                .enumerate()
                .take(self.pairs.len())
            {
                one(ctx.par, bi, cb)?;
            }
        }
        Ok(())
    }
}

/// Broadcasts `vals` of `shape` to `target` (numpy rules, `shape` may not be larger).
fn expand<T: Copy + Default>(
    vals: &[T],
    shape: &[usize],
    target: &[usize],
    what: &str,
) -> Result<Vec<T>> {
    let total: usize = target.iter().product();
    if vals.len() == 1 {
        return Ok(vec![vals[0]; total]);
    }
    let ok = shape.len() <= target.len()
        && shape
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(&s, &t)| s == 1 || s == t)
        && vals.len() == shape.iter().product::<usize>();
    ensure!(
        ok,
        "{what} of shape {shape:?} does not broadcast to {target:?}"
    );
    let mut out = vec![T::default(); total];
    for_each_broadcast(target, [shape], |o, [i]| out[o] = vals[i]);
    Ok(out)
}

/// Zero points of an 8-bit operand (absent = 0), checked against the operand's dtype.
fn zero_points(t: Option<&TensorView>, dtype: DType, what: &str) -> Result<(Vec<i32>, Vec<usize>)> {
    match t {
        None => Ok((vec![0], vec![])),
        Some(z) => {
            ensure!(
                z.dtype() == dtype,
                "{what} has dtype {}, expected {dtype} like its operand",
                z.dtype()
            );
            Ok((read_zero_points(z, what)?, z.shape().to_vec()))
        }
    }
}

fn check_8bit(t: &TensorView, op: &str, what: &str) -> Result<()> {
    ensure!(
        matches!(t.dtype(), DType::U8 | DType::I8),
        "{op} {what} must be int8 or uint8, got {}",
        t.dtype()
    );
    Ok(())
}

/// Both operands minus their zero points, multiplied: `(plan, C)`, with C from the pool.
fn int_matmul(
    ctx: &mut EvalCtx,
    a: &TensorView,
    azp: Option<&TensorView>,
    b: &TensorView,
    bzp: Option<&TensorView>,
    op: &str,
) -> Result<(MmPlan, Tensor)> {
    check_8bit(a, op, "A")?;
    check_8bit(b, op, "B")?;
    let p = plan(a.shape(), b.shape())?;
    let (za, sza) = zero_points(azp, a.dtype(), "a_zero_point")?;
    let (zb, szb) = zero_points(bzp, b.dtype(), "b_zero_point")?;
    let za = p.a_param(&za, &sza, "a_zero_point")?;
    let zb = p.b_param(&zb, &szb, "b_zero_point")?;
    let ap = match a.dtype() {
        DType::U8 => p.pack_a(a.as_slice::<u8>()?, &za),
        _ => p.pack_a(a.as_slice::<i8>()?, &za),
    };
    let bp = match b.dtype() {
        DType::U8 => p.pack_b(b.as_slice::<u8>()?, &zb),
        _ => p.pack_b(b.as_slice::<i8>()?, &zb),
    };
    let mut c = ctx.alloc(DType::I32, &p.out_shape)?;
    p.run(ctx, &ap, &bp, c.as_slice_mut::<i32>()?)?;
    Ok((p, c))
}

/// `MatMulInteger` (opset 10): `(A - a_zero_point) · (B - b_zero_point)` as int32.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatMulInteger;

impl Op for MatMulInteger {
    fn name(&self) -> &'static str {
        "MatMulInteger"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let (a, b) = (
            inputs.first().copied().cloned().unwrap_or_default(),
            inputs.get(1).copied().cloned().unwrap_or_default(),
        );
        Ok(vec![Fact {
            dtype: Some(DType::I32),
            shape: matmul_shape(&a, &b)?,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "MatMulInteger")?;
        let b = input(inputs, 1, "MatMulInteger")?;
        let opt = |i: usize| inputs.get(i).and_then(|t| t.as_ref());
        let (_, c) = int_matmul(ctx, a, opt(2), b, opt(3), "MatMulInteger")?;
        Ok(vec![c])
    }

    crate::op_as_any!();
}

/// `QLinearMatMul` (opsets 10, 21): quantized matmul requantized to the output
/// scale and zero point: `y = saturate(rint(C · a_scale · b_scale / y_scale) + y_zero_point)`.
/// The multiplier is formed in the scales' precision; the product in f64.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QLinearMatMul;

/// The output dtype of a QLinear op: its output zero point's, else the input's.
pub(crate) fn qlinear_out_dtype(y_zp: Option<DType>, x: Option<DType>) -> Result<Option<DType>> {
    let dt = y_zp.or(x);
    if let Some(d) = dt {
        ensure!(
            matches!(d, DType::U8 | DType::I8),
            "quantized output must be int8 or uint8, got {d}"
        );
    }
    Ok(dt)
}

/// The single value of a per-tensor parameter.
pub(crate) fn single<T: Copy>(v: &[T], what: &str) -> Result<T> {
    match v {
        [x] => Ok(*x),
        _ => bail!("{what} must hold one value (per-tensor), got {}", v.len()),
    }
}

impl Op for QLinearMatMul {
    fn name(&self) -> &'static str {
        "QLinearMatMul"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let get = |i: usize| inputs.get(i).copied().cloned().unwrap_or_default();
        let dtype = qlinear_out_dtype(get(7).dtype, get(0).dtype)?;
        Ok(vec![Fact {
            dtype,
            shape: matmul_shape(&get(0), &get(3))?,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        const OP: &str = "QLinearMatMul";
        let opt = |i: usize| inputs.get(i).and_then(|t| t.as_ref());
        let (a, a_s, b, b_s, y_s) = (
            input(inputs, 0, OP)?,
            input(inputs, 1, OP)?,
            input(inputs, 3, OP)?,
            input(inputs, 4, OP)?,
            input(inputs, 6, OP)?,
        );
        let y_zp = opt(7);
        let out_dt =
            qlinear_out_dtype(y_zp.map(|z| z.dtype()), Some(a.dtype()))?.unwrap_or(DType::U8);
        let prec = if a_s.dtype() == b_s.dtype() && b_s.dtype() == y_s.dtype() {
            a_s.dtype()
        } else {
            DType::F32
        };
        let ys = single(&read_scales(y_s, "y_scale", false)?, "y_scale")?;
        let yz = match y_zp {
            Some(z) => single(&read_zero_points(z, "y_zero_point")?, "y_zero_point")? as f64,
            None => 0.0,
        };
        let (p, c) = int_matmul(ctx, a, opt(2), b, opt(5), OP)?;
        let sa = p.a_param(&read_scales(a_s, "a_scale", false)?, a_s.shape(), "a_scale")?;
        let sb = p.b_param(&read_scales(b_s, "b_scale", false)?, b_s.shape(), "b_scale")?;
        let (m, n) = (p.m, p.n);
        let mult = |ia: usize, i: usize, ib: usize, j: usize| {
            round_to(prec, round_to(prec, sa[ia * m + i] * sb[ib * n + j]) / ys) as f64
        };
        let mut y = ctx.alloc(out_dt, &p.out_shape)?;
        let cd = c.as_slice::<i32>()?;
        let uniform = sa.iter().all(|&v| v == sa[0]) && sb.iter().all(|&v| v == sb[0]);
        if uniform && !sa.is_empty() && !sb.is_empty() {
            requantize(ctx, &mut y, cd, Mult::Const(mult(0, 0, 0, 0)), yz)?;
        } else {
            let mut table = Vec::with_capacity(cd.len());
            for &(ia, ib) in &p.pairs {
                for i in 0..m {
                    table.extend((0..n).map(|j| mult(ia, i, ib, j)));
                }
            }
            requantize(ctx, &mut y, cd, Mult::Table(&table), yz)?;
        }
        ctx.release(c);
        Ok(vec![y])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, run_with, FakePar};

    /// Naive reference: int matmul of promoted operands with elementwise zero points.
    fn naive(sa: &[usize], a: &[i32], sb: &[usize], b: &[i32]) -> (Vec<usize>, Vec<i32>) {
        let p = plan(sa, sb).unwrap();
        let (m, k, n) = (p.m, p.k, p.n);
        let mut y = vec![0; p.pairs.len() * m * n];
        for (bi, &(ia, ib)) in p.pairs.iter().enumerate() {
            for i in 0..m {
                for j in 0..n {
                    y[(bi * m + i) * n + j] = (0..k)
                        .map(|q| a[(ia * m + i) * k + q] * b[(ib * k + q) * n + j])
                        .sum();
                }
            }
        }
        (p.out_shape, y)
    }

    #[test]
    fn matmul_integer_matches_onnx_example() {
        let a = Tensor::from_slice(&[4, 3], &[11u8, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0]).unwrap();
        let b = Tensor::from_slice(&[3, 2], &[1u8, 4, 2, 5, 3, 6]).unwrap();
        let za = Tensor::scalar(12u8);
        let zb = Tensor::scalar(0u8);
        let y = run(&MatMulInteger, &[Some(&a), Some(&b), Some(&za), Some(&zb)]).unwrap();
        assert_eq!(y[0].shape(), &[4, 2]);
        assert_eq!(
            y[0].as_slice::<i32>().unwrap(),
            &[-38, -83, -44, -98, -50, -113, -56, -128]
        );
    }

    #[test]
    fn batched_broadcast_and_per_row_col_zero_points() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[3], &[3]),
            (&[3], &[2, 3, 4]),
            (&[2, 3, 4], &[4]),
            (&[5, 1, 3, 4], &[2, 4, 6]),
            (&[2, 3, 4], &[4, 5]),
            (&[1, 2, 7, 33], &[3, 1, 33, 9]),
            (&[40, 70], &[70, 300]),
        ];
        for (ci, &(sa, sb)) in cases.iter().enumerate() {
            let na: usize = sa.iter().product();
            let nb: usize = sb.iter().product();
            let av: Vec<u8> = (0..na).map(|i| ((i * 37 + ci) % 256) as u8).collect();
            let bv: Vec<i8> = (0..nb)
                .map(|i| ((i * 91 + 3 * ci) % 256) as u8 as i8)
                .collect();
            let p = plan(sa, sb).unwrap();
            // Per-row A zero point (1-D of M when A is 2-D, else per tensor) and per-column B zero point.
            let zav: Vec<u8> = (0..p.m).map(|i| (i * 5 + 100) as u8).collect();
            let zbv: Vec<i8> = (0..p.n).map(|j| (j as i8).wrapping_sub(3)).collect();
            let (za, zas): (Vec<u8>, Vec<usize>) = if sa.len() == 2 {
                (zav.clone(), vec![p.m])
            } else {
                (vec![zav[0]], vec![])
            };
            let (zb, zbs): (Vec<i8>, Vec<usize>) = if sb.len() >= 2 {
                (zbv.clone(), vec![p.n])
            } else {
                (vec![zbv[0]], vec![])
            };
            let ai: Vec<i32> = (0..na)
                .map(|e| av[e] as i32 - za[if za.len() == 1 { 0 } else { (e / p.k) % p.m }] as i32)
                .collect();
            let bi: Vec<i32> = (0..nb)
                .map(|e| bv[e] as i32 - zb[if zb.len() == 1 { 0 } else { e % p.n }] as i32)
                .collect();
            let (os, want) = naive(sa, &ai, sb, &bi);
            let inputs = [
                Tensor::from_slice(sa, &av).unwrap(),
                Tensor::from_slice(sb, &bv).unwrap(),
                Tensor::from_slice(&zas, &za).unwrap(),
                Tensor::from_slice(&zbs, &zb).unwrap(),
            ];
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
            for par in [
                &crate::parallel::Serial as &dyn crate::parallel::Parallelism,
                &FakePar,
            ] {
                let y = run_with(par, &MatMulInteger, &refs).unwrap();
                assert_eq!(y[0].shape(), &os[..], "case {ci}");
                assert_eq!(y[0].as_slice::<i32>().unwrap(), &want[..], "case {ci}");
            }
        }
    }

    #[test]
    fn n_d_zero_points() {
        // A [2, 3, 4] with zero point [2, 3, 1]; B [4, 2] with zero point [1, 2].
        let av: Vec<u8> = (0..24).map(|i| i as u8 * 7).collect();
        let bv: Vec<u8> = (0..8).map(|i| i as u8 * 11).collect();
        let zav: Vec<u8> = (0..6).map(|i| i as u8 * 9).collect();
        let zbv = [5u8, 9];
        let ai: Vec<i32> = (0..24).map(|e| av[e] as i32 - zav[e / 4] as i32).collect();
        let bi: Vec<i32> = (0..8).map(|e| bv[e] as i32 - zbv[e % 2] as i32).collect();
        let (_, want) = naive(&[2, 3, 4], &ai, &[4, 2], &bi);
        let t = |s: &[usize], v: &[u8]| Tensor::from_slice(s, v).unwrap();
        let y = run(
            &MatMulInteger,
            &[
                Some(&t(&[2, 3, 4], &av)),
                Some(&t(&[4, 2], &bv)),
                Some(&t(&[2, 3, 1], &zav)),
                Some(&t(&[1, 2], &zbv)),
            ],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<i32>().unwrap(), &want[..]);
        // A zero point varying along K is rejected.
        assert!(run(
            &MatMulInteger,
            &[
                Some(&t(&[2, 3, 4], &av)),
                Some(&t(&[4, 2], &bv)),
                Some(&t(&[1, 4], &zav[..4])),
                None
            ]
        )
        .is_err());
    }

    #[test]
    fn qlinear_matmul_matches_onnx_example() {
        let t8 = |s: &[usize], v: &[u8]| Tensor::from_slice(s, v).unwrap();
        let a = t8(&[2, 4], &[208, 236, 0, 238, 3, 214, 255, 29]);
        let b = t8(
            &[4, 3],
            &[152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247],
        );
        let inputs = [
            a,
            Tensor::from_slice(&[1], &[0.0066f32]).unwrap(),
            t8(&[1], &[113]),
            b,
            Tensor::from_slice(&[1], &[0.00705f32]).unwrap(),
            t8(&[1], &[114]),
            Tensor::from_slice(&[1], &[0.0107f32]).unwrap(),
            t8(&[1], &[118]),
        ];
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let y = run(&QLinearMatMul, &refs).unwrap();
        assert_eq!(y[0].as_slice::<u8>().unwrap(), &[168, 115, 255, 1, 66, 151]);
    }

    #[test]
    fn qlinear_per_row_and_column_scales() {
        let (m, k, n) = (3, 5, 4);
        let av: Vec<i8> = (0..m * k).map(|i| (i as i8).wrapping_mul(13)).collect();
        let bv: Vec<i8> = (0..k * n).map(|i| (i as i8).wrapping_mul(29)).collect();
        let sa = [0.01f32, 0.02, 0.03];
        let sb = [0.5f32, 0.25, 0.125, 1.0];
        let ys = 0.05f32;
        let inputs = [
            Tensor::from_slice(&[m, k], &av).unwrap(),
            Tensor::from_slice(&[m], &sa).unwrap(),
            Tensor::from_slice(&[m], &[1i8, 2, 3]).unwrap(),
            Tensor::from_slice(&[k, n], &bv).unwrap(),
            Tensor::from_slice(&[n], &sb).unwrap(),
            Tensor::from_slice(&[n], &[0i8, -1, 1, 2]).unwrap(),
            Tensor::scalar(ys),
            Tensor::scalar(-5i8),
        ];
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
        let y = run(&QLinearMatMul, &refs).unwrap();
        let za = [1, 2, 3];
        let zb = [0, -1, 1, 2];
        let want: Vec<i8> = (0..m * n)
            .map(|e| {
                let (i, j) = (e / n, e % n);
                let c: i32 = (0..k)
                    .map(|q| (av[i * k + q] as i32 - za[i]) * (bv[q * n + j] as i32 - zb[j]))
                    .sum();
                let mult = (sa[i] * sb[j] / ys) as f64;
                ((c as f64 * mult).round_ties_even() - 5.0).clamp(-128.0, 127.0) as i8
            })
            .collect();
        assert_eq!(y[0].as_slice::<i8>().unwrap(), &want[..]);
        // Errors: y_scale not per tensor, mismatched zero point dtype.
        let mut bad = inputs.clone();
        bad[6] = Tensor::from_slice(&[2], &[1.0f32, 2.0]).unwrap();
        assert!(run(&QLinearMatMul, &bad.iter().map(Some).collect::<Vec<_>>()).is_err());
        let mut bad = inputs.clone();
        bad[2] = Tensor::from_slice(&[m], &[1u8, 2, 3]).unwrap();
        assert!(run(&QLinearMatMul, &bad.iter().map(Some).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn facts() {
        let a = Fact::new(DType::U8, SymbolicShape::known(&[2, 3, 4]));
        let b = Fact::new(DType::U8, SymbolicShape::known(&[4, 5]));
        let f = MatMulInteger.output_facts(&[&a, &b], 1).unwrap();
        assert_eq!(f[0].shape, Some(SymbolicShape::known(&[2, 3, 5])));
        assert_eq!(f[0].dtype, Some(DType::I32));
        let u = Fact::unknown();
        let z = Fact::dtype_only(Some(DType::I8));
        let f = QLinearMatMul
            .output_facts(&[&a, &u, &u, &b, &u, &u, &u, &z], 1)
            .unwrap();
        assert_eq!(f[0].dtype, Some(DType::I8));
    }
}
