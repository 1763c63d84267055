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

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/digits8x8_cnn.onnx")).expect("models/digits8x8_cnn.onnx")
    }

    fn backend() -> UnimlBackend {
        let mut b = UnimlBackend::new(SessionOptions::default().with_threads(1), Limits { max_model_bytes: 1 << 20, max_live_graphs: 2 });
        b.log_errors = false;
        b
    }

    fn wasi_f32(dims: &[u32], v: &[f32]) -> wasmtime_wasi_nn::Tensor {
        wasmtime_wasi_nn::Tensor::new(dims.to_vec(), TensorType::Fp32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    fn msg(e: BackendError) -> String {
        match e {
            BackendError::BackendAccess(inner) => format!("{inner:#}"),
            other => other.to_string(),
        }
    }

    #[test]
    fn runs_like_a_native_session_through_both_abis() {
        let model = digits();
        let b = backend();
        let g = b.load_graph(&[&model], ExecutionTarget::Cpu).unwrap();
        let x: Vec<f32> = (0..2 * 64).map(|i| (i % 17) as f32 / 16.0).collect();
        let native = Session::from_bytes(&model, SessionOptions::default().with_threads(1)).unwrap();
        let want = native.run(&[("input", TensorView::from_slice(&[2, 1, 8, 8], &x).unwrap())]).unwrap();
        // WIT: named inputs in, named outputs out.
        let mut c = g.context();
        let out = c.compute(Some(vec![NamedTensor { name: "input".into(), tensor: wasi_f32(&[2, 1, 8, 8], &x) }])).unwrap().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "logits");
        assert_eq!(out[0].tensor.dimensions, vec![2, 10]);
        assert_eq!(out[0].tensor.data, want[0].1.as_bytes());
        // WITX: set-input by index, compute, get-output by index.
        let mut c = g.context();
        c.set_input(Id::Index(0), &wasi_f32(&[2, 1, 8, 8], &x)).unwrap();
        c.compute(None).unwrap();
        assert_eq!(c.get_output(Id::Index(0)).unwrap().data, want[0].1.as_bytes());
        assert!(c.get_output(Id::Index(1)).is_err());
    }

    #[test]
    fn bad_models_and_targets_are_errors() {
        let model = digits();
        let mut b = backend();
        assert!(msg(b.load_graph(&[b"not onnx"], ExecutionTarget::Cpu).err().unwrap()).contains("invalid model"));
        assert!(b.load_graph(&[&model[..model.len() / 2]], ExecutionTarget::Cpu).is_err());
        assert!(matches!(b.load_graph(&[], ExecutionTarget::Cpu), Err(BackendError::InvalidNumberOfBuilders(1, 0))));
        assert!(matches!(b.load_graph(&[&model, &model], ExecutionTarget::Cpu), Err(BackendError::InvalidNumberOfBuilders(1, 2))));
        assert!(msg(b.load_graph(&[&model], ExecutionTarget::Gpu).err().unwrap()).contains("cpu only"));
        let big = vec![0u8; (1 << 20) + 1];
        assert!(msg(b.load_graph(&[&big], ExecutionTarget::Cpu).err().unwrap()).contains("limit"));
        // Live-graph cap: two alive, the third refused, one dropped, loading works again.
        let g1 = b.load(&[&model], ExecutionTarget::Cpu).unwrap();
        let _g2 = b.load(&[&model], ExecutionTarget::Cpu).unwrap();
        assert!(msg(b.load(&[&model], ExecutionTarget::Cpu).err().unwrap()).contains("too many graphs"));
        drop(g1);
        assert!(b.load(&[&model], ExecutionTarget::Cpu).is_ok());
    }

    #[test]
    fn bad_tensors_are_errors_and_the_context_keeps_working() {
        let model = digits();
        let g = backend().load_graph(&[&model], ExecutionTarget::Cpu).unwrap();
        let mut c = g.context();
        let x = vec![0.5f32; 64];
        let named = |name: &str, t: wasmtime_wasi_nn::Tensor| Some(vec![NamedTensor { name: name.into(), tensor: t }]);
        // wrong dims for the model
        assert!(msg(c.compute(named("input", wasi_f32(&[1, 1, 8, 9], &vec![0.0; 72]))).err().unwrap()).contains("input"));
        // data length does not match dims
        assert!(msg(c.compute(named("input", wasi_f32(&[1, 1, 8, 8], &x[..63]))).err().unwrap()).contains("needs 256 bytes, got 252"));
        // overflowing dims
        assert!(msg(c.compute(named("input", wasi_f32(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[0.0]))).err().unwrap()).contains("overflow"));
        // wrong dtype
        let t = wasmtime_wasi_nn::Tensor::new(vec![1, 1, 8, 8], TensorType::I64, vec![0; 64 * 8]);
        assert!(c.compute(named("input", t)).is_err());
        // unknown input name, missing input, input twice, bad index
        assert!(msg(c.compute(named("nope", wasi_f32(&[1, 1, 8, 8], &x))).err().unwrap()).contains("no input 'nope'"));
        assert!(msg(c.compute(Some(vec![])).err().unwrap()).contains("was not set"));
        let twice = vec![
            NamedTensor { name: "input".into(), tensor: wasi_f32(&[1, 1, 8, 8], &x) },
            NamedTensor { name: "input".into(), tensor: wasi_f32(&[1, 1, 8, 8], &x) },
        ];
        assert!(msg(c.compute(Some(twice)).err().unwrap()).contains("twice"));
        assert!(c.set_input(Id::Index(3), &wasi_f32(&[1, 1, 8, 8], &x)).is_err());
        assert!(c.get_output(Id::Index(0)).is_err());
        // still fine
        let out = c.compute(named("input", wasi_f32(&[1, 1, 8, 8], &x))).unwrap().unwrap();
        assert_eq!(out[0].tensor.dimensions, vec![1, 10]);
    }

    #[test]
    fn every_wasi_nn_tensor_type_maps_onto_uniml_and_back() {
        for ty in [TensorType::Fp16, TensorType::Fp32, TensorType::Fp64, TensorType::Bf16, TensorType::U8, TensorType::I32, TensorType::I64] {
            let d = dtype_of(ty);
            let t = wasmtime_wasi_nn::Tensor::new(vec![2, 3], ty, vec![1; 6 * d.size()]);
            let u = to_uniml(&t).unwrap();
            assert_eq!(u.dtype(), d);
            assert_eq!(to_wasi(&u).unwrap(), t);
        }
        assert!(tensor_type_of(DType::I8).is_err());
    }
}
