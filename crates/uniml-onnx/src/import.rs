//! ModelProto → core [`Graph`]: initializers, inputs with symbolic dims,
//! Constant nodes, and one op builder per node. Every unsupported op in the
//! model is collected and reported at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uniml_core::{Fact, Graph, ValueId};
use uniml_data::{error_unsupported, DType, Error, Result, SymbolicShape, Tensor, Unsupported};

use crate::node_ctx::{NodeCtx, SubgraphImporter};
use crate::proto::{GraphProto, ModelProto, TypeProto, ValueInfoProto};
use crate::tensor_proto::{tensor_from_proto, ExternalData};

/// Oldest and newest default-domain opsets this importer understands.
pub const MIN_OPSET: i64 = 1;
/// Newest default-domain opset known (onnx 1.23 defines up to 28); ops whose
/// semantics changed after a builder was written are rejected by that builder.
pub const MAX_OPSET: i64 = 28;

/// Knobs for importing.
pub struct ImportOptions<'a> {
    pub external_data: &'a dyn ExternalData,
    /// Refuse any single tensor (initializer, attribute) larger than this.
    pub limit_bytes: u64,
}

/// A graph plus what `uniml check` reports beside hard errors.
pub struct Imported {
    pub graph: Graph,
    /// Attributes present on nodes that no builder read (ignored by the engine).
    pub ignored_attributes: Vec<Unsupported>,
    pub opsets: BTreeMap<String, i64>,
    pub metadata: Vec<(String, String)>,
}

/// Imports a decoded model.
pub fn import_model(model: &ModelProto, opts: &ImportOptions) -> Result<Imported> {
    import_impl(model, Vec::new(), opts)
}

/// As [`import_model`], consuming the model: the main graph's initializers are converted one
/// at a time and each one's protobuf data is freed as soon as its tensor exists, so that
/// loading holds about the weights plus the largest initializer, not the weights twice.
pub fn import_model_owned(mut model: ModelProto, opts: &ImportOptions) -> Result<Imported> {
    if model.ir_version < 3 {
        return import_model(&model, opts);
    }
    let inits = model.graph.as_mut().map(|g| std::mem::take(&mut g.initializer)).unwrap_or_default();
    let mut consts = Vec::with_capacity(inits.len());
    for init in inits {
        let t = tensor_from_proto(&init, opts.external_data, opts.limit_bytes)?;
        consts.push((init.name, t));
    }
    import_impl(&model, consts, opts)
}

/// `consts`: the main graph's initializers, already converted (in `initializer` order).
fn import_impl(model: &ModelProto, consts: Vec<(String, Tensor)>, opts: &ImportOptions) -> Result<Imported> {
    if model.ir_version < 3 {
        return Err(Error::InvalidModel(format!(
            "IR version {} is not supported (need 3 or newer)",
            model.ir_version
        )));
    }
    let mut opsets = BTreeMap::new();
    for o in &model.opset_import {
        let d = if o.domain == "ai.onnx" {
            String::new()
        } else {
            o.domain.clone()
        };
        opsets.insert(d, o.version);
    }
    if model.ir_version >= 3 && opsets.is_empty() {
        // IR v3+ requires opset_import; be lenient and assume a recent one.
        opsets.insert(String::new(), MAX_OPSET);
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    let importer = GraphImporter { opsets: &opsets, opts };
    let mut ignored = Vec::new();
    let g = importer.import_with(graph, consts, &[], &mut ignored)?;
    Ok(Imported {
        graph: g,
        ignored_attributes: ignored,
        opsets,
        metadata: model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    })
}

/// Tensor dtype and symbolic shape declared by a TypeProto (None if not a tensor type).
pub fn tensor_type(tp: &TypeProto) -> Option<(Option<DType>, Option<SymbolicShape>)> {
    use crate::proto::type_proto::Value as V;
    match tp.value.as_ref()? {
        V::TensorType(t) => {
            let dtype = DType::from_onnx_code(t.elem_type);
            let shape = t.shape.as_ref().map(|s| {
                SymbolicShape(
                    s.dim
                        .iter()
                        .map(|d| {
                            use crate::proto::tensor_shape_proto::dimension::Value as DV;
                            match &d.value {
                                Some(DV::DimValue(v)) if *v >= 0 => uniml_data::Dim::Known(*v as usize),
                                Some(DV::DimParam(p)) if !p.is_empty() => uniml_data::Dim::Sym(p.clone()),
                                _ => uniml_data::Dim::Unknown,
                            }
                        })
                        .collect(),
                )
            });
            Some((dtype, shape))
        }
        V::SequenceType(s) => s.elem_type.as_deref().and_then(tensor_type),
        V::OptionalType(o) => o.elem_type.as_deref().and_then(tensor_type),
        _ => None,
    }
}

fn declared_fact(vi: &ValueInfoProto) -> Fact {
    use crate::proto::type_proto::Value as V;
    let Some(tp) = vi.r#type.as_ref() else {
        return Fact::unknown();
    };
    let is_sequence = matches!(tp.value, Some(V::SequenceType(_)));
    match tensor_type(tp) {
        Some((dtype, shape)) => Fact {
            dtype,
            shape,
            konst: None,
            is_sequence,
        },
        None => Fact {
            is_sequence,
            ..Fact::unknown()
        },
    }
}

struct GraphImporter<'a> {
    opsets: &'a BTreeMap<String, i64>,
    opts: &'a ImportOptions<'a>,
}

impl SubgraphImporter for GraphImporter<'_> {
    fn import_subgraph(&self, g: &GraphProto, outer_scope: &[String]) -> Result<(Graph, Vec<String>)> {
        let mut ignored = Vec::new();
        let mut graph = self.import(g, outer_scope, &mut ignored)?;
        let _ = graph.infer_facts();
        // Captured values are the graph inputs after the formal ones.
        let formal = g.input.iter().filter(|v| !g.initializer.iter().any(|i| i.name == v.name)).count();
        let captured = graph.inputs[formal.min(graph.inputs.len())..].iter().map(|&v| graph.values[v].name.clone()).collect();
        Ok((graph, captured))
    }
}

impl GraphImporter<'_> {
    /// Imports one graph. Names in `outer_scope` that the graph reads without
    /// defining become extra graph inputs, appended after the formal ones in
    /// `outer_scope` order, so control-flow ops can feed them.
    fn import(&self, gp: &GraphProto, outer_scope: &[String], ignored: &mut Vec<Unsupported>) -> Result<Graph> {
        self.import_with(gp, Vec::new(), outer_scope, ignored)
    }

    /// As `import`, with initializers converted beforehand (`consts`, added before `gp.initializer`).
    fn import_with(&self, gp: &GraphProto, consts: Vec<(String, Tensor)>, outer_scope: &[String], ignored: &mut Vec<Unsupported>) -> Result<Graph> {
        let mut g = Graph::default();
        let mut by_name: HashMap<String, ValueId> = HashMap::new();

        for (name, t) in consts {
            let id = g.add_const(name.clone(), t);
            by_name.insert(name, id);
        }

        for init in &gp.initializer {
            let t = tensor_from_proto(init, self.opts.external_data, self.opts.limit_bytes)?;
            let id = g.add_const(init.name.clone(), t);
            by_name.insert(init.name.clone(), id);
        }
        if !gp.sparse_initializer.is_empty() {
            return Err(Error::Unsupported(vec![error_unsupported(
                "sparse_initializer",
                "",
                &gp.name,
                0,
                "sparse initializers are not supported",
            )]));
        }
        for vi in &gp.input {
            if by_name.contains_key(&vi.name) {
                continue; // An initializer with a default value; treated as constant.
            }
            let id = g.add_value(vi.name.clone(), declared_fact(vi));
            by_name.insert(vi.name.clone(), id);
            g.inputs.push(id);
        }
        let declared: HashMap<&str, &ValueInfoProto> = gp
            .value_info
            .iter()
            .chain(gp.output.iter())
            .map(|v| (v.name.as_str(), v))
            .collect();

        let mut unsupported = Vec::new();
        let mut outer_used: Vec<(usize, ValueId)> = Vec::new();
        for (index, node) in gp.node.iter().enumerate() {
            // Unnamed nodes get a stable name, so every message can point at one.
            let named;
            let node = if node.name.is_empty() {
                named = crate::proto::NodeProto { name: format!("{}_{index}", node.op_type), ..node.clone() };
                &named
            } else {
                node
            };
            // Resolve inputs, creating outer-scope inputs on first use.
            let mut inputs = Vec::with_capacity(node.input.len());
            for name in &node.input {
                if name.is_empty() {
                    inputs.push(None);
                    continue;
                }
                let id = match by_name.get(name) {
                    Some(&id) => id,
                    None => match outer_scope.iter().position(|o| o == name) {
                        Some(pos) => {
                            let id = g.add_value(name.clone(), Fact::unknown());
                            by_name.insert(name.clone(), id);
                            outer_used.push((pos, id));
                            id
                        }
                        None => {
                            return Err(Error::InvalidModel(format!(
                                "node '{}' ({}) reads '{}', which is not defined before it",
                                node.name, node.op_type, name
                            )))
                        }
                    },
                };
                inputs.push(Some(id));
            }
            let domain = if node.domain == "ai.onnx" {
                ""
            } else {
                node.domain.as_str()
            };
            let opset = self.opsets.get(domain).copied().unwrap_or(0);
            let const_inputs: Vec<Option<Arc<Tensor>>> =
                inputs.iter().map(|i| i.and_then(|v| g.konst(v).cloned())).collect();
            let mut ctx = NodeCtx::new(node, opset, const_inputs);
            ctx.subgraphs = Some(self);
            ctx.limit_bytes = self.opts.limit_bytes;
            if node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
                ctx.scope = by_name.keys().cloned().chain(outer_scope.iter().cloned()).collect();
            }

            // The visible scope of a subgraph body: everything defined so far.
            let built = match crate::ops::lookup(domain, &node.op_type) {
                None => Err(Error::Unsupported(vec![error_unsupported(
                    &node.op_type,
                    domain,
                    &node.name,
                    opset,
                    if domain.is_empty() || domain == "ai.onnx.ml" {
                        "no kernel for this op"
                    } else {
                        "unknown op domain"
                    },
                )])),
                Some(_) if domain.is_empty() && !(MIN_OPSET..=MAX_OPSET).contains(&opset) => {
                    Err(Error::Unsupported(vec![error_unsupported(
                        &node.op_type,
                        domain,
                        &node.name,
                        opset,
                        format!("opset {opset} is outside {MIN_OPSET}..={MAX_OPSET}"),
                    )]))
                }
                Some(build) => build(&ctx),
            };
            let op = match built {
                Ok(op) => op,
                Err(Error::Unsupported(list)) => {
                    unsupported.extend(list);
                    // Keep resolving later nodes so every unsupported op is found in one pass.
                    for name in node.output.iter().filter(|n| !n.is_empty()) {
                        let id = g.add_value(name.clone(), Fact::unknown());
                        by_name.insert(name.clone(), id);
                    }
                    continue;
                }
                Err(e) => return Err(e.in_node(&node.name, &node.op_type)),
            };
            // Values captured by subgraphs become extra inputs of this node.
            for name in ctx.captures.borrow().iter() {
                let id = match by_name.get(name) {
                    Some(&id) => id,
                    None if outer_scope.contains(name) => {
                        let pos = outer_scope.iter().position(|o| o == name).unwrap_or(0);
                        let id = g.add_value(name.clone(), Fact::unknown());
                        by_name.insert(name.clone(), id);
                        outer_used.push((pos, id));
                        id
                    }
                    None => return Err(Error::InvalidModel(format!("subgraph of node '{}' reads undefined '{name}'", node.name))),
                };
                inputs.push(Some(id));
            }
            let read = ctx.read_attrs.borrow();
            for a in &node.attribute {
                if !read.contains(&a.name) {
                    ignored.push(error_unsupported(
                        &node.op_type,
                        domain,
                        &node.name,
                        opset,
                        format!("attribute '{}' is ignored", a.name),
                    ));
                }
            }
            let mut outputs = Vec::with_capacity(node.output.len());
            for name in &node.output {
                // Empty output names are optional outputs nobody reads.
                let fact = declared
                    .get(name.as_str())
                    .map(|v| declared_fact(v))
                    .unwrap_or_default();
                let vname = if name.is_empty() {
                    format!("{}:unused{}", node.name, outputs.len())
                } else {
                    name.clone()
                };
                let id = g.add_value(vname, fact);
                if !name.is_empty() {
                    by_name.insert(name.clone(), id);
                }
                outputs.push(id);
            }
            // Constants become graph constants right away, so later builders see them.
            if let Some(c) = op.as_any().downcast_ref::<uniml_core::ops::constant::Const>() {
                if let [out] = outputs[..] {
                    g.values[out].fact = Fact::constant(c.0.clone());
                    continue;
                }
            }
            g.add_node(node.name.clone(), op, inputs, outputs);
        }
        if !unsupported.is_empty() {
            return Err(Error::Unsupported(unsupported));
        }
        outer_used.sort();
        g.inputs.extend(outer_used.into_iter().map(|(_, id)| id));
        for vi in &gp.output {
            let id = match by_name.get(&vi.name) {
                Some(&id) => id,
                None => match outer_scope.iter().position(|o| o == &vi.name) {
                    Some(_) => {
                        let id = g.add_value(vi.name.clone(), Fact::unknown());
                        g.inputs.push(id);
                        id
                    }
                    None => {
                        return Err(Error::InvalidModel(format!(
                            "graph output '{}' is not produced by any node",
                            vi.name
                        )))
                    }
                },
            };
            g.outputs.push(id);
        }
        Ok(g)
    }
}
