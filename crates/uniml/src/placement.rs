//! Where each node of a session runs (the GPU backend's placement report).

pub use uniml_core::placement::{Device, NodePlacement, Placement};
