//! `QuantizeLinear`: `y = saturate(rint(x / scale) + zero_point)`, per tensor,
//! per axis or blocked, to uint8/int8/uint16/int16/uint4/int4/uint2/int2
//! (round half to even); to float8/float4: `y = cast(x / scale)` (round to
//! nearest even, saturating unless `saturate` is off, see `uniml_data::lowp`;
//! their zero point must be 0).

use std::borrow::Cow;

use uniml_data::lowp::{self, LowFloat, RoundMode};
use uniml_data::{bail, ensure, DType, Element, Result, Tensor, TensorView};

use super::{
    check_float_zero_point, check_zero_point_shape, read_scales, read_zero_points, round_to,
    saturate, QuantLayout,
};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

/// Elements per parallel task.
const CHUNK: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeLinear {
    /// Quantization axis for per-axis and blocked scales (ONNX default 1).
    pub axis: i64,
    /// Block size of blocked quantization; 0 = not blocked.
    pub block_size: usize,
    /// Output dtype when there is no zero point (`output_dtype`); uint8 when `None`.
    pub output_dtype: Option<DType>,
    /// Precision of `x / scale` (f32, f16 or bf16); `None` = the scale's dtype.
    pub precision: Option<DType>,
    /// float8 outputs: out-of-range values become ±max (else inf/NaN).
    pub saturate: bool,
}

impl Default for QuantizeLinear {
    fn default() -> Self {
        QuantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: None,
            precision: None,
            saturate: true,
        }
    }
}

impl QuantizeLinear {
    fn out_dtype(&self, zp: Option<DType>) -> Result<DType> {
        let dt = match (zp, self.output_dtype) {
            (Some(z), Some(o)) if z != o => {
                bail!("output_dtype {o} differs from the zero point's dtype {z}")
            }
            (Some(z), _) => z,
            (None, Some(o)) => o,
            (None, None) => DType::U8,
        };
        ensure!(
            matches!(
                dt,
                DType::U8
                    | DType::I8
                    | DType::U16
                    | DType::I16
                    | DType::U4
                    | DType::I4
                    | DType::U2
                    | DType::I2
                    | DType::F8E4M3FN
                    | DType::F8E4M3FNUZ
                    | DType::F8E5M2
                    | DType::F8E5M2FNUZ
                    | DType::F4E2M1
            ),
            "QuantizeLinear output must be a (u)int8/16/4/2, float8 or float4 type, got {dt}"
        );
        Ok(dt)
    }
}

impl Op for QuantizeLinear {
    fn name(&self) -> &'static str {
        "QuantizeLinear"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let zp = inputs.get(2).and_then(|f| f.dtype);
        Ok(vec![Fact {
            dtype: Some(self.out_dtype(zp)?),
            shape: x.shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "QuantizeLinear")?;
        let s = input(inputs, 1, "QuantizeLinear")?;
        let zp = inputs.get(2).and_then(|z| z.as_ref());
        let out_dt = self.out_dtype(zp.map(|z| z.dtype()))?;
        let layout = QuantLayout::resolve(x.shape(), s.shape(), self.axis, self.block_size)?;
        let prec = self.precision.unwrap_or(s.dtype());
        ensure!(
            matches!(prec, DType::F32 | DType::F16 | DType::BF16 | DType::I32),
            "QuantizeLinear precision must be float, float16 or bfloat16, got {prec}"
        );
        let scale: Vec<f32> = read_scales(s, "y_scale", true)?
            .into_iter()
            .map(|v| round_to(prec, v))
            .collect();
        let zps: Vec<f32> = match zp {
            Some(z) if out_dt.is_low_precision_float() => {
                check_zero_point_shape(s.shape(), z.shape())?;
                check_float_zero_point(z, "y_zero_point")?;
                vec![0.0; scale.len()]
            }
            Some(z) => {
                check_zero_point_shape(s.shape(), z.shape())?;
                read_zero_points(z, "y_zero_point")?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect()
            }
            None => vec![0.0; scale.len()],
        };
        ensure!(
            scale.len() == layout.params() && zps.len() == scale.len(),
            "y_scale has {} values, expected {}",
            scale.len(),
            layout.params()
        );
        let xd: Cow<[f32]> = match x.dtype() {
            DType::F32 => Cow::Borrowed(x.as_slice::<f32>()?),
            DType::F16 | DType::BF16 | DType::I32 => {
                Cow::Owned(x.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
            }
            other => {
                bail!("QuantizeLinear input must be float, float16, bfloat16 or int32, got {other}")
            }
        };
        let mut out = ctx.alloc(out_dt, x.shape())?;
        let k = Kernel {
            layout: &layout,
            x: &xd,
            scale: &scale,
            zp: &zps,
            prec,
        };
        fn float<Y: LowFloat>(sat: bool) -> impl Fn(f32, f32) -> Y + Sync {
            move |q, z| Y::from_f64((q + z) as f64, sat, RoundMode::Up)
        }
        let sat = self.saturate;
        match out_dt {
            DType::U8 => k.run(ctx, out.as_slice_mut::<u8>()?, &saturate::<u8>),
            DType::I8 => k.run(ctx, out.as_slice_mut::<i8>()?, &saturate::<i8>),
            DType::U16 => k.run(ctx, out.as_slice_mut::<u16>()?, &saturate::<u16>),
            DType::I16 => k.run(ctx, out.as_slice_mut::<i16>()?, &saturate::<i16>),
            DType::U4 => k.run(ctx, out.as_slice_mut()?, &saturate::<lowp::U4>),
            DType::I4 => k.run(ctx, out.as_slice_mut()?, &saturate::<lowp::I4>),
            DType::U2 => k.run(ctx, out.as_slice_mut()?, &saturate::<lowp::U2>),
            DType::I2 => k.run(ctx, out.as_slice_mut()?, &saturate::<lowp::I2>),
            DType::F8E4M3FN => k.run(ctx, out.as_slice_mut()?, &float::<lowp::F8E4M3FN>(sat)),
            DType::F8E4M3FNUZ => k.run(ctx, out.as_slice_mut()?, &float::<lowp::F8E4M3FNUZ>(sat)),
            DType::F8E5M2 => k.run(ctx, out.as_slice_mut()?, &float::<lowp::F8E5M2>(sat)),
            DType::F8E5M2FNUZ => k.run(ctx, out.as_slice_mut()?, &float::<lowp::F8E5M2FNUZ>(sat)),
            DType::F4E2M1 => k.run(ctx, out.as_slice_mut()?, &float::<lowp::F4E2M1>(sat)),
            other => bail!("QuantizeLinear cannot produce {other}"),
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

struct Kernel<'a> {
    layout: &'a QuantLayout,
    x: &'a [f32],
    scale: &'a [f32],
    zp: &'a [f32],
    prec: DType,
}

impl Kernel<'_> {
    /// `fin(x / scale, zero_point)` gives each output element.
    fn run<Y: Element, F: Fn(f32, f32) -> Y + Sync>(&self, ctx: &EvalCtx, y: &mut [Y], fin: &F) {
        par_chunks_mut(ctx.par, y, CHUNK, &|ci, chunk| {
            let start = ci * CHUNK;
            self.layout
                .for_runs(start, chunk.len(), |off, len, p, step| {
                    let xs = &self.x[start + off..start + off + len];
                    let ys = &mut chunk[off..off + len];
                    self.run_slice(xs, ys, p, step, fin);
                });
        });
    }

    #[inline]
    fn run_slice<Y: Element, F: Fn(f32, f32) -> Y>(
        &self,
        xs: &[f32],
        ys: &mut [Y],
        p: usize,
        step: usize,
        saturate: &F,
    ) {
        let (scale, zp) = (&self.scale[p..], &self.zp[p..]);
        match (self.prec, step) {
            (DType::F32 | DType::I32, 0) => {
                let (s, z) = (scale[0], zp[0]);
                for (o, &v) in ys.iter_mut().zip(xs) {
                    *o = saturate(v / s, z);
                }
            }
            (DType::F32 | DType::I32, 1) => {
                for (((o, &v), &s), &z) in ys.iter_mut().zip(xs).zip(scale).zip(zp) {
                    *o = saturate(v / s, z);
                }
            }
            (DType::F32 | DType::I32, _) => {
                for (j, (o, &v)) in ys.iter_mut().zip(xs).enumerate() {
                    *o = saturate(v / scale[j * step], zp[j * step]);
                }
            }
            (prec, _) => {
                for (j, (o, &v)) in ys.iter_mut().zip(xs).enumerate() {
                    let q = round_to(prec, round_to(prec, v) / scale[j * step]);
                    *o = saturate(q, zp[j * step]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, run_with, FakePar};
    use uniml_data::f16;

    fn q(op: &QuantizeLinear, x: &Tensor, s: &Tensor, z: Option<&Tensor>) -> Result<Tensor> {
        Ok(run(op, &[Some(x), Some(s), z])?.remove(0))
    }

    #[test]
    fn per_tensor_rounds_half_even_and_saturates() {
        let x = Tensor::from_slice(
            &[8],
            &[0.0f32, 2.0, 3.0, 1000.0, -254.0, -1000.0, 5.0, -5.0],
        )
        .unwrap();
        let s = Tensor::scalar(2.0f32);
        let z = Tensor::scalar(128u8);
        let y = q(&QuantizeLinear::default(), &x, &s, Some(&z)).unwrap();
        assert_eq!(
            y.as_slice::<u8>().unwrap(),
            &[128, 129, 130, 255, 1, 0, 130, 126]
        );
        // No zero point: uint8 by default, int16 through output_dtype.
        let y = q(&QuantizeLinear::default(), &x, &s, None).unwrap();
        assert_eq!(y.as_slice::<u8>().unwrap(), &[0, 1, 2, 255, 0, 0, 2, 0]);
        let op = QuantizeLinear {
            output_dtype: Some(DType::I16),
            ..Default::default()
        };
        let y = q(&op, &x, &s, None).unwrap();
        assert_eq!(
            y.as_slice::<i16>().unwrap(),
            &[0, 1, 2, 500, -127, -500, 2, -2]
        );
        let z = Tensor::scalar(-3i8);
        let y = q(&QuantizeLinear::default(), &x, &s, Some(&z)).unwrap();
        assert_eq!(
            y.as_slice::<i8>().unwrap(),
            &[-3, -2, -1, 127, -128, -128, -1, -5]
        );
    }

    #[test]
    fn per_axis_and_blocked_match_reference() {
        // Naive reference over [2, 3, 4] with per-axis (axis 1) and blocked (axis 2, block 3) scales.
        let xs = [2usize, 3, 4];
        let x: Vec<f32> = (0..24).map(|i| (i as f32 - 11.3) * 3.7).collect();
        let xt = Tensor::from_slice(&xs, &x).unwrap();
        let sa = [0.5f32, 1.5, 3.0];
        let za = [10u8, 128, 250];
        let op = QuantizeLinear {
            axis: 1,
            ..Default::default()
        };
        let y = q(
            &op,
            &xt,
            &Tensor::from_slice(&[3], &sa).unwrap(),
            Some(&Tensor::from_slice(&[3], &za).unwrap()),
        )
        .unwrap();
        let want: Vec<u8> = (0..24)
            .map(|i| {
                let c = (i / 4) % 3;
                ((x[i] / sa[c]).round_ties_even() + za[c] as f32).clamp(0.0, 255.0) as u8
            })
            .collect();
        assert_eq!(y.as_slice::<u8>().unwrap(), &want[..]);
        let y2 = run_with(
            &FakePar,
            &op,
            &[
                Some(&xt),
                Some(&Tensor::from_slice(&[3], &sa).unwrap()),
                Some(&Tensor::from_slice(&[3], &za).unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(y2[0].as_slice::<u8>().unwrap(), &want[..]);

        let sb: Vec<f32> = (0..12).map(|i| 0.25 + i as f32 * 0.5).collect(); // [2, 3, 2]
        let zb: Vec<i8> = (0..12).map(|i| i as i8 - 6).collect();
        let op = QuantizeLinear {
            axis: -1,
            block_size: 3,
            ..Default::default()
        };
        let y = q(
            &op,
            &xt,
            &Tensor::from_slice(&[2, 3, 2], &sb).unwrap(),
            Some(&Tensor::from_slice(&[2, 3, 2], &zb).unwrap()),
        )
        .unwrap();
        let want: Vec<i8> = (0..24)
            .map(|i| {
                let (row, a) = (i / 4, i % 4);
                let p = row * 2 + a / 3;
                ((x[i] / sb[p]).round_ties_even() + zb[p] as f32).clamp(-128.0, 127.0) as i8
            })
            .collect();
        assert_eq!(y.as_slice::<i8>().unwrap(), &want[..]);
        // Blocked on axis 0 of a [5, 2] tensor with block 2: 3 blocks, last one short.
        let x: Vec<f32> = (0..10).map(|i| i as f32 * 10.0).collect();
        let s: Vec<f32> = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0];
        let op = QuantizeLinear {
            axis: 0,
            block_size: 2,
            ..Default::default()
        };
        let y = q(
            &op,
            &Tensor::from_slice(&[5, 2], &x).unwrap(),
            &Tensor::from_slice(&[3, 2], &s).unwrap(),
            None,
        )
        .unwrap();
        let want: Vec<u8> = (0..10)
            .map(|i| {
                ((x[i] / s[(i / 2 / 2) * 2 + i % 2]).round_ties_even()).clamp(0.0, 255.0) as u8
            })
            .collect();
        assert_eq!(y.as_slice::<u8>().unwrap(), &want[..]);
    }

    #[test]
    fn per_axis_innermost() {
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 7.3 - 40.0).collect();
        let s = [0.5f32, 1.0, 2.0, 4.0];
        let z = [-3i8, 0, 5, 100];
        let op = QuantizeLinear {
            axis: -1,
            ..Default::default()
        };
        let y = q(
            &op,
            &Tensor::from_slice(&[3, 4], &x).unwrap(),
            &Tensor::from_slice(&[4], &s).unwrap(),
            Some(&Tensor::from_slice(&[4], &z).unwrap()),
        )
        .unwrap();
        let want: Vec<i8> = (0..12)
            .map(|i| {
                ((x[i] / s[i % 4]).round_ties_even() + z[i % 4] as f32).clamp(-128.0, 127.0) as i8
            })
            .collect();
        assert_eq!(y.as_slice::<i8>().unwrap(), &want[..]);
    }

    #[test]
    fn half_inputs_and_precision() {
        let x = Tensor::from_slice(
            &[3],
            &[
                f16::from_f32(3.0),
                f16::from_f32(-7.0),
                f16::from_f32(1000.0),
            ],
        )
        .unwrap();
        let s = Tensor::scalar(f16::from_f32(2.0));
        let y = q(
            &QuantizeLinear::default(),
            &x,
            &s,
            Some(&Tensor::scalar(0i8)),
        )
        .unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), &[2, -4, 127]);
        // int32 input.
        let x = Tensor::from_slice(&[3], &[5i32, -5, 7]).unwrap();
        let y = q(
            &QuantizeLinear::default(),
            &x,
            &Tensor::scalar(2.0f32),
            Some(&Tensor::scalar(0i8)),
        )
        .unwrap();
        assert_eq!(y.as_slice::<i8>().unwrap(), &[2, -2, 4]);
        // f16 precision: 2049 / 1 rounds to 2048 in f16 before quantizing.
        let x = Tensor::from_slice(&[1], &[2049.0f32]).unwrap();
        let op = QuantizeLinear {
            precision: Some(DType::F16),
            ..Default::default()
        };
        let y = q(
            &op,
            &x,
            &Tensor::scalar(1.0f32),
            Some(&Tensor::scalar(0u16)),
        )
        .unwrap();
        assert_eq!(y.as_slice::<u16>().unwrap(), &[2048]);
    }

    /// The ONNX spec's own cases (test_quantizelinear_int4, _e4m3fn, _e5m2, _float4e2m1).
    #[test]
    fn low_precision_outputs() {
        let x = Tensor::from_slice(&[3, 4], &[0.0f32, 2.5, 4.8, 8.6, -30., -20., 6., 9., 12., 15., 16., 40.]).unwrap();
        let s = Tensor::from_slice(&[3], &[2.0f32, 3.0, 4.0]).unwrap();
        let op = QuantizeLinear { axis: 0, ..Default::default() };
        let z = Tensor::from_slice(&[3], &[uniml_data::lowp::I4(1); 3]).unwrap();
        let y = q(&op, &x, &s, Some(&z)).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![1., 2., 3., 5., -8., -6., 3., 4., 4., 5., 5., 7.]);
        let x = Tensor::from_slice(&[5], &[0.0f32, 1.0, 2.0, 100000.0, 200.0]).unwrap();
        let s = Tensor::scalar(2.0f32);
        let op = QuantizeLinear { output_dtype: Some(DType::F8E4M3FN), ..Default::default() };
        assert_eq!(q(&op, &x, &s, None).unwrap().to_f64_vec().unwrap(), vec![0., 0.5, 1., 448., 96.]);
        let op = QuantizeLinear { output_dtype: Some(DType::F8E5M2), ..Default::default() };
        assert_eq!(q(&op, &x, &s, None).unwrap().to_f64_vec().unwrap(), vec![0., 0.5, 1., 49152., 96.]);
        let op = QuantizeLinear { output_dtype: Some(DType::F8E4M3FN), saturate: false, ..Default::default() };
        assert!(q(&op, &x, &s, None).unwrap().to_f64_vec().unwrap()[3].is_nan());
        let op = QuantizeLinear { output_dtype: Some(DType::F4E2M1), ..Default::default() };
        assert_eq!(q(&op, &x, &s, None).unwrap().to_f64_vec().unwrap(), vec![0., 0.5, 1., 6., 6.]);
        // A non-zero float8 zero point is an error.
        let z = Tensor::from_slice(&[1], &[uniml_data::lowp::F8E4M3FN(0x38)]).unwrap();
        assert!(q(&QuantizeLinear::default(), &x, &s, Some(&z)).is_err());
    }

    #[test]
    fn facts_and_errors() {
        let op = QuantizeLinear {
            output_dtype: Some(DType::I8),
            ..Default::default()
        };
        let xf = Fact::new(DType::F32, uniml_data::SymbolicShape::known(&[2, 3]));
        let f = op.output_facts(&[&xf, &Fact::unknown()], 1).unwrap();
        assert_eq!(f[0].dtype, Some(DType::I8));
        let zf = Fact::dtype_only(Some(DType::U8));
        assert!(op.output_facts(&[&xf, &Fact::unknown(), &zf], 1).is_err());
        let x = Tensor::from_slice(&[2, 3], &[0.0f32; 6]).unwrap();
        // Wrong per-axis length, wrong zero point shape, bad dtypes: errors, not panics.
        let op = QuantizeLinear::default();
        assert!(q(
            &op,
            &x,
            &Tensor::from_slice(&[2], &[1.0f32, 2.0]).unwrap(),
            None
        )
        .is_err());
        assert!(q(
            &op,
            &x,
            &Tensor::from_slice(&[3], &[1.0f32; 3]).unwrap(),
            Some(&Tensor::scalar(0u8))
        )
        .is_err());
        assert!(q(
            &op,
            &x,
            &Tensor::scalar(1.0f32),
            Some(&Tensor::scalar(0i32))
        )
        .is_err());
        assert!(q(&op, &x, &Tensor::scalar(1u8), None).is_err());
        let xi = Tensor::from_slice(&[2], &[1u8, 2]).unwrap();
        assert!(q(&op, &xi, &Tensor::scalar(1.0f32), None).is_err());
        let op = QuantizeLinear {
            block_size: 2,
            ..Default::default()
        };
        assert!(q(
            &op,
            &x,
            &Tensor::from_slice(&[2, 1], &[1.0f32; 2]).unwrap(),
            None
        )
        .is_err());
    }
}
