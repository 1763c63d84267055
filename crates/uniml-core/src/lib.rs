//! uniml-core: the typed graph IR with symbolic shapes, the ops (each with its
//! shape rules beside its CPU kernel), graph passes, the planner and the executor.
//!
//! Invariants:
//! - Portable: no `std::fs`, no threads, no clocks. Parallelism comes in through
//!   the [`Parallelism`] trait, supplied by the facade crate.
//! - Never panics on model input: every rule returns a typed [`uniml_data::Error`].
//! - Knows nothing about ONNX protobuf; the importer (uniml-onnx) builds [`Graph`]s.

pub mod exec;
pub mod graph;
pub mod op;
pub mod ops;
pub mod parallel;
pub mod placement;
pub mod passes;
pub mod plan;

pub use exec::{Executor, RunStats};
pub use graph::{Graph, Node, NodeId, Subgraph, ValueId, ValueInfo};
pub use op::{EvalCtx, Fact, Op, Value};
pub use parallel::{Parallelism, Serial};
pub use plan::Plan;
pub use uniml_data::{bail, ensure, DType, Dim, Error, Result, SymbolicShape, Tensor, TensorView};
