//! The op contract: shape rules (`output_facts`) beside the CPU kernel (`eval`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use uniml_data::{DType, Error, Result, SymbolicShape, Tensor, TensorView};

use crate::parallel::Parallelism;

/// What is known about a value before running: dtype, (symbolic) shape and,
/// for constants, the tensor itself. Shape inference never reads non-constant data.
#[derive(Clone, Debug, Default)]
pub struct Fact {
    pub dtype: Option<DType>,
    pub shape: Option<SymbolicShape>,
    pub konst: Option<Arc<Tensor>>,
    /// The value is a sequence of tensors (dtype/shape describe the elements).
    pub is_sequence: bool,
}

impl Fact {
    pub fn unknown() -> Fact {
        Fact::default()
    }
    pub fn new(dtype: DType, shape: SymbolicShape) -> Fact {
        Fact { dtype: Some(dtype), shape: Some(shape), ..Fact::default() }
    }
    pub fn dtype_only(dtype: Option<DType>) -> Fact {
        Fact { dtype, ..Fact::default() }
    }
    pub fn constant(t: Arc<Tensor>) -> Fact {
        Fact {
            dtype: Some(t.dtype()),
            shape: Some(SymbolicShape::known(t.shape())),
            konst: Some(t),
            is_sequence: false,
        }
    }
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.rank())
    }
}

/// A run-time value: a tensor, a sequence of tensors, or an empty optional.
#[derive(Clone, Debug)]
pub enum Value {
    Tensor(Tensor),
    Sequence(Vec<Tensor>),
    /// An optional with no element (`Optional()`); an optional holding a value is that value.
    None,
}

impl Value {
    pub fn into_tensor(self) -> Result<Tensor> {
        match self {
            Value::Tensor(t) => Ok(t),
            Value::Sequence(_) => Err(Error::Other("expected a tensor, got a sequence".into())),
            Value::None => Err(Error::Other("expected a tensor, got an empty optional".into())),
        }
    }
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Tensor(t) => ValueRef::Tensor(t.view()),
            Value::Sequence(s) => ValueRef::Sequence(s),
            Value::None => ValueRef::None,
        }
    }
}

/// A borrowed run-time value, as handed to kernels.
#[derive(Clone, Debug)]
pub enum ValueRef<'a> {
    Tensor(TensorView<'a>),
    Sequence(&'a [Tensor]),
    None,
}

impl ValueRef<'_> {
    pub fn to_owned(&self) -> Value {
        match self {
            ValueRef::Tensor(t) => Value::Tensor(t.to_owned()),
            ValueRef::Sequence(s) => Value::Sequence(s.to_vec()),
            ValueRef::None => Value::None,
        }
    }
}

/// Where kernels get their output buffers and their parallelism from.
pub struct EvalCtx<'a> {
    pub par: &'a dyn Parallelism,
    pool: &'a mut BufferPool,
    /// The buffer of the input named by [`Op::output_reuses_input`], handed
    /// over by the executor because the value dies at this node (its slot in
    /// the kernel's `inputs` is then `None`).
    donated: Option<Tensor>,
}

impl<'a> EvalCtx<'a> {
    pub fn new(par: &'a dyn Parallelism, pool: &'a mut BufferPool) -> Self {
        EvalCtx { par, pool, donated: None }
    }
    /// Hands `t` (the input named by [`Op::output_reuses_input`]) to the kernel.
    pub(crate) fn donate(&mut self, t: Tensor) {
        self.donated = Some(t);
    }
    /// The donated input buffer, if the executor gave one (at most once).
    pub fn take_donated(&mut self) -> Option<Tensor> {
        self.donated.take()
    }
    /// A zero-filled output tensor, recycled from the plan's buffer pool when possible.
    pub fn alloc(&mut self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.pool.take(dtype, shape)
    }
    /// An output tensor whose contents are unspecified (leftovers of a recycled
    /// buffer, never uninitialised memory), for kernels that write every
    /// element: saves zeroing the buffer, a full pass over memory per node.
    pub fn alloc_overwritten(&mut self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.pool.take_overwritten(dtype, shape)
    }
    /// Runs a control-flow body on `inputs` (formal inputs, then captured values),
    /// sharing this run's buffer pool and parallelism.
    pub fn run_subgraph(&mut self, sub: &crate::graph::Subgraph, inputs: Vec<ValueRef<'_>>) -> Result<Vec<Value>> {
        if inputs.len() != sub.graph.inputs.len() {
            return Err(Error::Other(format!("subgraph expects {} inputs, got {}", sub.graph.inputs.len(), inputs.len())));
        }
        let bound = sub.graph.inputs.iter().copied().zip(inputs).collect();
        crate::exec::Executor::new(&sub.graph, &sub.plan).run_with_pool(self.pool, self.par, bound)
    }

    /// Returns a no-longer-needed temporary to the pool.
    pub fn release(&mut self, t: Tensor) {
        self.pool.give(t)
    }
}

/// Recycles tensor allocations between nodes and between runs. The plan frees
/// each intermediate after its last use, so steady-state runs reuse buffers
/// instead of calling the allocator, and peak memory tracks the live set.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Tensor>,
    /// Bytes currently handed out plus held free.
    total_bytes: u64,
    pub peak_bytes: u64,
    pub limit_bytes: u64,
    pub fresh_allocations: u64,
}

impl BufferPool {
    pub fn new(limit_bytes: u64) -> Self {
        BufferPool { limit_bytes, ..Default::default() }
    }

    /// A zero-filled buffer.
    pub fn take(&mut self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.take_as(dtype, shape, true)
    }

    /// A buffer whose contents are unspecified (a recycled buffer is not
    /// zeroed): only for outputs the kernel overwrites entirely.
    pub fn take_overwritten(&mut self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.take_as(dtype, shape, false)
    }

    fn take_as(&mut self, dtype: DType, shape: &[usize], zero: bool) -> Result<Tensor> {
        let recycle = |t: Tensor| if zero { t.recycle(dtype, shape) } else { t.recycle_unzeroed(dtype, shape) };
        let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let bytes = n.and_then(|n| n.checked_mul(dtype.size().max(1) as u64)).unwrap_or(u64::MAX);
        if bytes > self.limit_bytes {
            return Err(Error::MemoryLimit { what: format!("a {dtype} tensor of shape {shape:?}"), requested: bytes, limit: self.limit_bytes });
        }
        if dtype != DType::String {
            // Best fit: the smallest free buffer that holds `bytes`; else grow the
            // largest free one, so the pool holds at most as many buffers as were
            // ever live at once instead of accumulating every size seen.
            let mut best: Option<(usize, usize)> = None;
            let mut largest: Option<(usize, usize)> = None;
            for (i, t) in self.free.iter().enumerate() {
                let cap = t.heap_bytes();
                if cap as u64 >= bytes && best.is_none_or(|(_, c)| cap < c) {
                    best = Some((i, cap));
                }
                if largest.is_none_or(|(_, c)| cap > c) {
                    largest = Some((i, cap));
                }
            }
            if let Some((i, _)) = best {
                let t = self.free.swap_remove(i);
                return recycle(t);
            }
            if let Some((i, cap)) = largest {
                let grow = bytes - cap as u64;
                if self.total_bytes.saturating_add(grow) <= self.limit_bytes {
                    let t = self.free.swap_remove(i);
                    self.fresh_allocations += 1;
                    self.total_bytes += grow;
                    self.peak_bytes = self.peak_bytes.max(self.total_bytes);
                    return recycle(t);
                }
            }
        }
        if self.total_bytes.saturating_add(bytes) > self.limit_bytes {
            // Drop cached free buffers before giving up.
            self.trim();
        }
        self.fresh_allocations += 1;
        self.total_bytes = self.total_bytes.saturating_add(bytes);
        self.peak_bytes = self.peak_bytes.max(self.total_bytes);
        Tensor::zeros(dtype, shape)
    }

    pub fn give(&mut self, t: Tensor) {
        if t.dtype() != DType::String && t.heap_bytes() > 0 {
            self.free.push(t);
        }
    }

    /// Frees every cached buffer (memory is returned to the allocator).
    pub fn trim(&mut self) {
        let freed: u64 = self.free.iter().map(|t| t.heap_bytes() as u64).sum();
        self.total_bytes = self.total_bytes.saturating_sub(freed);
        self.free.clear();
    }
}

/// One operation of the graph: its shape/dtype rules and its CPU kernel.
///
/// Attributes are fields of the implementing struct, already validated by the
/// importer (which alone knows about opset differences).
pub trait Op: fmt::Debug + Send + Sync + Any {
    /// The op's name as users know it (the ONNX op type).
    fn name(&self) -> &'static str;

    /// Output dtypes and symbolic shapes from the inputs' facts. Must not read
    /// non-constant data. The default says nothing (unknown facts).
    fn output_facts(&self, inputs: &[&Fact], n_outputs: usize) -> Result<Vec<Fact>> {
        let _ = inputs;
        Ok(vec![Fact::unknown(); n_outputs])
    }

    /// Prepares constant inputs for the CPU kernel once the graph is final
    /// (packs weights for the GEMM, transposes recurrent weights). Called by
    /// [`Graph::pack_constants`](crate::Graph::pack_constants) for graphs that
    /// run on the CPU, after every pass: packing at import or at the first
    /// shape inference would pack weights that a pass then rewrites (Conv +
    /// BatchNormalization) or that run on the GPU. Kernels work without it.
    fn pack_constants(&self, inputs: &[&Fact]) {
        let _ = inputs;
    }

    /// The CPU kernel on tensors. Absent optional inputs are `None`.
    fn eval(&self, ctx: &mut EvalCtx, inputs: &[Option<TensorView>]) -> Result<Vec<Tensor>>;

    /// The kernel on general values (sequences, optionals). Ops on tensors only
    /// keep the default, which unwraps tensors and calls [`Op::eval`].
    fn eval_values(&self, ctx: &mut EvalCtx, inputs: &[Option<ValueRef>]) -> Result<Vec<Value>> {
        let mut tensors = Vec::with_capacity(inputs.len());
        for (i, v) in inputs.iter().enumerate() {
            tensors.push(match v {
                None | Some(ValueRef::None) => None,
                Some(ValueRef::Tensor(t)) => Some(t.clone()),
                Some(ValueRef::Sequence(_)) => {
                    return Err(Error::Other(format!("{} input {i} must be a tensor, got a sequence", self.name())))
                }
            });
        }
        Ok(self.eval(ctx, &tensors)?.into_iter().map(Value::Tensor).collect())
    }

    /// An input whose buffer the kernel can take over as its first output
    /// (same dtype and element count, every element read before it is
    /// overwritten; reshaping ops keep the bytes and change only the shape).
    /// When that value dies at this node and the executor owns it, it is
    /// passed through [`EvalCtx::take_donated`] instead of `inputs[i]`, which
    /// is then `None`; otherwise the input comes as usual.
    fn output_reuses_input(&self) -> Option<usize> {
        None
    }

    /// Whether the output depends only on the inputs (false for random ops), so
    /// nodes with all-constant inputs may be folded at load time.
    fn is_pure(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any;
    /// Mutable access for graph passes that rewrite an op in place (fusion).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Implements `as_any` and `as_any_mut` for an op type.
#[macro_export]
macro_rules! op_as_any {
    () => {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    };
}

/// Fetches required input `i` or fails with a clear message.
pub fn input<'a, 'b>(inputs: &'b [Option<TensorView<'a>>], i: usize, op: &str) -> Result<&'b TensorView<'a>> {
    inputs
        .get(i)
        .and_then(|x| x.as_ref())
        .ok_or_else(|| Error::Shape(format!("{op}: required input {i} is missing")))
}
