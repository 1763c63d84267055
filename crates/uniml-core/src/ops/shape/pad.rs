//! `Pad` (modes constant/reflect/edge/wrap, negative pads crop) and
//! `CenterCropPad`, both on the index-map copy engine.

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::index_map::map_copy;
use super::{checked_numel, fact, ints_param, ints_param_fact, Data};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{bf16, f16, norm_axis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PadMode {
    #[default]
    Constant,
    Reflect,
    Edge,
    Wrap,
}

impl PadMode {
    pub fn parse(s: &str) -> Option<PadMode> {
        Some(match s {
            "constant" => PadMode::Constant,
            "reflect" => PadMode::Reflect,
            "edge" => PadMode::Edge,
            "wrap" => PadMode::Wrap,
            _ => return None,
        })
    }
}

/// `Pad`. `pads` (`[begin..., end...]` per listed axis) and `axes` are the
/// attribute / constant inputs, else inputs 1 and 3 at run time; the
/// constant value is `value` (attribute, opset < 11) or input 2 (default 0).
#[derive(Debug, Clone, Default)]
pub struct Pad {
    pub mode: PadMode,
    pub pads: Option<Vec<i64>>,
    pub value: Option<f64>,
    pub axes: Option<Vec<i64>>,
}

/// A one-element tensor of `dtype` holding `v` (strings: empty).
pub(crate) fn scalar_of(dtype: DType, v: f64) -> Result<Tensor> {
    Ok(match dtype {
        DType::F32 => Tensor::scalar(v as f32),
        DType::F64 => Tensor::scalar(v),
        DType::F16 => Tensor::scalar(f16::from_f64(v)),
        DType::BF16 => Tensor::scalar(bf16::from_f64(v)),
        DType::I8 => Tensor::scalar(v as i8),
        DType::U8 => Tensor::scalar(v as u8),
        DType::I16 => Tensor::scalar(v as i16),
        DType::U16 => Tensor::scalar(v as u16),
        DType::I32 => Tensor::scalar(v as i32),
        DType::U32 => Tensor::scalar(v as u32),
        DType::I64 => Tensor::scalar(v as i64),
        DType::U64 => Tensor::scalar(v as u64),
        DType::Bool => Tensor::from_bools(&[], &[v != 0.0])?,
        DType::String => Tensor::from_strings(&[], vec![String::new()])?,
        d => bail!("no scalar of {d}"),
    })
}

/// Per-axis `(begin, end)` pads for a rank-`rank` input.
fn per_axis(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> Result<Vec<(i64, i64)>> {
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&x| norm_axis(x, rank))
            .collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        bail!(
            "Pad: {} pads for {} axes (need 2 per axis)",
            pads.len(),
            axes.len()
        );
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[axes.len() + i]);
    }
    Ok(out)
}

/// Source index map of one padded axis of size `d`.
fn axis_map(mode: PadMode, d: usize, begin: i64, end: i64) -> Result<Vec<Option<usize>>> {
    let out = d as i64 + begin + end;
    if out < 0 {
        bail!("Pad: pads ({begin}, {end}) remove more than the axis length {d}");
    }
    let di = d as i64;
    if mode != PadMode::Constant && d == 0 && out > 0 {
        bail!("Pad: cannot pad an empty axis in {mode:?} mode");
    }
    Ok((0..out)
        .map(|j| {
            let i = j - begin;
            match mode {
                PadMode::Constant => (0..di).contains(&i).then_some(i as usize),
                PadMode::Edge => Some(i.clamp(0, di - 1) as usize),
                PadMode::Wrap => Some(i.rem_euclid(di) as usize),
                PadMode::Reflect => {
                    if di == 1 {
                        Some(0)
                    } else {
                        let m = 2 * (di - 1);
                        let r = i.rem_euclid(m);
                        Some(if r >= di { m - r } else { r } as usize)
                    }
                }
            }
        })
        .collect())
}

fn pad_into<T: Data>(
    ctx: &EvalCtx,
    x: &TensorView,
    maps: &[Vec<Option<usize>>],
    fill: &Tensor,
    out: &mut Tensor,
) -> Result<()> {
    let Some(f) = T::src(&fill.view())?.first() else {
        bail!("Pad: empty constant value")
    };
    map_copy(ctx.par, T::src(x)?, x.shape(), maps, f, T::dst(out)?)
}

/// Pads `x` with per-axis `(begin, end)` amounts.
fn run_pad(
    ctx: &mut EvalCtx,
    x: &TensorView,
    mode: PadMode,
    pads: &[(i64, i64)],
    fill: &Tensor,
) -> Result<Tensor> {
    let maps = x
        .shape()
        .iter()
        .zip(pads)
        .map(|(&d, &(b, e))| axis_map(mode, d, b, e))
        .collect::<Result<Vec<_>>>()?;
    let shape: Vec<usize> = maps.iter().map(|m| m.len()).collect();
    checked_numel(&shape)?;
    let mut out = ctx.alloc(x.dtype(), &shape)?;
    if !out.is_empty() {
        if fill.dtype() != x.dtype() {
            bail!(
                "Pad: constant value is {}, data is {}",
                fill.dtype(),
                x.dtype()
            );
        }
        dispatch_data!(x.dtype(), T => pad_into::<T>(ctx, x, &maps, fill, &mut out)?);
    }
    Ok(out)
}

impl Op for Pad {
    fn name(&self) -> &'static str {
        "Pad"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let Some(s) = inputs.first().and_then(|f| f.shape.as_ref()) else {
            return Ok(vec![Fact::dtype_only(dtype)]);
        };
        let shape = match (
            ints_param_fact(&self.pads, inputs, 1),
            ints_param_fact(&self.axes, inputs, 3),
        ) {
            (Some(Some(p)), Some(axes)) => {
                let pa = per_axis(s.rank(), &p, axes.as_deref())?;
                SymbolicShape(
                    s.0.iter()
                        .zip(&pa)
                        .map(|(d, &(b, e))| match d {
                            _ if b == 0 && e == 0 => d.clone(),
                            Dim::Known(v) if *v as i64 + b + e >= 0 => {
                                Dim::Known((*v as i64 + b + e) as usize)
                            }
                            _ => Dim::Unknown,
                        })
                        .collect(),
                )
            }
            _ => SymbolicShape(vec![Dim::Unknown; s.rank()]),
        };
        Ok(vec![fact(dtype, shape)])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Pad")?;
        let Some(pads) = ints_param(&self.pads, inputs, 1, "Pad pads")? else {
            bail!("Pad: pads are missing")
        };
        let axes = ints_param(&self.axes, inputs, 3, "Pad axes")?;
        let pa = per_axis(x.shape().len(), &pads, axes.as_deref())?;
        let fill = match (self.value, inputs.get(2).and_then(|v| v.as_ref())) {
            (Some(v), _) => scalar_of(x.dtype(), v)?,
            (None, Some(t)) if t.len() == 1 => t.to_owned(),
            (None, Some(t)) if t.is_empty() => scalar_of(x.dtype(), 0.0)?,
            (None, Some(t)) => bail!(
                "Pad: constant_value must have one element, got shape {:?}",
                t.shape()
            ),
            (None, None) => scalar_of(x.dtype(), 0.0)?,
        };
        Ok(vec![run_pad(ctx, x, self.mode, &pa, &fill)?])
    }
    crate::op_as_any!();
}

// ---------------------------------------------------------------- CenterCropPad

/// `CenterCropPad`: crops or zero-pads the listed axes (all by default)
/// symmetrically to the sizes in input 1 (the extra element goes to the end).
#[derive(Debug, Clone, Default)]
pub struct CenterCropPad {
    pub axes: Option<Vec<i64>>,
}

impl CenterCropPad {
    fn axes(&self, rank: usize, n: usize) -> Result<Vec<usize>> {
        let axes: Vec<usize> = match &self.axes {
            Some(a) => a
                .iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).collect(),
        };
        if axes.len() != n {
            bail!("CenterCropPad: {n} target sizes for {} axes", axes.len());
        }
        Ok(axes)
    }
}

impl Op for CenterCropPad {
    fn name(&self) -> &'static str {
        "CenterCropPad"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let Some(s) = inputs.first().and_then(|f| f.shape.as_ref()) else {
            return Ok(vec![Fact::dtype_only(dtype)]);
        };
        let mut dims = s.0.clone();
        match super::konst_ints(inputs, 1) {
            Some(sizes) => {
                for (a, &v) in self.axes(s.rank(), sizes.len())?.iter().zip(&sizes) {
                    dims[*a] = if v >= 0 {
                        Dim::Known(v as usize)
                    } else {
                        Dim::Unknown
                    };
                }
            }
            None => {
                let n = self.axes.as_ref().map_or(s.rank(), |a| a.len());
                for a in self.axes(s.rank(), n)? {
                    dims[a] = Dim::Unknown;
                }
            }
        }
        Ok(vec![fact(dtype, SymbolicShape(dims))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "CenterCropPad")?;
        let sizes = super::ints_of(input(inputs, 1, "CenterCropPad")?, "CenterCropPad shape")?;
        let rank = x.shape().len();
        let mut pads = vec![(0i64, 0i64); rank];
        for (&a, &t) in self.axes(rank, sizes.len())?.iter().zip(&sizes) {
            if t < 0 {
                bail!("CenterCropPad: negative target size {t}");
            }
            let diff = t - x.shape()[a] as i64;
            pads[a] = if diff >= 0 {
                (diff / 2, diff - diff / 2)
            } else {
                (-((-diff) / 2), -((-diff) - (-diff) / 2))
            };
        }
        let zero = scalar_of(x.dtype(), 0.0)?;
        Ok(vec![run_pad(ctx, x, PadMode::Constant, &pads, &zero)?])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::BufferPool;
    use crate::parallel::Serial;

    fn pad1(mode: PadMode, b: i64, e: i64) -> Vec<i32> {
        let d = [1i32, 2, 3];
        let x = TensorView::from_slice(&[3], &d).unwrap();
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let op = Pad {
            mode,
            pads: Some(vec![b, e]),
            value: Some(9.0),
            axes: None,
        };
        op.eval(&mut ctx, &[Some(x)]).unwrap()[0]
            .to_vec::<i32>()
            .unwrap()
    }

    #[test]
    fn pad_modes_match_numpy() {
        assert_eq!(pad1(PadMode::Constant, 2, 1), vec![9, 9, 1, 2, 3, 9]);
        assert_eq!(pad1(PadMode::Edge, 2, 1), vec![1, 1, 1, 2, 3, 3]);
        assert_eq!(pad1(PadMode::Reflect, 2, 2), vec![3, 2, 1, 2, 3, 2, 1]);
        assert_eq!(pad1(PadMode::Reflect, 5, 0), vec![2, 1, 2, 3, 2, 1, 2, 3]);
        assert_eq!(pad1(PadMode::Wrap, 2, 4), vec![2, 3, 1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(pad1(PadMode::Constant, -1, 1), vec![2, 3, 9]);
    }

    #[test]
    fn center_crop_pad_2d() {
        let d: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let x = TensorView::from_slice(&[3, 4], &d).unwrap();
        let s = [5i64, 1];
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = CenterCropPad { axes: None }
            .eval(
                &mut ctx,
                &[Some(x), Some(TensorView::from_slice(&[2], &s).unwrap())],
            )
            .unwrap();
        assert_eq!(out[0].shape(), &[5, 1]);
        // rows: pad 1 before, 1 after; cols: crop 4 -> 1 starting at 1.
        assert_eq!(
            out[0].as_slice::<f32>().unwrap(),
            &[0.0, 1.0, 5.0, 9.0, 0.0]
        );
    }
}
