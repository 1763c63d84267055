//! `ConvInteger`: (u)int8 convolution with zero points and an exact int32
//! result (direct N-D loop in i64; padding contributes zero after the
//! zero-point shift, as in the reference).

use uniml_data::{ensure, DType, Result, Tensor, TensorView};

use super::conv::Conv;
use super::matmul::{read_ints, store_ints};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone, Default)]
pub struct ConvInteger {
    /// Geometry and group (its activation/pack fields are unused).
    pub conv: Conv,
}

impl Op for ConvInteger {
    fn name(&self) -> &'static str {
        "ConvInteger"
    }
    fn output_facts(&self, inputs: &[&Fact], n: usize) -> Result<Vec<Fact>> {
        let mut f = self.conv.output_facts(inputs, n)?;
        for x in f.iter_mut() {
            x.dtype = Some(DType::I32);
        }
        Ok(f)
    }
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "ConvInteger")?;
        let w = input(inputs, 1, "ConvInteger")?;
        for t in [x, w] {
            ensure!(
                matches!(t.dtype(), DType::I8 | DType::U8),
                "ConvInteger needs int8/uint8 inputs, got {}",
                t.dtype()
            );
        }
        let (s, out_shape) = super::conv::conv_shape(&self.conv, x.shape(), w.shape())?;
        let g = &s.geo;
        let xzp = match inputs.get(2).and_then(|t| t.as_ref()) {
            Some(t) => {
                let v = read_ints(t)?;
                ensure!(v.len() == 1, "ConvInteger x_zero_point must be a scalar");
                v[0]
            }
            None => 0,
        };
        let wzp = match inputs.get(3).and_then(|t| t.as_ref()) {
            Some(t) => {
                let v = read_ints(t)?;
                ensure!(
                    v.len() == 1 || v.len() == s.m,
                    "ConvInteger w_zero_point must have 1 or {} values",
                    s.m
                );
                v
            }
            None => vec![0],
        };
        let xv: Vec<i64> = read_ints(x)?.into_iter().map(|v| v - xzp).collect();
        let wv = read_ints(w)?;
        let nd = g.input.len();
        let isz: usize = g.input.iter().product();
        let osz: usize = g.output.iter().product();
        let ksz: usize = g.kernel.iter().product();
        let (cg, mg) = (s.c / s.group, s.m / s.group);
        let mut y = vec![0i64; s.n * s.m * osz];
        let (mut oi, mut ki) = (vec![0usize; nd], vec![0usize; nd]);
        for b in 0..s.n {
            for co in 0..s.m {
                let grp = co / mg;
                let zp = if wzp.len() == 1 { wzp[0] } else { wzp[co] };
                for o in 0..osz {
                    let mut r = o;
                    for d in (0..nd).rev() {
                        oi[d] = r % g.output[d];
                        r /= g.output[d];
                    }
                    let mut acc = 0i64;
                    for k in 0..ksz {
                        let mut r = k;
                        for d in (0..nd).rev() {
                            ki[d] = r % g.kernel[d];
                            r /= g.kernel[d];
                        }
                        let mut off = 0usize;
                        let mut inside = true;
                        for d in 0..nd {
                            let p = (oi[d] * g.strides[d] + ki[d] * g.dilations[d]) as i64
                                - g.pad_begin[d] as i64;
                            if p < 0 || p >= g.input[d] as i64 {
                                inside = false;
                                break;
                            }
                            off = off * g.input[d] + p as usize;
                        }
                        if !inside {
                            continue;
                        }
                        for ci in 0..cg {
                            let xval = xv[(b * s.c + grp * cg + ci) * isz + off];
                            let wval = wv[(co * cg + ci) * ksz + k] - zp;
                            acc += xval * wval;
                        }
                    }
                    y[(b * s.m + co) * osz + o] = acc;
                }
            }
        }
        let mut out = ctx.alloc(DType::I32, &out_shape)?;
        store_ints(&y, &mut out)?;
        Ok(vec![out])
    }
    crate::op_as_any!();
}
