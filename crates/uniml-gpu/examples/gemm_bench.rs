//! f32 GEMM throughput of the GPU backend's MatMul kernel:
//! `cargo run --release -p uniml-gpu --example gemm_bench -- [N] [CHAIN] [RUNS]`.
//! Runs a chain of CHAIN `x @ W` products (N×N, weights resident on the
//! device) per run, so the one upload of x and download of the result are
//! amortised; prints one JSON line with the median run time and TFLOP/s
//! (transfers included, so it is a lower bound on the kernel's rate) and, for
//! CHAIN > 1, the kernel's own rate from the time beyond a chain of one.

use std::time::Instant;

use uniml_core::op::ValueRef;
use uniml_core::ops::nn::matmul::MatMul;
use uniml_core::{DType, Fact, Graph, Plan, Serial, SymbolicShape, Tensor};
use uniml_gpu::{GpuContext, GpuSession};

/// Median seconds of one run of a chain of `chain` N×N products (x uploaded, result downloaded).
fn time_chain(ctx: &std::sync::Arc<GpuContext>, n: usize, chain: usize, runs: usize) -> Result<(f64, uniml_gpu::GpuRunStats), uniml_data::Error> {
    let mut g = Graph::default();
    let x = g.add_value("x", Fact::new(DType::F32, SymbolicShape::known(&[n, n])));
    g.inputs.push(x);
    // Scaled so values stay O(1) along the chain.
    let w: Vec<f32> = (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { ((i % 7) as f32 - 3.0) * 1e-4 }).collect();
    let wv = g.add_const("w", Tensor::from_vec(&[n, n], w)?);
    let mut cur = x;
    for k in 0..chain {
        let y = g.add_value(format!("y{k}"), Fact::unknown());
        g.add_node(format!("mm{k}"), Box::new(MatMul::default()), vec![Some(cur), Some(wv)], vec![y]);
        cur = y;
    }
    g.outputs.push(cur);
    g.infer_facts()?;
    let plan = Plan::new(&g)?;
    let sess = GpuSession::new(ctx.clone(), &g, &plan, u64::MAX)?;
    let input = Tensor::from_vec(&[n, n], vec![1f32; n * n])?;
    let mut times = Vec::new();
    for r in 0..runs + 2 {
        let t0 = Instant::now();
        sess.run(&g, &plan, &Serial, vec![(x, ValueRef::Tensor(input.view()))])?;
        if r >= 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], sess.last_stats()))
}

fn main() -> Result<(), uniml_data::Error> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n, chain, runs) = (args.first().copied().unwrap_or(4096), args.get(1).copied().unwrap_or(8).max(1), args.get(2).copied().unwrap_or(10));
    let ctx = GpuContext::new()?;
    let (med, stats) = time_chain(&ctx, n, chain, runs)?;
    let flops = 2.0 * (n as f64).powi(3);
    // The kernel's own rate: the time a chain of `chain` products takes beyond a chain of one
    // (same upload and download), per extra product.
    let kernel = if chain > 1 {
        let (one, _) = time_chain(&ctx, n, 1, runs)?;
        format!(",\"one_ms\":{:.3},\"kernel_ms\":{:.3},\"kernel_tflops\":{:.3}", one * 1e3, (med - one) / (chain - 1) as f64 * 1e3, flops * (chain - 1) as f64 / (med - one) / 1e12)
    } else {
        String::new()
    };
    println!(
        "{{\"engine\":\"uniml-gpu\",\"adapter\":{:?},\"case\":\"gemm_f32\",\"n\":{n},\"chain\":{chain},\"median_ms\":{:.3},\"tflops\":{:.3}{kernel},\"stats\":\"{:?}\"}}",
        ctx.describe(),
        med * 1e3,
        flops * chain as f64 / med / 1e12,
        stats
    );
    Ok(())
}
