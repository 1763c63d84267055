use crate::DType;

/// The one typed error of uniml. Every message names what went wrong in model
/// terms (node, op, input name, expected vs got), never a bare code.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The model bytes are not a valid ONNX protobuf, or are internally inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),

    /// One or more ops the engine cannot run; all of them are listed at once.
    #[error("unsupported: {}", .0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; "))]
    Unsupported(Vec<Unsupported>),

    /// A run-time input is missing, unexpected, or of the wrong dtype/shape.
    #[error("input '{name}': {problem}")]
    Input { name: String, problem: String },

    /// A shape/dtype rule of an op failed (at load time or run time).
    #[error("node '{node}' ({op}): {message}")]
    Node { node: String, op: String, message: String },

    /// A tensor operation failed outside a node context.
    #[error("shape error: {0}")]
    Shape(String),

    #[error("dtype error: expected {expected}, got {got}")]
    DType { expected: DType, got: DType },

    /// A declared or computed size exceeds the session's memory limit.
    #[error("memory limit exceeded: {what} needs {requested} bytes, limit is {limit} bytes")]
    MemoryLimit { what: String, requested: u64, limit: u64 },

    /// External data (weights stored beside the model) could not be resolved.
    #[error("external data '{location}': {message}")]
    ExternalData { location: String, message: String },

    /// A backend (e.g. the GPU) is not available or failed.
    #[error("backend '{backend}': {message}")]
    Backend { backend: String, message: String },

    #[error("{0}")]
    Other(String),
}

/// One unsupported construct: an op type (with domain and node name) or an attribute/dtype of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unsupported {
    pub op: String,
    pub domain: String,
    pub node: String,
    pub opset: i64,
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let domain = if self.domain.is_empty() { "ai.onnx" } else { &self.domain };
        write!(f, "op {}::{} (opset {}) at node '{}': {}", domain, self.op, self.opset, self.node, self.reason)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps this error with the node it happened in (keeps existing node context).
    pub fn in_node(self, node: &str, op: &str) -> Error {
        match self {
            e @ (Error::Node { .. } | Error::Input { .. } | Error::MemoryLimit { .. } | Error::Unsupported(_)) => e,
            other => Error::Node { node: node.to_string(), op: op.to_string(), message: other.to_string() },
        }
    }
}

/// `bail!(fmt, ...)` returns an [`Error::Shape`]-style message error; used by op shape rules.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error::Shape(format!($($arg)*))) };
}

/// `ensure!(cond, fmt, ...)`: bail unless `cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => { if !$cond { $crate::bail!($($arg)*) } };
}

/// Builds one [`Unsupported`] entry.
pub fn error_unsupported(op: &str, domain: &str, node: &str, opset: i64, reason: impl Into<String>) -> Unsupported {
    Unsupported { op: op.into(), domain: domain.into(), node: node.into(), opset, reason: reason.into() }
}
