//! ONNX builders for the signal family: `DFT` (opsets 17, 20), `STFT`,
//! `MelWeightMatrix`, `HannWindow`, `HammingWindow`, `BlackmanWindow` (17).

use uniml_core::ops::signal::dft::Dft;
use uniml_core::ops::signal::is_numeric_output;
use uniml_core::ops::signal::mel::MelWeightMatrix;
use uniml_core::ops::signal::stft::Stft;
use uniml_core::ops::signal::window::{Window, WindowKind};
use uniml_core::Op;
use uniml_data::{DType, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("DFT", dft),
    ("STFT", stft),
    ("MelWeightMatrix", mel_weight_matrix),
    ("HannWindow", hann),
    ("HammingWindow", hamming),
    ("BlackmanWindow", blackman),
];

fn flag(ctx: &NodeCtx, name: &str, default: i64) -> Result<bool> {
    match ctx.int_or(name, default) {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.invalid(format!("attribute {name} must be 0 or 1, got {v}"))),
    }
}

/// Opset 17–19: `axis` attribute (default 1). Opset 20: optional input 2
/// (default −2), read by the kernel when present.
fn dft(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let axis = if ctx.opset >= 20 {
        -2
    } else {
        ctx.int_or("axis", 1)
    };
    Ok(Box::new(Dft {
        axis,
        inverse: flag(ctx, "inverse", 0)?,
        onesided: flag(ctx, "onesided", 0)?,
    }))
}

fn stft(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Stft {
        onesided: flag(ctx, "onesided", 1)?,
    }))
}

fn output_dtype(ctx: &NodeCtx) -> Result<DType> {
    let code = ctx.int_or("output_datatype", 1);
    match DType::from_onnx_code(code as i32) {
        Some(d) if is_numeric_output(d) => Ok(d),
        _ => Err(ctx.unsupported(format!(
            "output_datatype {code} is not a supported numeric dtype"
        ))),
    }
}

fn mel_weight_matrix(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(MelWeightMatrix {
        dtype: output_dtype(ctx)?,
    }))
}

fn window(ctx: &NodeCtx, kind: WindowKind) -> Result<Box<dyn Op>> {
    Ok(Box::new(Window {
        kind,
        periodic: flag(ctx, "periodic", 1)?,
        dtype: output_dtype(ctx)?,
    }))
}

fn hann(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    window(ctx, WindowKind::Hann)
}

fn hamming(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    window(ctx, WindowKind::Hamming)
}

fn blackman(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    window(ctx, WindowKind::Blackman)
}
