//! Spatial geometry shared by Conv and the pools: output sizes and begin/end
//! pads from `auto_pad`, explicit `pads`, strides, dilations and `ceil_mode`.

use uniml_data::{bail, Dim, Result};

/// ONNX `auto_pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AutoPad {
    #[default]
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    pub fn parse(s: &str) -> Option<AutoPad> {
        Some(match s {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            _ => return None,
        })
    }
}

/// Window attributes of a conv or pool, as given on the node (empty vectors mean defaults).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`.
    pub pads: Vec<usize>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
}

/// Resolved geometry of one conv/pool application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub input: Vec<usize>,
    pub kernel: Vec<usize>,
    pub output: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub pad_end: Vec<usize>,
}

pub(crate) fn attr_or(v: &[usize], n: usize, default: usize, what: &str) -> Result<Vec<usize>> {
    if v.is_empty() {
        return Ok(vec![default; n]);
    }
    if v.len() != n {
        bail!(
            "{what} has {} values, expected {n} (one per spatial dim)",
            v.len()
        );
    }
    if v.contains(&0) {
        bail!("{what} must be positive, got {v:?}");
    }
    Ok(v.to_vec())
}

impl Window {
    /// Resolves the geometry for spatial `input` dims and `kernel` dims.
    pub fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<Geometry> {
        let n = input.len();
        if kernel.len() != n {
            bail!("kernel has {} spatial dims, input has {n}", kernel.len());
        }
        if kernel.contains(&0) {
            bail!("kernel_shape must be positive, got {kernel:?}");
        }
        let strides = attr_or(&self.strides, n, 1, "strides")?;
        let dilations = attr_or(&self.dilations, n, 1, "dilations")?;
        let pads = if self.pads.is_empty() {
            vec![0; 2 * n]
        } else if self.pads.len() == 2 * n {
            self.pads.clone()
        } else {
            bail!("pads has {} values, expected {}", self.pads.len(), 2 * n)
        };
        let mut output = vec![0; n];
        let mut pad_begin = vec![0; n];
        let mut pad_end = vec![0; n];
        for i in 0..n {
            let dk = (kernel[i] - 1) * dilations[i] + 1;
            let s = strides[i];
            match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = input[i].div_ceil(s);
                    let need = ((out.max(1) - 1) * s + dk).saturating_sub(input[i]);
                    let small = need / 2;
                    let (b, e) = if self.auto_pad == AutoPad::SameUpper {
                        (small, need - small)
                    } else {
                        (need - small, small)
                    };
                    output[i] = out;
                    pad_begin[i] = b;
                    pad_end[i] = e;
                }
                AutoPad::NotSet | AutoPad::Valid => {
                    let (b, e) = if self.auto_pad == AutoPad::Valid {
                        (0, 0)
                    } else {
                        (pads[i], pads[n + i])
                    };
                    let total = input[i] + b + e;
                    if total < dk {
                        bail!("padded input size {total} along spatial dim {i} is smaller than the (dilated) kernel {dk}");
                    }
                    let span = total - dk;
                    let mut out = if self.ceil_mode {
                        span.div_ceil(s) + 1
                    } else {
                        span / s + 1
                    };
                    // In ceil mode the last window must start inside the input or the begin padding.
                    if self.ceil_mode && (out - 1) * s >= input[i] + b {
                        out -= 1;
                    }
                    output[i] = out;
                    pad_begin[i] = b;
                    pad_end[i] = e;
                }
            }
        }
        Ok(Geometry {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            output,
            strides,
            dilations,
            pad_begin,
            pad_end,
        })
    }

    /// Symbolic output dims (Unknown where an input dim is not known).
    pub fn output_dims(&self, input: &[Dim], kernel: &[usize]) -> Vec<Dim> {
        let n = input.len();
        input
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (Some(v), Some(&k)) = (d.known(), kernel.get(i)) else {
                    return Dim::Unknown;
                };
                // Resolve this dim alone with a 1-D window.
                let pick = |a: &[usize]| a.get(i).map(|&s| vec![s]).unwrap_or_default();
                let one = Window {
                    strides: pick(&self.strides),
                    dilations: pick(&self.dilations),
                    pads: if self.pads.len() == 2 * n {
                        vec![self.pads[i], self.pads[n + i]]
                    } else {
                        vec![]
                    },
                    auto_pad: self.auto_pad,
                    ceil_mode: self.ceil_mode,
                };
                match one.resolve(&[v], &[k]) {
                    Ok(g) => Dim::Known(g.output[0]),
                    Err(_) => Dim::Unknown,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn same_upper_and_ceil() {
        let w = Window {
            strides: vec![2],
            auto_pad: AutoPad::SameUpper,
            ..Default::default()
        };
        let g = w.resolve(&[5], &[3]).unwrap();
        assert_eq!((g.output[0], g.pad_begin[0], g.pad_end[0]), (3, 1, 1));
        let w = Window {
            strides: vec![2],
            auto_pad: AutoPad::SameLower,
            ..Default::default()
        };
        let g = w.resolve(&[4], &[3]).unwrap();
        assert_eq!((g.output[0], g.pad_begin[0], g.pad_end[0]), (2, 1, 0));
        let w = Window {
            strides: vec![2],
            ceil_mode: true,
            ..Default::default()
        };
        assert_eq!(w.resolve(&[4], &[3]).unwrap().output[0], 2);
        // ceil((5 + 1 - 2) / 2) + 1 = 3, but the third window would start at 4 >= 4 + 0: dropped.
        let w = Window {
            strides: vec![2],
            pads: vec![0, 1],
            ceil_mode: true,
            ..Default::default()
        };
        assert_eq!(w.resolve(&[4], &[1]).unwrap().output[0], 2);
        let w = Window {
            strides: vec![3],
            pads: vec![0, 2],
            ceil_mode: true,
            ..Default::default()
        };
        assert_eq!(w.resolve(&[4], &[2]).unwrap().output[0], 2);
        assert!(Window::default().resolve(&[2], &[3]).is_err());
    }
}
