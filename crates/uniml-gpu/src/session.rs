//! The GPU executor: walks the plan, encodes GPU nodes into one command
//! encoder, runs CPU nodes through the core kernels, and moves data only at
//! placement boundaries (explicit, counted uploads and downloads).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use uniml_core::exec::ExecState;
use uniml_core::op::{EvalCtx, ValueRef};
use uniml_core::{DType, Fact, Graph, Parallelism, Plan, SymbolicShape, Tensor, Value, ValueId};
use uniml_data::{Error, Result};
use wgpu::util::DeviceExt;

use crate::context::{backend_err, GpuContext};
use crate::kernels::storage::Storage;
use crate::kernels::{self, Arg, Bind, Launch, LowerCx, OutSpec};
use crate::memory::{BufPool, GBuf, GTensor};
use crate::placement::{place, Device, Placement};
use crate::precision::{from_device, to_device, GpuPrecision};

/// Transfers and submissions of the last run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuRunStats {
    pub submits: u32,
    pub dispatches: u32,
    pub uploads: u32,
    pub upload_bytes: u64,
    pub downloads: u32,
    pub download_bytes: u64,
    /// Peak bytes of pooled device buffers (intermediates).
    pub pool_peak_bytes: u64,
    /// Bytes of weights resident on the device (halved by [`GpuPrecision::F16Storage`]).
    pub weight_bytes: u64,
    /// Outputs zeroed before their node: in f16 storage, those of kernels that fall back to
    /// per-element (atomic) stores because their threads cannot own whole words.
    pub cleared_outputs: u32,
}

/// A planned graph bound to a GPU: placement, resident weights and the
/// run-time caches (buffer pool, launches, bind groups).
pub struct GpuSession {
    ctx: Arc<GpuContext>,
    device_of: Vec<Device>,
    host_params: Vec<Vec<usize>>,
    placement: Placement,
    weights: HashMap<ValueId, GTensor>,
    weight_bytes: u64,
    storage: Storage,
    state: Mutex<RunState>,
}

impl std::fmt::Debug for GpuSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSession").field("adapter", &self.placement.adapter).finish()
    }
}

struct RunState {
    pool: BufPool,
    /// Read-back buffers (MAP_READ) by size class, reused across runs.
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Upload staging buffers (COPY_SRC) by size class, reused across runs; `uploads_busy`
    /// holds those written during the current run (each is written once per submission).
    uploads_free: HashMap<u64, Vec<wgpu::Buffer>>,
    uploads_busy: Vec<(u64, wgpu::Buffer)>,
    launches: HashMap<Vec<u64>, Arc<Launch>>,
    bind_groups: HashMap<Vec<u64>, wgpu::BindGroup>,
    cpu: ExecState,
    stats: GpuRunStats,
}

impl GpuSession {
    /// Places the nodes of `graph` (in `plan` order) and uploads the weights
    /// the GPU nodes read, once.
    pub fn new(ctx: Arc<GpuContext>, graph: &Graph, plan: &Plan, memory_limit_bytes: u64) -> Result<GpuSession> {
        Self::with_precision(ctx, graph, plan, memory_limit_bytes, GpuPrecision::F32)
    }

    /// [`GpuSession::new`] storing weights and intermediates in `precision`.
    pub fn with_precision(ctx: Arc<GpuContext>, graph: &Graph, plan: &Plan, memory_limit_bytes: u64, precision: GpuPrecision) -> Result<GpuSession> {
        let storage = Storage::new(&ctx.limits, precision == GpuPrecision::F16Storage);
        let decision = place(graph, plan);
        let host_params: Vec<Vec<usize>> = graph.nodes.iter().map(kernels::host_inputs).collect();
        let mut pool = BufPool::default();
        let mut weights = HashMap::new();
        let mut weight_bytes = 0u64;
        for (n, node) in graph.nodes.iter().enumerate() {
            if decision.device[n] != Device::Gpu {
                continue;
            }
            for (i, v) in node.inputs.iter().enumerate() {
                let Some(v) = *v else { continue };
                if host_params[n].contains(&i) || weights.contains_key(&v) {
                    continue;
                }
                let Some(t) = graph.konst(v) else { continue };
                if !matches!(t.dtype(), DType::F32 | DType::F16) {
                    continue;
                }
                let g = upload_weight(&ctx, &storage, &mut pool, &graph.values[v].name, t)?;
                weight_bytes += g.buf.bytes;
                weights.insert(v, g);
            }
        }
        ctx.check_errors()?;
        let placement = Placement { adapter: ctx.describe(), nodes: decision.report, fallback: None };
        Ok(GpuSession {
            ctx,
            device_of: decision.device,
            host_params,
            placement,
            weights,
            weight_bytes,
            storage,
            state: Mutex::new(RunState {
                pool,
                staging: HashMap::new(),
                uploads_free: HashMap::new(),
                uploads_busy: Vec::new(),
                launches: HashMap::new(),
                bind_groups: HashMap::new(),
                cpu: ExecState::new(memory_limit_bytes),
                stats: GpuRunStats::default(),
            }),
        })
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }
    /// Transfers and submissions of the last completed run.
    pub fn last_stats(&self) -> GpuRunStats {
        self.state.lock().map(|s| s.stats).unwrap_or_default()
    }

    /// Runs the graph; `inputs` are bound graph-input values. Returns the graph outputs in order, on the host.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run<'a>(&self, graph: &'a Graph, plan: &Plan, par: &dyn Parallelism, inputs: Vec<(ValueId, ValueRef<'a>)>) -> Result<Vec<Value>> {
        pollster::block_on(self.run_async(graph, plan, par, inputs))
    }

    /// [`GpuSession::run`] without blocking: reading results back from the
    /// device awaits the buffer mapping (a promise under WebGPU). Natively
    /// the future completes in its first poll.
    // The state lock is held across the read-back's await on purpose: a run owns the session's
    // buffers until it ends. Natively the future is driven by `block_on` on the calling thread;
    // in a browser a second run finds the lock taken and fails instead of waiting (the `try_lock` below).
    #[allow(clippy::await_holding_lock)]
    pub async fn run_async<'a>(&self, graph: &'a Graph, plan: &Plan, par: &dyn Parallelism, inputs: Vec<(ValueId, ValueRef<'a>)>) -> Result<Vec<Value>> {
        if self.device_of.len() != graph.nodes.len() {
            return Err(backend_err("internal: GPU session used with another graph"));
        }
        let mut guard = match self.state.try_lock() {
            Ok(g) => g,
            // Natively another thread's run finishes without us: wait for it. In a browser the
            // other run is suspended in this same thread, awaiting the GPU: waiting would never end.
            Err(std::sync::TryLockError::WouldBlock) if cfg!(not(target_arch = "wasm32")) => {
                self.state.lock().map_err(|_| backend_err("GPU session state poisoned"))?
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(backend_err("another run of this session is still in progress; await it before starting the next"))
            }
            Err(std::sync::TryLockError::Poisoned(_)) => return Err(backend_err("GPU session state poisoned")),
        };
        let st = &mut *guard;
        st.stats = GpuRunStats { weight_bytes: self.weight_bytes, ..Default::default() };
        let mut run = Run {
            ctx: &self.ctx,
            st,
            enc: None,
            pass: None,
            storage: self.storage,
            #[cfg(target_arch = "wasm32")]
            scope: Some(self.ctx.device.push_error_scope(wgpu::ErrorFilter::Validation)),
            #[cfg(target_arch = "wasm32")]
            scope_pop: None,
        };
        let result = run.execute(self, graph, plan, par, inputs).await;
        // Never leave work or mapped buffers behind, also on errors.
        let flushed = run.flush();
        let waited = self.ctx.wait();
        #[cfg(target_arch = "wasm32")]
        let scope_pop = run.scope_pop.take().or_else(|| run.scope.take().map(|s| Box::pin(s.pop()) as ScopePop));
        // The queue is idle (natively; in a browser later submissions are ordered after this
        // run's): the upload staging buffers can be written again by the next run.
        let st = &mut *guard;
        for (class, b) in st.uploads_busy.drain(..) {
            st.uploads_free.entry(class).or_default().push(b);
        }
        #[cfg(target_arch = "wasm32")]
        if let Some(e) = match scope_pop {
            Some(p) => p.await,
            None => None,
        } {
            return Err(backend_err(format!("the GPU rejected this run's work: {e}")));
        }
        let out = result?;
        flushed?;
        waited?;
        guard.stats.pool_peak_bytes = guard.pool.peak_bytes;
        Ok(out)
    }
}

/// Completes when a buffer's `map_async` callback has fired.
struct Mapped(Arc<Mutex<MapState>>);

#[derive(Default)]
struct MapState {
    result: Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    waker: Option<std::task::Waker>,
}

impl Mapped {
    /// Starts mapping `slice` for reading.
    fn read(slice: wgpu::BufferSlice<'_>) -> Mapped {
        let state = Arc::new(Mutex::new(MapState::default()));
        let sink = state.clone();
        slice.map_async(wgpu::MapMode::Read, move |res| {
            if let Ok(mut s) = sink.lock() {
                s.result = Some(res);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        });
        Mapped(state)
    }
}

impl std::future::Future for Mapped {
    type Output = Result<()>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        let Ok(mut s) = self.0.lock() else {
            return std::task::Poll::Ready(Err(backend_err("download state poisoned")));
        };
        match s.result.take() {
            Some(r) => std::task::Poll::Ready(r.map_err(|e| backend_err(format!("download failed: {e}")))),
            None => {
                s.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

/// Where a value lives during a run (possibly both places).
struct Slot<'a> {
    host: Option<HostVal<'a>>,
    gpu: Option<GTensor>,
}

enum HostVal<'a> {
    Ref(ValueRef<'a>),
    Own(Value),
}

impl HostVal<'_> {
    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            HostVal::Ref(r) => r.clone(),
            HostVal::Own(v) => v.as_ref(),
        }
    }
}

struct Run<'s> {
    ctx: &'s GpuContext,
    st: &'s mut RunState,
    enc: Option<wgpu::CommandEncoder>,
    /// The open compute pass: consecutive dispatches share one pass (wgpu synchronises
    /// storage-buffer hazards between the dispatches of a pass). Any other command
    /// (copy, clear, submit) ends it first.
    pass: Option<wgpu::ComputePass<'static>>,
    storage: Storage,
    /// WebGPU: the run's validation error scope, popped as soon as the run's last commands are
    /// submitted (`scope_pop`), so that the pop's round trip to the GPU process overlaps the
    /// read-back's instead of following it.
    #[cfg(target_arch = "wasm32")]
    scope: Option<wgpu::ErrorScopeGuard>,
    #[cfg(target_arch = "wasm32")]
    scope_pop: Option<ScopePop>,
}

#[cfg(target_arch = "wasm32")]
type ScopePop = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>;

impl Run<'_> {
    /// The run's encoder for a non-dispatch command (ends the open compute pass).
    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        let dev = &self.ctx.device;
        self.enc.get_or_insert_with(|| dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("uniml run") }))
    }

    /// The open compute pass, begun on the run's encoder if none is open.
    fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        let Run { ctx, enc, pass, .. } = self;
        pass.get_or_insert_with(|| {
            enc.get_or_insert_with(|| ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("uniml run") }))
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None })
                .forget_lifetime()
        })
    }

    fn flush(&mut self) -> Result<()> {
        self.pass = None;
        if let Some(enc) = self.enc.take() {
            self.ctx.queue.submit([enc.finish()]);
            self.st.stats.submits += 1;
        }
        self.ctx.check_errors()
    }

    /// Copies host data into a pooled device buffer, ordered after the work encoded so far.
    ///
    /// `queue.write_buffer` lands before the commands of the next submission. With nothing
    /// encoded yet (run start, or just after a submission) the data is written straight into the
    /// destination: all earlier users of that buffer were submitted before. Otherwise an
    /// earlier, still unsubmitted command may use the (pooled) destination, so the data goes to a
    /// pooled staging buffer, copied into place in encoder order.
    fn upload_bytes(&mut self, bytes: &[u8]) -> Result<GBuf> {
        let dst = self.st.pool.take(self.ctx, bytes.len() as u64)?;
        if !bytes.is_empty() {
            // write_buffer sizes are multiples of 4; the destination is rounded up to 256.
            let padded;
            let data: &[u8] = if bytes.len().is_multiple_of(4) {
                bytes
            } else {
                padded = [bytes, &[0u8; 3][..4 - bytes.len() % 4]].concat();
                &padded
            };
            if self.enc.is_none() {
                self.ctx.queue.write_buffer(&dst.buf, 0, data);
            } else {
                let class = (data.len() as u64).div_ceil(256) * 256;
                let staging = match self.st.uploads_free.get_mut(&class).and_then(|v| v.pop()) {
                    Some(b) => b,
                    None => self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("uniml upload"),
                        size: class,
                        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                };
                self.ctx.queue.write_buffer(&staging, 0, data);
                self.encoder().copy_buffer_to_buffer(&staging, 0, &dst.buf, 0, data.len() as u64);
                self.st.uploads_busy.push((class, staging));
            }
        }
        self.st.stats.uploads += 1;
        self.st.stats.upload_bytes += bytes.len() as u64;
        Ok(dst)
    }

    /// Downloads device tensors in one submission. `last`: no GPU command follows in this run.
    async fn download(&mut self, ts: &[&GTensor], last: bool) -> Result<Vec<Tensor>> {
        let mut stag = Vec::with_capacity(ts.len());
        for t in ts {
            let bytes = self.storage.bytes(t.len());
            let class = bytes.max(16).div_ceil(256) * 256;
            let buf = match self.st.staging.get_mut(&class).and_then(|v| v.pop()) {
                Some(b) => b,
                None => self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniml download"),
                    size: class,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            };
            if bytes > 0 {
                self.encoder().copy_buffer_to_buffer(&t.buf.buf, 0, &buf, 0, bytes);
            }
            stag.push((buf, class, bytes));
        }
        self.flush()?;
        #[cfg(target_arch = "wasm32")]
        if last {
            if let Some(s) = self.scope.take() {
                self.scope_pop = Some(Box::pin(s.pop()));
            }
        }
        #[cfg(not(target_arch = "wasm32"))]
        let _ = last;
        let maps: Vec<Option<Mapped>> = stag.iter().map(|(buf, _, bytes)| (*bytes > 0).then(|| Mapped::read(buf.slice(..*bytes)))).collect();
        self.ctx.wait()?;
        let mut out = Vec::with_capacity(ts.len());
        for ((t, (buf, class, bytes)), map) in ts.iter().zip(stag).zip(maps) {
            let data: Vec<u8> = if let Some(map) = map {
                map.await?;
                let v = {
                    let view = buf.slice(..bytes).get_mapped_range().map_err(|e| backend_err(format!("download failed: {e}")))?;
                    view.to_vec()
                };
                buf.unmap();
                v
            } else {
                Vec::new()
            };
            self.st.staging.entry(class).or_default().push(buf);
            self.st.stats.downloads += 1;
            self.st.stats.download_bytes += bytes;
            out.push(from_device(t.dtype, &t.shape, &data, &self.storage)?);
        }
        Ok(out)
    }

    async fn ensure_host(&mut self, slots: &mut [Slot<'_>], v: ValueId) -> Result<()> {
        if slots[v].host.is_some() {
            return Ok(());
        }
        let t = slots[v].gpu.clone().ok_or_else(|| backend_err("internal: value has neither a host nor a device copy"))?;
        let host = self.download(&[&t], false).await?.pop().ok_or_else(|| backend_err("internal: empty download"))?;
        slots[v].host = Some(HostVal::Own(Value::Tensor(host)));
        Ok(())
    }

    fn ensure_gpu(&mut self, slots: &mut [Slot<'_>], v: ValueId) -> Result<()> {
        if slots[v].gpu.is_some() {
            return Ok(());
        }
        let (bytes, shape, dtype): (Vec<u8>, Vec<usize>, DType) = match slots[v].host.as_ref().map(|h| h.as_ref()) {
            Some(ValueRef::Tensor(t)) => (to_device(t.dtype(), t.as_bytes(), &self.storage)?, t.shape().to_vec(), t.dtype()),
            _ => return Err(backend_err("internal: GPU kernels take tensors")),
        };
        let buf = self.upload_bytes(&bytes)?;
        slots[v].gpu = Some(GTensor { buf: Arc::new(buf), shape, dtype });
        Ok(())
    }

    async fn execute<'a>(&mut self, sess: &GpuSession, g: &'a Graph, plan: &Plan, par: &dyn Parallelism, inputs: Vec<(ValueId, ValueRef<'a>)>) -> Result<Vec<Value>> {
        let mut slots: Vec<Slot<'a>> = g
            .values
            .iter()
            .enumerate()
            .map(|(v, info)| Slot { host: info.fact.konst.as_ref().map(|t| HostVal::Ref(ValueRef::Tensor(t.view()))), gpu: sess.weights.get(&v).cloned() })
            .collect();
        for (id, v) in inputs {
            slots[id].host = Some(HostVal::Ref(v));
        }
        for (step, &n) in plan.order.iter().enumerate() {
            let node = &g.nodes[n];
            let r = if sess.device_of[n] == Device::Gpu { self.gpu_node(sess, g, n, &mut slots).await } else { self.cpu_node(g, n, par, &mut slots).await };
            r.map_err(|e| e.in_node(&node.name, node.op.name()))?;
            for &v in &plan.free_after[step] {
                let s = std::mem::replace(&mut slots[v], Slot { host: None, gpu: None });
                if let Some(t) = s.gpu {
                    self.st.pool.release(t);
                }
                if let Some(HostVal::Own(Value::Tensor(t))) = s.host {
                    self.st.cpu.pool.give(t);
                }
            }
        }
        // Graph outputs still on the device come back in one submission.
        let pending: Vec<ValueId> = g.outputs.iter().copied().filter(|&o| slots[o].host.is_none() && slots[o].gpu.is_some()).collect();
        if !pending.is_empty() {
            let ts: Vec<GTensor> = pending.iter().filter_map(|&o| slots[o].gpu.clone()).collect();
            let refs: Vec<&GTensor> = ts.iter().collect();
            let hosts = self.download(&refs, true).await?;
            for (&o, h) in pending.iter().zip(hosts) {
                slots[o].host = Some(HostVal::Own(Value::Tensor(h)));
            }
        }
        let mut out = Vec::with_capacity(g.outputs.len());
        for &o in &g.outputs {
            match slots[o].host.as_ref() {
                Some(h) => out.push(h.as_ref().to_owned()),
                None => return Err(Error::Other(format!("graph output '{}' was not computed", g.values[o].name))),
            }
        }
        for s in slots.iter_mut() {
            if let Some(t) = s.gpu.take() {
                self.st.pool.release(t);
            }
        }
        Ok(out)
    }

    async fn cpu_node(&mut self, g: &Graph, n: usize, par: &dyn Parallelism, slots: &mut [Slot<'_>]) -> Result<()> {
        let node = &g.nodes[n];
        // Shape-only ops on device tensors: the shape rules give the value, no transfer.
        if node.inputs.iter().flatten().any(|&v| slots[v].host.is_none()) {
            let facts: Vec<Fact> = node
                .inputs
                .iter()
                .map(|v| match v.and_then(|v| slots[v].gpu.as_ref()) {
                    Some(t) => Fact::new(t.dtype, SymbolicShape::known(&t.shape)),
                    None => Fact::unknown(),
                })
                .collect();
            if node.op.name() == "Shape" || node.op.name() == "Size" {
                let refs: Vec<&Fact> = facts.iter().collect();
                let outs = node.op.output_facts(&refs, node.outputs.len())?;
                if outs.iter().all(|f| f.konst.is_some()) && outs.len() == node.outputs.len() {
                    for (&o, f) in node.outputs.iter().zip(outs) {
                        let t = f.konst.map(|t| (*t).clone()).ok_or_else(|| backend_err("internal: shape"))?;
                        slots[o].host = Some(HostVal::Own(Value::Tensor(t)));
                    }
                    return Ok(());
                }
            }
            let need: Vec<ValueId> = node.inputs.iter().flatten().copied().filter(|&v| slots[v].host.is_none()).collect();
            let ts: Vec<GTensor> = need.iter().filter_map(|&v| slots[v].gpu.clone()).collect();
            let refs: Vec<&GTensor> = ts.iter().collect();
            let hosts = self.download(&refs, false).await?;
            for (&v, h) in need.iter().zip(hosts) {
                slots[v].host = Some(HostVal::Own(Value::Tensor(h)));
            }
        }
        let outs = {
            let mut args = Vec::with_capacity(node.inputs.len());
            for v in &node.inputs {
                args.push(match v {
                    None => None,
                    Some(v) => Some(slots[*v].host.as_ref().map(|h| h.as_ref()).ok_or_else(|| Error::Other(format!("input '{}' has no value (was it fed?)", g.values[*v].name)))?),
                });
            }
            let mut ctx = EvalCtx::new(par, &mut self.st.cpu.pool);
            node.op.eval_values(&mut ctx, &args)?
        };
        if outs.len() < node.outputs.len() {
            return Err(Error::Other(format!("kernel produced {} outputs, node declares {}", outs.len(), node.outputs.len())));
        }
        for (&o, v) in node.outputs.iter().zip(outs) {
            slots[o].host = Some(HostVal::Own(v));
        }
        Ok(())
    }

    async fn gpu_node(&mut self, sess: &GpuSession, g: &Graph, n: usize, slots: &mut [Slot<'_>]) -> Result<()> {
        let node = &g.nodes[n];
        let params = &sess.host_params[n];
        for (i, v) in node.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            if params.contains(&i) {
                self.ensure_host(slots, v).await?;
            } else {
                self.ensure_gpu(slots, v)?;
            }
        }
        // The launch for these input shapes (and host parameter values).
        let mut key: Vec<u64> = vec![n as u64];
        for (i, v) in node.inputs.iter().enumerate() {
            key.push(u64::MAX);
            let Some(v) = *v else { continue };
            if params.contains(&i) {
                if let Some(ValueRef::Tensor(t)) = slots[v].host.as_ref().map(|h| h.as_ref()) {
                    let mut h = DefaultHasher::new();
                    t.shape().hash(&mut h);
                    // Index inputs are uploaded per run; only their shape shapes the launch.
                    if node.op.name() != "Gather" {
                        t.as_bytes().hash(&mut h);
                    }
                    key.push(h.finish());
                }
            } else if let Some(t) = &slots[v].gpu {
                key.extend(t.shape.iter().map(|&d| d as u64));
            }
        }
        let launch = match self.st.launches.get(&key) {
            Some(l) => l.clone(),
            None => {
                let l = Arc::new(self.lower(node, params, slots)?);
                self.st.launches.insert(key, l.clone());
                l
            }
        };
        // Outputs: the dtype of the node's float inputs (f32 or f16).
        let dtype = node.inputs.iter().enumerate().find_map(|(i, v)| v.filter(|_| !params.contains(&i)).and_then(|v| slots[v].gpu.as_ref()).map(|t| t.dtype)).unwrap_or(DType::F32);
        let mut outs: Vec<GTensor> = Vec::with_capacity(launch.outputs.len());
        for spec in &launch.outputs {
            outs.push(match spec {
                OutSpec::New(shape) => GTensor { buf: Arc::new(self.new_output(shape.iter().product(), launch.clears())?), shape: shape.clone(), dtype },
                OutSpec::View { input, shape } => {
                    let v = node.inputs.get(*input).copied().flatten().ok_or_else(|| backend_err("internal: view of a missing input"))?;
                    let src = slots[v].gpu.as_ref().ok_or_else(|| backend_err("internal: view of a host value"))?;
                    GTensor { buf: src.buf.clone(), shape: shape.clone(), dtype: src.dtype }
                }
            });
        }
        for d in &launch.dispatches {
            let mut temps: Vec<GBuf> = Vec::new();
            let mut bufs: Vec<Arc<GBuf>> = Vec::with_capacity(d.binds.len());
            for b in &d.binds {
                bufs.push(match b {
                    Bind::In(i) => {
                        let v = node.inputs.get(*i).copied().flatten().ok_or_else(|| backend_err("internal: missing input"))?;
                        slots[v].gpu.as_ref().ok_or_else(|| backend_err("internal: input not on the device"))?.buf.clone()
                    }
                    Bind::Out(j) => outs.get(*j).ok_or_else(|| backend_err("internal: missing output"))?.buf.clone(),
                    Bind::Idx { input, dim } => {
                        let v = node.inputs.get(*input).copied().flatten().ok_or_else(|| backend_err("internal: missing indices"))?;
                        let ix = match slots[v].host.as_ref().map(|h| h.as_ref()) {
                            Some(ValueRef::Tensor(t)) => indices_i32(&t.to_owned(), *dim)?,
                            _ => return Err(backend_err("internal: indices not on the host")),
                        };
                        Arc::new(self.upload_bytes(bytemuck::cast_slice(if ix.is_empty() { &[0i32][..] } else { &ix }))?)
                    }
                });
            }
            let key: Vec<u64> = std::iter::once(Arc::as_ptr(&d.pipeline) as usize as u64)
                .chain(bufs.iter().map(|b| b.id))
                .chain(d.ranges.iter().flatten().map(|r| r.1))
                .collect();
            if !self.st.bind_groups.contains_key(&key) {
                if self.st.bind_groups.len() > 8192 {
                    self.st.bind_groups.clear();
                }
                let layout = d.pipeline.get_bind_group_layout(0);
                let entries = range_entries(&bufs, &d.ranges)?;
                let bg = self.ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries });
                self.st.bind_groups.insert(key.clone(), bg);
            }
            let bg = self.st.bind_groups.get(&key).cloned().ok_or_else(|| backend_err("internal: bind group"))?;
            {
                let pass = self.pass();
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &bg, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
            self.st.stats.dispatches += 1;
            // Index buffers go back to the pool; later users are ordered after this dispatch.
            for b in bufs {
                if let Ok(b) = Arc::try_unwrap(b) {
                    temps.push(b);
                }
            }
            for t in temps {
                self.st.pool.give(t);
            }
        }
        for (&o, t) in node.outputs.iter().zip(outs) {
            slots[o].gpu = Some(t);
        }
        Ok(())
    }

    fn lower(&self, node: &uniml_core::Node, params: &[usize], slots: &[Slot<'_>]) -> Result<Launch> {
        let mut facts = Vec::with_capacity(node.inputs.len());
        let mut args: Vec<Option<Arg>> = Vec::with_capacity(node.inputs.len());
        let mut host_tensors: Vec<Option<Tensor>> = Vec::with_capacity(node.inputs.len());
        for (i, v) in node.inputs.iter().enumerate() {
            let Some(v) = *v else {
                facts.push(Fact::unknown());
                host_tensors.push(None);
                continue;
            };
            if params.contains(&i) {
                let t = match slots[v].host.as_ref().map(|h| h.as_ref()) {
                    Some(ValueRef::Tensor(t)) => t.to_owned(),
                    _ => return Err(backend_err("internal: parameter not on the host")),
                };
                facts.push(Fact::constant(Arc::new(t.clone())));
                host_tensors.push(Some(t));
            } else {
                let t = slots[v].gpu.as_ref().ok_or_else(|| backend_err("internal: input not on the device"))?;
                facts.push(Fact::new(t.dtype, SymbolicShape::known(&t.shape)));
                host_tensors.push(None);
            }
        }
        for (i, v) in node.inputs.iter().enumerate() {
            args.push(v.map(|v| Arg {
                shape: match (&host_tensors[i], &slots[v].gpu) {
                    (Some(t), _) => t.shape().to_vec(),
                    (None, Some(t)) => t.shape.clone(),
                    _ => Vec::new(),
                },
                host: host_tensors[i].as_ref(),
            }));
        }
        let refs: Vec<&Fact> = facts.iter().collect();
        let out_facts = node.op.output_facts(&refs, node.outputs.len())?;
        let mut out_shapes = Vec::with_capacity(out_facts.len());
        for (j, f) in out_facts.iter().enumerate() {
            let s = f.shape.as_ref().and_then(|s| s.0.iter().map(|d| d.known()).collect::<Option<Vec<usize>>>());
            out_shapes.push(s.ok_or_else(|| backend_err(format!("the shape of output {j} cannot be inferred for the GPU kernel")))?);
        }
        kernels::lower(&LowerCx { ctx: self.ctx, node, args, out_shapes, storage: self.storage })
    }
}

/// Integer indices as i32 in `[0, dim)` (negative values count from the end).
fn indices_i32(t: &Tensor, dim: usize) -> Result<Vec<i32>> {
    let vals: Vec<i64> = match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.to_vec(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&v| v as i64).collect(),
        d => return Err(Error::DType { expected: DType::I64, got: d }),
    };
    vals.into_iter()
        .map(|v| {
            let w = if v < 0 { v + dim as i64 } else { v };
            if (0..dim as i64).contains(&w) {
                Ok(w as i32)
            } else {
                Err(Error::Shape(format!("Gather index {v} is out of range for a dim of size {dim}")))
            }
        })
        .collect()
}

/// Uploads a constant float tensor once, in the session's storage format.
fn upload_weight(ctx: &GpuContext, storage: &Storage, pool: &mut crate::memory::BufPool, name: &str, t: &Tensor) -> Result<GTensor> {
    let contents = to_device(t.dtype(), t.as_bytes(), storage)?;
    if contents.len() as u64 > ctx.limits.max_buffer_size {
        return Err(backend_err(format!(
            "weight '{name}' ({} bytes) exceeds this adapter's buffer size limit of {} bytes",
            contents.len(),
            ctx.limits.max_buffer_size
        )));
    }
    let buf = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(name), contents: &contents, usage: crate::memory::STORAGE });
    let id = pool.new_id();
    Ok(GTensor { buf: Arc::new(GBuf { buf, bytes: contents.len() as u64, id }), shape: t.shape().to_vec(), dtype: t.dtype() })
}

/// Bind group entries: each bind's buffer as its consecutive byte ranges.
fn range_entries<'b>(bufs: &'b [Arc<GBuf>], ranges: &[Vec<(u64, u64)>]) -> Result<Vec<wgpu::BindGroupEntry<'b>>> {
    if bufs.len() != ranges.len() {
        return Err(backend_err("internal: binding ranges do not match the buffers"));
    }
    let mut entries = Vec::new();
    for (b, rs) in bufs.iter().zip(ranges) {
        for &(offset, size) in rs {
            if offset + size > b.bytes {
                return Err(backend_err(format!("internal: binding range {offset}+{size} beyond a {}-byte buffer", b.bytes)));
            }
            let binding = entries.len() as u32;
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: &b.buf, offset, size: std::num::NonZeroU64::new(size) }),
            });
        }
    }
    Ok(entries)
}

impl Run<'_> {
    /// A pooled output buffer for `elems` elements; `clear`: zeroed first, for
    /// kernels that OR f16 halves into shared words (most write whole words and
    /// need no clearing, so consecutive dispatches keep sharing one compute pass).
    fn new_output(&mut self, elems: usize, clear: bool) -> Result<GBuf> {
        let bytes = self.storage.bytes(elems);
        let b = self.st.pool.take(self.ctx, bytes)?;
        if clear && self.storage.f16 {
            self.encoder().clear_buffer(&b.buf, 0, Some(bytes));
            self.st.stats.cleared_outputs += 1;
        }
        Ok(b)
    }
}
