//! `Trilu`: keeps the upper (`j - i >= k`) or lower (`j - i <= k`) triangle
//! of the last two axes, zeroing the rest. `k` is the optional input 1.

use uniml_data::{bail, Result, Tensor, TensorView};

use super::{fact, ints_of, Data};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct Trilu {
    pub upper: bool,
}

impl Default for Trilu {
    fn default() -> Self {
        Trilu { upper: true }
    }
}

fn trilu_into<T: Data>(
    x: &TensorView,
    rows: usize,
    cols: usize,
    k: i64,
    upper: bool,
    out: &mut Tensor,
) -> Result<()> {
    let src = T::src(x)?;
    let dst = T::dst(out)?;
    let c = cols as i64;
    for (s, d) in src.chunks(rows * cols).zip(dst.chunks_mut(rows * cols)) {
        for i in 0..rows {
            let diag = i as i64 + k;
            let (a, b) = if upper {
                (diag.clamp(0, c), c)
            } else {
                (0, (diag + 1).clamp(0, c))
            };
            let (a, b) = (a as usize, b as usize);
            if a < b {
                d[i * cols + a..i * cols + b].clone_from_slice(&s[i * cols + a..i * cols + b]);
            }
        }
    }
    Ok(())
}

impl Op for Trilu {
    fn name(&self) -> &'static str {
        "Trilu"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let f = inputs.first().copied().cloned().unwrap_or_default();
        Ok(vec![match f.shape {
            Some(s) => fact(f.dtype, s),
            None => Fact::dtype_only(f.dtype),
        }])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Trilu")?;
        let k = match inputs.get(1).and_then(|v| v.as_ref()) {
            Some(t) => match ints_of(t, "Trilu k")?.as_slice() {
                [k] => *k,
                other => bail!("Trilu: k must be a single integer, got {other:?}"),
            },
            None => 0,
        };
        let s = x.shape();
        if s.len() < 2 {
            bail!("Trilu: the input must have rank >= 2, got shape {s:?}");
        }
        let (rows, cols) = (s[s.len() - 2], s[s.len() - 1]);
        let mut out = ctx.alloc(x.dtype(), s)?;
        if !out.is_empty() {
            dispatch_data!(x.dtype(), T => trilu_into::<T>(x, rows, cols, k, self.upper, &mut out)?);
        }
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn naive(rows: usize, cols: usize, k: i64, upper: bool) -> Vec<i32> {
        (0..rows * cols)
            .map(|p| {
                let (i, j) = ((p / cols) as i64, (p % cols) as i64);
                let keep = if upper { j - i >= k } else { j - i <= k };
                if keep {
                    p as i32 + 1
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn triangles_match_definition() {
        let d: Vec<i32> = (1..=12).collect();
        for (rows, cols) in [(3, 4), (4, 3), (1, 12)] {
            for k in -5..=5 {
                for upper in [true, false] {
                    let x = TensorView::from_slice(&[rows, cols], &d).unwrap();
                    let kk = [k];
                    let mut pool = BufferPool::new(u64::MAX);
                    let mut ctx = EvalCtx::new(&Serial, &mut pool);
                    let out = Trilu { upper }
                        .eval(
                            &mut ctx,
                            &[Some(x), Some(TensorView::from_slice(&[], &kk).unwrap())],
                        )
                        .unwrap();
                    assert_eq!(
                        out[0].to_vec::<i32>().unwrap(),
                        naive(rows, cols, k, upper),
                        "{rows}x{cols} k={k} upper={upper}"
                    );
                }
            }
        }
    }
}
