//! `MelWeightMatrix` (opset 17): triangular mel filterbank of shape
//! `[dft_length / 2 + 1, num_mel_bins]` over `[lower_edge_hertz, upper_edge_hertz]`,
//! with `mel(f) = 2595 · log10(1 + f / 700)`; each triangle peaks at 1.
//! Follows the ONNX reference: `num_mel_bins + 2` points equally spaced by
//! `(mel_high − mel_low) / (num_mel_bins + 2)`, mapped back to Hz and to the
//! spectrogram bin `floor((dft_length + 1) · hz / sample_rate)`.

use uniml_data::{ensure, DType, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{scalar_float, scalar_int, store_f64};
use crate::op::{input, EvalCtx, Fact, Op};

#[derive(Debug, Clone)]
pub struct MelWeightMatrix {
    pub dtype: DType,
}

/// The filterbank `[num_spectrogram_bins, num_mel_bins]` in f64, row-major.
pub fn mel_weights(
    num_mel_bins: usize,
    dft_length: usize,
    sample_rate: i64,
    lower_hz: f64,
    upper_hz: f64,
) -> Result<Vec<f64>> {
    ensure!(
        sample_rate > 0,
        "MelWeightMatrix sample_rate must be > 0, got {sample_rate}"
    );
    let n_spec = dft_length / 2 + 1;
    let mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / std::f64::consts::LN_10;
    let (low, high) = (mel(lower_hz), mel(upper_hz));
    let points = num_mel_bins + 2;
    let step = (high - low) / points as f64;
    let bins: Vec<i64> = (0..points)
        .map(|i| {
            let m = i as f64 * step + low;
            let hz = 700.0 * (m / 2595.0 * std::f64::consts::LN_10).exp_m1();
            (((dft_length + 1) as f64 * hz) / sample_rate as f64).floor() as i64
        })
        .collect();
    let mut out = vec![0.0f64; n_spec * num_mel_bins];
    let in_range = |j: i64| j >= 0 && (j as usize) < n_spec;
    for i in 0..num_mel_bins {
        let (lo, center, hi) = (bins[i], bins[i + 1], bins[i + 2]);
        ensure!(
            lo <= center && center <= hi && in_range(lo) && in_range(center) && hi <= n_spec as i64,
            "MelWeightMatrix: the band [{lower_hz}, {upper_hz}] Hz maps outside the {n_spec} spectrogram bins \
             (mel bin {i} spans bins {lo}..{hi})"
        );
        let low_to_center = center - lo;
        if low_to_center == 0 {
            out[center as usize * num_mel_bins + i] = 1.0;
        } else {
            for j in lo..=center {
                out[j as usize * num_mel_bins + i] = (j - lo) as f64 / low_to_center as f64;
            }
        }
        let center_to_high = hi - center;
        if center_to_high > 0 {
            for j in center..hi {
                out[j as usize * num_mel_bins + i] = (hi - j) as f64 / center_to_high as f64;
            }
        }
    }
    Ok(out)
}

fn konst_int(f: Option<&&Fact>) -> Option<i64> {
    f.and_then(|f| f.konst.as_ref())
        .and_then(|t| crate::ops::util::read_i64s(&t.view()).ok())
        .and_then(|v| v.first().copied())
}

impl Op for MelWeightMatrix {
    fn name(&self) -> &'static str {
        "MelWeightMatrix"
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let dim = |v: Option<i64>| match v {
            Some(v) if v >= 0 => Dim::Known(v as usize),
            _ => Dim::Unknown,
        };
        let mels = dim(konst_int(inputs.first()));
        let spec = dim(konst_int(inputs.get(1)).map(|l| l / 2 + 1));
        Ok(vec![Fact::new(self.dtype, SymbolicShape(vec![spec, mels]))])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let op = "MelWeightMatrix";
        let num_mel_bins = scalar_int(input(inputs, 0, op)?, "num_mel_bins")?;
        let dft_length = scalar_int(input(inputs, 1, op)?, "dft_length")?;
        let sample_rate = scalar_int(input(inputs, 2, op)?, "sample_rate")?;
        let lower = scalar_float(input(inputs, 3, op)?, "lower_edge_hertz")?;
        let upper = scalar_float(input(inputs, 4, op)?, "upper_edge_hertz")?;
        ensure!(
            num_mel_bins >= 0,
            "num_mel_bins must be >= 0, got {num_mel_bins}"
        );
        ensure!(dft_length >= 1, "dft_length must be >= 1, got {dft_length}");
        let (mels, dft) = (num_mel_bins as usize, dft_length as usize);
        // Allocate first: the pool enforces the session's memory limit.
        let mut out = ctx.alloc(self.dtype, &[dft / 2 + 1, mels])?;
        store_f64(
            &mel_weights(mels, dft, sample_rate, lower, upper)?,
            &mut out,
        )?;
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn filterbank_triangles_peak_at_one() {
        let t = |v: i32| Tensor::scalar(v);
        let (lo, hi) = (Tensor::scalar(0f32), Tensor::scalar(4096f32));
        let op = MelWeightMatrix { dtype: DType::F32 };
        let y = run(
            &op,
            &[
                Some(&t(8)),
                Some(&t(16)),
                Some(&t(8192)),
                Some(&lo),
                Some(&hi),
            ],
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[9, 8]);
        let v = y[0].to_f64_vec().unwrap();
        for i in 0..8 {
            let col: Vec<f64> = (0..9).map(|j| v[j * 8 + i]).collect();
            assert!(col.iter().all(|&x| (0.0..=1.0).contains(&x)));
            assert!(col.contains(&1.0), "column {i}: {col:?}");
        }
        let bad = Tensor::scalar(100000f32);
        assert!(run(
            &op,
            &[
                Some(&t(8)),
                Some(&t(16)),
                Some(&t(8192)),
                Some(&lo),
                Some(&bad)
            ]
        )
        .is_err());
    }
}
