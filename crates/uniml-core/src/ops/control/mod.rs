//! Control flow (`If`, `Loop`, `Scan`), sequences (`Sequence*`,
//! `SplitToSequence`, `ConcatFromSequence`, `SequenceMap`) and optionals
//! (`Optional`, `OptionalHasElement`, `OptionalGetElement`).
//!
//! Ops owning a body ([`crate::graph::Subgraph`]) receive their formal ONNX
//! inputs first, then the values their bodies capture from enclosing scopes;
//! each op stores how many formal inputs its node has (`n_formal`).

pub mod common;
pub mod if_op;
pub mod loop_op;
pub mod optional;
pub mod scan;
pub mod sequence;
pub mod sequence_map;
pub mod split_concat;

pub use if_op::If;
pub use loop_op::Loop;
pub use optional::{OptionalGetElement, OptionalHasElement, OptionalOp};
pub use scan::Scan;
pub use sequence::{
    SequenceAt, SequenceConstruct, SequenceEmpty, SequenceErase, SequenceInsert, SequenceLength,
};
pub use sequence_map::SequenceMap;
pub use split_concat::{ConcatFromSequence, SplitToSequence};

#[cfg(test)]
mod tests;
