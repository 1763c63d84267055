use std::collections::HashMap;
use std::sync::Mutex;

use uniml_core::exec::{ExecState, StepObserver};
use uniml_core::op::ValueRef;
use uniml_core::{Executor, Graph, Parallelism, Plan, Serial, Value};
use uniml_data::{Dim, Error, Result, Tensor, TensorView, Unsupported};
use uniml_onnx::tensor_proto::ExternalDataMap;
use uniml_onnx::{import_model_owned, ImportOptions};

use crate::info::{io_info, IoInfo};
use crate::options::{Backend, SessionOptions};
use crate::placement::{Device, NodePlacement, Placement};

/// A loaded, optimised and planned model, ready to `run` many times.
///
/// `Session` is `Send + Sync`; concurrent `run`s each use their own recycled
/// buffer pool.
pub struct Session {
    graph: Graph,
    plan: Plan,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    metadata: Vec<(String, String)>,
    ignored: Vec<Unsupported>,
    states: Mutex<Vec<ExecState>>,
    par: Box<dyn Parallelism>,
    options: SessionOptions,
    placement: Placement,
    #[cfg(feature = "gpu")]
    gpu: Option<uniml_gpu::GpuSession>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("inputs", &self.inputs).field("outputs", &self.outputs).finish()
    }
}

impl Session {
    /// Parses, imports, optimises and plans a model from ONNX bytes.
    pub fn from_bytes(bytes: &[u8], options: SessionOptions) -> Result<Session> {
        let model = uniml_onnx::proto::decode_model(bytes)?;
        Self::from_model(model, options)
    }

    /// Loads a model from a reader (a file, JS memory, any stream that can tell its length):
    /// the protobuf is decoded as it is read, so the model's bytes are never in memory at once
    /// beside the decoded model, and each initializer's bytes are freed once its tensor exists.
    /// Peak memory while loading is about the weights plus the largest initializer.
    pub fn from_reader<R: std::io::Read + std::io::Seek>(mut reader: R, options: SessionOptions) -> Result<Session> {
        use std::io::SeekFrom;
        let io = |e: std::io::Error| Error::Other(format!("cannot read the model: {e}"));
        let start = reader.stream_position().map_err(io)?;
        let end = reader.seek(SeekFrom::End(0)).map_err(io)?;
        reader.seek(SeekFrom::Start(start)).map_err(io)?;
        let model = uniml_onnx::proto::decode_model_from_reader(reader, end.saturating_sub(start))?;
        Self::from_model(model, options)
    }

    /// Builds the session from a decoded model, which is dropped as soon as
    /// the graph holds its own tensors (so that peak memory at load is not
    /// bytes + protobuf + graph + packed weights at once).
    fn from_model(model: uniml_onnx::proto::ModelProto, mut options: SessionOptions) -> Result<Session> {
        #[cfg(not(feature = "gpu"))]
        if options.backend == Backend::Gpu {
            return Err(Error::Backend {
                backend: "gpu".into(),
                message: "this build of uniml has no GPU backend (build with feature `gpu`); use backend cpu or auto".into(),
            });
        }
        let graph_proto = model.graph.as_ref().ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
        let inits: std::collections::HashSet<&str> = graph_proto.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<IoInfo> = graph_proto.input.iter().filter(|v| !inits.contains(v.name.as_str())).map(io_info).collect();
        let outputs: Vec<IoInfo> = graph_proto.output.iter().map(io_info).collect();
        drop(inits);
        // The session keeps its options but not the external weight bytes: the graph copies what it needs.
        let ext = ExternalDataMap(std::mem::take(&mut options.external_data));
        // Consumes the model: each initializer's protobuf bytes are freed once its tensor exists.
        let imported = import_model_owned(model, &ImportOptions { external_data: &ext, limit_bytes: options.memory_limit_bytes })?;
        drop(ext);
        let mut graph = imported.graph;
        // Shape inference is advisory at load time: a rule that cannot decide
        // leaves facts unknown and kernels check shapes at run time.
        let _ = graph.infer_facts();
        if options.optimize {
            uniml_core::passes::optimize(&mut graph, uniml_core::ops::PASSES, options.memory_limit_bytes).or_else(|e| match e {
                // Optimisation failures never block loading; the unoptimised graph is still valid.
                Error::MemoryLimit { .. } => Err(e),
                _ => Ok(()),
            })?;
        }
        let mut plan = Plan::new(&graph)?;
        let par: Box<dyn Parallelism> = match &options.parallelism {
            Some(p) => Box::new(p.clone()),
            None => make_parallelism(options.threads)?,
        };
        // Everything on the CPU: the CPU-only fusions, a new plan, and the report.
        let optimize = options.optimize;
        let all_cpu = |graph: &mut Graph, plan: &mut Plan, reason: &str, fallback: Option<String>| -> Result<Placement> {
            if optimize {
                // Like `optimize`: only the memory limit stops loading.
                if let Err(e @ Error::MemoryLimit { .. }) = uniml_core::passes::run_passes(graph, uniml_core::ops::CPU_PASSES) {
                    return Err(e);
                }
                *plan = Plan::new(graph)?;
            }
            // Weights packed once, for the final graph.
            graph.pack_constants();
            Ok(Placement {
                adapter: String::new(),
                nodes: plan.order.iter().map(|&n| NodePlacement { node: graph.nodes[n].name.clone(), op: graph.nodes[n].op.name(), device: Device::Cpu, reason: Some(reason.to_string()) }).collect(),
                fallback,
            })
        };
        #[cfg(feature = "gpu")]
        let (gpu, placement) = match options.backend {
            Backend::Cpu => (None, all_cpu(&mut graph, &mut plan, "backend cpu", None)?),
            Backend::Gpu => {
                let g = crate::gpu::session(&graph, &plan, options.memory_limit_bytes, options.gpu_precision)?;
                let p = crate::gpu::placement(&g);
                (Some(g), p)
            }
            Backend::Auto => match crate::gpu::session(&graph, &plan, options.memory_limit_bytes, options.gpu_precision) {
                Ok(g) => {
                    let p = crate::gpu::placement(&g);
                    (Some(g), p)
                }
                Err(e) => {
                    eprintln!("uniml: backend auto: GPU unavailable, running on CPU: {e}");
                    (None, all_cpu(&mut graph, &mut plan, "backend auto fell back to CPU", Some(e.to_string()))?)
                }
            },
        };
        #[cfg(not(feature = "gpu"))]
        let placement = match options.backend {
            Backend::Auto => all_cpu(&mut graph, &mut plan, "backend auto: built without the gpu feature", Some("built without the gpu feature".into()))?,
            _ => all_cpu(&mut graph, &mut plan, "backend cpu", None)?,
        };
        Ok(Session {
            placement,
            #[cfg(feature = "gpu")]
            gpu,
            graph,
            plan,
            inputs,
            outputs,
            metadata: imported.metadata,
            ignored: imported.ignored_attributes,
            states: Mutex::new(Vec::new()),
            par,
            options,
        })
    }

    /// Loads a model file; external data files are read from beside it.
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn from_file(path: impl AsRef<std::path::Path>, mut options: SessionOptions) -> Result<Session> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
        let len = file.metadata().map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?.len();
        // Decoded as it is read: the file's bytes are never all in memory beside the model.
        let model = uniml_onnx::proto::decode_model_from_reader(file, len)?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        for loc in external_locations(&model) {
            if options.external_data.contains_key(&loc) {
                continue;
            }
            let file = dir.join(&loc);
            let data = std::fs::read(&file).map_err(|e| Error::ExternalData { location: loc.clone(), message: format!("cannot read {}: {e}", file.display()) })?;
            options.external_data.insert(loc, data);
        }
        Self::from_model(model, options)
    }

    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }
    /// Attributes present in the model that the engine ignores.
    pub fn ignored_attributes(&self) -> &[Unsupported] {
        &self.ignored
    }
    /// Number of nodes left after optimisation.
    pub fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }
    /// Op name of each node after optimisation, in execution order.
    /// The optimised graph's nodes as (name, op type), indexed as a
    /// [`StepObserver`] sees them.
    pub fn nodes(&self) -> Vec<(&str, &'static str)> {
        self.graph.nodes.iter().map(|n| (n.name.as_str(), n.op.name())).collect()
    }

    pub fn planned_ops(&self) -> Vec<&'static str> {
        self.plan.order.iter().map(|&n| self.graph.nodes[n].op.name()).collect()
    }
    /// Bytes of constant tensors (weights) held by the session.
    pub fn weight_bytes(&self) -> u64 {
        self.graph.constant_bytes()
    }
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }
    /// Threads this session's kernels run on (its [`Parallelism`]'s count; 1 = serial).
    pub fn threads(&self) -> usize {
        self.par.threads()
    }
    /// Where each node runs (all CPU unless the session uses the GPU backend).
    pub fn placement(&self) -> &Placement {
        &self.placement
    }
    /// Whether this session runs on the GPU backend.
    pub fn on_gpu(&self) -> bool {
        #[cfg(feature = "gpu")]
        return self.gpu.is_some();
        #[cfg(not(feature = "gpu"))]
        false
    }
    /// Transfers, submissions and dispatches of the last GPU run (None for CPU sessions).
    #[cfg(feature = "gpu")]
    pub fn gpu_stats(&self) -> Option<uniml_gpu::GpuRunStats> {
        self.gpu.as_ref().map(|g| g.last_stats())
    }

    /// Runs the model on named tensor inputs; returns the outputs in model order.
    pub fn run(&self, inputs: &[(&str, TensorView)]) -> Result<Vec<(String, Tensor)>> {
        let vals: Vec<(&str, ValueRef)> = inputs.iter().map(|(n, t)| (*n, ValueRef::Tensor(t.clone()))).collect();
        self.run_values(&vals)?
            .into_iter()
            .map(|(n, v)| match v {
                Value::Tensor(t) => Ok((n, t)),
                _ => Err(Error::Other(format!("output '{n}' is not a tensor; use run_values"))),
            })
            .collect()
    }

    /// [`Session::run`] without blocking: a GPU session awaits its results
    /// (the only way under WebGPU); a CPU session runs as `run` does.
    pub async fn run_async(&self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<(String, Tensor)>> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            let vals: Vec<(&str, ValueRef)> = inputs.iter().map(|(n, t)| (*n, ValueRef::Tensor(t.clone()))).collect();
            let bound = self.bind_inputs(&vals)?;
            let values = g.run_async(&self.graph, &self.plan, self.par.as_ref(), bound).await?;
            return self
                .outputs
                .iter()
                .zip(values)
                .map(|(o, v)| match v {
                    Value::Tensor(t) => Ok((o.name.clone(), t)),
                    _ => Err(Error::Other(format!("output '{}' is not a tensor", o.name))),
                })
                .collect();
        }
        self.run(inputs)
    }

    /// Runs the model on named values (tensors, sequences, optionals).
    pub fn run_values(&self, inputs: &[(&str, ValueRef)]) -> Result<Vec<(String, Value)>> {
        self.run_observed(inputs, None)
    }

    /// Like [`Session::run_values`], calling `observer` around every node
    /// (indices into [`Session::nodes`]): the hook for profilers.
    pub fn run_observed(&self, inputs: &[(&str, ValueRef)], observer: Option<&dyn StepObserver>) -> Result<Vec<(String, Value)>> {
        let mut bound = self.bind_inputs(inputs)?;
        #[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
        if let Some(g) = &self.gpu {
            let values = g.run(&self.graph, &self.plan, self.par.as_ref(), bound)?;
            return Ok(self.outputs.iter().map(|o| o.name.clone()).zip(values).collect());
        }
        #[cfg(all(feature = "gpu", target_arch = "wasm32"))]
        if self.gpu.is_some() {
            return Err(Error::Backend { backend: "gpu".into(), message: "a WebGPU session runs asynchronously: use run_async".into() });
        }
        let mut state = self.states.lock().map_err(|_| Error::Other("session state poisoned".into()))?.pop().unwrap_or_else(|| ExecState::new(self.options.memory_limit_bytes));
        let mut exec = Executor::new(&self.graph, &self.plan);
        if let Some(o) = observer {
            exec = exec.with_observer(o);
        }
        let par = self.par.as_ref();
        let mut result = Err(Error::Other("the run did not start".into()));
        par.run_inside(&mut || result = exec.run(&mut state, par, std::mem::take(&mut bound)));
        if let Ok(mut s) = self.states.lock() {
            s.push(state);
        }
        let values = result?;
        Ok(self.outputs.iter().map(|o| o.name.clone()).zip(values).collect())
    }

    /// Frees cached run-time buffers (they are re-created on the next run).
    pub fn trim_memory(&self) {
        if let Ok(mut s) = self.states.lock() {
            s.clear();
        }
    }

    /// Bytes held by the buffer pools (intermediates cached between runs): the peak seen
    /// (device buffers for a GPU session).
    pub fn pool_peak_bytes(&self) -> u64 {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.last_stats().pool_peak_bytes;
        }
        self.states.lock().map(|s| s.iter().map(|st| st.pool.peak_bytes).max().unwrap_or(0)).unwrap_or(0)
    }

    /// Checks names, dtypes, ranks and dims of the inputs (all problems at once)
    /// and binds symbolic dims consistently across inputs.
    fn bind_inputs<'a>(&self, given: &[(&str, ValueRef<'a>)]) -> Result<Vec<(usize, ValueRef<'a>)>> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut syms: HashMap<&str, (usize, &str)> = HashMap::new();
        for (name, v) in &self.options.dims {
            syms.insert(name.as_str(), (*v, "session options"));
        }
        let by_name: HashMap<&str, &ValueRef> = given.iter().map(|(n, v)| (*n, v)).collect();
        for (n, _) in given {
            if !self.inputs.iter().any(|i| i.name == *n) {
                let expected: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                problems.push((n.to_string(), format!("the model has no such input (inputs are: {})", expected.join(", "))));
            }
        }
        let mut bound = Vec::with_capacity(self.inputs.len());
        for (idx, info) in self.inputs.iter().enumerate() {
            let Some(v) = by_name.get(info.name.as_str()) else {
                problems.push((info.name.clone(), format!("missing (expected {})", describe(info))));
                continue;
            };
            if let ValueRef::Tensor(t) = v {
                if let Some(dt) = info.dtype {
                    if t.dtype() != dt && !info.is_sequence {
                        problems.push((info.name.clone(), format!("expected dtype {dt}, got {}", t.dtype())));
                    }
                }
                if let (Some(shape), false) = (&info.shape, info.is_sequence) {
                    if shape.rank() != t.shape().len() {
                        problems.push((info.name.clone(), format!("expected rank {} {shape}, got shape {:?}", shape.rank(), t.shape())));
                    } else {
                        for (axis, (d, &got)) in shape.0.iter().zip(t.shape()).enumerate() {
                            match d {
                                Dim::Known(k) if *k != got => {
                                    problems.push((info.name.clone(), format!("dim {axis} must be {k} (shape {shape}), got {got} (shape {:?})", t.shape())))
                                }
                                Dim::Sym(s) => match syms.get(s.as_str()) {
                                    Some((prev, from)) if *prev != got => problems.push((
                                        info.name.clone(),
                                        format!("dim {axis} is '{s}' = {got}, but '{s}' = {prev} from {from}"),
                                    )),
                                    Some(_) => {}
                                    None => {
                                        syms.insert(s.as_str(), (got, &info.name));
                                    }
                                },
                                _ => {}
                            }
                        }
                    }
                }
            }
            let vid = self.graph.inputs.get(idx).copied();
            match vid {
                Some(vid) => bound.push((vid, (*v).clone())),
                None => problems.push((info.name.clone(), "internal: input not bound in graph".into())),
            }
        }
        match problems.len() {
            0 => Ok(bound),
            1 => {
                let (name, problem) = problems.remove(0);
                Err(Error::Input { name, problem })
            }
            _ => Err(Error::Input {
                // Each input named once, even with several problems (e.g. two wrong dims).
                name: problems.iter().fold(Vec::<&str>::new(), |mut names, p| {
                    if !names.contains(&p.0.as_str()) {
                        names.push(&p.0);
                    }
                    names
                }).join(", "),
                problem: problems.iter().map(|(n, p)| format!("'{n}': {p}")).collect::<Vec<_>>().join("; "),
            }),
        }
    }
}

fn describe(info: &IoInfo) -> String {
    let dt = info.dtype.map(|d| d.name()).unwrap_or("any dtype");
    match &info.shape {
        Some(s) => format!("{dt} {s}"),
        None => dt.to_string(),
    }
}

fn make_parallelism(threads: usize) -> Result<Box<dyn Parallelism>> {
    #[cfg(feature = "threads")]
    {
        let n = if threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { threads };
        if n > 1 {
            return Ok(Box::new(crate::spin_pool::SpinPool::new(n)?));
        }
    }
    let _ = threads;
    Ok(Box::new(Serial))
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn external_locations(model: &uniml_onnx::proto::ModelProto) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(g) = &model.graph {
        for t in &g.initializer {
            if t.data_location == 1 {
                if let Some(e) = t.external_data.iter().find(|e| e.key == "location") {
                    if !out.contains(&e.value) {
                        out.push(e.value.clone());
                    }
                }
            }
        }
    }
    out
}
