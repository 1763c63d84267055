//! Placement as a plan rewrite: each node of the optimised graph goes to the
//! GPU when a kernel supports its op, dtypes (f32) and attributes, else to
//! the CPU with the reason recorded. Transfers happen only at the boundaries
//! and are counted per run.

use std::fmt::Write;

use uniml_core::{DType, Graph, Plan};

use crate::kernels::{self, Support};

/// Where a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Gpu,
    Cpu,
}

/// One node's placement.
#[derive(Debug, Clone)]
pub struct NodePlacement {
    pub node: String,
    pub op: &'static str,
    pub device: Device,
    /// Why the node is on the CPU (or a note such as "zero-copy view").
    pub reason: Option<String>,
}

/// The placement report of a GPU session, in execution order.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`; empty for CPU sessions.
    pub adapter: String,
    pub nodes: Vec<NodePlacement>,
    /// Set when the session fell back to the CPU entirely (backend auto without an adapter).
    pub fallback: Option<String>,
}

impl Placement {
    /// A report for a session that runs every node on the CPU.
    pub fn all_cpu(ops: impl IntoIterator<Item = (String, &'static str)>, reason: &str) -> Placement {
        Placement {
            adapter: String::new(),
            nodes: ops.into_iter().map(|(node, op)| NodePlacement { node, op, device: Device::Cpu, reason: Some(reason.to_string()) }).collect(),
            fallback: None,
        }
    }
    pub fn gpu_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.device == Device::Gpu).count()
    }
    pub fn cpu_nodes(&self) -> usize {
        self.nodes.len() - self.gpu_nodes()
    }
    /// `41/44 nodes on GPU (llvmpipe …); CPU: 3 (Cast 2, Where 1)`.
    pub fn summary(&self) -> String {
        let mut cpu: Vec<(&str, usize)> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.device == Device::Cpu) {
            match cpu.iter_mut().find(|(op, _)| *op == n.op) {
                Some(e) => e.1 += 1,
                None => cpu.push((n.op, 1)),
            }
        }
        let list: Vec<String> = cpu.iter().map(|(op, c)| format!("{op} {c}")).collect();
        let mut s = format!("{}/{} nodes on GPU", self.gpu_nodes(), self.nodes.len());
        if !self.adapter.is_empty() {
            let _ = write!(s, " ({})", self.adapter);
        }
        if !list.is_empty() {
            let _ = write!(s, "; CPU: {} ({})", self.cpu_nodes(), list.join(", "));
        }
        if let Some(f) = &self.fallback {
            let _ = write!(s, "; fallback: {f}");
        }
        s
    }
    /// One line per node: index, device, op, node name, reason.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let dev = match n.device {
                Device::Gpu => "gpu",
                Device::Cpu => "cpu",
            };
            let _ = writeln!(s, "{i:>4}  {dev}  {:<22} {:<40} {}", n.op, n.node, n.reason.as_deref().unwrap_or(""));
        }
        s
    }
}

/// The static decision per node (indexed by node id) plus the report.
pub(crate) struct Decision {
    pub device: Vec<Device>,
    pub report: Vec<NodePlacement>,
}

pub(crate) fn place(g: &Graph, plan: &Plan) -> Decision {
    #[derive(Clone, Copy, PartialEq)]
    enum Res {
        Host,
        Gpu,
    }
    let mut res: Vec<Res> = g.values.iter().map(|v| if v.fact.konst.is_some() && v.fact.dtype == Some(DType::F32) { Res::Gpu } else { Res::Host }).collect();
    for &i in &g.inputs {
        res[i] = Res::Host;
    }
    let mut device = vec![Device::Cpu; g.nodes.len()];
    let mut report = Vec::with_capacity(plan.order.len());
    for &n in &plan.order {
        let node = &g.nodes[n];
        let (dev, reason) = match kernels::support(g, node) {
            Support::Kernel => (Device::Gpu, None),
            Support::View => match node.inputs.first().copied().flatten() {
                Some(v) if res[v] == Res::Gpu && g.konst(v).is_none() => (Device::Gpu, Some("zero-copy view".to_string())),
                _ => (Device::Cpu, Some("view of a host value".to_string())),
            },
            Support::No(reason) => {
                let on_gpu = node.inputs.iter().flatten().any(|&v| res[v] == Res::Gpu && g.konst(v).is_none());
                if on_gpu && (node.op.name() == "Shape" || node.op.name() == "Size") {
                    (Device::Cpu, Some("shape only: read from the GPU tensor's shape, no transfer".to_string()))
                } else {
                    (Device::Cpu, Some(reason))
                }
            }
        };
        device[n] = dev;
        for &o in &node.outputs {
            res[o] = if dev == Device::Gpu { Res::Gpu } else { Res::Host };
        }
        report.push(NodePlacement { node: node.name.clone(), op: node.op.name(), device: dev, reason });
    }
    Decision { device, report }
}
