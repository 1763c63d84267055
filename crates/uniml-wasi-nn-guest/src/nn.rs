//! The wasi-nn engine: bindings generated from `wit/wasi-nn.wit` (the WIT shipped with the host's
//! wasmtime-wasi-nn), the model run by whatever backend the host has for `onnx` on `cpu`.

use serde_json::{json, Value};

use crate::{Engine, DIMS};

wit_bindgen::generate!({
    path: "wit",
    world: "ml",
});

use wasi::nn::errors::Error;
use wasi::nn::graph::{ExecutionTarget, Graph, GraphEncoding};
use wasi::nn::inference::GraphExecutionContext;
use wasi::nn::tensor::{Tensor, TensorType};

fn describe(e: &Error) -> String {
    format!("wasi-nn {:?}: {}", e.code(), e.data())
}

pub fn load(model: &[u8]) -> Result<Graph, String> {
    wasi::nn::graph::load(&[model.to_vec()], GraphEncoding::Onnx, ExecutionTarget::Cpu).map_err(|e| describe(&e))
}

pub fn load_by_name(name: &str) -> Result<Graph, String> {
    wasi::nn::graph::load_by_name(name).map_err(|e| describe(&e))
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub struct NnEngine {
    // Declared before `_graph`: dropped first.
    ctx: GraphExecutionContext,
    _graph: Graph,
    input: String,
}

impl NnEngine {
    pub fn new(graph: Graph, input: String) -> Result<Self, String> {
        let ctx = graph.init_execution_context().map_err(|e| describe(&e))?;
        Ok(NnEngine { ctx, _graph: graph, input })
    }

    fn compute(&self, dims: &[u32], ty: TensorType, data: &[u8], name: &str) -> Result<Vec<(String, Tensor)>, Error> {
        self.ctx.compute(vec![(name.to_string(), Tensor::new(dims, ty, data))])
    }
}

impl Engine for NnEngine {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, String> {
        let outs = self.compute(&DIMS, TensorType::Fp32, &f32_bytes(input), &self.input).map_err(|e| describe(&e))?;
        let (_, t) = outs.into_iter().next().ok_or("the model has no outputs")?;
        if t.ty() != TensorType::Fp32 {
            return Err(format!("output is {:?}, expected FP32", t.ty()));
        }
        let data = t.data();
        if data.len() % 4 != 0 {
            return Err(format!("output has {} bytes, not a whole number of f32", data.len()));
        }
        Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// Bad models and inputs must come back as wasi-nn errors (never a trap), and the same graph
/// must still classify afterwards. Prints each case with the error code and message.
pub fn check_errors(model: &[u8], input: &str) -> Result<Value, String> {
    let mut cases: Vec<Value> = Vec::new();
    let mut expect_err = |case: &str, r: Result<(), Error>| -> Result<(), String> {
        match r {
            Ok(()) => Err(format!("{case}: expected a wasi-nn error, got success")),
            Err(e) => {
                cases.push(json!({"case": case, "code": format!("{:?}", e.code()), "message": e.data()}));
                Ok(())
            }
        }
    };
    let load_with = |builders: &[Vec<u8>], enc: GraphEncoding, target: ExecutionTarget| wasi::nn::graph::load(builders, enc, target).map(|_| ());
    expect_err("load: not ONNX", load_with(&[b"this is not an onnx model".to_vec()], GraphEncoding::Onnx, ExecutionTarget::Cpu))?;
    expect_err("load: truncated model", load_with(&[model[..model.len().min(4096)].to_vec()], GraphEncoding::Onnx, ExecutionTarget::Cpu))?;
    expect_err("load: empty builder list", load_with(&[], GraphEncoding::Onnx, ExecutionTarget::Cpu))?;
    expect_err("load: two builders", load_with(&[model.to_vec(), model.to_vec()], GraphEncoding::Onnx, ExecutionTarget::Cpu))?;
    expect_err("load: openvino encoding", load_with(&[model.to_vec()], GraphEncoding::Openvino, ExecutionTarget::Cpu))?;
    expect_err("load: gpu target", load_with(&[model.to_vec()], GraphEncoding::Onnx, ExecutionTarget::Gpu))?;
    expect_err("load-by-name: unknown name", wasi::nn::graph::load_by_name("no-such-model").map(|_| ()))?;

    let graph = load(model)?;
    let eng = NnEngine::new(graph, input.to_string())?;
    let n = DIMS.iter().product::<u32>() as usize;
    let good = f32_bytes(&vec![0.0f32; n]);
    let run = |dims: &[u32], ty: TensorType, data: &[u8], name: &str| eng.compute(dims, ty, data, name).map(|_| ());
    expect_err("compute: wrong dims 1x3x224x225", run(&[1, 3, 224, 225], TensorType::Fp32, &f32_bytes(&vec![0.0; 3 * 224 * 225]), input))?;
    expect_err("compute: data shorter than dims", run(&DIMS, TensorType::Fp32, &good[..good.len() - 4], input))?;
    expect_err("compute: i64 instead of f32", run(&DIMS, TensorType::I64, &[0u8; 8].repeat(n), input))?;
    expect_err("compute: unknown input name", run(&DIMS, TensorType::Fp32, &good, "no-such-input"))?;
    expect_err("compute: dims overflow", run(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], TensorType::Fp32, &[0u8; 16], input))?;
    expect_err("compute: no inputs", eng.ctx.compute(Vec::new()).map(|_| ()))?;
    // Still usable afterwards.
    let mut eng = eng;
    let logits = eng.infer(&vec![0.0f32; n])?;
    let top1 = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0);
    Ok(json!({"errors": cases, "after_errors": {"ok": true, "outputs": logits.len(), "top1_of_zeros": top1}}))
}
