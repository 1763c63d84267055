use std::collections::BTreeMap;

use uniml_data::{DType, Result, SymbolicShape};
use uniml_onnx::proto::{GraphProto, ModelProto};

/// Name, dtype and (symbolic) shape of a model input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    pub name: String,
    pub dtype: Option<DType>,
    pub shape: Option<SymbolicShape>,
    /// The value is a sequence of tensors (dtype/shape describe the elements).
    pub is_sequence: bool,
}

impl std::fmt::Display for IoInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dt = self.dtype.map(|d| d.name()).unwrap_or("?");
        let sh = self.shape.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "[?]".into());
        if self.is_sequence {
            write!(f, "{}: sequence<{dt}{sh}>", self.name)
        } else {
            write!(f, "{}: {dt}{sh}", self.name)
        }
    }
}

/// What `uniml inspect` shows: read from the model bytes without building kernels,
/// so it works on models with unsupported ops too.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub ir_version: i64,
    pub producer: String,
    pub opsets: BTreeMap<String, i64>,
    pub inputs: Vec<IoInfo>,
    pub outputs: Vec<IoInfo>,
    /// Op type (with domain prefix when not the default) → node count, subgraphs included.
    pub op_histogram: BTreeMap<String, usize>,
    pub nodes: usize,
    pub initializers: usize,
    pub parameters: u64,
    pub parameter_bytes: u64,
    pub metadata: Vec<(String, String)>,
}

impl ModelInfo {
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelInfo> {
        let model = uniml_onnx::proto::decode_model(bytes)?;
        Ok(Self::from_proto(&model))
    }

    pub fn from_proto(model: &ModelProto) -> ModelInfo {
        let mut info = ModelInfo {
            ir_version: model.ir_version,
            producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
            opsets: model
                .opset_import
                .iter()
                .map(|o| (if o.domain.is_empty() { "ai.onnx".to_string() } else { o.domain.clone() }, o.version))
                .collect(),
            inputs: vec![],
            outputs: vec![],
            op_histogram: BTreeMap::new(),
            nodes: 0,
            initializers: 0,
            parameters: 0,
            parameter_bytes: 0,
            metadata: model.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
        };
        if let Some(g) = &model.graph {
            let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
            info.inputs = g.input.iter().filter(|v| !inits.contains(v.name.as_str())).map(io_info).collect();
            info.outputs = g.output.iter().map(io_info).collect();
            info.walk(g);
        }
        info
    }

    fn walk(&mut self, g: &GraphProto) {
        for t in &g.initializer {
            self.initializers += 1;
            let n: u64 = t.dims.iter().map(|&d| d.max(0) as u64).product();
            self.parameters += n;
            let size = DType::from_onnx_code(t.data_type).map(|d| d.size() as u64).unwrap_or(0);
            self.parameter_bytes += n * size;
        }
        for n in &g.node {
            self.nodes += 1;
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" { n.op_type.clone() } else { format!("{}::{}", n.domain, n.op_type) };
            *self.op_histogram.entry(key).or_default() += 1;
            for a in &n.attribute {
                if let Some(sub) = &a.g {
                    self.walk(sub);
                }
                for sub in &a.graphs {
                    self.walk(sub);
                }
            }
        }
    }
}

pub(crate) fn io_info(v: &uniml_onnx::proto::ValueInfoProto) -> IoInfo {
    use uniml_onnx::proto::type_proto::Value as V;
    let is_sequence = matches!(v.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(V::SequenceType(_)));
    let (dtype, shape) = v.r#type.as_ref().and_then(uniml_onnx::import::tensor_type).unwrap_or((None, None));
    IoInfo { name: v.name.clone(), dtype, shape, is_sequence }
}
