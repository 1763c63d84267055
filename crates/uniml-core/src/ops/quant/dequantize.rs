//! `DequantizeLinear`: `y = (x - zero_point) * scale`, per tensor, per axis or
//! blocked, from (u)int8/(u)int16/int32/(u)int4/(u)int2, float8 and float4 to
//! float/float16/bfloat16. Computed in f32 (the difference `x - zero_point` is
//! exact), rounded once to the output. float8/float4 zero points must be 0.

use uniml_data::lowp::{self, LowFloat, SmallInt};
use uniml_data::{bail, ensure, DType, Element, Result, Tensor, TensorView};

use super::{
    check_float_zero_point, check_zero_point_shape, read_scales, read_zero_points, QuantLayout,
};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

const CHUNK: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq)]
pub struct DequantizeLinear {
    /// Quantization axis for per-axis and blocked scales (ONNX default 1).
    pub axis: i64,
    /// Block size of blocked quantization; 0 = not blocked.
    pub block_size: usize,
    /// Output dtype (`output_dtype`, opset 23+); `None` = the scale's dtype.
    pub output_dtype: Option<DType>,
}

impl Default for DequantizeLinear {
    fn default() -> Self {
        DequantizeLinear {
            axis: 1,
            block_size: 0,
            output_dtype: None,
        }
    }
}

impl DequantizeLinear {
    fn out_dtype(&self, scale: DType) -> Result<DType> {
        let dt = self.output_dtype.unwrap_or(scale);
        ensure!(
            matches!(dt, DType::F32 | DType::F16 | DType::BF16),
            "DequantizeLinear output must be float, float16 or bfloat16, got {dt}"
        );
        Ok(dt)
    }
}

/// An integer element that can be dequantized.
trait QIn: Element {
    /// `(self - zp) as f32`, exact difference.
    fn centered(self, zp: i32) -> f32;
}

macro_rules! qin {
    ($($t:ty),*) => {$(
        impl QIn for $t {
            #[inline(always)]
            fn centered(self, zp: i32) -> f32 {
                (self as i32 - zp) as f32
            }
        }
    )*};
}
qin!(u8, i8, u16, i16);

macro_rules! qin_small {
    ($($t:ty),*) => {$(
        impl QIn for $t {
            #[inline(always)]
            fn centered(self, zp: i32) -> f32 {
                (self.value() - zp) as f32
            }
        }
    )*};
}
qin_small!(lowp::U4, lowp::I4, lowp::U2, lowp::I2);

/// float8/float4: the zero point is 0 (checked), the value is exact in f32.
macro_rules! qin_float {
    ($($t:ty),*) => {$(
        impl QIn for $t {
            #[inline(always)]
            fn centered(self, _zp: i32) -> f32 {
                LowFloat::to_f64(self) as f32
            }
        }
    )*};
}
qin_float!(lowp::F8E4M3FN, lowp::F8E4M3FNUZ, lowp::F8E5M2, lowp::F8E5M2FNUZ, lowp::F4E2M1);

impl QIn for i32 {
    #[inline(always)]
    fn centered(self, zp: i32) -> f32 {
        (self as i64 - zp as i64) as f32
    }
}

impl Op for DequantizeLinear {
    fn name(&self) -> &'static str {
        "DequantizeLinear"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let x = inputs.first().copied().cloned().unwrap_or_default();
        let dtype = match (self.output_dtype, inputs.get(1).and_then(|f| f.dtype)) {
            (Some(o), _) => Some(self.out_dtype(o)?),
            (None, Some(s)) => Some(self.out_dtype(s)?),
            (None, None) => None,
        };
        Ok(vec![Fact {
            dtype,
            shape: x.shape,
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "DequantizeLinear")?;
        let s = input(inputs, 1, "DequantizeLinear")?;
        let zp = inputs.get(2).and_then(|z| z.as_ref());
        let out_dt = self.out_dtype(s.dtype())?;
        let layout = QuantLayout::resolve(x.shape(), s.shape(), self.axis, self.block_size)?;
        let scale = read_scales(s, "x_scale", false)?;
        let zps = match zp {
            Some(z) => {
                ensure!(
                    z.dtype() == x.dtype(),
                    "x_zero_point dtype {} differs from x dtype {}",
                    z.dtype(),
                    x.dtype()
                );
                check_zero_point_shape(s.shape(), z.shape())?;
                if z.dtype().is_low_precision_float() {
                    check_float_zero_point(z, "x_zero_point")?;
                    vec![0; scale.len()]
                } else {
                    read_zero_points(z, "x_zero_point")?
                }
            }
            None => vec![0; scale.len()],
        };
        ensure!(
            scale.len() == layout.params() && zps.len() == scale.len(),
            "x_scale has {} values, expected {}",
            scale.len(),
            layout.params()
        );
        let mut out = ctx.alloc(out_dt, x.shape())?;
        let k = Kernel {
            layout: &layout,
            scale: &scale,
            zp: &zps,
        };
        macro_rules! go {
            ($t:ty) => {{
                let xd = x.as_slice::<$t>()?;
                match out_dt {
                    DType::F32 => k.run(ctx, xd, out.as_slice_mut::<f32>()?, |v| v),
                    DType::F16 => k.run(
                        ctx,
                        xd,
                        out.as_slice_mut::<half::f16>()?,
                        half::f16::from_f32,
                    ),
                    DType::BF16 => k.run(
                        ctx,
                        xd,
                        out.as_slice_mut::<half::bf16>()?,
                        half::bf16::from_f32,
                    ),
                    other => bail!("DequantizeLinear cannot produce {other}"),
                }
            }};
        }
        match x.dtype() {
            DType::U8 => go!(u8),
            DType::I8 => go!(i8),
            DType::U16 => go!(u16),
            DType::I16 => go!(i16),
            DType::I32 => go!(i32),
            DType::U4 => go!(lowp::U4),
            DType::I4 => go!(lowp::I4),
            DType::U2 => go!(lowp::U2),
            DType::I2 => go!(lowp::I2),
            DType::F8E4M3FN => go!(lowp::F8E4M3FN),
            DType::F8E4M3FNUZ => go!(lowp::F8E4M3FNUZ),
            DType::F8E5M2 => go!(lowp::F8E5M2),
            DType::F8E5M2FNUZ => go!(lowp::F8E5M2FNUZ),
            DType::F4E2M1 => go!(lowp::F4E2M1),
            other => {
                bail!("DequantizeLinear input must be (u)int8/16/4/2, int32, float8 or float4, got {other}")
            }
        }
        Ok(vec![out])
    }

    crate::op_as_any!();
}

struct Kernel<'a> {
    layout: &'a QuantLayout,
    scale: &'a [f32],
    zp: &'a [i32],
}

impl Kernel<'_> {
    fn run<X: QIn, Y: Element>(
        &self,
        ctx: &EvalCtx,
        x: &[X],
        y: &mut [Y],
        conv: impl Fn(f32) -> Y + Sync,
    ) {
        par_chunks_mut(ctx.par, y, CHUNK, &|ci, chunk| {
            let start = ci * CHUNK;
            self.layout
                .for_runs(start, chunk.len(), |off, len, p, step| {
                    let xs = &x[start + off..start + off + len];
                    let ys = &mut chunk[off..off + len];
                    let (scale, zp) = (&self.scale[p..], &self.zp[p..]);
                    if step == 0 {
                        let (s, z) = (scale[0], zp[0]);
                        for (o, &v) in ys.iter_mut().zip(xs) {
                            *o = conv(v.centered(z) * s);
                        }
                    } else if step == 1 {
                        for (((o, &v), &s), &z) in ys.iter_mut().zip(xs).zip(scale).zip(zp) {
                            *o = conv(v.centered(z) * s);
                        }
                    } else {
                        for (j, (o, &v)) in ys.iter_mut().zip(xs).enumerate() {
                            *o = conv(v.centered(zp[j * step]) * scale[j * step]);
                        }
                    }
                });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::nn::test_util::{run, run_with, FakePar};
    use uniml_data::f16;

    fn dq(op: &DequantizeLinear, x: &Tensor, s: &Tensor, z: Option<&Tensor>) -> Result<Tensor> {
        Ok(run(op, &[Some(x), Some(s), z])?.remove(0))
    }

    #[test]
    fn per_tensor_axis_and_blocked() {
        let x = Tensor::from_slice(&[4], &[0u8, 3, 128, 255]).unwrap();
        let y = dq(
            &DequantizeLinear::default(),
            &x,
            &Tensor::scalar(2.0f32),
            Some(&Tensor::scalar(128u8)),
        )
        .unwrap();
        assert_eq!(y.as_slice::<f32>().unwrap(), &[-256.0, -250.0, 0.0, 254.0]);
        // int32 without zero point; large values stay exact in the difference.
        let x = Tensor::from_slice(&[3], &[i32::MAX, i32::MIN, 5]).unwrap();
        let y = dq(
            &DequantizeLinear::default(),
            &x,
            &Tensor::scalar(1.0f32),
            None,
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<f32>().unwrap(),
            &[i32::MAX as f32, i32::MIN as f32, 5.0]
        );
        // Per axis (axis 1 of [2, 3, 2]).
        let xv: Vec<i16> = (0..12).map(|i| i * 100 - 600).collect();
        let x = Tensor::from_slice(&[2, 3, 2], &xv).unwrap();
        let s = Tensor::from_slice(&[3], &[0.5f32, 2.0, 4.0]).unwrap();
        let z = Tensor::from_slice(&[3], &[1i16, -2, 3]).unwrap();
        let y = dq(&DequantizeLinear::default(), &x, &s, Some(&z)).unwrap();
        let want: Vec<f32> = (0..12)
            .map(|i| (xv[i] as f32 - [1.0, -2.0, 3.0][(i / 2) % 3]) * [0.5, 2.0, 4.0][(i / 2) % 3])
            .collect();
        assert_eq!(y.as_slice::<f32>().unwrap(), &want[..]);
        let y = run_with(
            &FakePar,
            &DequantizeLinear::default(),
            &[Some(&x), Some(&s), Some(&z)],
        )
        .unwrap();
        assert_eq!(y[0].as_slice::<f32>().unwrap(), &want[..]);
        // Blocked along axis 1 of [2, 5], block 2 (3 blocks), float16 scales → float16 output.
        let xv: Vec<i8> = (0..10).map(|i| i as i8 * 3 - 10).collect();
        let sv: Vec<f16> = (0..6)
            .map(|i| f16::from_f32(0.5 * (i + 1) as f32))
            .collect();
        let zv: Vec<i8> = (0..6).map(|i| i as i8 - 3).collect();
        let op = DequantizeLinear {
            axis: 1,
            block_size: 2,
            output_dtype: None,
        };
        let y = dq(
            &op,
            &Tensor::from_slice(&[2, 5], &xv).unwrap(),
            &Tensor::from_slice(&[2, 3], &sv).unwrap(),
            Some(&Tensor::from_slice(&[2, 3], &zv).unwrap()),
        )
        .unwrap();
        assert_eq!(y.dtype(), DType::F16);
        let want: Vec<f16> = (0..10)
            .map(|i| {
                let p = (i / 5) * 3 + (i % 5) / 2;
                f16::from_f32((xv[i] as f32 - zv[p] as f32) * sv[p].to_f32())
            })
            .collect();
        assert_eq!(y.as_slice::<f16>().unwrap(), &want[..]);
        // output_dtype overrides the scale dtype.
        let op = DequantizeLinear {
            output_dtype: Some(DType::BF16),
            ..Default::default()
        };
        let y = dq(
            &op,
            &Tensor::from_slice(&[1], &[3u8]).unwrap(),
            &Tensor::scalar(0.5f32),
            None,
        )
        .unwrap();
        assert_eq!(
            y.as_slice::<half::bf16>().unwrap(),
            &[half::bf16::from_f32(1.5)]
        );
    }

    #[test]
    fn innermost_axis_and_outer_blocks() {
        let xv: Vec<u8> = (0..12).map(|i| i as u8 * 20).collect();
        let s = [0.5f32, 1.0, 2.0, 4.0];
        let z = [3u8, 0, 5, 100];
        let op = DequantizeLinear {
            axis: 1,
            ..Default::default()
        };
        let y = dq(
            &op,
            &Tensor::from_slice(&[3, 4], &xv).unwrap(),
            &Tensor::from_slice(&[4], &s).unwrap(),
            Some(&Tensor::from_slice(&[4], &z).unwrap()),
        )
        .unwrap();
        let want: Vec<f32> = (0..12)
            .map(|i| (xv[i] as f32 - z[i % 4] as f32) * s[i % 4])
            .collect();
        assert_eq!(y.as_slice::<f32>().unwrap(), &want[..]);
        // Blocks of 2 along axis 0 of [3, 4]: scale [2, 4].
        let sb: Vec<f32> = (0..8).map(|i| 0.25 * (i + 1) as f32).collect();
        let op = DequantizeLinear {
            axis: 0,
            block_size: 2,
            output_dtype: None,
        };
        let y = dq(
            &op,
            &Tensor::from_slice(&[3, 4], &xv).unwrap(),
            &Tensor::from_slice(&[2, 4], &sb).unwrap(),
            None,
        )
        .unwrap();
        let want: Vec<f32> = (0..12)
            .map(|i| xv[i] as f32 * sb[(i / 4 / 2) * 4 + i % 4])
            .collect();
        assert_eq!(y.as_slice::<f32>().unwrap(), &want[..]);
    }

    /// The ONNX spec's own cases (test_dequantizelinear_e4m3fn, _int4, _float4e2m1).
    #[test]
    fn low_precision_inputs() {
        use uniml_data::lowp::{F4E2M1, F8E4M3FN, I4};
        // 0, 0.5, 1, 448, -104 as E4M3FN bit patterns.
        let x = Tensor::from_slice(&[5], &[F8E4M3FN(0), F8E4M3FN(0x30), F8E4M3FN(0x38), F8E4M3FN(0x7e), F8E4M3FN(0xed)]).unwrap();
        let y = dq(&DequantizeLinear::default(), &x, &Tensor::scalar(2.0f32), None).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![0., 1., 2., 896., -208.]);
        let x = Tensor::from_slice(&[5], &[I4(0), I4(1), I4(7), I4(-8), I4(-1)]).unwrap();
        let z = Tensor::from_slice(&[1], &[I4(1)]).unwrap();
        let y = dq(&DequantizeLinear::default(), &x, &Tensor::scalar(2.0f32), Some(&z)).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![-2., 0., 12., -18., -4.]);
        // 0, 1, -1, 1.5, -4 as E2M1 codes.
        let x = Tensor::from_slice(&[5], &[F4E2M1(0), F4E2M1(2), F4E2M1(10), F4E2M1(3), F4E2M1(14)]).unwrap();
        let y = dq(&DequantizeLinear::default(), &x, &Tensor::scalar(2.0f32), None).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![0., 2., -2., 3., -8.]);
    }

    #[test]
    fn errors() {
        let x = Tensor::from_slice(&[2], &[1u8, 2]).unwrap();
        let op = DequantizeLinear::default();
        assert!(dq(&op, &x, &Tensor::scalar(1.0f32), Some(&Tensor::scalar(0i8))).is_err());
        assert!(dq(&op, &x, &Tensor::scalar(1i32), None).is_err());
        assert!(dq(
            &op,
            &Tensor::from_slice(&[1], &[1.0f32]).unwrap(),
            &Tensor::scalar(1.0f32),
            None
        )
        .is_err());
        assert!(dq(
            &op,
            &x,
            &Tensor::from_slice(&[3], &[1.0f32; 3]).unwrap(),
            None
        )
        .is_err());
        let op = DequantizeLinear {
            output_dtype: Some(DType::I32),
            ..Default::default()
        };
        assert!(dq(&op, &x, &Tensor::scalar(1.0f32), None).is_err());
    }
}
