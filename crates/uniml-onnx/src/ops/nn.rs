//! ONNX builders for the nn family (default domain, opsets 7–23). Opset
//! differences (attributes that became inputs, default axes, per-group vs
//! per-channel GroupNormalization parameters, ...) are resolved here.

use uniml_core::ops::nn::batchnorm::BatchNorm;
use uniml_core::ops::nn::conv::Conv;
use uniml_core::ops::nn::conv_integer::ConvInteger;
use uniml_core::ops::nn::conv_transpose::ConvTranspose;
use uniml_core::ops::nn::deform_conv::DeformConv;
use uniml_core::ops::nn::depth_space::{DepthSpace, DepthSpaceKind};
use uniml_core::ops::nn::det::Det;
use uniml_core::ops::nn::gemm::Gemm;
use uniml_core::ops::nn::global_pool::{GlobalPool, GlobalPoolKind};
use uniml_core::ops::nn::lrn::Lrn;
use uniml_core::ops::nn::matmul::{MatMul, MatMulInteger};
use uniml_core::ops::nn::max_unpool::MaxUnpool;
use uniml_core::ops::nn::norm::{GroupNorm, InstanceNorm, LayerNorm, MeanVarianceNorm, RmsNorm};
use uniml_core::ops::nn::padding::{AutoPad, Window};
use uniml_core::ops::nn::pool::{Pool, PoolKind};
use uniml_core::ops::nn::resize::{AspectPolicy, Resize};
use uniml_core::ops::nn::resize_kernels::{CoordMode, Interp, InterpMode, NearestMode};
use uniml_core::ops::nn::softmax::{Softmax, SoftmaxKind};
use uniml_core::ops::nn::FusedActivation;
use uniml_core::Op;
use uniml_data::Result;

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("Conv", conv),
    ("MaxPool", max_pool),
    ("AveragePool", average_pool),
    ("LpPool", lp_pool),
    ("GlobalAveragePool", global_average_pool),
    ("GlobalMaxPool", global_max_pool),
    ("GlobalLpPool", global_lp_pool),
    ("Gemm", gemm),
    ("MatMul", matmul),
    ("Det", det),
    ("MatMulInteger", matmul_integer),
    ("ConvTranspose", conv_transpose),
    ("ConvInteger", conv_integer),
    ("DeformConv", deform_conv),
    ("MaxUnpool", max_unpool),
    ("BatchNormalization", batch_norm),
    ("InstanceNormalization", instance_norm),
    ("LayerNormalization", layer_norm),
    ("GroupNormalization", group_norm),
    ("RMSNormalization", rms_norm),
    ("MeanVarianceNormalization", mvn),
    ("LRN", lrn),
    ("Softmax", softmax),
    ("LogSoftmax", log_softmax),
    ("Hardmax", hardmax),
    ("Resize", resize),
    ("Upsample", upsample),
    ("DepthToSpace", depth_to_space),
    ("SpaceToDepth", space_to_depth),
];

/// Non-negative integers of an ints attribute (empty when absent).
fn uints(ctx: &NodeCtx, name: &str) -> Result<Vec<usize>> {
    match ctx.ints(name) {
        None => Ok(vec![]),
        Some(v) => v
            .iter()
            .map(|&x| {
                usize::try_from(x).map_err(|_| {
                    ctx.invalid(format!("attribute {name} must be non-negative, got {v:?}"))
                })
            })
            .collect(),
    }
}

fn positive(ctx: &NodeCtx, name: &str) -> Result<Vec<usize>> {
    let v = uints(ctx, name)?;
    if v.contains(&0) {
        return Err(ctx.invalid(format!("attribute {name} must be positive, got {v:?}")));
    }
    Ok(v)
}

fn auto_pad(ctx: &NodeCtx) -> Result<AutoPad> {
    let s = ctx.string_or("auto_pad", "NOTSET");
    AutoPad::parse(&s).ok_or_else(|| {
        ctx.unsupported(format!(
            "auto_pad '{s}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
        ))
    })
}

/// Window attributes; `dilations`/`ceil_mode` only where the opset defines them.
fn window(ctx: &NodeCtx, with_dilations: bool, with_ceil: bool) -> Result<Window> {
    Ok(Window {
        strides: positive(ctx, "strides")?,
        dilations: if with_dilations {
            positive(ctx, "dilations")?
        } else {
            vec![]
        },
        pads: uints(ctx, "pads")?,
        auto_pad: auto_pad(ctx)?,
        ceil_mode: with_ceil && ctx.int_or("ceil_mode", 0) != 0,
    })
}

fn conv(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let group = ctx.int_or("group", 1);
    if group < 1 {
        return Err(ctx.invalid(format!("group must be >= 1, got {group}")));
    }
    let ks = positive(ctx, "kernel_shape")?;
    let op = Conv::new(
        if ks.is_empty() { None } else { Some(ks) },
        window(ctx, true, false)?,
        group as usize,
    );
    Ok(Box::new(op))
}

fn pool(
    ctx: &NodeCtx,
    kind: PoolKind,
    with_dilations: bool,
    with_ceil: bool,
) -> Result<Box<dyn Op>> {
    let kernel_shape = positive(ctx, "kernel_shape")?;
    if kernel_shape.is_empty() {
        return Err(ctx.invalid("kernel_shape is required"));
    }
    let storage_order = if kind == PoolKind::Max {
        ctx.int_or("storage_order", 0)
    } else {
        0
    };
    if !(0..=1).contains(&storage_order) {
        return Err(ctx.invalid(format!("storage_order must be 0 or 1, got {storage_order}")));
    }
    let with_indices =
        kind == PoolKind::Max && ctx.node.output.get(1).is_some_and(|s| !s.is_empty());
    Ok(Box::new(Pool {
        kind,
        kernel_shape,
        window: window(ctx, with_dilations, with_ceil)?,
        storage_order,
        with_indices,
    }))
}

fn max_pool(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    pool(ctx, PoolKind::Max, ctx.opset >= 10, ctx.opset >= 10)
}

fn average_pool(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let count_include_pad = ctx.int_or("count_include_pad", 0) != 0;
    pool(
        ctx,
        PoolKind::Average { count_include_pad },
        ctx.opset >= 19,
        ctx.opset >= 10,
    )
}

fn lp_pool(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let p = ctx.int_or("p", 2);
    if p < 1 {
        return Err(ctx.invalid(format!("p must be >= 1, got {p}")));
    }
    pool(
        ctx,
        PoolKind::Lp { p: p as f32 },
        ctx.opset >= 18,
        ctx.opset >= 18,
    )
}

fn global_average_pool(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(GlobalPool {
        kind: GlobalPoolKind::Average,
    }))
}

fn global_max_pool(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(GlobalPool {
        kind: GlobalPoolKind::Max,
    }))
}

fn global_lp_pool(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let p = ctx.int_or("p", 2);
    if p < 1 {
        return Err(ctx.invalid(format!("p must be >= 1, got {p}")));
    }
    Ok(Box::new(GlobalPool {
        kind: GlobalPoolKind::Lp { p: p as f32 },
    }))
}

fn gemm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let op = Gemm::new(
        ctx.float_or("alpha", 1.0),
        ctx.float_or("beta", 1.0),
        ctx.int_or("transA", 0) != 0,
        ctx.int_or("transB", 0) != 0,
    );
    Ok(Box::new(op))
}

fn matmul(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let op = MatMul::default();
    Ok(Box::new(op))
}

fn matmul_integer(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(MatMulInteger))
}

fn conv_integer(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let group = ctx.int_or("group", 1);
    if group < 1 {
        return Err(ctx.invalid(format!("group must be >= 1, got {group}")));
    }
    let ks = positive(ctx, "kernel_shape")?;
    let conv = Conv::new(
        if ks.is_empty() { None } else { Some(ks) },
        window(ctx, true, false)?,
        group as usize,
    );
    Ok(Box::new(ConvInteger { conv }))
}

fn deform_conv(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let group = ctx.int_or("group", 1);
    let offset_group = ctx.int_or("offset_group", 1);
    if group < 1 || offset_group < 1 {
        return Err(ctx.invalid(format!(
            "group ({group}) and offset_group ({offset_group}) must be >= 1"
        )));
    }
    let ks = positive(ctx, "kernel_shape")?;
    Ok(Box::new(DeformConv {
        kernel_shape: if ks.is_empty() { None } else { Some(ks) },
        strides: positive(ctx, "strides")?,
        dilations: positive(ctx, "dilations")?,
        pads: uints(ctx, "pads")?,
        group: group as usize,
        offset_group: offset_group as usize,
    }))
}

fn conv_transpose(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let group = ctx.int_or("group", 1);
    if group < 1 {
        return Err(ctx.invalid(format!("group must be >= 1, got {group}")));
    }
    let ks = positive(ctx, "kernel_shape")?;
    let pads = if ctx.has_attr("pads") {
        Some(uints(ctx, "pads")?)
    } else {
        None
    };
    let output_shape = if ctx.has_attr("output_shape") {
        Some(uints(ctx, "output_shape")?)
    } else {
        None
    };
    let op = ConvTranspose {
        kernel_shape: if ks.is_empty() { None } else { Some(ks) },
        strides: positive(ctx, "strides")?,
        dilations: positive(ctx, "dilations")?,
        pads,
        output_padding: uints(ctx, "output_padding")?,
        output_shape,
        auto_pad: auto_pad(ctx)?,
        group: group as usize,
        activation: FusedActivation::None,
        packed: Default::default(),
    };
    Ok(Box::new(op))
}

fn max_unpool(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let kernel_shape = positive(ctx, "kernel_shape")?;
    if kernel_shape.is_empty() {
        return Err(ctx.invalid("kernel_shape is required"));
    }
    Ok(Box::new(MaxUnpool {
        kernel_shape,
        strides: positive(ctx, "strides")?,
        pads: uints(ctx, "pads")?,
    }))
}

fn batch_norm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 9 && ctx.int_or("spatial", 1) == 0 {
        return Err(ctx.unsupported("spatial=0 (per-activation statistics) is not supported"));
    }
    let training = if ctx.opset >= 14 {
        ctx.int_or("training_mode", 0) != 0
    } else {
        // Before opset 14, extra outputs meant training; inference graphs have one output.
        if ctx.opset < 9 && ctx.int_or("is_test", 1) == 0 && ctx.n_outputs() > 1 {
            return Err(ctx
                .unsupported("training-mode BatchNormalization before opset 14 is not supported"));
        }
        false
    };
    Ok(Box::new(BatchNorm {
        epsilon: ctx.float_or("epsilon", 1e-5),
        momentum: ctx.float_or("momentum", 0.9),
        training,
        activation: FusedActivation::None,
    }))
}

fn instance_norm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(InstanceNorm {
        epsilon: ctx.float_or("epsilon", 1e-5),
    }))
}

fn stash_type(ctx: &NodeCtx) -> Result<()> {
    let st = ctx.int_or("stash_type", 1);
    if st != 1 {
        return Err(ctx.unsupported(format!(
            "stash_type {st} (only float32 statistics are supported)"
        )));
    }
    Ok(())
}

fn layer_norm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    stash_type(ctx)?;
    Ok(Box::new(LayerNorm {
        axis: ctx.int_or("axis", -1),
        epsilon: ctx.float_or("epsilon", 1e-5),
    }))
}

fn group_norm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    stash_type(ctx)?;
    let g = ctx
        .int("num_groups")
        .ok_or_else(|| ctx.invalid("num_groups is required"))?;
    if g < 1 {
        return Err(ctx.invalid(format!("num_groups must be >= 1, got {g}")));
    }
    Ok(Box::new(GroupNorm {
        num_groups: g as usize,
        epsilon: ctx.float_or("epsilon", 1e-5),
        per_group_params: ctx.opset < 21,
    }))
}

fn rms_norm(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    stash_type(ctx)?;
    Ok(Box::new(RmsNorm {
        axis: ctx.int_or("axis", -1),
        epsilon: ctx.float_or("epsilon", 1e-5),
    }))
}

fn mvn(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(MeanVarianceNorm {
        axes: ctx.ints("axes").unwrap_or_else(|| vec![0, 2, 3]),
    }))
}

fn lrn(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let size = ctx
        .int("size")
        .ok_or_else(|| ctx.invalid("size is required"))?;
    if size < 1 {
        return Err(ctx.invalid(format!("size must be >= 1, got {size}")));
    }
    Ok(Box::new(Lrn {
        alpha: ctx.float_or("alpha", 1e-4),
        beta: ctx.float_or("beta", 0.75),
        bias: ctx.float_or("bias", 1.0),
        size: size as usize,
    }))
}

/// Opset < 13: coerce to 2-D at `axis` (default 1); 13+: one axis (default -1).
fn softmax_like(ctx: &NodeCtx, kind: SoftmaxKind) -> Result<Box<dyn Op>> {
    let old = ctx.opset < 13;
    Ok(Box::new(Softmax {
        kind,
        axis: ctx.int_or("axis", if old { 1 } else { -1 }),
        flatten_tail: old,
    }))
}

fn softmax(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    softmax_like(ctx, SoftmaxKind::Softmax)
}

fn log_softmax(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    softmax_like(ctx, SoftmaxKind::LogSoftmax)
}

fn hardmax(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    softmax_like(ctx, SoftmaxKind::Hardmax)
}

fn interp_mode(ctx: &NodeCtx, nearest: NearestMode) -> Result<InterpMode> {
    let mode = ctx.string_or("mode", "nearest");
    Ok(match mode.as_str() {
        "nearest" => InterpMode::Nearest(nearest),
        "linear" | "bilinear" | "trilinear" => InterpMode::Linear,
        "cubic" => InterpMode::Cubic {
            a: ctx.float_or("cubic_coeff_a", -0.75),
        },
        other => return Err(ctx.unsupported(format!("mode '{other}'"))),
    })
}

fn resize(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    if ctx.opset < 11 {
        let mode = interp_mode(ctx, NearestMode::Simple)?;
        return Ok(Box::new(Resize {
            interp: Interp {
                mode,
                coord: CoordMode::Asymmetric,
                exclude_outside: false,
                antialias: false,
                extrapolation_value: 0.0,
            },
            keep_aspect: AspectPolicy::Stretch,
            axes: None,
            roi_input: None,
            scales_input: Some(1),
            sizes_input: None,
            const_scales: None,
            op_name: "Resize",
        }));
    }
    let nm = ctx.string_or("nearest_mode", "round_prefer_floor");
    let nearest = match nm.as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        other => return Err(ctx.unsupported(format!("nearest_mode '{other}'"))),
    };
    let mode = interp_mode(ctx, nearest)?;
    let cm = ctx.string_or("coordinate_transformation_mode", "half_pixel");
    let coord = match cm.as_str() {
        "half_pixel" => CoordMode::HalfPixel,
        "half_pixel_symmetric" if ctx.opset >= 19 => CoordMode::HalfPixelSymmetric,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "align_corners" => CoordMode::AlignCorners,
        "asymmetric" => CoordMode::Asymmetric,
        "tf_crop_and_resize" => CoordMode::TfCropAndResize,
        "tf_half_pixel_for_nn" if ctx.opset < 13 => CoordMode::TfHalfPixelForNn,
        other => return Err(ctx.unsupported(format!("coordinate_transformation_mode '{other}'"))),
    };
    let antialias = ctx.opset >= 18 && ctx.int_or("antialias", 0) != 0;
    if antialias && matches!(mode, InterpMode::Nearest(_)) {
        return Err(ctx.invalid("antialias is not defined for mode 'nearest'"));
    }
    let keep_aspect = if ctx.opset >= 18 {
        match ctx
            .string_or("keep_aspect_ratio_policy", "stretch")
            .as_str()
        {
            "stretch" => AspectPolicy::Stretch,
            "not_larger" => AspectPolicy::NotLarger,
            "not_smaller" => AspectPolicy::NotSmaller,
            other => return Err(ctx.unsupported(format!("keep_aspect_ratio_policy '{other}'"))),
        }
    } else {
        AspectPolicy::Stretch
    };
    let axes = if ctx.opset >= 18 {
        ctx.ints("axes")
    } else {
        None
    };
    Ok(Box::new(Resize {
        interp: Interp {
            mode,
            coord,
            exclude_outside: ctx.int_or("exclude_outside", 0) != 0,
            antialias,
            extrapolation_value: ctx.float_or("extrapolation_value", 0.0),
        },
        keep_aspect,
        axes,
        roi_input: Some(1),
        scales_input: Some(2),
        sizes_input: Some(3),
        const_scales: None,
        op_name: "Resize",
    }))
}

fn upsample(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let mode = interp_mode(ctx, NearestMode::Simple)?;
    let (scales_input, const_scales) = if ctx.opset < 9 {
        let s = ctx
            .floats("scales")
            .ok_or_else(|| ctx.invalid("scales is required"))?;
        (None, Some(s))
    } else {
        (Some(1), None)
    };
    Ok(Box::new(Resize {
        interp: Interp {
            mode,
            coord: CoordMode::Asymmetric,
            exclude_outside: false,
            antialias: false,
            extrapolation_value: 0.0,
        },
        keep_aspect: AspectPolicy::Stretch,
        axes: None,
        roi_input: None,
        scales_input,
        sizes_input: None,
        const_scales,
        op_name: "Upsample",
    }))
}

fn depth_space(ctx: &NodeCtx, kind: DepthSpaceKind) -> Result<Box<dyn Op>> {
    let b = ctx
        .int("blocksize")
        .ok_or_else(|| ctx.invalid("blocksize is required"))?;
    if b < 1 {
        return Err(ctx.invalid(format!("blocksize must be >= 1, got {b}")));
    }
    let crd = match ctx.string_or("mode", "DCR").as_str() {
        "DCR" => false,
        "CRD" => true,
        other => return Err(ctx.unsupported(format!("mode '{other}'"))),
    };
    Ok(Box::new(DepthSpace {
        kind,
        blocksize: b as usize,
        crd,
    }))
}

fn depth_to_space(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    depth_space(ctx, DepthSpaceKind::DepthToSpace)
}

fn space_to_depth(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    depth_space(ctx, DepthSpaceKind::SpaceToDepth)
}

fn det(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(Det))
}
