//! `DFT` (opsets 17–20): discrete Fourier transform along one axis of a real
//! (`[..., 1]`) or complex (`[..., 2]`) signal.
//!
//! - forward, `onesided = 0`: complex output of length `dft_length`;
//! - forward, `onesided = 1` (RFFT): the first `dft_length / 2 + 1` bins;
//! - inverse, `onesided = 0`: complex IFFT scaled by `1 / dft_length`;
//! - inverse, `onesided = 1` (IRFFT): the one-sided spectrum is extended by
//!   Hermitian symmetry and the real signal of length `dft_length` (default
//!   `2·(m − 1)`) is returned with a last dim of 1.
//!
//! The signal is truncated or zero-padded to `dft_length` along the axis.
//! Opset 17–19 give the axis as an attribute (default 1); opset 20 as the
//! optional input 2 (default −2). The builder stores the attribute or default
//! in [`Dft::axis`]; a present input 2 overrides it at run time.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::fft::{Fft, C64};
use super::{dispatch_real, scalar_int, Real};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone)]
pub struct Dft {
    /// Axis of the transform when input 2 is absent (may be negative).
    pub axis: i64,
    pub inverse: bool,
    pub onesided: bool,
}

/// Resolved geometry of one DFT call.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    axis: usize,
    /// Length of the input along the axis.
    m: usize,
    /// Transform length.
    n: usize,
    /// Output length along the axis.
    out_len: usize,
    /// Output last dim (2 = complex, 1 = real for IRFFT).
    out_c: usize,
}

impl Dft {
    fn irfft(&self) -> bool {
        self.inverse && self.onesided
    }

    fn geometry(&self, shape: &[usize], axis: i64, dft_length: Option<i64>) -> Result<Geometry> {
        let r = shape.len();
        ensure!(r >= 2, "DFT input must have rank >= 2 (signal dims then a last dim of 1 or 2), got shape {shape:?}");
        let c = shape[r - 1];
        ensure!(
            c == 1 || c == 2,
            "DFT input's last dim must be 1 (real) or 2 (complex), got shape {shape:?}"
        );
        let a = if axis < 0 { axis + r as i64 } else { axis };
        ensure!(
            a >= 0 && a < r as i64 - 1,
            "DFT axis {axis} is out of range for input shape {shape:?} (the last dim holds real/imaginary parts)"
        );
        let axis = a as usize;
        let m = shape[axis];
        let n = match dft_length {
            Some(l) => {
                ensure!(l >= 1, "DFT dft_length must be >= 1, got {l}");
                l as usize
            }
            None if self.irfft() => {
                ensure!(
                    m >= 2,
                    "IRFFT needs at least 2 input bins to infer dft_length, got {m}"
                );
                2 * (m - 1)
            }
            None => {
                ensure!(m >= 1, "DFT signal is empty along axis {axis}");
                m
            }
        };
        let (out_len, out_c) = if self.irfft() {
            (n, 1)
        } else if self.onesided {
            (n / 2 + 1, 2)
        } else {
            (n, 2)
        };
        Ok(Geometry {
            axis,
            m,
            n,
            out_len,
            out_c,
        })
    }
}

fn const_scalar(f: Option<&&Fact>) -> Option<Option<i64>> {
    match f {
        None => Some(None),
        Some(f) if f.dtype.is_none() && f.shape.is_none() && f.konst.is_none() => Some(None),
        Some(f) => f
            .konst
            .as_ref()
            .and_then(|t| crate::ops::util::read_i64s(&t.view()).ok())
            .and_then(|v| v.first().copied())
            .map(Some),
    }
}

impl Op for Dft {
    fn name(&self) -> &'static str {
        "DFT"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            return Ok(vec![Fact::unknown()]);
        };
        let dtype = x.dtype;
        let Some(shape) = x.shape.as_ref() else {
            return Ok(vec![Fact::dtype_only(dtype)]);
        };
        let r = shape.rank();
        ensure!(r >= 2, "DFT input must have rank >= 2, got rank {r}");
        let out_c = if self.irfft() { 1 } else { 2 };
        let length = const_scalar(inputs.get(1));
        let axis = const_scalar(inputs.get(2)).map(|a| a.unwrap_or(self.axis));
        let mut dims = shape.0.clone();
        dims[r - 1] = Dim::Known(out_c);
        match (axis, length) {
            (Some(axis), Some(length)) => {
                let a = if axis < 0 { axis + r as i64 } else { axis };
                ensure!(
                    a >= 0 && a < r as i64 - 1,
                    "DFT axis {axis} is out of range for rank {r}"
                );
                let a = a as usize;
                dims[a] = match (&shape.0[a], length) {
                    (Dim::Known(m), _) => {
                        let mut concrete = vec![1usize; r];
                        concrete[a] = *m;
                        concrete[r - 1] = 1;
                        Dim::Known(self.geometry(&concrete, axis, length)?.out_len)
                    }
                    (_, Some(l)) if l >= 1 => {
                        let n = l as usize;
                        Dim::Known(if self.onesided && !self.inverse {
                            n / 2 + 1
                        } else {
                            n
                        })
                    }
                    (d, None) if !self.onesided => d.clone(),
                    _ => Dim::Unknown,
                };
            }
            (Some(axis), None) => {
                let a = if axis < 0 { axis + r as i64 } else { axis };
                if a >= 0 && (a as usize) < r - 1 {
                    dims[a as usize] = Dim::Unknown;
                }
            }
            (None, _) => {
                for d in dims.iter_mut().take(r - 1) {
                    *d = Dim::Unknown;
                }
            }
        }
        Ok(vec![Fact {
            dtype,
            shape: Some(SymbolicShape(dims)),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "DFT")?;
        let length = match inputs.get(1).and_then(|v| v.as_ref()) {
            Some(t) => Some(scalar_int(t, "DFT dft_length")?),
            None => None,
        };
        let axis = match inputs.get(2).and_then(|v| v.as_ref()) {
            Some(t) => scalar_int(t, "DFT axis")?,
            None => self.axis,
        };
        let shape = x.shape();
        let g = self.geometry(shape, axis, length)?;
        let mut out_shape = shape.to_vec();
        out_shape[g.axis] = g.out_len;
        let r = shape.len();
        out_shape[r - 1] = g.out_c;
        let mut out = ctx.alloc(x.dtype(), &out_shape)?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        dispatch_real!(x.dtype(), T => {
            let xd = x.as_slice::<T>()?;
            let od = out.as_slice_mut::<T>()?;
            self.run::<T>(ctx, xd, shape, g, od);
        }, _ => bail!("DFT input must be a float tensor, got {}", x.dtype()));
        Ok(vec![out])
    }

    crate::op_as_any!();
}

impl Dft {
    fn run<T: Real>(&self, ctx: &EvalCtx, x: &[T], shape: &[usize], g: Geometry, out: &mut [T]) {
        let r = shape.len();
        let c = shape[r - 1];
        let inner: usize = shape[g.axis + 1..r - 1].iter().product();
        let block = g.out_len * inner * g.out_c;
        let in_block = g.m * inner * c;
        if block == 0 {
            return;
        }
        let plan = Fft::new(g.n);
        let irfft = self.irfft();
        let inverse = self.inverse;
        let scale = if inverse { 1.0 / g.n as f64 } else { 1.0 };
        // Several outer blocks per task, so the scratch buffers are allocated once per task.
        let outer = out.len() / block;
        let per_task = outer.div_ceil(ctx.par.threads().max(1) * 4).max(1);
        par_chunks_mut(ctx.par, out, per_task * block, &|t, obs| {
            let mut buf = vec![C64::ZERO; g.n];
            let mut scratch = Vec::new();
            for (j, ob) in obs.chunks_exact_mut(block).enumerate() {
                let o = t * per_task + j;
                let xb = &x[o * in_block..(o + 1) * in_block];
                for i in 0..inner {
                    let at = |k: usize| -> C64 {
                        if k >= g.m {
                            return C64::ZERO;
                        }
                        let p = (k * inner + i) * c;
                        if c == 2 {
                            C64::new(xb[p].to_f64(), xb[p + 1].to_f64())
                        } else {
                            C64::new(xb[p].to_f64(), 0.0)
                        }
                    };
                    if irfft {
                        let half = g.n / 2 + 1;
                        for (k, b) in buf.iter_mut().enumerate().take(half) {
                            *b = at(k);
                        }
                        for k in half..g.n {
                            buf[k] = buf[g.n - k].conj();
                        }
                    } else {
                        for (k, b) in buf.iter_mut().enumerate() {
                            *b = at(k);
                        }
                    }
                    if inverse {
                        plan.inverse(&mut buf, &mut scratch);
                    } else {
                        plan.forward(&mut buf, &mut scratch);
                    }
                    for (k, v) in buf.iter().take(g.out_len).enumerate() {
                        let p = (k * inner + i) * g.out_c;
                        ob[p] = T::from_f64(v.re * scale);
                        if g.out_c == 2 {
                            ob[p + 1] = T::from_f64(v.im * scale);
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run};
    use super::*;

    fn naive(x: &[(f64, f64)], inverse: bool) -> Vec<(f64, f64)> {
        let n = x.len();
        let sign = if inverse { 1.0 } else { -1.0 };
        (0..n)
            .map(|k| {
                let mut acc = (0.0, 0.0);
                for (j, &(re, im)) in x.iter().enumerate() {
                    let a = sign * 2.0 * std::f64::consts::PI * (j * k) as f64 / n as f64;
                    acc.0 += re * a.cos() - im * a.sin();
                    acc.1 += re * a.sin() + im * a.cos();
                }
                if inverse {
                    (acc.0 / n as f64, acc.1 / n as f64)
                } else {
                    acc
                }
            })
            .collect()
    }

    fn flat(v: &[(f64, f64)]) -> Vec<f64> {
        v.iter().flat_map(|&(a, b)| [a, b]).collect()
    }

    #[test]
    fn real_forward_along_axis_1() {
        // x: [1, 5, 2, 1]; DFT along axis 1 for each of the 2 columns.
        let vals: Vec<f32> = (0..10).map(|v| v as f32 * 0.5 - 1.0).collect();
        let x = Tensor::from_slice(&[1, 5, 2, 1], &vals).unwrap();
        let op = Dft {
            axis: 1,
            inverse: false,
            onesided: false,
        };
        let y = run(&op, &[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 5, 2, 2]);
        let got = y[0].to_f64_vec().unwrap();
        for col in 0..2 {
            let sig: Vec<(f64, f64)> = (0..5).map(|k| (vals[k * 2 + col] as f64, 0.0)).collect();
            let want = flat(&naive(&sig, false));
            let got_col: Vec<f64> = (0..5)
                .flat_map(|k| [got[(k * 2 + col) * 2], got[(k * 2 + col) * 2 + 1]])
                .collect();
            assert_close(&got_col, &want, 1e-5);
        }
    }

    #[test]
    fn onesided_and_length_and_axis_input() {
        let vals: Vec<f64> = (0..8).map(|v| (v as f64).sin()).collect();
        let x = Tensor::from_slice(&[1, 8, 1], &vals).unwrap();
        let axis = Tensor::scalar(-2i64);
        let len = Tensor::scalar(6i64);
        let op = Dft {
            axis: 0,
            inverse: false,
            onesided: true,
        };
        let y = run(&op, &[Some(&x), Some(&len), Some(&axis)]).unwrap();
        assert_eq!(y[0].shape(), &[1, 4, 2]);
        let sig: Vec<(f64, f64)> = vals[..6].iter().map(|&v| (v, 0.0)).collect();
        let want = flat(&naive(&sig, false)[..4]);
        assert_close(&y[0].to_f64_vec().unwrap(), &want, 1e-12);
        // zero padding
        let len = Tensor::scalar(10i32);
        let op = Dft {
            axis: 1,
            inverse: false,
            onesided: false,
        };
        let y = run(&op, &[Some(&x), Some(&len)]).unwrap();
        let mut sig: Vec<(f64, f64)> = vals.iter().map(|&v| (v, 0.0)).collect();
        sig.extend([(0.0, 0.0); 2]);
        assert_close(
            &y[0].to_f64_vec().unwrap(),
            &flat(&naive(&sig, false)),
            1e-12,
        );
    }

    #[test]
    fn inverse_and_irfft_round_trip() {
        let vals: Vec<f64> = (0..7).map(|v| (v as f64 * 0.7).cos() + v as f64).collect();
        let x = Tensor::from_slice(&[7, 1], &vals).unwrap();
        let fwd = run(
            &Dft {
                axis: 0,
                inverse: false,
                onesided: true,
            },
            &[Some(&x)],
        )
        .unwrap();
        assert_eq!(fwd[0].shape(), &[4, 2]);
        let len = Tensor::scalar(7i64);
        let back = run(
            &Dft {
                axis: 0,
                inverse: true,
                onesided: true,
            },
            &[Some(&fwd[0]), Some(&len)],
        )
        .unwrap();
        assert_eq!(back[0].shape(), &[7, 1]);
        assert_close(&back[0].to_f64_vec().unwrap(), &vals, 1e-12);
        // complex inverse
        let full = run(
            &Dft {
                axis: 0,
                inverse: false,
                onesided: false,
            },
            &[Some(&x)],
        )
        .unwrap();
        let inv = run(
            &Dft {
                axis: 0,
                inverse: true,
                onesided: false,
            },
            &[Some(&full[0])],
        )
        .unwrap();
        let want: Vec<f64> = vals.iter().flat_map(|&v| [v, 0.0]).collect();
        assert_close(&inv[0].to_f64_vec().unwrap(), &want, 1e-12);
    }

    #[test]
    fn parallel_split_matches_serial() {
        use super::super::test_util::run_par;
        let vals: Vec<f32> = (0..7 * 13 * 2)
            .map(|v| ((v * 7919) % 101) as f32 * 0.01)
            .collect();
        let x = Tensor::from_slice(&[7, 13, 2], &vals).unwrap();
        for op in [
            Dft {
                axis: 1,
                inverse: false,
                onesided: false,
            },
            Dft {
                axis: 0,
                inverse: true,
                onesided: true,
            },
        ] {
            let a = run(&op, &[Some(&x)]).unwrap();
            let b = run_par(&op, &[Some(&x)]).unwrap();
            assert_eq!(a[0].to_f64_vec().unwrap(), b[0].to_f64_vec().unwrap());
        }
        let sig = Tensor::from_slice(&[3, 40, 1], &vals[..120]).unwrap();
        let step = Tensor::scalar(3i64);
        let fl = Tensor::scalar(9i64);
        let op = super::super::stft::Stft { onesided: true };
        let a = run(&op, &[Some(&sig), Some(&step), None, Some(&fl)]).unwrap();
        let b = run_par(&op, &[Some(&sig), Some(&step), None, Some(&fl)]).unwrap();
        assert_eq!(a[0].shape(), &[3, 11, 5, 2]);
        assert_eq!(a[0].to_f64_vec().unwrap(), b[0].to_f64_vec().unwrap());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = Tensor::from_slice(&[2, 3], &[0f32; 6]).unwrap();
        assert!(run(
            &Dft {
                axis: 0,
                inverse: false,
                onesided: false
            },
            &[Some(&x)]
        )
        .is_err());
        let x = Tensor::from_slice(&[3, 1], &[0f32; 3]).unwrap();
        assert!(run(
            &Dft {
                axis: 1,
                inverse: false,
                onesided: false
            },
            &[Some(&x)]
        )
        .is_err());
        let x = Tensor::from_slice(&[3, 1], &[0i32; 3]).unwrap();
        assert!(run(
            &Dft {
                axis: 0,
                inverse: false,
                onesided: false
            },
            &[Some(&x)]
        )
        .is_err());
        let x = Tensor::from_slice(&[3, 1], &[0f32; 3]).unwrap();
        let len = Tensor::scalar(0i64);
        assert!(run(
            &Dft {
                axis: 0,
                inverse: false,
                onesided: false
            },
            &[Some(&x), Some(&len)]
        )
        .is_err());
    }
}
