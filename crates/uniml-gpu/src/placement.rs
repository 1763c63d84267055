//! Placement as a plan rewrite: each node of the optimised graph goes to the
//! GPU when a kernel supports its op, dtypes (f32, f16) and attributes, else to
//! the CPU with the reason recorded. Transfers happen only at the boundaries
//! and are counted per run.

use uniml_core::{DType, Graph, Plan};

use crate::kernels::{self, Support};
pub use uniml_core::placement::{Device, NodePlacement, Placement};

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
    let mut res: Vec<Res> = g.values.iter().map(|v| if v.fact.konst.is_some() && matches!(v.fact.dtype, Some(DType::F32 | DType::F16)) { Res::Gpu } else { Res::Host }).collect();
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
