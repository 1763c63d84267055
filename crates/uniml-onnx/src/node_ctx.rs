//! What an op builder sees of one ONNX node: typed attribute access, the
//! opset in force, constant inputs, and a way to say "unsupported".

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use uniml_core::Op;
use uniml_data::{Error, Result, Tensor};

use crate::proto::{AttributeProto, GraphProto, NodeProto};

/// Builds a core op from an ONNX node. Opset differences are resolved here.
pub type Builder = fn(&NodeCtx) -> Result<Box<dyn Op>>;

/// Imports a subgraph attribute (If/Loop/Scan bodies) into a core graph.
/// Returns the graph and the outer-scope names it captured, in the order of
/// its extra graph inputs.
pub trait SubgraphImporter {
    fn import_subgraph(&self, g: &GraphProto, outer_scope: &[String]) -> Result<(uniml_core::Graph, Vec<String>)>;
}

pub struct NodeCtx<'a> {
    pub node: &'a NodeProto,
    /// Opset version of the node's domain.
    pub opset: i64,
    /// Values of inputs that are constant at import time (initializers, Constant outputs).
    pub const_inputs: Vec<Option<Arc<Tensor>>>,
    /// Names of attributes a builder read; the rest are reported by `check`.
    pub(crate) read_attrs: RefCell<BTreeSet<String>>,
    pub(crate) subgraphs: Option<&'a dyn SubgraphImporter>,
    pub(crate) limit_bytes: u64,
    /// Names visible to subgraphs of this node (the enclosing scopes).
    pub(crate) scope: Vec<String>,
    /// Outer values captured by this node's subgraphs; the importer appends
    /// them to the node's inputs, after the formal ones, in this order.
    pub(crate) captures: RefCell<Vec<String>>,
}

impl<'a> NodeCtx<'a> {
    pub fn new(node: &'a NodeProto, opset: i64, const_inputs: Vec<Option<Arc<Tensor>>>) -> Self {
        NodeCtx {
            node,
            opset,
            const_inputs,
            read_attrs: RefCell::new(BTreeSet::new()),
            subgraphs: None,
            limit_bytes: u64::MAX,
            scope: Vec::new(),
            captures: RefCell::new(Vec::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.node.name
    }
    pub fn op_type(&self) -> &str {
        &self.node.op_type
    }
    /// Number of inputs, counting absent optional inputs (empty names) in the middle.
    pub fn n_inputs(&self) -> usize {
        self.node.input.len()
    }
    pub fn has_input(&self, i: usize) -> bool {
        self.node.input.get(i).is_some_and(|s| !s.is_empty())
    }
    pub fn n_outputs(&self) -> usize {
        self.node.output.len()
    }
    /// The constant value of input `i`, if it is known at import time.
    pub fn const_input(&self, i: usize) -> Option<&Arc<Tensor>> {
        self.const_inputs.get(i).and_then(|c| c.as_ref())
    }

    fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.read_attrs.borrow_mut().insert(name.to_string());
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// An error for an attribute value or combination this engine does not support.
    pub fn unsupported(&self, reason: impl Into<String>) -> Error {
        Error::Unsupported(vec![uniml_data::error_unsupported(
            &self.node.op_type,
            &self.node.domain,
            &self.node.name,
            self.opset,
            reason,
        )])
    }

    pub fn invalid(&self, reason: impl std::fmt::Display) -> Error {
        Error::Node {
            node: self.node.name.clone(),
            op: self.node.op_type.clone(),
            message: reason.to_string(),
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.attr(name).map(|a| a.i)
    }
    pub fn int_or(&self, name: &str, default: i64) -> i64 {
        self.int(name).unwrap_or(default)
    }
    pub fn float(&self, name: &str) -> Option<f32> {
        self.attr(name).map(|a| a.f)
    }
    pub fn float_or(&self, name: &str, default: f32) -> f32 {
        self.float(name).unwrap_or(default)
    }
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.attr(name).map(|a| a.floats.clone())
    }
    pub fn string(&self, name: &str) -> Option<String> {
        self.attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_string())
    }
    pub fn strings(&self, name: &str) -> Option<Vec<String>> {
        self.attr(name).map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }
    /// A tensor-valued attribute (e.g. `Constant.value`, `ConstantOfShape.value`).
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self.attr(name).and_then(|a| a.t.as_ref()) {
            Some(t) => {
                crate::tensor_proto::tensor_from_proto(t, &crate::tensor_proto::NoExternalData, self.limit_bytes)
                    .map(Some)
            }
            None => Ok(None),
        }
    }
    /// A graph-valued attribute (If branch, Loop/Scan body) imported and
    /// planned. Values it reads from enclosing graphs become extra inputs of
    /// both the body and this node (see [`uniml_core::Subgraph`]).
    pub fn graph(&self, name: &str) -> Result<Option<uniml_core::Subgraph>> {
        let Some(g) = self.attr(name).and_then(|a| a.g.as_deref()) else { return Ok(None) };
        let imp = self.subgraphs.ok_or_else(|| self.unsupported("subgraphs are not available in this context"))?;
        let (graph, captured) = imp.import_subgraph(g, &self.scope)?;
        let mut all = self.captures.borrow_mut();
        let captures = captured
            .into_iter()
            .map(|n| match all.iter().position(|c| *c == n) {
                Some(i) => i,
                None => {
                    all.push(n);
                    all.len() - 1
                }
            })
            .collect();
        let plan = uniml_core::Plan::new(&graph)?;
        // Bodies run on the CPU and are not optimised further.
        graph.pack_constants();
        Ok(Some(uniml_core::Subgraph { graph, plan, captures }))
    }
    /// The raw graph attribute (to find the names a body reads from outer scope).
    pub fn graph_proto(&self, name: &str) -> Option<&'a GraphProto> {
        self.attr(name).and_then(|a| a.g.as_deref())
    }
}
