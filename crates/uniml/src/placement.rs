//! Where each node of a session runs (the GPU backend's placement report).

use std::fmt::Write;

/// Where a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Gpu,
}

/// One node's placement.
#[derive(Debug, Clone)]
pub struct NodePlacement {
    pub node: String,
    pub op: &'static str,
    pub device: Device,
    /// Why the node runs on the CPU (or a note such as "zero-copy view").
    pub reason: Option<String>,
}

/// Per-node placement of a session, in execution order.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The GPU adapter, empty for CPU sessions.
    pub adapter: String,
    pub nodes: Vec<NodePlacement>,
    /// Set when backend `auto` fell back to the CPU, with the reason.
    pub fallback: Option<String>,
}

impl Placement {
    pub fn gpu_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.device == Device::Gpu).count()
    }
    pub fn cpu_nodes(&self) -> usize {
        self.nodes.len() - self.gpu_nodes()
    }
    /// E.g. `41/44 nodes on GPU (llvmpipe …); CPU: 3 (Cast 2, Where 1)`.
    pub fn summary(&self) -> String {
        let mut cpu: Vec<(&str, usize)> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.device == Device::Cpu) {
            match cpu.iter_mut().find(|(op, _)| *op == n.op) {
                Some(e) => e.1 += 1,
                None => cpu.push((n.op, 1)),
            }
        }
        let mut s = format!("{}/{} nodes on GPU", self.gpu_nodes(), self.nodes.len());
        if !self.adapter.is_empty() {
            let _ = write!(s, " ({})", self.adapter);
        }
        if !cpu.is_empty() {
            let list: Vec<String> = cpu.iter().map(|(op, c)| format!("{op} {c}")).collect();
            let _ = write!(s, "; CPU: {} ({})", self.cpu_nodes(), list.join(", "));
        }
        if let Some(f) = &self.fallback {
            let _ = write!(s, "; fell back to CPU: {f}");
        }
        s
    }
    /// One line per node: index, device, op, node name, reason.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let dev = if n.device == Device::Gpu { "gpu" } else { "cpu" };
            let _ = writeln!(s, "{i:>4}  {dev}  {:<22} {:<40} {}", n.op, n.node, n.reason.as_deref().unwrap_or(""));
        }
        s
    }
}
