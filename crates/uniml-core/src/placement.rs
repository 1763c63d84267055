//! Where each node of a session runs: the placement report that a backend
//! (the wgpu one in `uniml-gpu`) fills in and the facade shows. Plain data,
//! here so that every face can name it whether or not a GPU backend is built.

use std::fmt::Write;

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
