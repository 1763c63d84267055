//! `HannWindow`, `HammingWindow`, `BlackmanWindow` (opset 17): a window of
//! `size` points (input 0, int scalar) with `N = size` when `periodic`, else
//! `size − 1`:
//!
//! - Hann: `sin²(π n / N)`
//! - Hamming: `α − β cos(2π n / N)` with `α = 25/46`, `β = 21/46`
//! - Blackman: `0.42 − 0.5 cos(2π n / N) + 0.08 cos(4π n / N)`
//!
//! Computed in f64 and stored as `output_datatype` (integers truncate).

use std::f64::consts::PI;

use uniml_data::{ensure, Dim, Result, SymbolicShape, Tensor, TensorView};

use super::{scalar_int, store_f64};
use crate::op::{input, EvalCtx, Fact, Op};
use uniml_data::DType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub kind: WindowKind,
    pub periodic: bool,
    pub dtype: DType,
}

impl Window {
    /// The window values in f64.
    pub fn values(&self, size: usize) -> Vec<f64> {
        let n = if self.periodic {
            size as f64
        } else {
            size as f64 - 1.0
        };
        (0..size)
            .map(|i| {
                let i = i as f64;
                match self.kind {
                    WindowKind::Hann => {
                        let s = (PI * i / n).sin();
                        s * s
                    }
                    WindowKind::Hamming => {
                        let alpha = 25.0 / 46.0;
                        alpha - (2.0 * PI * i / n).cos() * (1.0 - alpha)
                    }
                    WindowKind::Blackman => {
                        0.42 - 0.5 * (2.0 * PI * i / n).cos() + 0.08 * (4.0 * PI * i / n).cos()
                    }
                }
            })
            .collect()
    }
}

impl Op for Window {
    fn name(&self) -> &'static str {
        match self.kind {
            WindowKind::Hann => "HannWindow",
            WindowKind::Hamming => "HammingWindow",
            WindowKind::Blackman => "BlackmanWindow",
        }
    }

    fn output_facts(&self, inputs: &[&Fact], _n: usize) -> Result<Vec<Fact>> {
        let size = inputs
            .first()
            .and_then(|f| f.konst.as_ref())
            .and_then(|t| crate::ops::util::read_i64s(&t.view()).ok())
            .and_then(|v| v.first().copied());
        let dim = match size {
            Some(s) if s >= 0 => Dim::Known(s as usize),
            _ => Dim::Unknown,
        };
        Ok(vec![Fact::new(self.dtype, SymbolicShape(vec![dim]))])
    }

    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>> {
        let size = scalar_int(input(inputs, 0, self.name())?, "window size")?;
        ensure!(size >= 0, "{} size must be >= 0, got {size}", self.name());
        let size = size as usize;
        // Allocate first: the pool enforces the session's memory limit.
        let mut out = ctx.alloc(self.dtype, &[size])?;
        store_f64(&self.values(size), &mut out)?;
        Ok(vec![out])
    }

    crate::op_as_any!();
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, run};
    use super::*;

    #[test]
    fn windows_match_definitions() {
        let size = Tensor::scalar(4i32);
        let hann = Window {
            kind: WindowKind::Hann,
            periodic: true,
            dtype: DType::F32,
        };
        let y = run(&hann, &[Some(&size)]).unwrap();
        assert_close(&y[0].to_f64_vec().unwrap(), &[0.0, 0.5, 1.0, 0.5], 1e-7);
        let ham = Window {
            kind: WindowKind::Hamming,
            periodic: false,
            dtype: DType::F64,
        };
        let y = run(&ham, &[Some(&size)]).unwrap();
        let a = 25.0 / 46.0;
        let want: Vec<f64> = (0..4)
            .map(|i| a - (1.0 - a) * (2.0 * PI * i as f64 / 3.0).cos())
            .collect();
        assert_close(&y[0].to_f64_vec().unwrap(), &want, 1e-12);
        let bl = Window {
            kind: WindowKind::Blackman,
            periodic: true,
            dtype: DType::F32,
        };
        let y = run(&bl, &[Some(&size)]).unwrap();
        assert_close(&y[0].to_f64_vec().unwrap(), &[0.0, 0.34, 1.0, 0.34], 1e-6);
        let neg = Tensor::scalar(-1i64);
        assert!(run(&bl, &[Some(&neg)]).is_err());
        let f = Tensor::scalar(1.0f32);
        assert!(run(&bl, &[Some(&f)]).is_err());
    }
}
