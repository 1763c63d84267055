//! Ops that change only the shape, never the element order: `Reshape`,
//! `Flatten`, `Squeeze`, `Unsqueeze`. When the input dies at the node (the
//! common case: a channel shuffle's Reshape → Transpose → Reshape) the
//! executor donates its buffer and the kernel only relabels it; otherwise
//! the data is copied once into a pooled buffer. Shape rules keep symbolic
//! dims wherever they can.

use uniml_data::{bail, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{copy_reshaped, fold_small, ints_param, ints_param_fact, numel};
use crate::op::{input, EvalCtx, Fact, Op};

/// Input 0 under the shape `shape_of(its shape)`: the input's own buffer when
/// the executor donated it (see [`Op::output_reuses_input`]), else a copy.
fn reshape_input(
    ctx: &mut EvalCtx,
    inputs: &[Option<TensorView>],
    op: &str,
    shape_of: impl FnOnce(&[usize]) -> Result<Vec<usize>>,
) -> Result<Tensor> {
    if let Some(t) = ctx.take_donated() {
        let shape = shape_of(t.shape())?;
        return t.reshaped(&shape);
    }
    let x = input(inputs, 0, op)?;
    let shape = shape_of(x.shape())?;
    copy_reshaped(ctx, x, &shape)
}
use crate::ops::util::norm_axis;

// ---------------------------------------------------------------- Reshape

/// `Reshape`: the target shape comes from input 1. `0` copies the input dim
/// (unless `allowzero`), `-1` is inferred.
#[derive(Debug, Clone)]
pub struct Reshape {
    pub allowzero: bool,
}

/// Resolves a Reshape target against a concrete input shape.
pub fn resolve_reshape(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 => {
                if infer.is_some() {
                    bail!("Reshape: at most one -1 is allowed in the target shape {spec:?}");
                }
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => out.push(v),
                None => bail!("Reshape: target {spec:?} copies dim {i} (0), but the input {input:?} has rank {}", input.len()),
            },
            d if d >= 0 => out.push(d as usize),
            d => bail!("Reshape: invalid dim {d} in the target shape {spec:?}"),
        }
    }
    let total = numel(input);
    if let Some(i) = infer {
        if allowzero && spec.contains(&0) {
            bail!("Reshape: allowzero with both 0 and -1 in the target shape {spec:?}");
        }
        let rest: usize = out
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, &d)| d)
            .try_fold(1usize, |a, d| a.checked_mul(d))
            .unwrap_or(0);
        if rest == 0 || total % rest != 0 {
            bail!("Reshape: cannot reshape {input:?} ({total} elements) to {spec:?}");
        }
        out[i] = total / rest;
    }
    if super::checked_numel(&out)? != total {
        bail!("Reshape: cannot reshape {input:?} ({total} elements) to {spec:?} (= {out:?})");
    }
    Ok(out)
}

/// Symbolic version of [`resolve_reshape`]: resolves `0` to the input's
/// (possibly symbolic) dim, and `-1` by cancelling matching dims.
fn resolve_reshape_symbolic(
    input: &SymbolicShape,
    spec: &[i64],
    allowzero: bool,
) -> Option<SymbolicShape> {
    let mut out: Vec<Dim> = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        out.push(match d {
            -1 => {
                infer = Some(i);
                Dim::Unknown
            }
            0 if !allowzero => input.0.get(i)?.clone(),
            d if d >= 0 => Dim::Known(d as usize),
            _ => return None,
        });
    }
    if let Some(i) = infer {
        // -1 = product(input) / product(other output dims), by cancellation.
        let mut syms: Vec<&str> = Vec::new();
        let mut known = 1usize;
        for d in &input.0 {
            match d {
                Dim::Known(v) => known = known.checked_mul(*v)?,
                Dim::Sym(s) => syms.push(s),
                Dim::Unknown => return Some(SymbolicShape(out)),
            }
        }
        let mut other_known = 1usize;
        let mut ok = true;
        for (j, d) in out.iter().enumerate() {
            if j == i {
                continue;
            }
            match d {
                Dim::Known(v) => other_known = other_known.checked_mul(*v)?,
                Dim::Sym(s) => match syms.iter().position(|x| x == s) {
                    Some(p) => {
                        syms.swap_remove(p);
                    }
                    None => ok = false,
                },
                Dim::Unknown => ok = false,
            }
        }
        if ok && other_known > 0 && known % other_known == 0 {
            let q = known / other_known;
            out[i] = match syms.as_slice() {
                [] => Dim::Known(q),
                [s] if q == 1 => Dim::Sym(s.to_string()),
                _ => Dim::Unknown,
            };
        }
    }
    Some(SymbolicShape(out))
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "Reshape"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match (super::konst_ints(inputs, 1), &x.shape) {
            (Some(spec), Some(s)) => match s.concrete() {
                Some(c) => Some(SymbolicShape::known(&resolve_reshape(
                    &c,
                    &spec,
                    self.allowzero,
                )?)),
                None => resolve_reshape_symbolic(s, &spec, self.allowzero),
            },
            (Some(spec), None) => Some(SymbolicShape(
                spec.iter()
                    .map(|&d| {
                        if d > 0 || (d == 0 && self.allowzero) {
                            Dim::Known(d as usize)
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect(),
            )),
            (None, _) => match inputs
                .get(1)
                .and_then(|f| f.shape.as_ref())
                .and_then(|s| s.0.first())
                .and_then(Dim::known)
            {
                Some(r) => Some(SymbolicShape(vec![Dim::Unknown; r])),
                None => None,
            },
        };
        let fact = Fact {
            dtype: x.dtype,
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let spec = super::ints_of(input(inputs, 1, "Reshape")?, "Reshape shape")?;
        let y = reshape_input(ctx, inputs, "Reshape", |xs| resolve_reshape(xs, &spec, self.allowzero))?;
        Ok(vec![y])
    }
    fn output_reuses_input(&self) -> Option<usize> {
        Some(0)
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Flatten

/// `Flatten`: to 2-D `[prod(dims[..axis]), prod(dims[axis..])]`; `axis` in `[-r, r]`.
#[derive(Debug, Clone)]
pub struct Flatten {
    pub axis: i64,
}

impl Flatten {
    fn split_at(&self, rank: usize) -> Result<usize> {
        let r = rank as i64;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..=r).contains(&a) {
            bail!(
                "Flatten: axis {} is out of range for rank {rank}",
                self.axis
            );
        }
        Ok(a as usize)
    }
}

fn product_dim(dims: &[Dim]) -> Dim {
    match dims {
        [d] => d.clone(),
        _ => dims
            .iter()
            .try_fold(1usize, |a, d| d.known().and_then(|v| a.checked_mul(v)))
            .map(Dim::Known)
            .unwrap_or(Dim::Unknown),
    }
}

impl Op for Flatten {
    fn name(&self) -> &'static str {
        "Flatten"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match &x.shape {
            Some(s) => {
                let a = self.split_at(s.rank())?;
                Some(SymbolicShape(vec![
                    product_dim(&s.0[..a]),
                    product_dim(&s.0[a..]),
                ]))
            }
            None => None,
        };
        let fact = Fact {
            dtype: x.dtype,
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let y = reshape_input(ctx, inputs, "Flatten", |xs| {
            let a = self.split_at(xs.len())?;
            Ok(vec![numel(&xs[..a]), numel(&xs[a..])])
        })?;
        Ok(vec![y])
    }
    fn output_reuses_input(&self) -> Option<usize> {
        Some(0)
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Squeeze

/// `Squeeze`: removes the listed size-1 axes (all size-1 axes when none are
/// given). `axes` is the attribute (opset < 13) or the constant input 1;
/// when `None` and input 1 is present, it is read at run time.
#[derive(Debug, Clone, Default)]
pub struct Squeeze {
    pub axes: Option<Vec<i64>>,
}

fn squeeze_axes(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>> {
    match axes {
        None => Ok((0..shape.len()).filter(|&i| shape[i] == 1).collect()),
        Some(axes) => {
            let mut v = Vec::with_capacity(axes.len());
            for &a in axes {
                let n = norm_axis(a, shape.len())?;
                if shape.get(n) != Some(&1) {
                    bail!("Squeeze: axis {a} of shape {shape:?} is not of size 1");
                }
                if !v.contains(&n) {
                    v.push(n);
                }
            }
            Ok(v)
        }
    }
}

impl Op for Squeeze {
    fn name(&self) -> &'static str {
        "Squeeze"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match (&x.shape, ints_param_fact(&self.axes, inputs, 1)) {
            (Some(s), Some(Some(axes))) => {
                let mut drop = vec![false; s.rank()];
                for &a in &axes {
                    let n = norm_axis(a, s.rank())?;
                    if let Dim::Known(d) = s.0[n] {
                        if d != 1 {
                            bail!("Squeeze: axis {a} of shape {s} is not of size 1");
                        }
                    }
                    drop[n] = true;
                }
                Some(SymbolicShape(
                    s.0.iter()
                        .zip(&drop)
                        .filter(|(_, &d)| !d)
                        .map(|(d, _)| d.clone())
                        .collect(),
                ))
            }
            // Without axes, every size-1 dim goes: only decidable if all dims are known.
            (Some(s), Some(None)) => s.concrete().map(|c| {
                SymbolicShape::known(&c.into_iter().filter(|&d| d != 1).collect::<Vec<_>>())
            }),
            _ => None,
        };
        let fact = Fact {
            dtype: x.dtype,
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let axes = ints_param(&self.axes, inputs, 1, "Squeeze axes")?;
        let y = reshape_input(ctx, inputs, "Squeeze", |xs| {
            let drop = squeeze_axes(xs, axes.as_deref())?;
            Ok(xs
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, &d)| d)
                .collect())
        })?;
        Ok(vec![y])
    }
    fn output_reuses_input(&self) -> Option<usize> {
        Some(0)
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- Unsqueeze

/// `Unsqueeze`: inserts size-1 axes at the listed positions of the output.
/// `axes` is the attribute (opset < 13) or the constant input 1; when
/// `None`, input 1 is read at run time.
#[derive(Debug, Clone, Default)]
pub struct Unsqueeze {
    pub axes: Option<Vec<i64>>,
}

/// For an output of rank `rank + axes.len()`: which output positions are new.
fn unsqueeze_mask(rank: usize, axes: &[i64]) -> Result<Vec<bool>> {
    let out_rank = rank + axes.len();
    let mut mask = vec![false; out_rank];
    for &a in axes {
        let n = norm_axis(a, out_rank)?;
        if mask[n] {
            bail!("Unsqueeze: axis {a} is repeated in {axes:?}");
        }
        mask[n] = true;
    }
    Ok(mask)
}

impl Op for Unsqueeze {
    fn name(&self) -> &'static str {
        "Unsqueeze"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match (&x.shape, ints_param_fact(&self.axes, inputs, 1)) {
            (Some(s), Some(Some(axes))) => {
                let mask = unsqueeze_mask(s.rank(), &axes)?;
                let mut it = s.0.iter();
                Some(SymbolicShape(
                    mask.iter()
                        .map(|&m| {
                            if m {
                                Dim::Known(1)
                            } else {
                                it.next().cloned().unwrap_or(Dim::Unknown)
                            }
                        })
                        .collect(),
                ))
            }
            _ => None,
        };
        let fact = Fact {
            dtype: x.dtype,
            shape,
            ..Fact::default()
        };
        Ok(fold_small(self, inputs, vec![fact]))
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let Some(axes) = ints_param(&self.axes, inputs, 1, "Unsqueeze axes")? else {
            bail!("Unsqueeze: the axes input is missing");
        };
        let y = reshape_input(ctx, inputs, "Unsqueeze", |xs| {
            let mask = unsqueeze_mask(xs.len(), &axes)?;
            let mut it = xs.iter();
            Ok(mask
                .iter()
                .map(|&m| if m { 1 } else { it.next().copied().unwrap_or(1) })
                .collect())
        })?;
        Ok(vec![y])
    }
    fn output_reuses_input(&self) -> Option<usize> {
        Some(0)
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn run(op: &dyn Op, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        op.eval(&mut ctx, inputs)
    }

    #[test]
    fn reshape_resolves_zero_and_minus_one() {
        assert_eq!(
            resolve_reshape(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(resolve_reshape(&[2, 3, 4], &[-1], false).unwrap(), vec![24]);
        assert_eq!(resolve_reshape(&[0, 3], &[3, 0], true).unwrap(), vec![3, 0]);
        assert!(resolve_reshape(&[2, 3], &[-1, -1], false).is_err());
        assert!(resolve_reshape(&[2, 3], &[4, -1], false).is_err());
        assert!(resolve_reshape(&[2, 3], &[7], false).is_err());
        assert!(resolve_reshape(&[2, 3], &[0, 0, 0], false).is_err());
    }

    #[test]
    fn reshape_symbolic_cancels_dims() {
        let s = SymbolicShape(vec![
            Dim::Sym("b".into()),
            Dim::Sym("s".into()),
            Dim::Known(384),
        ]);
        let r = resolve_reshape_symbolic(&s, &[0, 0, 12, 32], false).unwrap();
        assert_eq!(
            r.0,
            vec![
                Dim::Sym("b".into()),
                Dim::Sym("s".into()),
                Dim::Known(12),
                Dim::Known(32)
            ]
        );
        let r = resolve_reshape_symbolic(&s, &[0, -1, 384], false).unwrap();
        assert_eq!(r.0[1], Dim::Sym("s".into()));
        let r = resolve_reshape_symbolic(&s, &[-1, 384], false).unwrap();
        assert_eq!(r.0[0], Dim::Unknown);
    }

    #[test]
    fn reshape_kernel_copies_data() {
        let d: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let x = TensorView::from_slice(&[2, 3], &d).unwrap();
        let s = [3i64, -1];
        let sh = TensorView::from_slice(&[2], &s).unwrap();
        let out = run(&Reshape { allowzero: false }, &[Some(x.clone()), Some(sh)]).unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &d[..]);
        // Strings move too.
        let st = Tensor::from_strings(&[2], vec!["a".into(), "b".into()]).unwrap();
        let s1 = [1i64, 2];
        let out = run(
            &Reshape { allowzero: false },
            &[
                Some(st.view()),
                Some(TensorView::from_slice(&[2], &s1).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(
            out[0].as_strings().unwrap(),
            &["a".to_string(), "b".to_string()]
        );
        assert!(run(&Reshape { allowzero: false }, &[Some(x)]).is_err());
    }

    #[test]
    fn flatten_squeeze_unsqueeze_shapes() {
        let d = [0u8; 24];
        let x = TensorView::from_slice(&[2, 3, 4], &d).unwrap();
        let out = run(&Flatten { axis: 0 }, &[Some(x.clone())]).unwrap();
        assert_eq!(out[0].shape(), &[1, 24]);
        let out = run(&Flatten { axis: -1 }, &[Some(x.clone())]).unwrap();
        assert_eq!(out[0].shape(), &[6, 4]);
        assert!(run(&Flatten { axis: 4 }, &[Some(x.clone())]).is_err());
        let out = run(
            &Unsqueeze {
                axes: Some(vec![0, -1]),
            },
            &[Some(x.clone())],
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 3, 4, 1]);
        let y = TensorView::from_slice(&[1, 3, 1, 8], &d).unwrap();
        assert_eq!(
            run(&Squeeze { axes: None }, &[Some(y.clone())]).unwrap()[0].shape(),
            &[3, 8]
        );
        assert_eq!(
            run(
                &Squeeze {
                    axes: Some(vec![-2])
                },
                &[Some(y.clone())]
            )
            .unwrap()[0]
                .shape(),
            &[1, 3, 8]
        );
        assert!(run(
            &Squeeze {
                axes: Some(vec![1])
            },
            &[Some(y)]
        )
        .is_err());
        assert!(run(
            &Unsqueeze {
                axes: Some(vec![0, 0])
            },
            &[Some(x)]
        )
        .is_err());
    }

    #[test]
    fn unsqueeze_fact_keeps_symbols() {
        let f = Fact::new(
            uniml_data::DType::F32,
            SymbolicShape(vec![Dim::Sym("b".into()), Dim::Known(4)]),
        );
        let out = Unsqueeze {
            axes: Some(vec![1]),
        }
        .output_facts(&[&f], 1)
        .unwrap();
        assert_eq!(
            out[0].shape.as_ref().unwrap().0,
            vec![Dim::Sym("b".into()), Dim::Known(1), Dim::Known(4)]
        );
    }

    /// `r = Relu(x)` → Reshape → Unsqueeze → Squeeze → Flatten: each
    /// reshaping node gets the dying input's buffer donated; a second graph
    /// output reading `r` keeps `r` alive, so that Reshape copies instead.
    /// Both give `relu(x)` under the new shapes, and `r` stays intact.
    #[test]
    fn donated_and_copied_reshapes_match() {
        use crate::exec::run_once;
        use crate::graph::{Graph, ValueId};
        use crate::ops::elementwise::unary::{Unary, UnaryOp};
        use uniml_data::DType;

        let xs: Vec<f32> = (0..24).map(|i| i as f32 - 11.5).collect();
        let relu: Vec<f32> = xs.iter().map(|v| v.max(0.0)).collect();
        for keep_r in [false, true] {
            let mut g = Graph::default();
            let x = g.add_value("x", Fact { dtype: Some(DType::F32), shape: Some(SymbolicShape::known(&[2, 3, 4])), konst: None, is_sequence: false });
            g.inputs.push(x);
            let node = |g: &mut Graph, name: &str, op: Box<dyn Op>, ins: &[ValueId]| {
                let out = g.add_value(format!("{name}.out"), Fact::unknown());
                g.add_node(name, op, ins.iter().map(|&v| Some(v)).collect(), vec![out]);
                out
            };
            let spec = g.add_const("spec", Tensor::from_vec(&[2], vec![4i64, -1]).unwrap());
            let r = node(&mut g, "relu", Box::new(Unary::new(UnaryOp::Relu)), &[x]);
            let y = node(&mut g, "reshape", Box::new(Reshape { allowzero: false }), &[r, spec]);
            let y = node(&mut g, "unsqueeze", Box::new(Unsqueeze { axes: Some(vec![0, 2]) }), &[y]);
            let y = node(&mut g, "squeeze", Box::new(Squeeze { axes: Some(vec![2]) }), &[y]);
            let y = node(&mut g, "flatten", Box::new(Flatten { axis: 2 }), &[y]);
            g.outputs = if keep_r { vec![y, r] } else { vec![y] };
            g.infer_facts().unwrap();
            let xt = Tensor::from_vec(&[2, 3, 4], xs.clone()).unwrap();
            let outs = run_once(&g, &[(x, xt.view())], &Serial, u64::MAX).unwrap();
            let outs: Vec<Tensor> = outs.into_iter().map(|v| v.into_tensor().unwrap()).collect();
            assert_eq!(outs[0].shape(), &[4, 6], "keep_r {keep_r}");
            assert_eq!(outs[0].as_slice::<f32>().unwrap(), relu.as_slice(), "keep_r {keep_r}");
            if keep_r {
                assert_eq!(outs[1].shape(), &[2, 3, 4]);
                assert_eq!(outs[1].as_slice::<f32>().unwrap(), relu.as_slice());
            }
        }
    }
}
