//! `Gemm`: `Y = act(alpha · op(A) · op(B) + beta · C)` with `op` an optional
//! transpose and `C` unidirectionally broadcast to `[M, N]`.
//!
//! f32 runs on the packed SGEMM (constant B packed once, `C` fused as a bias
//! when it is a row vector); integer dtypes use an exact i64 loop.

use std::sync::Arc;

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::gemm_glue::{gemm_packed_b_rows, par_gemm_rows, Epi, Mat, PackedB, WeightCache};
use super::matmul::{int_matmul, read_ints, store_ints};
use super::{float_data, with_f32_output, FusedActivation};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Default)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    /// Applied last (a graph pass may fuse a following activation).
    pub activation: FusedActivation,
    pub packed: WeightCache<PackedB>,
}

impl Gemm {
    pub fn new(alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Gemm {
        Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            ..Default::default()
        }
    }

    /// Packs a constant B now.
    pub fn prepack(&self, b: &Arc<Tensor>) {
        let tb = self.trans_b;
        self.packed.ensure(b, |t| {
            if t.dtype() != DType::F32 || t.rank() != 2 {
                return None;
            }
            let (r, c) = (t.shape()[0], t.shape()[1]);
            let m = Mat::new(t.as_slice::<f32>().ok()?, r, c);
            Some(PackedB::pack(if tb { m.t() } else { m }))
        });
    }
}

impl Op for Gemm {
    fn name(&self) -> &'static str {
        "Gemm"
    }

    fn pack_constants(&self, inputs: &[&Fact]) {
        if let Some(k) = inputs.get(1).and_then(|f| f.konst.as_ref()) {
            self.prepack(k);
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let a = inputs.first().copied().cloned().unwrap_or_default();
        let b = inputs.get(1).copied().cloned().unwrap_or_default();
        let pick = |f: &Fact, t: bool, first: bool| -> Result<Dim> {
            match &f.shape {
                Some(s) => {
                    ensure!(s.rank() == 2, "Gemm inputs must be 2-D, got {s}");
                    Ok(s.0[if t ^ first { 0 } else { 1 }].clone())
                }
                None => Ok(Dim::Unknown),
            }
        };
        let m = pick(&a, self.trans_a, true)?;
        let n = pick(&b, self.trans_b, false)?;
        let shape = if a.shape.is_some() || b.shape.is_some() {
            Some(SymbolicShape(vec![m, n]))
        } else {
            None
        };
        Ok(vec![Fact {
            dtype: a.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let a = input(inputs, 0, "Gemm")?;
        let b = input(inputs, 1, "Gemm")?;
        let c = inputs.get(2).and_then(|c| c.as_ref());
        ensure!(
            a.shape().len() == 2 && b.shape().len() == 2,
            "Gemm inputs must be 2-D, got {:?} and {:?}",
            a.shape(),
            b.shape()
        );
        ensure!(
            a.dtype() == b.dtype(),
            "Gemm inputs A ({}) and B ({}) must have the same dtype",
            a.dtype(),
            b.dtype()
        );
        let (m, ka) = if self.trans_a {
            (a.shape()[1], a.shape()[0])
        } else {
            (a.shape()[0], a.shape()[1])
        };
        let (kb, n) = if self.trans_b {
            (b.shape()[1], b.shape()[0])
        } else {
            (b.shape()[0], b.shape()[1])
        };
        ensure!(
            ka == kb,
            "Gemm inner dims differ: op(A) is {m}x{ka}, op(B) is {kb}x{n}"
        );
        let k = ka;
        let c_shape: Option<Vec<usize>> = c.map(|c| c.shape().to_vec());
        if let Some(cs) = &c_shape {
            let ok = cs.len() <= 2
                && cs
                    .iter()
                    .rev()
                    .zip([n, m])
                    .all(|(&d, want)| d == 1 || d == want);
            ensure!(
                ok,
                "Gemm C of shape {cs:?} does not broadcast to [{m}, {n}]"
            );
        }
        let dt = a.dtype();
        if dt.is_integer() {
            ensure!(
                self.activation == FusedActivation::None,
                "Gemm: fused activations need float inputs"
            );
            let av = read_ints(a)?;
            let bv = read_ints(b)?;
            let am = IntMat {
                d: &av,
                rs: if self.trans_a { 1 } else { k },
                cs: if self.trans_a { m } else { 1 },
            };
            let bm = IntMat {
                d: &bv,
                rs: if self.trans_b { 1 } else { n },
                cs: if self.trans_b { k } else { 1 },
            };
            let mut y = vec![0i64; m * n];
            int_matmul(m, n, k, |i, p| am.at(i, p), |p, j| bm.at(p, j), &mut y);
            let (alpha, beta) = (self.alpha as i64, self.beta as i64);
            let cv = match c {
                Some(c) => Some(read_ints(c)?),
                None => None,
            };
            for i in 0..m {
                for j in 0..n {
                    let mut v = y[i * n + j].wrapping_mul(alpha);
                    if let (Some(cv), Some(cs)) = (&cv, &c_shape) {
                        v = v.wrapping_add(beta.wrapping_mul(cv[bcast_index(cs, i, j)]));
                    }
                    y[i * n + j] = v;
                }
            }
            let mut out = ctx.alloc(dt, &[m, n])?;
            store_ints(&y, &mut out)?;
            return Ok(vec![out]);
        }
        if !dt.is_float() {
            bail!("Gemm does not support {dt} inputs");
        }
        let ad = float_data(a, "Gemm A")?;
        let bd = float_data(b, "Gemm B")?;
        let cd = match c {
            Some(c) => Some(float_data(c, "Gemm C")?),
            None => None,
        };
        let cached = if b.dtype() == DType::F32 {
            self.packed.get(b)
        } else {
            None
        };
        let (alpha, beta, act) = (self.alpha, self.beta, self.activation);
        let y = with_f32_output(ctx, dt, &[m, n], |ctx, out| {
            let am = Mat::new(&ad, a.shape()[0], a.shape()[1]);
            let am = if self.trans_a { am.t() } else { am };
            // Bias: fused as a column bias when C is a row vector (or scalar) and alpha == 1.
            let mut bias_col = None;
            let mut accumulate = false;
            let fuse = alpha == 1.0
                && (cd.is_none()
                    || beta == 0.0
                    || c_shape
                        .as_ref()
                        .is_some_and(|cs| cs.len() < 2 || cs[0] == 1));
            if let (Some(cv), Some(cs)) = (&cd, &c_shape) {
                if beta != 0.0 {
                    if fuse {
                        bias_col = Some(
                            (0..n)
                                .map(|j| beta * cv[bcast_index(cs, 0, j)])
                                .collect::<Vec<f32>>(),
                        );
                    } else if alpha == 1.0 {
                        for i in 0..m {
                            for j in 0..n {
                                out[i * n + j] = beta * cv[bcast_index(cs, i, j)];
                            }
                        }
                        accumulate = true;
                    }
                }
            }
            let simple = alpha == 1.0;
            let epi = Epi {
                bias_col: bias_col.as_deref(),
                act: if simple { act } else { FusedActivation::None },
                accumulate,
                ..Default::default()
            };
            match &cached {
                Some(p) => gemm_packed_b_rows(ctx.par, m, am, &p.packed, out, &epi),
                None => {
                    let bm = Mat::new(&bd, b.shape()[0], b.shape()[1]);
                    let bm = if self.trans_b { bm.t() } else { bm };
                    par_gemm_rows(ctx.par, am, bm, out, &epi);
                }
            }
            if !simple {
                for i in 0..m {
                    for j in 0..n {
                        let mut v = alpha * out[i * n + j];
                        if let (Some(cv), Some(cs)) = (&cd, &c_shape) {
                            if beta != 0.0 {
                                v += beta * cv[bcast_index(cs, i, j)];
                            }
                        }
                        out[i * n + j] = act.apply(v);
                    }
                }
            }
            Ok(())
        })?;
        Ok(vec![y])
    }

    crate::op_as_any!();
}

/// Index into C (shape `cs`, rank <= 2, broadcast to [M, N]) for element (i, j).
fn bcast_index(cs: &[usize], i: usize, j: usize) -> usize {
    match cs.len() {
        0 => 0,
        1 => {
            if cs[0] == 1 {
                0
            } else {
                j
            }
        }
        _ => {
            let ii = if cs[0] == 1 { 0 } else { i };
            let jj = if cs[1] == 1 { 0 } else { j };
            ii * cs[1] + jj
        }
    }
}

struct IntMat<'a> {
    d: &'a [i64],
    rs: usize,
    cs: usize,
}

impl IntMat<'_> {
    fn at(&self, i: usize, j: usize) -> i64 {
        self.d[i * self.rs + j * self.cs]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{assert_close, rand_vec, run, run_with, t, FakePar};

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], ta: bool, tb: bool) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    y[i * n + j] += av * bv;
                }
            }
        }
        y
    }

    #[test]
    fn gemm_variants() {
        // (1, 1000, 300) and (3, 700, 200): a few rows with packed weights,
        // big enough that 4 (fake) threads split the columns.
        for &(m, n, k) in &[(3, 4, 5), (1, 70, 33), (40, 50, 60), (1, 1000, 300), (3, 700, 200)] {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                for c_kind in 0..4 {
                    for &(alpha, beta) in &[(1.0f32, 1.0f32), (0.5, 2.0)] {
                        let a = rand_vec(m * k, 1);
                        let b = rand_vec(k * n, 2);
                        let base = naive(m, n, k, &a, &b, ta, tb);
                        let (cs, cv): (Vec<usize>, Vec<f32>) = match c_kind {
                            0 => (vec![], vec![0.0]),
                            1 => (vec![n], rand_vec(n, 3)),
                            2 => (vec![m, 1], rand_vec(m, 4)),
                            _ => (vec![m, n], rand_vec(m * n, 5)),
                        };
                        let want: Vec<f32> = (0..m * n)
                            .map(|e| {
                                let (i, j) = (e / n, e % n);
                                let c = match c_kind {
                                    0 => 0.0,
                                    1 => cv[j],
                                    2 => cv[i],
                                    _ => cv[e],
                                };
                                (alpha * base[e] + beta * c).max(0.0)
                            })
                            .collect();
                        let mut op = Gemm::new(alpha, beta, ta, tb);
                        op.activation = FusedActivation::Relu;
                        let at = t(&if ta { [k, m] } else { [m, k] }, &a);
                        let bt = Arc::new(t(&if tb { [n, k] } else { [k, n] }, &b));
                        let ct = t(&cs, &cv);
                        let cin = if c_kind == 0 { None } else { Some(&ct) };
                        let got = run(&op, &[Some(&at), Some(&bt), cin]).unwrap();
                        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
                        op.prepack(&bt);
                        let got = run_with(&FakePar, &op, &[Some(&at), Some(&bt), cin]).unwrap();
                        assert_close(got[0].as_slice::<f32>().unwrap(), &want, 1e-4);
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_int_and_errors() {
        let a = Tensor::from_slice(&[2, 2], &[1i32, 2, 3, 4]).unwrap();
        let b = Tensor::from_slice(&[2, 2], &[5i32, 6, 7, 8]).unwrap();
        let c = Tensor::from_slice(&[2], &[1i32, 1]).unwrap();
        let y = run(
            &Gemm::new(1.0, 1.0, false, false),
            &[Some(&a), Some(&b), Some(&c)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<i32>().unwrap(), &[20, 23, 44, 51]);
        let bad = t(&[3, 2], &[0.0; 6]);
        assert!(run(
            &Gemm::new(1.0, 1.0, false, false),
            &[Some(&t(&[2, 2], &[0.0; 4])), Some(&bad), None]
        )
        .is_err());
    }
}
