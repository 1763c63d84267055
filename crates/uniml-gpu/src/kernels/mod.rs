//! GPU kernels: each family has a WGSL template function beside its launcher.
//!
//! - [`support`] decides statically (from the optimised graph's facts) whether
//!   a node can run on the GPU, with the reason when it cannot;
//! - [`lower`] turns a node plus concrete input shapes into a [`Launch`]: the
//!   output shapes and the dispatches (pipeline, bindings, grid), cached by
//!   the session per node and input shapes.

pub(crate) mod conv_transpose;
pub(crate) mod elementwise;
pub(crate) mod layout;
pub(crate) mod matmul;
pub(crate) mod pool;
pub(crate) mod resize;
pub(crate) mod rows;
pub(crate) mod storage;
pub(crate) mod wgsl;

use std::sync::Arc;

use uniml_core::{DType, Graph, Node, Tensor, ValueId};
use uniml_data::Result;

use crate::context::GpuContext;

/// What a dispatch binds, in binding order.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    /// Node input `i` (an f32 tensor on the device).
    In(usize),
    /// Node output `i`.
    Out(usize),
    /// Host integer input `i` uploaded as i32 each run; values are checked
    /// against `dim` (negative ones wrap once).
    Idx { input: usize, dim: usize },
}

#[derive(Debug)]
pub(crate) struct Dispatch {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub binds: Vec<Bind>,
    /// Per bind, the byte ranges of its buffer bound as consecutive bindings
    /// (several when the tensor exceeds the binding size limit).
    pub ranges: storage::Ranges,
    pub groups: [u32; 3],
    /// Writes f16 outputs per element into shared words: they are cleared first.
    pub clears: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum OutSpec {
    /// A fresh pooled buffer.
    New(Vec<usize>),
    /// The same buffer as input `input` with another shape (zero-copy).
    View { input: usize, shape: Vec<usize> },
}

/// Everything needed to run one node for one set of input shapes.
#[derive(Debug)]
pub(crate) struct Launch {
    pub outputs: Vec<OutSpec>,
    pub dispatches: Vec<Dispatch>,
}

impl Launch {
    /// The node's fresh outputs must be zeroed before its dispatches (some
    /// dispatch ORs f16 halves into shared words).
    pub fn clears(&self) -> bool {
        self.dispatches.iter().any(|d| d.clears)
    }
}

/// A node input as the lowering sees it.
pub(crate) struct Arg<'a> {
    pub shape: Vec<usize>,
    /// The value when it lives on the host (parameters such as shapes, axes, clip bounds).
    pub host: Option<&'a Tensor>,
}

pub(crate) struct LowerCx<'a> {
    pub ctx: &'a GpuContext,
    pub node: &'a Node,
    pub args: Vec<Option<Arg<'a>>>,
    /// Output shapes from the op's own shape rules.
    pub out_shapes: Vec<Vec<usize>>,
    /// How this session stores device tensors.
    pub storage: storage::Storage,
}

impl LowerCx<'_> {
    pub fn shape(&self, i: usize) -> Result<&[usize]> {
        self.args.get(i).and_then(|a| a.as_ref()).map(|a| a.shape.as_slice()).ok_or_else(|| uniml_data::Error::Shape(format!("{}: input {i} is missing", self.node.op.name())))
    }
    pub fn has(&self, i: usize) -> bool {
        self.args.get(i).is_some_and(|a| a.is_some())
    }
    pub fn host(&self, i: usize) -> Option<&Tensor> {
        self.args.get(i).and_then(|a| a.as_ref()).and_then(|a| a.host)
    }
    pub fn out(&self, i: usize) -> Result<&[usize]> {
        self.out_shapes.get(i).map(|s| s.as_slice()).ok_or_else(|| uniml_data::Error::Shape(format!("{}: output {i} has no shape", self.node.op.name())))
    }
    /// Element count of the tensor a bind refers to.
    fn bind_elems(&self, b: &Bind) -> Result<usize> {
        Ok(match b {
            Bind::In(i) | Bind::Idx { input: i, .. } => self.shape(*i)?.iter().product(),
            Bind::Out(j) => self.out(*j)?.iter().product(),
        })
    }
    pub fn dispatch(&self, family: &str, wgsl: String, binds: Vec<Bind>, groups: [u32; 3]) -> Result<Dispatch> {
        let label = format!("{family} ({})", self.node.name);
        let elems = binds.iter().map(|b| self.bind_elems(b)).collect::<Result<Vec<usize>>>()?;
        let e = storage::expand(&wgsl, &elems, &self.storage)?;
        Ok(Dispatch { pipeline: self.ctx.pipeline(&label, &e.wgsl)?, binds, ranges: e.ranges, groups, clears: e.clears })
    }
    /// Whether 1-D kernels write whole output words, one thread per aligned
    /// pair of elements (f16 storage; in f32 one thread per element stays).
    pub fn pairs(&self) -> bool {
        self.storage.f16
    }
    /// One dispatch, one output of fresh memory.
    pub fn single(&self, family: &str, wgsl: String, binds: Vec<Bind>, groups: [u32; 3]) -> Result<Launch> {
        let d = self.dispatch(family, wgsl, binds, groups)?;
        Ok(Launch { outputs: vec![OutSpec::New(self.out(0)?.to_vec())], dispatches: vec![d] })
    }
}

/// Static placement decision for one node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Support {
    Kernel,
    /// Reshape-like: the output is the input's buffer (only when the input is on the device).
    View,
    No(String),
}

/// What the static checks read from the graph.
pub(crate) struct Facts<'a> {
    pub g: &'a Graph,
    pub node: &'a Node,
}

impl Facts<'_> {
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.node.inputs.get(i).copied().flatten()
    }
    pub fn dtype(&self, i: usize) -> Option<DType> {
        self.input(i).and_then(|v| self.g.values[v].fact.dtype)
    }
    pub fn rank(&self, i: usize) -> Option<usize> {
        self.input(i).and_then(|v| self.g.values[v].fact.rank())
    }
    pub fn konst(&self, i: usize) -> Option<&Arc<Tensor>> {
        self.input(i).and_then(|v| self.g.konst(v))
    }
    /// Inputs `idx` exist and are floats of one dtype, f32 or f16 (on the
    /// device both are f32, or both f16 in f16 storage mode; kernels compute in f32).
    pub fn f32s(&self, idx: &[usize]) -> std::result::Result<(), String> {
        let first = idx.first().and_then(|&i| self.dtype(i));
        for &i in idx {
            match self.dtype(i) {
                Some(d @ (DType::F32 | DType::F16)) if Some(d) == first => {}
                Some(d @ (DType::F32 | DType::F16)) => return Err(format!("input {i} is {d}, input {} is {}: mixed float dtypes run on CPU", idx[0], first.map(|f| f.to_string()).unwrap_or_default())),
                Some(d) => return Err(format!("input {i} is {d}; GPU kernels take f32 or f16")),
                None if self.input(i).is_none() => return Err(format!("input {i} is absent")),
                None => return Err(format!("dtype of input {i} unknown")),
            }
        }
        Ok(())
    }
    pub fn outputs(&self, n: usize) -> std::result::Result<(), String> {
        if self.node.outputs.len() > n {
            return Err(format!("{} outputs requested; the GPU kernel produces {n}", self.node.outputs.len()));
        }
        Ok(())
    }
}

/// Inputs a GPU node reads on the host (shapes, axes, bounds, indices).
pub(crate) fn host_inputs(node: &Node) -> Vec<usize> {
    if let Some(r) = node.op.as_any().downcast_ref::<uniml_core::ops::nn::resize::Resize>() {
        return resize::host_inputs(r);
    }
    let name = node.op.name();
    match name {
        "Reshape" | "Squeeze" | "Unsqueeze" | "Expand" | "Gather" => vec![1],
        "Clip" => vec![1, 2],
        "Slice" => vec![1, 2, 3, 4],
        n if n.starts_with("Reduce") => vec![1],
        _ => vec![],
    }
}

/// Can this node run on the GPU?
pub(crate) fn support(g: &Graph, node: &Node) -> Support {
    let f = Facts { g, node };
    let r = matmul::support(&f)
        .or_else(|| elementwise::support(&f))
        .or_else(|| pool::support(&f))
        .or_else(|| rows::support(&f))
        .or_else(|| layout::support(&f))
        .or_else(|| resize::support(&f))
        .or_else(|| conv_transpose::support(&f));
    match r {
        Some(Ok(s)) => s,
        Some(Err(reason)) => Support::No(reason),
        None => Support::No("no GPU kernel for this op".into()),
    }
}

/// Builds the launch of a GPU-placed node for concrete input shapes.
pub(crate) fn lower(cx: &LowerCx) -> Result<Launch> {
    if let Some(l) = matmul::lower(cx) {
        return l;
    }
    if let Some(l) = elementwise::lower(cx) {
        return l;
    }
    if let Some(l) = pool::lower(cx) {
        return l;
    }
    if let Some(l) = rows::lower(cx) {
        return l;
    }
    if let Some(l) = layout::lower(cx) {
        return l;
    }
    if let Some(l) = resize::lower(cx) {
        return l;
    }
    if let Some(l) = conv_transpose::lower(cx) {
        return l;
    }
    Err(crate::context::backend_err(format!("internal: no GPU kernel for {} node '{}'", cx.node.op.name(), cx.node.name)))
}
