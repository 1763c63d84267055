//! Reductions: `Reduce*` ([`reducer::Reduce`]), `ArgMax`/`ArgMin`
//! ([`arg::ArgReduce`]) and `CumSum` ([`cumsum::CumSum`]).
//!
//! All run on the `[outer, r, inner]` view of their input (see [`kernels`]):
//! innermost-axis reductions fold contiguous rows, middle-axis reductions
//! combine whole rows, so the f32 paths do no index math per element.
//!
//! # Hooks for graph passes
//! `Reduce.{kind, axes, keepdims}` are pub (e.g. to recognise a
//! `ReduceMean` over the last axis as part of a normalisation).

pub mod arg;
pub mod cumsum;
pub mod kernels;
pub mod reducer;

pub use arg::ArgReduce;
pub use cumsum::CumSum;
pub use reducer::{Reduce, ReduceKind};
