//! Elementwise ops: unary math and activations ([`unary::Unary`]), binary ops
//! with numpy broadcasting ([`binary::Binary`], [`binary::Pow`]), `Clip`,
//! variadic `Max`/`Min`/`Sum`/`Mean`, `Where`, `Cast`/`CastLike`, `SwiGLU`, and
//! `Identity`/`Dropout` (a pass-through unless in training mode).
//!
//! Every op is a thin layer over two generic kernels in [`kernel`]:
//! [`kernel::map_unary`] and [`kernel::map_binary`] (broadcast planned once as
//! contiguous inner blocks, so f32 same-shape/scalar/bias cases are tight
//! vectorisable loops, parallel over chunks above [`kernel::PAR_THRESHOLD`]).
//! Element semantics live in the [`num`] traits.
//!
//! # Hooks for graph passes
//! - `Unary.op`, `Binary.op` and `Clip.{min,max}` are pub, so a pass can fuse
//!   activations or recognise e.g. `Mul` by a constant.
//! - [`identity::Identity`] and [`identity::Dropout`] are pure pass-throughs a
//!   pass may remove.

/// Runs `$body` with `$T` bound to the Rust integer type of `$dtype`; other
/// dtypes go to `$fallback`.
macro_rules! dispatch_int {
    ($dtype:expr, $T:ident => $body:expr, _ => $fallback:expr) => {{
        use uniml_data::DType as __D;
        match $dtype {
            __D::I8 => {
                type $T = i8;
                $body
            }
            __D::U8 => {
                type $T = u8;
                $body
            }
            __D::I16 => {
                type $T = i16;
                $body
            }
            __D::U16 => {
                type $T = u16;
                $body
            }
            __D::I32 => {
                type $T = i32;
                $body
            }
            __D::U32 => {
                type $T = u32;
                $body
            }
            __D::I64 => {
                type $T = i64;
                $body
            }
            __D::U64 => {
                type $T = u64;
                $body
            }
            #[allow(unreachable_patterns)]
            _ => $fallback,
        }
    }};
}

pub mod binary;
pub mod cast;
pub mod clip;
pub mod identity;
pub mod kernel;
pub mod num;
pub mod swiglu;
pub mod unary;
pub mod variadic;
pub mod where_op;

pub use binary::{BinOp, Binary, Pow};
pub use cast::{Cast, CastLike, CastMode};
pub use clip::Clip;
pub use identity::{Dropout, Identity};
pub use swiglu::SwiGlu;
pub use unary::{Unary, UnaryOp};
pub use variadic::{Variadic, VariadicOp};
pub use where_op::Where;
