//! `Col2Im` (opset 18): rearranges column blocks `[N, C*prod(block), L]`
//! back into an image `[N, C, *image_shape]`, summing overlapping values.

use uniml_data::{bail, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{checked_numel, fact, ints_of, numel};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::ops::util::{bf16, f16, strides};

#[derive(Debug, Clone, Default)]
pub struct Col2Im {
    pub dilations: Option<Vec<i64>>,
    pub pads: Option<Vec<i64>>,
    pub strides: Option<Vec<i64>>,
}

/// Validated geometry: image dims, block dims, dilations, pad begins, strides, column grid dims.
struct Geometry {
    image: Vec<usize>,
    block: Vec<usize>,
    dil: Vec<usize>,
    pad: Vec<usize>,
    stride: Vec<usize>,
    cols: Vec<usize>,
}

impl Col2Im {
    fn geometry(&self, image: &[i64], block: &[i64]) -> Result<Geometry> {
        let nd = image.len();
        if block.len() != nd || nd == 0 {
            bail!("Col2Im: image_shape {image:?} and block_shape {block:?} must have the same non-zero length");
        }
        let pos = |v: &[i64], what: &str, min: i64| -> Result<Vec<usize>> {
            if v.iter().any(|&x| x < min) {
                bail!("Col2Im: {what} {v:?} must be >= {min}");
            }
            Ok(v.iter().map(|&x| x as usize).collect())
        };
        let dil = pos(
            self.dilations.as_deref().unwrap_or(&vec![1; nd]),
            "dilations",
            1,
        )?;
        let stride = pos(
            self.strides.as_deref().unwrap_or(&vec![1; nd]),
            "strides",
            1,
        )?;
        let pads = pos(self.pads.as_deref().unwrap_or(&vec![0; 2 * nd]), "pads", 0)?;
        if dil.len() != nd || stride.len() != nd || pads.len() != 2 * nd {
            bail!("Col2Im: dilations/strides/pads do not match {nd} spatial dims");
        }
        let image = pos(image, "image_shape", 0)?;
        let block = pos(block, "block_shape", 1)?;
        let mut cols = Vec::with_capacity(nd);
        for i in 0..nd {
            let span = dil[i] * (block[i] - 1) + 1;
            let total = image[i] + pads[i] + pads[nd + i];
            if total < span {
                bail!("Col2Im: the block does not fit the padded image on axis {i}");
            }
            cols.push((total - span) / stride[i] + 1);
        }
        Ok(Geometry {
            image,
            block,
            dil,
            pad: pads[..nd].to_vec(),
            stride,
            cols,
        })
    }
}

/// Sums columns into `out` (`[N*C, prod(image)]`) from `src` (`[N*C, prod(block), L]`).
fn col2im<T: Copy + std::ops::AddAssign>(src: &[T], g: &Geometry, planes: usize, out: &mut [T]) {
    let nd = g.image.len();
    let (kn, ln, im) = (numel(&g.block), numel(&g.cols), numel(&g.image));
    let ist = strides(&g.image);
    let mut kc = vec![0usize; nd];
    let mut cc = vec![0usize; nd];
    for p in 0..planes {
        let dst = &mut out[p * im..(p + 1) * im];
        for k in 0..kn {
            let mut r = k;
            for a in (0..nd).rev() {
                kc[a] = r % g.block[a];
                r /= g.block[a];
            }
            let row = &src[(p * kn + k) * ln..(p * kn + k + 1) * ln];
            for (l, &v) in row.iter().enumerate() {
                let mut r = l;
                for a in (0..nd).rev() {
                    cc[a] = r % g.cols[a];
                    r /= g.cols[a];
                }
                let mut off = 0usize;
                let mut inside = true;
                for a in 0..nd {
                    let pos = (cc[a] * g.stride[a] + kc[a] * g.dil[a]) as i64 - g.pad[a] as i64;
                    if pos < 0 || pos >= g.image[a] as i64 {
                        inside = false;
                        break;
                    }
                    off += pos as usize * ist[a];
                }
                if inside {
                    dst[off] += v;
                }
            }
        }
    }
}

impl Op for Col2Im {
    fn name(&self) -> &'static str {
        "Col2Im"
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dtype = inputs.first().and_then(|f| f.dtype);
        let (Some(s), Some(image)) = (
            inputs.first().and_then(|f| f.shape.as_ref()),
            super::konst_ints(inputs, 1),
        ) else {
            return Ok(vec![Fact::dtype_only(dtype)]);
        };
        let n = s.0.first().cloned().unwrap_or(Dim::Unknown);
        let c = match (
            s.0.get(1).and_then(Dim::known),
            super::konst_ints(inputs, 2),
        ) {
            (Some(cb), Some(b)) if b.iter().all(|&x| x > 0) => {
                let bl: i64 = b.iter().product();
                Dim::Known(cb / bl as usize)
            }
            _ => Dim::Unknown,
        };
        let mut dims = vec![n, c];
        dims.extend(image.iter().map(|&d| {
            if d >= 0 {
                Dim::Known(d as usize)
            } else {
                Dim::Unknown
            }
        }));
        Ok(vec![fact(dtype, SymbolicShape(dims))])
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "Col2Im")?;
        let image = ints_of(input(inputs, 1, "Col2Im")?, "Col2Im image_shape")?;
        let block = ints_of(input(inputs, 2, "Col2Im")?, "Col2Im block_shape")?;
        let g = self.geometry(&image, &block)?;
        let &[n, cb, l] = x.shape() else {
            bail!(
                "Col2Im: the input must be 3-D [N, C*prod(block), L], got {:?}",
                x.shape()
            )
        };
        let (kn, ln) = (numel(&g.block), numel(&g.cols));
        if cb % kn != 0 || l != ln {
            bail!(
                "Col2Im: input {:?} does not match block {:?} and {ln} column positions",
                x.shape(),
                g.block
            );
        }
        let c = cb / kn;
        let mut shape = vec![n, c];
        shape.extend_from_slice(&g.image);
        checked_numel(&shape)?;
        let mut out = ctx.alloc(x.dtype(), &shape)?;
        let planes = n * c;
        match x.dtype() {
            DType::F32 => col2im(x.as_slice::<f32>()?, &g, planes, out.as_slice_mut::<f32>()?),
            DType::F64 => col2im(x.as_slice::<f64>()?, &g, planes, out.as_slice_mut::<f64>()?),
            DType::F16 | DType::BF16 => {
                let src: Vec<f32> = x.to_f64_vec()?.into_iter().map(|v| v as f32).collect();
                let mut acc = vec![0f32; out.len()];
                col2im(&src, &g, planes, &mut acc);
                if x.dtype() == DType::F16 {
                    for (o, v) in out.as_slice_mut::<f16>()?.iter_mut().zip(acc) {
                        *o = f16::from_f32(v);
                    }
                } else {
                    for (o, v) in out.as_slice_mut::<bf16>()?.iter_mut().zip(acc) {
                        *o = bf16::from_f32(v);
                    }
                }
            }
            other => bail!("Col2Im: {other} is not supported (float types only)"),
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

    #[test]
    fn col2im_overlap_sums() {
        // 1-D image of 4, block 2, stride 1: 3 columns; each pixel sums overlapping entries.
        let d = [1.0f32, 2.0, 3.0, 10.0, 20.0, 30.0];
        let img = [4i64];
        let blk = [2i64];
        let mut pool = BufferPool::new(u64::MAX);
        let mut ctx = EvalCtx::new(&Serial, &mut pool);
        let out = Col2Im::default()
            .eval(
                &mut ctx,
                &[
                    Some(TensorView::from_slice(&[1, 2, 3], &d).unwrap()),
                    Some(TensorView::from_slice(&[1], &img).unwrap()),
                    Some(TensorView::from_slice(&[1], &blk).unwrap()),
                ],
            )
            .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 4]);
        assert_eq!(out[0].as_slice::<f32>().unwrap(), &[1.0, 12.0, 23.0, 30.0]);
    }
}
