//! ONNX builders for the vision family: `NonMaxSuppression` (10, 11),
//! `RoiAlign` (10, 16, 22), `GridSample` (16, 20, 22), `DeformConv` (19, 22),
//! `AffineGrid` (20). `ImageDecoder` is not supported (no image codecs).

use uniml_core::ops::vision::affine_grid::AffineGrid;
use uniml_core::ops::vision::deform_conv::DeformConv;
use uniml_core::ops::vision::grid_sample::{GridMode, GridPadding, GridSample};
use uniml_core::ops::vision::nms::NonMaxSuppression;
use uniml_core::ops::vision::roi_align::{RoiAlign, RoiPool};
use uniml_core::Op;
use uniml_data::Result;

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("NonMaxSuppression", non_max_suppression),
    ("RoiAlign", roi_align),
    ("GridSample", grid_sample),
    ("DeformConv", deform_conv),
    ("AffineGrid", affine_grid),
];

fn flag(ctx: &NodeCtx, name: &str, default: i64) -> Result<bool> {
    match ctx.int_or(name, default) {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.invalid(format!("attribute {name} must be 0 or 1, got {v}"))),
    }
}

fn non_max_suppression(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(NonMaxSuppression {
        center_point_box: flag(ctx, "center_point_box", 0)?,
    }))
}

fn non_negative(ctx: &NodeCtx, name: &str, default: i64) -> Result<usize> {
    let v = ctx.int_or(name, default);
    usize::try_from(v)
        .map_err(|_| ctx.invalid(format!("attribute {name} must be non-negative, got {v}")))
}

/// Opset 10 has no `coordinate_transformation_mode` and behaves as
/// `output_half_pixel`; 16+ defaults to `half_pixel`.
fn roi_align(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let mode = match ctx.string_or("mode", "avg").as_str() {
        "avg" => RoiPool::Avg,
        "max" => RoiPool::Max,
        m => return Err(ctx.unsupported(format!("mode '{m}' is not one of avg, max"))),
    };
    let half_pixel = if ctx.opset >= 16 {
        match ctx
            .string_or("coordinate_transformation_mode", "half_pixel")
            .as_str()
        {
            "half_pixel" => true,
            "output_half_pixel" => false,
            m => {
                return Err(ctx.unsupported(format!(
                "coordinate_transformation_mode '{m}' is not one of half_pixel, output_half_pixel"
            )))
            }
        }
    } else {
        false
    };
    Ok(Box::new(RoiAlign {
        mode,
        output_height: non_negative(ctx, "output_height", 1)?,
        output_width: non_negative(ctx, "output_width", 1)?,
        sampling_ratio: non_negative(ctx, "sampling_ratio", 0)?,
        spatial_scale: ctx.float_or("spatial_scale", 1.0),
        half_pixel,
    }))
}

/// Opset 16 spells the modes bilinear/bicubic (default bilinear); 20+ linear/cubic
/// (default linear). Both spellings are accepted at every opset.
fn grid_sample(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let default = if ctx.opset >= 20 {
        "linear"
    } else {
        "bilinear"
    };
    let mode = match ctx.string_or("mode", default).as_str() {
        "linear" | "bilinear" => GridMode::Linear,
        "nearest" => GridMode::Nearest,
        "cubic" | "bicubic" => GridMode::Cubic,
        m => {
            return Err(ctx.unsupported(format!("mode '{m}' is not one of linear, nearest, cubic")))
        }
    };
    let padding = match ctx.string_or("padding_mode", "zeros").as_str() {
        "zeros" => GridPadding::Zeros,
        "border" => GridPadding::Border,
        "reflection" => GridPadding::Reflection,
        m => {
            return Err(ctx.unsupported(format!(
                "padding_mode '{m}' is not one of zeros, border, reflection"
            )))
        }
    };
    Ok(Box::new(GridSample {
        mode,
        padding,
        align_corners: flag(ctx, "align_corners", 0)?,
    }))
}

fn uints(ctx: &NodeCtx, name: &str, positive: bool) -> Result<Vec<usize>> {
    let v = ctx.ints(name).unwrap_or_default();
    v.iter()
        .map(|&x| match usize::try_from(x) {
            Ok(u) if !(positive && u == 0) => Ok(u),
            _ => Err(ctx.invalid(format!("attribute {name} has an invalid value in {v:?}"))),
        })
        .collect()
}

fn deform_conv(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let group = ctx.int_or("group", 1);
    let offset_group = ctx.int_or("offset_group", 1);
    if group < 1 || offset_group < 1 {
        return Err(ctx.invalid(format!(
            "group ({group}) and offset_group ({offset_group}) must be >= 1"
        )));
    }
    let kernel_shape = uints(ctx, "kernel_shape", true)?;
    if !kernel_shape.is_empty() && kernel_shape.len() != 2 {
        return Err(ctx.unsupported(format!(
            "only 2-D DeformConv is supported, got kernel_shape {kernel_shape:?}"
        )));
    }
    Ok(Box::new(DeformConv {
        dilations: uints(ctx, "dilations", true)?,
        group: group as usize,
        kernel_shape,
        offset_group: offset_group as usize,
        pads: uints(ctx, "pads", false)?,
        strides: uints(ctx, "strides", true)?,
    }))
}

fn affine_grid(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(AffineGrid {
        align_corners: flag(ctx, "align_corners", 0)?,
    }))
}
