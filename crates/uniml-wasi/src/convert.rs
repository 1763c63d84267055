//! Conversions between the WIT types and the `uniml` facade's types.

use uniml::{DType, Dim};

use crate::exports::uniml::inference::types::{
    Dim as WDim, Error, InputError, IoInfo, MemoryLimitError, NodeError, Tensor, TensorType, UnsupportedOp,
};

pub fn dtype_out(d: DType) -> Option<TensorType> {
    Some(match d {
        DType::F32 => TensorType::F32,
        DType::F16 => TensorType::F16,
        DType::BF16 => TensorType::Bf16,
        DType::F64 => TensorType::F64,
        DType::I8 => TensorType::I8,
        DType::U8 => TensorType::U8,
        DType::I16 => TensorType::I16,
        DType::U16 => TensorType::U16,
        DType::I32 => TensorType::I32,
        DType::U32 => TensorType::U32,
        DType::I64 => TensorType::I64,
        DType::U64 => TensorType::U64,
        DType::Bool => TensorType::Bool,
        // Strings and the low-precision types have no WIT tensor type.
        _ => return None,
    })
}

pub fn dtype_in(t: TensorType) -> DType {
    match t {
        TensorType::F32 => DType::F32,
        TensorType::F16 => DType::F16,
        TensorType::Bf16 => DType::BF16,
        TensorType::F64 => DType::F64,
        TensorType::I8 => DType::I8,
        TensorType::U8 => DType::U8,
        TensorType::I16 => DType::I16,
        TensorType::U16 => DType::U16,
        TensorType::I32 => DType::I32,
        TensorType::U32 => DType::U32,
        TensorType::I64 => DType::I64,
        TensorType::U64 => DType::U64,
        TensorType::Bool => DType::Bool,
    }
}

pub fn io_info(i: &uniml::IoInfo) -> IoInfo {
    IoInfo {
        name: i.name.clone(),
        dtype: i.dtype.and_then(dtype_out),
        shape: i.shape.as_ref().map(|s| {
            s.0.iter()
                .map(|d| match d {
                    Dim::Known(k) => WDim::Fixed(*k as u64),
                    Dim::Sym(s) => WDim::Symbolic(s.clone()),
                    Dim::Unknown => WDim::Unknown,
                })
                .collect()
        }),
    }
}

/// A WIT tensor as an engine tensor; malformed tensors are `invalid-tensor`.
pub fn tensor_in(name: &str, t: &Tensor) -> Result<uniml::Tensor, Error> {
    let shape = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::InvalidTensor(format!("input '{name}': dim {d} is too large"))))
        .collect::<Result<Vec<usize>, Error>>()?;
    uniml::Tensor::from_raw_bytes(dtype_in(t.dtype), &shape, &t.data).map_err(|e| Error::InvalidTensor(format!("input '{name}': {e}")))
}

pub fn tensor_out(name: &str, t: &uniml::Tensor) -> Result<Tensor, Error> {
    let dtype = dtype_out(t.dtype()).ok_or_else(|| Error::Other(format!("output '{name}' is a string tensor, which this interface cannot return")))?;
    Ok(Tensor { shape: t.shape().iter().map(|&d| d as u64).collect(), dtype, data: t.as_bytes().to_vec() })
}

fn describe_given(t: &uniml::Tensor) -> String {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    format!("{} [{}]", t.dtype().name(), dims.join(","))
}

fn describe_declared(i: &uniml::IoInfo) -> String {
    let dt = i.dtype.map(|d| d.name()).unwrap_or("any dtype");
    match &i.shape {
        Some(s) => format!("{dt} {s}"),
        None => dt.to_string(),
    }
}

/// The engine's error as the WIT variant. `run` passes the session and the
/// given tensors so that input errors say what was expected and what was given.
pub fn error(e: uniml::Error, run: Option<(&uniml::Session, &[(&str, uniml::Tensor)])>) -> Error {
    let message = e.to_string();
    match e {
        uniml::Error::InvalidModel(m) => Error::InvalidModel(m),
        uniml::Error::Unsupported(list) => Error::UnsupportedOps(
            list.into_iter().map(|u| UnsupportedOp { op: u.op, domain: u.domain, node: u.node, opset: u.opset, reason: u.reason }).collect(),
        ),
        uniml::Error::Input { name, problem } => {
            // Several wrong inputs come joined by ", "; describe each of them.
            let mut names: Vec<&str> = Vec::new();
            for n in name.split(", ") {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            let (mut expected, mut got) = (Vec::new(), Vec::new());
            for n in &names {
                if let Some((session, given)) = run {
                    expected.push(session.inputs().iter().find(|i| i.name == *n).map(describe_declared).unwrap_or_else(|| "no such input".into()));
                    got.push(given.iter().find(|(g, _)| g == n).map(|(_, t)| describe_given(t)).unwrap_or_else(|| "nothing".into()));
                }
            }
            // The engine names an input once per problem ("x, x" for two wrong dims): name it once.
            Error::InvalidInput(InputError { input: names.join(", "), expected: expected.join("; "), got: got.join("; "), message: problem })
        }
        uniml::Error::Node { node, op, message } => Error::Runtime(NodeError { node, op, message }),
        uniml::Error::Shape(_) | uniml::Error::DType { .. } => Error::Runtime(NodeError { node: String::new(), op: String::new(), message }),
        uniml::Error::MemoryLimit { what, requested, limit } => Error::MemoryLimit(MemoryLimitError { what, requested, limit }),
        uniml::Error::ExternalData { .. } | uniml::Error::Backend { .. } | uniml::Error::Other(_) => Error::Other(message),
    }
}

/// One line, as the native engine prints the same error.
pub fn message(e: &Error) -> String {
    match e {
        Error::InvalidModel(m) => format!("invalid model: {m}"),
        Error::UnsupportedOps(list) => format!(
            "unsupported: {}",
            list.iter()
                .map(|u| format!("op {}::{} (opset {}) at node '{}': {}", if u.domain.is_empty() { "ai.onnx" } else { &u.domain }, u.op, u.opset, u.node, u.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Error::InvalidInput(i) => format!("input '{}': {}", i.input, i.message),
        Error::InvalidTensor(m) => format!("invalid tensor: {m}"),
        Error::MemoryLimit(m) => format!("memory limit exceeded: {} needs {} bytes, limit is {} bytes", m.what, m.requested, m.limit),
        Error::Runtime(n) if n.node.is_empty() => n.message.clone(),
        Error::Runtime(n) => format!("node '{}' ({}): {}", n.node, n.op, n.message),
        Error::Other(m) => m.clone(),
    }
}
