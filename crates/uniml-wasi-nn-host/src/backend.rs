//! The wasi-nn graph backend: ONNX bytes → `uniml::Session`, wasi-nn tensors ↔ uniml tensors.
//!
//! Everything a guest hands in is checked before it reaches the engine: encoding and target,
//! the number of builders, model size, live-graph count, tensor types and `dims × size == bytes`.
//! Engine errors come back as wasi-nn errors (`BackendError::BackendAccess` carrying the
//! engine's one-line message; wasmtime-wasi-nn reports them to a WIT guest as `runtime-error`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use anyhow::anyhow;
use uniml::{DType, Session, SessionOptions, Tensor, TensorView};
use wasmtime_wasi_nn::backend::{BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id, NamedTensor};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry};

/// Limits on what guests may ask of the backend.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest model (ONNX bytes) `load` accepts.
    pub max_model_bytes: usize,
    /// Most sessions alive at once (preloaded graphs included); a guest that loads in a loop
    /// without dropping gets `too many graphs` instead of exhausting host memory.
    pub max_live_graphs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_model_bytes: 1 << 30, max_live_graphs: 16 }
    }
}

/// The uniml backend for ONNX graphs on the CPU.
pub struct UnimlBackend {
    options: SessionOptions,
    limits: Limits,
    live: Mutex<Vec<Weak<Session>>>,
    /// When set, every error is also printed on the host's stderr in full (wasmtime-wasi-nn's
    /// `error.data()` only shows the outermost message of a backend error).
    pub log_errors: bool,
}

fn engine_error(what: &str, e: uniml::Error) -> BackendError {
    BackendError::BackendAccess(anyhow!("uniml: {what}: {e}"))
}

fn usage_error(msg: String) -> BackendError {
    BackendError::BackendAccess(anyhow!("uniml: {msg}"))
}

impl UnimlBackend {
    /// `options.memory_limit_bytes` bounds every tensor and the run-time buffer pool of each
    /// session (weights included), as for any uniml session.
    pub fn new(options: SessionOptions, limits: Limits) -> Self {
        UnimlBackend { options, limits, live: Mutex::new(Vec::new()), log_errors: true }
    }

    fn log(&self, e: BackendError) -> BackendError {
        if self.log_errors {
            match &e {
                BackendError::BackendAccess(inner) => eprintln!("uniml-nn-host: wasi-nn error: {inner:#}"),
                other => eprintln!("uniml-nn-host: wasi-nn error: {other}"),
            }
        }
        e
    }

    /// Builds a session from ONNX bytes: the one path of `load`, `load-by-name` preloading and tests.
    pub fn load_graph(&self, builders: &[&[u8]], target: ExecutionTarget) -> Result<UnimlGraph, BackendError> {
        self.load_inner(builders, target).map_err(|e| self.log(e))
    }

    fn load_inner(&self, builders: &[&[u8]], target: ExecutionTarget) -> Result<UnimlGraph, BackendError> {
        if !matches!(target, ExecutionTarget::Cpu) {
            return Err(usage_error(format!("execution target {target:?} is not supported by this host (uniml backend: cpu only)")));
        }
        if builders.len() != 1 {
            // ONNX is one protobuf; weights in external files are not reachable from a guest.
            return Err(BackendError::InvalidNumberOfBuilders(1, builders.len()));
        }
        let bytes = builders[0];
        if bytes.len() > self.limits.max_model_bytes {
            return Err(usage_error(format!("model is {} bytes, over this host's limit of {} bytes", bytes.len(), self.limits.max_model_bytes)));
        }
        {
            let mut live = self.live.lock().map_err(|_| usage_error("internal lock poisoned".into()))?;
            live.retain(|w| w.strong_count() > 0);
            if live.len() >= self.limits.max_live_graphs {
                return Err(usage_error(format!(
                    "too many graphs alive ({}); drop graphs and execution contexts before loading more",
                    live.len()
                )));
            }
        }
        let session = Session::from_bytes(bytes, self.options.clone()).map_err(|e| engine_error("load", e))?;
        let session = Arc::new(session);
        if let Ok(mut live) = self.live.lock() {
            live.push(Arc::downgrade(&session));
        }
        Ok(UnimlGraph { session, log_errors: self.log_errors })
    }
}

impl BackendInner for UnimlBackend {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    fn load(&mut self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, BackendError> {
        let g = self.load_graph(builders, target)?;
        Ok(Graph::from(Box::new(g) as Box<dyn BackendGraph>))
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        // Named graphs are preloaded by the host from files (`--model NAME=PATH`, `Registry`).
        None
    }
}

/// A loaded model. Execution contexts share the session (`Session` is `Send + Sync`; each run
/// uses its own recycled buffers).
pub struct UnimlGraph {
    session: Arc<Session>,
    log_errors: bool,
}

impl UnimlGraph {
    pub fn session(&self) -> &Session {
        &self.session
    }
    pub fn context(&self) -> UnimlContext {
        UnimlContext {
            session: self.session.clone(),
            inputs: vec![None; self.session.inputs().len()],
            outputs: Vec::new(),
            log_errors: self.log_errors,
        }
    }
}

impl BackendGraph for UnimlGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        Ok(ExecutionContext::from(Box::new(self.context()) as Box<dyn BackendExecutionContext>))
    }
}

/// One execution context: inputs set by index or name, outputs of the last `compute`.
pub struct UnimlContext {
    session: Arc<Session>,
    inputs: Vec<Option<Tensor>>,
    outputs: Vec<(String, Tensor)>,
    log_errors: bool,
}

/// wasi-nn tensor type → uniml dtype (every wasi-nn type has a uniml counterpart).
pub fn dtype_of(ty: TensorType) -> DType {
    match ty {
        TensorType::Fp16 => DType::F16,
        TensorType::Fp32 => DType::F32,
        TensorType::Fp64 => DType::F64,
        TensorType::Bf16 => DType::BF16,
        TensorType::U8 => DType::U8,
        TensorType::I32 => DType::I32,
        TensorType::I64 => DType::I64,
    }
}

/// uniml dtype → wasi-nn tensor type; uniml types wasi-nn cannot express are an error.
pub fn tensor_type_of(dtype: DType) -> Result<TensorType, BackendError> {
    Ok(match dtype {
        DType::F16 => TensorType::Fp16,
        DType::F32 => TensorType::Fp32,
        DType::F64 => TensorType::Fp64,
        DType::BF16 => TensorType::Bf16,
        DType::U8 => TensorType::U8,
        DType::I32 => TensorType::I32,
        DType::I64 => TensorType::I64,
        // Bool is one byte 0/1 in both: hand it out as u8 rather than failing the whole run.
        DType::Bool => TensorType::U8,
        other => return Err(BackendError::UnsupportedTensorType(format!("{other} (wasi-nn has fp16, fp32, fp64, bf16, u8, i32, i64)"))),
    })
}

/// A wasi-nn tensor as a uniml tensor: the dims × element size must be exactly the data length
/// (checked without overflow before anything is allocated).
pub fn to_uniml(t: &wasmtime_wasi_nn::Tensor) -> Result<Tensor, BackendError> {
    let dtype = dtype_of(t.ty);
    let shape: Vec<usize> = t.dimensions.iter().map(|&d| d as usize).collect();
    let want = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| usage_error(format!("tensor dimensions {:?} overflow", t.dimensions)))?;
    if want != t.data.len() {
        return Err(usage_error(format!(
            "{} tensor of dimensions {:?} needs {want} bytes, got {}",
            dtype.name(),
            t.dimensions,
            t.data.len()
        )));
    }
    Tensor::from_raw_bytes(dtype, &shape, &t.data).map_err(|e| engine_error("tensor", e))
}

/// A uniml tensor as a wasi-nn tensor (dims must fit u32).
pub fn to_wasi(t: &Tensor) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
    let ty = tensor_type_of(t.dtype())?;
    let dims = t
        .shape()
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| usage_error(format!("output dimension {d} does not fit wasi-nn's u32"))))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(wasmtime_wasi_nn::Tensor::new(dims, ty, t.as_bytes().to_vec()))
}

impl UnimlContext {
    fn input_index(&self, id: &Id) -> Result<usize, BackendError> {
        let inputs = self.session.inputs();
        match id {
            Id::Index(i) => {
                let i = *i as usize;
                if i < inputs.len() {
                    Ok(i)
                } else {
                    Err(usage_error(format!("input index {i} out of range: the model has {} input(s)", inputs.len())))
                }
            }
            Id::Name(n) => inputs.iter().position(|x| &x.name == n).ok_or_else(|| {
                usage_error(format!(
                    "the model has no input '{n}' (inputs: {})",
                    inputs.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            }),
        }
    }

    fn run(&mut self) -> Result<(), BackendError> {
        let infos = self.session.inputs();
        let mut feeds: Vec<(&str, TensorView)> = Vec::with_capacity(infos.len());
        for (info, t) in infos.iter().zip(&self.inputs) {
            match t {
                Some(t) => feeds.push((info.name.as_str(), t.view())),
                None => return Err(usage_error(format!("input '{}' was not set", info.name))),
            }
        }
        self.outputs.clear();
        self.outputs = self.session.run(&feeds).map_err(|e| engine_error("compute", e))?;
        Ok(())
    }

    fn set_input_inner(&mut self, id: Id, tensor: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        let i = self.input_index(&id)?;
        self.inputs[i] = Some(to_uniml(tensor)?);
        Ok(())
    }

    fn get_output_inner(&mut self, id: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        if self.outputs.is_empty() {
            return Err(usage_error("no outputs: call compute first".into()));
        }
        let t = match &id {
            Id::Index(i) => self.outputs.get(*i as usize).map(|(_, t)| t),
            Id::Name(n) => self.outputs.iter().find(|(name, _)| name == n).map(|(_, t)| t),
        };
        to_wasi(t.ok_or_else(|| usage_error(format!("no output {id:?} (the model has {} output(s))", self.outputs.len())))?)
    }

    fn compute_inner(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            // WITX ABI: inputs were set one by one; outputs are read with get_output.
            None => self.run().map(|_| None),
            // WIT ABI: named inputs in, every output out.
            Some(named) => {
                let mut seen = std::collections::HashSet::new();
                for n in named {
                    let i = self.input_index(&Id::Name(n.name.clone()))?;
                    if !seen.insert(i) {
                        return Err(usage_error(format!("input '{}' given twice", n.name)));
                    }
                    self.inputs[i] = Some(to_uniml(&n.tensor)?);
                }
                self.run()?;
                let out = self
                    .outputs
                    .iter()
                    .map(|(name, t)| Ok(NamedTensor { name: name.clone(), tensor: to_wasi(t)? }))
                    .collect::<Result<Vec<_>, BackendError>>()?;
                // Inputs are per call in the WIT ABI: do not keep them alive between calls.
                self.inputs.iter_mut().for_each(|t| *t = None);
                Ok(Some(out))
            }
        }
    }

    fn log(&self, e: BackendError) -> BackendError {
        if self.log_errors {
            match &e {
                BackendError::BackendAccess(inner) => eprintln!("uniml-nn-host: wasi-nn error: {inner:#}"),
                other => eprintln!("uniml-nn-host: wasi-nn error: {other}"),
            }
        }
        e
    }
}

impl BackendExecutionContext for UnimlContext {
    fn set_input(&mut self, id: Id, tensor: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        self.set_input_inner(id, tensor).map_err(|e| self.log(e))
    }

    fn get_output(&mut self, id: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        self.get_output_inner(id).map_err(|e| self.log(e))
    }

    fn compute(&mut self, inputs: Option<Vec<NamedTensor>>) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let r = self.compute_inner(inputs);
        if r.is_err() {
            self.inputs.iter_mut().for_each(|t| *t = None);
        }
        r.map_err(|e| self.log(e))
    }
}

/// Graphs preloaded by the host, for the guest's `load-by-name`.
#[derive(Default)]
pub struct NamedGraphs(HashMap<String, Graph>);

impl NamedGraphs {
    pub fn insert(&mut self, name: String, graph: UnimlGraph) {
        self.0.insert(name, Graph::from(Box::new(graph) as Box<dyn BackendGraph>));
    }
}

impl GraphRegistry for NamedGraphs {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.get(name)
    }
    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0.get_mut(name)
    }
}
