//! `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceProd`,
//! `ReduceL1`, `ReduceL2`, `ReduceLogSum`, `ReduceLogSumExp`,
//! `ReduceSumSquare`: one op, [`Reduce`], parametrised by [`ReduceKind`].
//!
//! Axes come from the `axes` field (attribute, or a constant `axes` input
//! folded in by the importer) or else from input 1 at run time. Empty axes
//! reduce everything, unless `noop_with_empty_axes`, in which case nothing is
//! reduced (but the elementwise part still applies, e.g. `ReduceSumSquare`
//! squares, as in the numpy reference). Reducing an empty set gives the
//! identity of the reduction (0 for sums, 1 for products, −inf/min for max,
//! +inf/max for min, −inf for log-sums, NaN for the mean).

use std::borrow::Cow;

use uniml_data::{bail, bf16, f16, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::kernels::{layout, log_sum_exp, permute, reduce, Acc, Folder, Layout};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::elementwise::num::Num;
use crate::ops::util::{norm_axis, read_i64s};
use crate::parallel::Parallelism;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

impl ReduceKind {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
            ReduceKind::Prod => "ReduceProd",
            ReduceKind::L1 => "ReduceL1",
            ReduceKind::L2 => "ReduceL2",
            ReduceKind::LogSum => "ReduceLogSum",
            ReduceKind::LogSumExp => "ReduceLogSumExp",
            ReduceKind::SumSquare => "ReduceSumSquare",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reduce {
    pub kind: ReduceKind,
    /// Axes known at build time; `None` reads input 1 at run time (absent = all).
    pub axes: Option<Vec<i64>>,
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
}

impl Reduce {
    pub fn new(
        kind: ReduceKind,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    ) -> Self {
        Reduce {
            kind,
            axes,
            keepdims,
            noop_with_empty_axes,
        }
    }

    /// Which of `rank` dims are reduced for the given axes list.
    fn reduced(&self, axes: &[i64], rank: usize) -> Result<Vec<bool>> {
        let mut red = vec![false; rank];
        if axes.is_empty() {
            if !self.noop_with_empty_axes {
                red.fill(true);
            }
            return Ok(red);
        }
        for &a in axes {
            if rank == 0 {
                bail!(
                    "{}: axis {a} is out of range for a scalar input",
                    self.kind.name()
                );
            }
            red[norm_axis(a, rank)?] = true;
        }
        Ok(red)
    }

    fn check_dtype(&self, dt: DType) -> Result<()> {
        let ok = dt.is_float()
            || dt.is_integer()
            || (dt == DType::Bool && matches!(self.kind, ReduceKind::Max | ReduceKind::Min));
        if !ok {
            bail!("{} does not support {dt} inputs", self.kind.name());
        }
        Ok(())
    }
}

/// The reduction of `kind` on accumulation type `A`.
fn run<A: Acc>(par: &dyn Parallelism, kind: ReduceKind, x: &[A], lay: &Layout, out: &mut [A]) {
    let id = |v: A| v;
    let add = |a: A, b: A| a.add(b);
    let n = A::from_f64(lay.r as f64);
    match kind {
        ReduceKind::Sum => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: id,
                comb: add,
                post: id,
            },
            out,
        ),
        ReduceKind::Mean => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: id,
                comb: add,
                post: |v: A| v.div(n),
            },
            out,
        ),
        ReduceKind::Max => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::LOWEST,
                pre: id,
                comb: |a: A, b: A| a.max_nan(b),
                post: id,
            },
            out,
        ),
        ReduceKind::Min => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::HIGHEST,
                pre: id,
                comb: |a: A, b: A| a.min_nan(b),
                post: id,
            },
            out,
        ),
        ReduceKind::Prod => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ONE,
                pre: id,
                comb: |a: A, b: A| a.mul(b),
                post: id,
            },
            out,
        ),
        ReduceKind::L1 => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: |v: A| v.abs(),
                comb: add,
                post: id,
            },
            out,
        ),
        ReduceKind::L2 => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: |v: A| v.mul(v),
                comb: add,
                post: |v: A| v.sqrt_(),
            },
            out,
        ),
        ReduceKind::SumSquare => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: |v: A| v.mul(v),
                comb: add,
                post: id,
            },
            out,
        ),
        ReduceKind::LogSum => reduce(
            par,
            x,
            lay,
            &Folder {
                init: A::ZERO,
                pre: id,
                comb: add,
                post: |v: A| v.ln_(),
            },
            out,
        ),
        ReduceKind::LogSumExp => log_sum_exp(par, x, lay, out),
    }
}

/// Reduces data already in accumulation type `A` (permuting first if needed).
fn run_acc<A: Acc>(
    par: &dyn Parallelism,
    kind: ReduceKind,
    x: &[A],
    shape: &[usize],
    lay: &Layout,
    out: &mut [A],
) {
    let data: Cow<[A]> = match &lay.perm {
        Some(p) => Cow::Owned(permute(x, shape, p)),
        None => Cow::Borrowed(x),
    };
    run(par, kind, &data, lay, out);
}

/// Converts `x` into accumulation type `A`, reduces, and stores back as `T`.
#[allow(clippy::too_many_arguments)]
fn run_converted<T: Copy, A: Acc>(
    par: &dyn Parallelism,
    kind: ReduceKind,
    x: &[T],
    shape: &[usize],
    lay: &Layout,
    out: &mut [T],
    load: impl Fn(T) -> A,
    store: impl Fn(A) -> T,
) {
    let xa: Vec<A> = x.iter().map(|&v| load(v)).collect();
    let mut oa = vec![A::ZERO; out.len()];
    run_acc(par, kind, &xa, shape, lay, &mut oa);
    for (o, a) in out.iter_mut().zip(oa) {
        *o = store(a);
    }
}

impl Op for Reduce {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            bail!("{} needs an input", self.name())
        };
        if let Some(dt) = x.dtype {
            self.check_dtype(dt)?;
        }
        let axes: Option<Vec<i64>> = match (&self.axes, inputs.get(1)) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(f)) => match &f.konst {
                Some(t) => Some(read_i64s(&t.view())?),
                None => None,
            },
            (None, None) => Some(vec![]),
        };
        let shape = match (&x.shape, axes) {
            (Some(s), Some(axes)) => {
                let red = self.reduced(&axes, s.rank())?;
                let dims =
                    s.0.iter()
                        .zip(&red)
                        .filter_map(|(d, &r)| match (r, self.keepdims) {
                            (false, _) => Some(d.clone()),
                            (true, true) => Some(Dim::Known(1)),
                            (true, false) => None,
                        })
                        .collect();
                Some(SymbolicShape(dims))
            }
            (Some(s), None) if self.keepdims => Some(SymbolicShape(vec![Dim::Unknown; s.rank()])),
            _ => None,
        };
        Ok(vec![Fact {
            dtype: x.dtype,
            shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, self.name())?;
        let dt = x.dtype();
        self.check_dtype(dt)?;
        let axes = match (&self.axes, inputs.get(1).and_then(|v| v.as_ref())) {
            (Some(a), _) => a.clone(),
            (None, Some(t)) => read_i64s(t)?,
            (None, None) => vec![],
        };
        let shape = x.shape();
        let red = self.reduced(&axes, shape.len())?;
        let out_shape: Vec<usize> = shape
            .iter()
            .zip(&red)
            .filter_map(|(&d, &r)| match (r, self.keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        let lay = layout(shape, &red);
        let mut out = ctx.alloc(dt, &out_shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        let par = ctx.par;
        let kind = self.kind;
        match dt {
            DType::F32 => run_acc(
                par,
                kind,
                x.as_slice::<f32>()?,
                shape,
                &lay,
                out.as_slice_mut::<f32>()?,
            ),
            DType::F64 => run_acc(
                par,
                kind,
                x.as_slice::<f64>()?,
                shape,
                &lay,
                out.as_slice_mut::<f64>()?,
            ),
            DType::F16 => run_converted(
                par,
                kind,
                x.as_slice::<f16>()?,
                shape,
                &lay,
                out.as_slice_mut()?,
                f16::to_f32,
                f16::from_f32,
            ),
            DType::BF16 => run_converted(
                par,
                kind,
                x.as_slice::<bf16>()?,
                shape,
                &lay,
                out.as_slice_mut()?,
                bf16::to_f32,
                bf16::from_f32,
            ),
            DType::Bool => run_converted(
                par,
                kind,
                x.as_bytes(),
                shape,
                &lay,
                out.as_bytes_mut(),
                |v| v as u64,
                |a: u64| (a != 0) as u8,
            ),
            _ if kind == ReduceKind::LogSumExp => {
                crate::dispatch_numeric!(dt, T => run_converted(par, kind, x.as_slice::<T>()?, shape, &lay,
                out.as_slice_mut::<T>()?, |v: T| v.to_f64(), |a: f64| T::from_f64(a)), _ => bail!("{} does not support {dt}", self.name()))
            }
            _ if dt.is_signed() => {
                crate::dispatch_numeric!(dt, T => run_converted(par, kind, x.as_slice::<T>()?, shape, &lay,
                out.as_slice_mut::<T>()?, |v: T| v.to_i64(), |a: i64| T::from_i64(a)), _ => bail!("{} does not support {dt}", self.name()))
            }
            _ => {
                crate::dispatch_numeric!(dt, T => run_converted(par, kind, x.as_slice::<T>()?, shape, &lay,
                out.as_slice_mut::<T>()?, |v: T| v.to_i64() as u64, |a: u64| T::from_i64(a as i64)), _ => bail!("{} does not support {dt}", self.name()))
            }
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

    fn run_op(op: &Reduce, x: &Tensor, axes: Option<&Tensor>) -> Result<Tensor> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        Ok(op
            .eval(&mut ctx, &[Some(x.view()), axes.map(|a| a.view())])?
            .remove(0))
    }

    fn x234() -> Tensor {
        Tensor::from_slice(
            &[2, 3, 4],
            &(0..24).map(|v| v as f32 - 10.0).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    /// Naive reference: fold over the reduced dims with a full index walk.
    fn naive(x: &[f32], shape: &[usize], red: &[bool], f: impl Fn(&[f32]) -> f32) -> Vec<f32> {
        let out_shape: Vec<usize> = shape
            .iter()
            .zip(red)
            .map(|(&d, &r)| if r { 1 } else { d })
            .collect();
        let n: usize = out_shape.iter().product();
        let st = crate::ops::util::strides(shape);
        let ost = crate::ops::util::strides(&out_shape);
        let mut groups = vec![vec![]; n];
        for (i, &v) in x.iter().enumerate() {
            let o: usize = (0..shape.len())
                .map(|d| {
                    if red[d] {
                        0
                    } else {
                        (i / st[d]) % shape[d] * ost[d]
                    }
                })
                .sum();
            groups[o].push(v);
        }
        groups.iter().map(|g| f(g)).collect()
    }

    #[test]
    fn all_axis_combinations_match_naive() {
        let x = x234();
        let xs = x.to_vec::<f32>().unwrap();
        type Naive = fn(&[f32]) -> f32;
        let kinds: [(ReduceKind, Naive); 6] = [
            (ReduceKind::Sum, |g| g.iter().sum()),
            (ReduceKind::Max, |g| {
                g.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
            }),
            (ReduceKind::Mean, |g| g.iter().sum::<f32>() / g.len() as f32),
            (ReduceKind::L2, |g| {
                g.iter().map(|v| v * v).sum::<f32>().sqrt()
            }),
            (ReduceKind::LogSumExp, |g| {
                g.iter().map(|v| v.exp()).sum::<f32>().ln()
            }),
            (ReduceKind::Prod, |g| g.iter().map(|v| v / 10.0).product()),
        ];
        for mask in 0..8u32 {
            let red: Vec<bool> = (0..3).map(|d| mask & (1 << d) != 0).collect();
            let axes: Vec<i64> = (0..3).filter(|&d| red[d]).map(|d| d as i64 - 3).collect();
            let red_eff: Vec<bool> = if axes.is_empty() {
                vec![true; 3]
            } else {
                red.clone()
            };
            for (kind, f) in &kinds {
                let input = if *kind == ReduceKind::Prod {
                    Tensor::from_slice(&[2, 3, 4], &xs.iter().map(|v| v / 10.0).collect::<Vec<_>>())
                        .unwrap()
                } else {
                    x.clone()
                };
                let got = run_op(
                    &Reduce::new(*kind, Some(axes.clone()), true, false),
                    &input,
                    None,
                )
                .unwrap();
                let want = naive(&xs, &[2, 3, 4], &red_eff, f);
                let g = got.to_vec::<f32>().unwrap();
                for (a, b) in g.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{kind:?} axes {axes:?}: {g:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn keepdims_noop_and_axes_input() {
        let x = x234();
        let r = run_op(
            &Reduce::new(ReduceKind::Sum, None, false, false),
            &x,
            Some(&Tensor::from_slice(&[1], &[1i64]).unwrap()),
        )
        .unwrap();
        assert_eq!(r.shape(), &[2, 4]);
        let r = run_op(
            &Reduce::new(ReduceKind::Sum, None, true, true),
            &x,
            Some(&Tensor::from_slice::<i64>(&[0], &[]).unwrap()),
        )
        .unwrap();
        assert_eq!(r.shape(), &[2, 3, 4]);
        assert_eq!(r.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
        let r = run_op(
            &Reduce::new(ReduceKind::SumSquare, None, true, true),
            &x,
            None,
        )
        .unwrap();
        assert_eq!(r.to_vec::<f32>().unwrap()[0], 100.0);
        let r = run_op(&Reduce::new(ReduceKind::Sum, None, false, false), &x, None).unwrap();
        assert_eq!(r.shape(), &[] as &[usize]);
        assert_eq!(r.to_vec::<f32>().unwrap(), vec![36.0]);
        assert!(run_op(
            &Reduce::new(ReduceKind::Sum, Some(vec![3]), true, false),
            &x,
            None
        )
        .is_err());
    }

    #[test]
    fn empty_sets_and_types() {
        let e = Tensor::zeros(DType::F32, &[2, 0, 4]).unwrap();
        let expect = [
            (ReduceKind::Sum, 0.0),
            (ReduceKind::Prod, 1.0),
            (ReduceKind::Max, f32::NEG_INFINITY),
            (ReduceKind::Min, f32::INFINITY),
            (ReduceKind::LogSum, f32::NEG_INFINITY),
            (ReduceKind::LogSumExp, f32::NEG_INFINITY),
            (ReduceKind::L2, 0.0),
        ];
        for (kind, v) in expect {
            let r = run_op(&Reduce::new(kind, Some(vec![1]), true, false), &e, None).unwrap();
            assert_eq!(r.shape(), &[2, 1, 4]);
            assert!(
                r.to_vec::<f32>().unwrap().iter().all(|&x| x == v),
                "{kind:?}"
            );
        }
        let b = Tensor::from_bools(&[2, 2], &[true, false, false, false]).unwrap();
        let r = run_op(
            &Reduce::new(ReduceKind::Max, Some(vec![1]), false, false),
            &b,
            None,
        )
        .unwrap();
        assert_eq!(r.as_bools().unwrap(), &[true, false]);
        let i = Tensor::from_slice(&[2, 2], &[-3i32, 4, 5, -6]).unwrap();
        let r = run_op(
            &Reduce::new(ReduceKind::L1, Some(vec![0]), false, false),
            &i,
            None,
        )
        .unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![8, 10]);
        let r = run_op(
            &Reduce::new(ReduceKind::Mean, Some(vec![1]), false, false),
            &i,
            None,
        )
        .unwrap();
        assert_eq!(r.to_vec::<i32>().unwrap(), vec![0, 0]);
        let u = Tensor::from_slice(&[3], &[u64::MAX, 1, 2]).unwrap();
        let r = run_op(&Reduce::new(ReduceKind::Max, None, false, false), &u, None).unwrap();
        assert_eq!(r.to_vec::<u64>().unwrap(), vec![u64::MAX]);
        let s = Tensor::from_strings(&[1], vec!["a".into()]).unwrap();
        assert!(run_op(&Reduce::new(ReduceKind::Sum, None, false, false), &s, None).is_err());
    }

    #[test]
    fn parallel_chunks_match_serial() {
        use crate::ops::elementwise::kernel::test_par::FakePar;
        let x = Tensor::from_vec(
            &[3, 300, 301],
            (0..270_900).map(|i| ((i * 7) % 23) as f32 - 11.0).collect(),
        )
        .unwrap();
        for axes in [vec![2], vec![1], vec![0], vec![0, 2]] {
            for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::LogSumExp] {
                let op = Reduce::new(kind, Some(axes.clone()), false, false);
                let serial = run_op(&op, &x, None).unwrap();
                let mut pool = BufferPool::new(u64::MAX);
                let mut ctx = EvalCtx::new(&FakePar, &mut pool);
                let par = op.eval(&mut ctx, &[Some(x.view())]).unwrap().remove(0);
                assert_eq!(
                    serial.to_vec::<f32>().unwrap(),
                    par.to_vec::<f32>().unwrap(),
                    "{kind:?} {axes:?}"
                );
            }
        }
    }

    #[test]
    fn facts() {
        let x = Fact::new(
            DType::F32,
            SymbolicShape(vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(4)]),
        );
        let f = Reduce::new(ReduceKind::Mean, Some(vec![-1]), false, false)
            .output_facts(&[&x], 1)
            .unwrap();
        assert_eq!(
            f[0].shape,
            Some(SymbolicShape(vec![Dim::Sym("N".into()), Dim::Known(3)]))
        );
        let axes = Fact::dtype_only(Some(DType::I64));
        let f = Reduce::new(ReduceKind::Mean, None, true, false)
            .output_facts(&[&x, &axes], 1)
            .unwrap();
        assert_eq!(f[0].shape.as_ref().map(|s| s.rank()), Some(3));
    }
}
