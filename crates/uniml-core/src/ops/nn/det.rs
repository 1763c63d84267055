//! `Det`: determinants of the square matrices in the last two axes of `X`
//! (`[*, M, M]` → `[*]`). LU decomposition with partial pivoting in f64, the
//! result rounded once to the input's float dtype.

use uniml_data::{bail, Result, SymbolicShape, Tensor, TensorView};

use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::signal::store_f64;

#[derive(Debug, Clone, Default)]
pub struct Det;

/// Determinant of the row-major `n x n` matrix `a` (overwritten).
fn det(a: &mut [f64], n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap_or(c);
        if a[p * n + c] == 0.0 {
            return 0.0;
        }
        if p != c {
            for k in 0..n {
                a.swap(p * n + k, c * n + k);
            }
            d = -d;
        }
        let piv = a[c * n + c];
        d *= piv;
        for r in c + 1..n {
            let f = a[r * n + c] / piv;
            if f != 0.0 {
                for k in c + 1..n {
                    a[r * n + k] -= f * a[c * n + k];
                }
            }
        }
    }
    d
}

impl Op for Det {
    fn name(&self) -> &'static str {
        "Det"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        if let Some(d) = x.dtype {
            if !d.is_float() {
                bail!("Det expects a float tensor, got {d}");
            }
        }
        let shape = match &x.shape {
            Some(s) if s.rank() < 2 => bail!("Det needs a [*, M, M] input, got rank {}", s.rank()),
            Some(s) => Some(SymbolicShape(s.0[..s.rank() - 2].to_vec())),
            None => None,
        };
        Ok(vec![Fact { dtype: x.dtype, shape, konst: None, is_sequence: false }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Det")?;
        let s = x.shape();
        if s.len() < 2 || s[s.len() - 1] != s[s.len() - 2] {
            bail!("Det needs square matrices in the last two axes, got shape {s:?}");
        }
        if !x.dtype().is_float() {
            bail!("Det expects a float tensor, got {}", x.dtype());
        }
        let n = s[s.len() - 1];
        let vals = x.to_f64_vec()?;
        let dets: Vec<f64> = if n == 0 {
            vec![1.0; s[..s.len() - 2].iter().product()]
        } else {
            vals.chunks(n * n).map(|m| det(&mut m.to_vec(), n)).collect()
        };
        let mut out = ctx.alloc(x.dtype(), &s[..s.len() - 2])?;
        store_f64(&dets, &mut out)?;
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::run;

    #[test]
    fn determinants() {
        // [[1, 2], [3, 4]] → -2; a permutation-needing 3x3; a singular one.
        let x = Tensor::from_slice(&[2, 2], &[1f32, 2., 3., 4.]).unwrap();
        let y = run(&Det, &[Some(&x)]).unwrap().remove(0);
        assert_eq!(y.shape(), &[] as &[usize]);
        assert!((y.to_vec::<f32>().unwrap()[0] + 2.0).abs() < 1e-6);
        let m = [0f64, 2., 1., 1., 1., 1., 2., 0., 3., /* */ 1., 2., 3., 2., 4., 6., 0., 1., 1.];
        let x = Tensor::from_slice(&[2, 3, 3], &m).unwrap();
        let y = run(&Det, &[Some(&x)]).unwrap().remove(0);
        // 0(3-0) - 2(3-2) + 1(0-2) = -4; rows 1 and 2 proportional → 0.
        assert_eq!(y.to_vec::<f64>().unwrap(), vec![-4.0, 0.0]);
        let bad = Tensor::from_slice(&[2, 3], &[0f32; 6]).unwrap();
        assert!(run(&Det, &[Some(&bad)]).is_err());
    }
}
