//! uniml-onnx: ONNX protobuf decoding (pure Rust via prost derive, no protoc)
//! and the importer from `ModelProto` to the core graph. Opset differences are
//! resolved here and nowhere else.

pub mod import;
pub mod node_ctx;
pub mod ops;
pub mod proto;
pub mod tensor_proto;

pub use import::{import_model, import_model_owned, ImportOptions, Imported};
pub use node_ctx::{Builder, NodeCtx};
