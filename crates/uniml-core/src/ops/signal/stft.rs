//! `STFT` (opset 17): short-time Fourier transform of `[batch, length, 1|2]`
//! signals. Frames of `frame_length` samples every `frame_step` samples are
//! multiplied by `window` (all ones when absent) and transformed; the output is
//! `[batch, frames, bins, 2]` with `frames = (length − frame_length) / frame_step + 1`
//! and `bins = frame_length / 2 + 1` when `onesided`, else `frame_length`.
//! `frame_length` comes from input 3, else the window's length, else the signal length.

use uniml_data::{bail, ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::fft::{Fft, C64};
use super::{dispatch_real, scalar_int, Real};
use crate::op::{input, EvalCtx, Fact, Op};
use crate::parallel::par_chunks_mut;

#[derive(Debug, Clone)]
pub struct Stft {
    pub onesided: bool,
}

fn konst_int(f: Option<&&Fact>) -> Option<i64> {
    f.and_then(|f| f.konst.as_ref())
        .and_then(|t| crate::ops::util::read_i64s(&t.view()).ok())
        .and_then(|v| v.first().copied())
}

impl Op for Stft {
    fn name(&self) -> &'static str {
        "STFT"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let Some(x) = inputs.first() else {
            return Ok(vec![Fact::unknown()]);
        };
        let batch = match x.shape.as_ref() {
            Some(s) => {
                ensure!(
                    s.rank() == 3,
                    "STFT signal must be [batch, length, 1 or 2], got rank {}",
                    s.rank()
                );
                s.0[0].clone()
            }
            None => Dim::Unknown,
        };
        let length = x.shape.as_ref().and_then(|s| s.0[1].known());
        let step = konst_int(inputs.get(1));
        let window_len = inputs
            .get(2)
            .and_then(|w| w.shape.as_ref())
            .and_then(|s| s.0.first())
            .and_then(|d| d.known());
        let frame_length = konst_int(inputs.get(3))
            .map(|v| v.max(0) as usize)
            .or(window_len)
            .or_else(|| {
                // Without a window or frame_length input, the frame is the whole signal.
                let absent = |i: usize| {
                    inputs
                        .get(i)
                        .is_none_or(|f| f.dtype.is_none() && f.shape.is_none())
                };
                if absent(2) && absent(3) {
                    length
                } else {
                    None
                }
            });
        let frames = match (length, step, frame_length) {
            (Some(l), Some(s), Some(fl)) if s >= 1 && l >= fl => {
                Dim::Known((l - fl) / s as usize + 1)
            }
            _ => Dim::Unknown,
        };
        let bins = match frame_length {
            Some(fl) => Dim::Known(if self.onesided { fl / 2 + 1 } else { fl }),
            None => Dim::Unknown,
        };
        let shape = SymbolicShape(vec![batch, frames, bins, Dim::Known(2)]);
        Ok(vec![Fact {
            dtype: x.dtype,
            shape: Some(shape),
            konst: None,
            is_sequence: false,
        }])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let x = input(inputs, 0, "STFT")?;
        let xs = x.shape();
        ensure!(
            xs.len() == 3 && (xs[2] == 1 || xs[2] == 2),
            "STFT signal must be [batch, length, 1 or 2], got shape {xs:?}"
        );
        let (batch, length, c) = (xs[0], xs[1], xs[2]);
        let step = scalar_int(input(inputs, 1, "STFT")?, "STFT frame_step")?;
        ensure!(step >= 1, "STFT frame_step must be >= 1, got {step}");
        let window = inputs.get(2).and_then(|w| w.as_ref());
        let fl_input = match inputs.get(3).and_then(|v| v.as_ref()) {
            Some(t) => Some(scalar_int(t, "STFT frame_length")?),
            None => None,
        };
        let frame_length = match (fl_input, window) {
            (Some(fl), _) => {
                ensure!(fl >= 1, "STFT frame_length must be >= 1, got {fl}");
                fl as usize
            }
            (None, Some(w)) => w.len(),
            (None, None) => length,
        };
        ensure!(frame_length >= 1, "STFT frame_length must be >= 1");
        let win: Option<Vec<f64>> = match window {
            Some(w) => {
                ensure!(
                    w.shape().len() == 1 && w.len() == frame_length,
                    "STFT window must be 1-D of length frame_length = {frame_length}, got shape {:?}",
                    w.shape()
                );
                ensure!(
                    w.dtype().is_float(),
                    "STFT window must be a float tensor, got {}",
                    w.dtype()
                );
                Some(w.to_f64_vec()?)
            }
            None => None,
        };
        ensure!(
            length >= frame_length,
            "STFT signal length {length} is shorter than frame_length {frame_length}"
        );
        let frames = (length - frame_length) / step as usize + 1;
        let bins = if self.onesided {
            frame_length / 2 + 1
        } else {
            frame_length
        };
        let mut out = ctx.alloc(x.dtype(), &[batch, frames, bins, 2])?;
        if out.is_empty() {
            return Ok(vec![out]);
        }
        let step = step as usize;
        let plan = Fft::new(frame_length);
        dispatch_real!(x.dtype(), T => {
            let xd = x.as_slice::<T>()?;
            let od = out.as_slice_mut::<T>()?;
            // Several frames per task, so the scratch buffers are allocated once per task.
            let total = batch * frames;
            let per_task = total.div_ceil(ctx.par.threads().max(1) * 4).max(1);
            par_chunks_mut(ctx.par, od, per_task * bins * 2, &|t, ob| {
                let mut buf = vec![C64::ZERO; frame_length];
                let mut scratch = Vec::new();
                for (j, of) in ob.chunks_exact_mut(bins * 2).enumerate() {
                    let i = t * per_task + j;
                    let (b, f) = (i / frames, i % frames);
                    let start = (b * length + f * step) * c;
                    for (k, v) in buf.iter_mut().enumerate() {
                        let p = start + k * c;
                        let w = win.as_ref().map_or(1.0, |w| w[k]);
                        let im = if c == 2 { xd[p + 1].to_f64() } else { 0.0 };
                        *v = C64::new(xd[p].to_f64() * w, im * w);
                    }
                    plan.forward(&mut buf, &mut scratch);
                    for (k, v) in buf.iter().take(bins).enumerate() {
                        of[2 * k] = <T as Real>::from_f64(v.re);
                        of[2 * k + 1] = <T as Real>::from_f64(v.im);
                    }
                }
            });
        }, _ => bail!("STFT signal must be a float tensor, got {}", x.dtype()));
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run};
    use super::*;

    #[test]
    fn frames_match_naive_dft() {
        let sig: Vec<f32> = (0..20).map(|v| (v as f32 * 0.3).sin()).collect();
        let x = Tensor::from_slice(&[1, 20, 1], &sig).unwrap();
        let step = Tensor::scalar(4i64);
        let win_vals: Vec<f32> = (0..8).map(|k| 0.5 + 0.05 * k as f32).collect();
        let win = Tensor::from_slice(&[8], &win_vals).unwrap();
        let y = run(
            &Stft { onesided: true },
            &[Some(&x), Some(&step), Some(&win)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 4, 5, 2]);
        let got = y[0].to_f64_vec().unwrap();
        for f in 0..4 {
            let mut want = vec![];
            for k in 0..5 {
                let (mut re, mut im) = (0.0, 0.0);
                for j in 0..8 {
                    let v = sig[f * 4 + j] as f64 * win_vals[j] as f64;
                    let a = -2.0 * std::f64::consts::PI * (j * k) as f64 / 8.0;
                    re += v * a.cos();
                    im += v * a.sin();
                }
                want.extend([re, im]);
            }
            assert_close(&got[f * 10..f * 10 + 10], &want, 1e-5);
        }
    }

    #[test]
    fn frame_length_input_and_errors() {
        let x = Tensor::from_slice(&[2, 10, 1], &[1f32; 20]).unwrap();
        let step = Tensor::scalar(3i64);
        let fl = Tensor::scalar(4i64);
        let y = run(
            &Stft { onesided: false },
            &[Some(&x), Some(&step), None, Some(&fl)],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[2, 3, 4, 2]);
        let got = y[0].to_f64_vec().unwrap();
        assert_eq!(&got[..8], &[4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let zero = Tensor::scalar(0i64);
        assert!(run(&Stft { onesided: false }, &[Some(&x), Some(&zero)]).is_err());
        let long = Tensor::scalar(11i64);
        assert!(run(
            &Stft { onesided: false },
            &[Some(&x), Some(&step), None, Some(&long)]
        )
        .is_err());
    }
}
