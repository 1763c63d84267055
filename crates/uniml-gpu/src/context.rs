//! Adapter and device creation, the pipeline cache, and the error seam that
//! turns wgpu's validation errors into `Error::Backend` instead of panics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uniml_data::{Error, Result};

/// A GPU device and queue plus what the backend caches per device
/// (compiled pipelines keyed by their generated WGSL).
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// Use the tiled GEMM kernels above the direct kernel's size limit even on a software adapter.
    tiled_gemm: std::sync::atomic::AtomicBool,
    /// The first uncaptured wgpu error since the last check.
    errors: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.info.name).field("backend", &self.info.backend).finish()
    }
}

#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HINT: &str = "On Linux without a GPU, install Mesa's lavapipe software Vulkan driver: `bash scripts/setup-gpu.sh`";
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_HINT: &str = "This JS engine offers no WebGPU adapter (navigator.gpu is missing or gave none); use backend 'wasm'";

pub(crate) fn backend_err(message: impl Into<String>) -> Error {
    Error::Backend { backend: "gpu".into(), message: message.into() }
}

impl GpuContext {
    /// Opens the best adapter of the compiled-in native backends (Vulkan on
    /// Linux and Windows, Metal on macOS, DX12 on Windows). `WGPU_BACKEND` and
    /// `WGPU_ADAPTER_NAME` narrow the choice. Fails with `Error::Backend`
    /// naming what was tried when no adapter exists.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Arc<GpuContext>> {
        pollster::block_on(Self::new_async())
    }

    /// [`GpuContext::new`] with the device's `max_storage_buffer_binding_size`
    /// lowered to `bytes` (tests: exercises the binding of large tensors as
    /// several ranges on any adapter). `UNIML_GPU_MAX_BINDING=<bytes>` does the
    /// same for every context.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_max_binding(bytes: u64) -> Result<Arc<GpuContext>> {
        pollster::block_on(Self::open(Some(bytes)))
    }

    /// [`GpuContext::new`] without blocking: the only way in a browser, where
    /// the adapter and device come from WebGPU's promises (`navigator.gpu`).
    pub async fn new_async() -> Result<Arc<GpuContext>> {
        let env = if cfg!(target_arch = "wasm32") { None } else { std::env::var("UNIML_GPU_MAX_BINDING").ok() };
        let max_binding = match env {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| backend_err(format!("UNIML_GPU_MAX_BINDING='{v}' is not a byte count")))?),
            None => None,
        };
        Self::open(max_binding).await
    }

    async fn open(max_binding: Option<u64>) -> Result<Arc<GpuContext>> {
        #[cfg(not(target_arch = "wasm32"))]
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        #[cfg(target_arch = "wasm32")]
        let desc = wgpu::InstanceDescriptor { backends: wgpu::Backends::BROWSER_WEBGPU, ..wgpu::InstanceDescriptor::new_without_display_handle() };
        let tried = format!("{:?}", desc.backends & wgpu::Instance::enabled_backend_features() & !wgpu::Backends::NOOP);
        let instance = wgpu::Instance::new(desc);
        let wanted_name = if cfg!(target_arch = "wasm32") { None } else { std::env::var("WGPU_ADAPTER_NAME").ok() };
        let adapter = match wanted_name {
            Some(name) => {
                let all = instance.enumerate_adapters(wgpu::Backends::all()).await;
                let lname = name.to_lowercase();
                all.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&lname)).ok_or_else(|| {
                    backend_err(format!("no GPU adapter named like WGPU_ADAPTER_NAME='{name}' (backends tried: {tried})"))
                })?
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                    ..Default::default()
                })
                .await
                .map_err(|e| backend_err(format!("no GPU adapter found (backends tried: {tried}; wgpu: {e}). {NO_ADAPTER_HINT}")))?,
        };
        let info = adapter.get_info();
        // Ask for everything the adapter offers: large storage bindings matter for weights.
        let mut limits = adapter.limits();
        if let Some(b) = max_binding {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(b.max(u64::from(limits.min_storage_buffer_offset_alignment)));
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("uniml"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| backend_err(format!("cannot open a device on adapter '{}' ({:?}): {e}", info.name, info.backend)))?;
        let errors: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        Ok(Arc::new(GpuContext { device, queue, info, limits, pipelines: Mutex::new(HashMap::new()), tiled_gemm: false.into(), errors }))
    }

    /// One line naming the adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Fails with the first uncaptured device error since the last check.
    pub(crate) fn check_errors(&self) -> Result<()> {
        let e = self.errors.lock().ok().and_then(|mut s| s.take());
        match e {
            Some(msg) => Err(backend_err(format!("device error: {msg}"))),
            None => Ok(()),
        }
    }

    /// The compute pipeline for a generated WGSL module (entry point `main`),
    /// compiled once per distinct source.
    pub(crate) fn pipeline(&self, label: &str, wgsl: &str) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.lock().map_err(|_| backend_err("pipeline cache poisoned"))?.get(wgsl) {
            return Ok(p.clone());
        }
        // Natively a compile error is caught here, with the WGSL in the message. WebGPU reports
        // it only through a promise: the run's own error scope (awaited at its end) catches it there.
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(backend_err(format!("kernel '{label}' failed to compile: {e}\n--- WGSL ---\n{wgsl}")));
        }
        let p = Arc::new(pipeline);
        if let Ok(mut cache) = self.pipelines.lock() {
            cache.insert(wgsl.to_string(), p.clone());
        }
        Ok(p)
    }

    /// Number of distinct compiled pipelines.
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Natively: blocks until the queue is idle, which also fires the
    /// `map_async` callbacks. In a browser the queue runs on its own and the
    /// callbacks fire from the event loop, so this only checks for errors.
    pub(crate) fn wait(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| backend_err(format!("waiting for the GPU failed: {e}")))?;
        self.check_errors()
    }

    /// Whether the adapter is a software or fallback one (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Sessions created afterwards use the tiled GEMM kernels for every product above the direct
    /// kernel's size limit also on a software adapter (where products of a small K take the direct
    /// kernel: see `kernels/matmul.rs`). For tests of the tiled kernels on lavapipe.
    pub fn force_tiled_gemm(&self) {
        self.tiled_gemm.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether large GEMMs of a small K take the direct kernel: software adapters, unless [`Self::force_tiled_gemm`].
    pub(crate) fn direct_gemm_for_small_k(&self) -> bool {
        self.is_software() && !self.tiled_gemm.load(std::sync::atomic::Ordering::Relaxed)
    }
}
