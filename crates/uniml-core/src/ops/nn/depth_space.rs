//! `DepthToSpace` (DCR / CRD) and `SpaceToDepth`: pure data movement on
//! `[N, C, H, W]`, expressed as a 6-D transpose. Every non-string dtype.

use uniml_data::{bail, ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use crate::dispatch_pod;
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthSpaceKind {
    DepthToSpace,
    SpaceToDepth,
}

#[derive(Debug, Clone)]
pub struct DepthSpace {
    pub kind: DepthSpaceKind,
    pub blocksize: usize,
    /// CRD (column-row-depth) instead of DCR ordering.
    pub crd: bool,
}

impl DepthSpace {
    /// Output shape and the 6-D (input shape, permutation) of the rearrangement.
    fn plan(&self, s: &[usize]) -> Result<(Vec<usize>, [usize; 6], [usize; 6])> {
        ensure!(
            s.len() == 4,
            "{} input must be 4-D [N, C, H, W], got {s:?}",
            self.name()
        );
        let b = self.blocksize;
        ensure!(b >= 1, "blocksize must be >= 1");
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        Ok(match self.kind {
            DepthSpaceKind::DepthToSpace => {
                ensure!(
                    c % (b * b) == 0,
                    "DepthToSpace: {c} channels not divisible by blocksize² = {}",
                    b * b
                );
                let co = c / (b * b);
                let out = vec![n, co, h * b, w * b];
                if self.crd {
                    (out, [n, co, b, b, h, w], [0, 1, 4, 2, 5, 3])
                } else {
                    (out, [n, b, b, co, h, w], [0, 3, 4, 1, 5, 2])
                }
            }
            DepthSpaceKind::SpaceToDepth => {
                ensure!(
                    h % b == 0 && w % b == 0,
                    "SpaceToDepth: spatial dims {h}x{w} not divisible by blocksize {b}"
                );
                let out = vec![n, c * b * b, h / b, w / b];
                let shape6 = [n, c, h / b, b, w / b, b];
                if self.crd {
                    (out, shape6, [0, 1, 3, 5, 2, 4])
                } else {
                    (out, shape6, [0, 3, 5, 1, 2, 4])
                }
            }
        })
    }
}

fn transpose6<T: Copy>(x: &[T], shape: [usize; 6], perm: [usize; 6], out: &mut [T]) {
    let mut st = [0usize; 6];
    let mut acc = 1;
    for d in (0..6).rev() {
        st[d] = acc;
        acc *= shape[d];
    }
    let os: [usize; 6] = perm.map(|p| shape[p]);
    let ost: [usize; 6] = perm.map(|p| st[p]);
    let mut o = 0;
    for i0 in 0..os[0] {
        for i1 in 0..os[1] {
            for i2 in 0..os[2] {
                for i3 in 0..os[3] {
                    for i4 in 0..os[4] {
                        let base =
                            i0 * ost[0] + i1 * ost[1] + i2 * ost[2] + i3 * ost[3] + i4 * ost[4];
                        for i5 in 0..os[5] {
                            out[o] = x[base + i5 * ost[5]];
                            o += 1;
                        }
                    }
                }
            }
        }
    }
}

impl Op for DepthSpace {
    fn name(&self) -> &'static str {
        match self.kind {
            DepthSpaceKind::DepthToSpace => "DepthToSpace",
            DepthSpaceKind::SpaceToDepth => "SpaceToDepth",
        }
    }
    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let shape = match &x.shape {
            Some(s) => {
                ensure!(s.rank() == 4, "{} input must be 4-D, got {s}", self.name());
                let b = self.blocksize;
                let f = |d: &Dim, mul: bool| match d.known() {
                    Some(v) if mul => Dim::Known(v * b),
                    Some(v) if b > 0 && v % b == 0 => Dim::Known(v / b),
                    _ => Dim::Unknown,
                };
                let d2s = self.kind == DepthSpaceKind::DepthToSpace;
                let c = match s.0[1].known() {
                    Some(v) if d2s && b > 0 => Dim::Known(v / (b * b)),
                    Some(v) if !d2s => Dim::Known(v * b * b),
                    _ => Dim::Unknown,
                };
                Some(SymbolicShape(vec![
                    s.0[0].clone(),
                    c,
                    f(&s.0[2], d2s),
                    f(&s.0[3], d2s),
                ]))
            }
            None => None,
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
        let (out_shape, shape6, perm) = self.plan(x.shape())?;
        if x.dtype() == DType::String {
            bail!("{} does not support string tensors", self.name());
        }
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        dispatch_pod!(x.dtype(), T => {
            let xd: &[T] = bytemuck::try_cast_slice(x.as_bytes()).map_err(|e| uniml_data::Error::Other(e.to_string()))?;
            let od: &mut [T] = bytemuck::try_cast_slice_mut(out.as_bytes_mut()).map_err(|e| uniml_data::Error::Other(e.to_string()))?;
            transpose6(xd, shape6, perm, od);
        }, _ => bail!("{} does not support {}", self.name(), x.dtype()));
        Ok(vec![out])
    }
    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, t};

    #[test]
    fn round_trip_and_layouts() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let xt = t(&[1, 4, 2, 2], &x);
        for crd in [false, true] {
            let d2s = DepthSpace {
                kind: DepthSpaceKind::DepthToSpace,
                blocksize: 2,
                crd,
            };
            let s2d = DepthSpace {
                kind: DepthSpaceKind::SpaceToDepth,
                blocksize: 2,
                crd,
            };
            let y = run(&d2s, &[Some(&xt)]).unwrap();
            assert_eq!(y[0].shape(), &[1, 1, 4, 4]);
            let back = run(&s2d, &[Some(&y[0])]).unwrap();
            assert_eq!(back[0].as_slice::<f32>().unwrap(), &x[..]);
        }
        // DCR: output (h*2+i, w*2+j) = input channel i*2+j at (h, w).
        let y = run(
            &DepthSpace {
                kind: DepthSpaceKind::DepthToSpace,
                blocksize: 2,
                crd: false,
            },
            &[Some(&xt)],
        )
        .unwrap();
        assert_eq!(&y[0].as_slice::<f32>().unwrap()[..4], &[0., 4., 1., 5.]);
        assert!(run(
            &DepthSpace {
                kind: DepthSpaceKind::DepthToSpace,
                blocksize: 3,
                crd: false
            },
            &[Some(&xt)]
        )
        .is_err());
    }
}
