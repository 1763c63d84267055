//! GFLOP/s of the uniml-linalg SGEMM paths, for every kernel this machine
//! can run.
//!
//! `cargo run --release -p uniml-linalg --example gemm_bench [-- --quick] [-- --selected]`
//!
//! Square products go through `sgemm` (both operands packed on the fly) and
//! `sgemm_packed_b` (B pre-packed); the convolution-like shapes
//! (`out[co, pix] = W[co, k] · col[k, pix]`) through `sgemm_packed_a`, plain
//! and with a fused bias + activation.  Each figure is the best of many
//! ~1 ms batches (see `time`).

use std::hint::black_box;
use std::time::Instant;

use uniml_linalg::*;

fn fill(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// Best time per call over `batches` short batches (each repeats the call
/// until ≥ 1 ms has passed).  The minimum filters out the scheduler noise of
/// a shared machine; the data stay cache-warm between calls, as they do when
/// an engine runs the same layer repeatedly.
fn time(batches: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up (scratch buffers, caches)
    let mut best = f64::INFINITY;
    for _ in 0..batches {
        let start = Instant::now();
        let mut reps = 0u32;
        loop {
            f();
            reps += 1;
            let t = start.elapsed().as_secs_f64();
            if t >= 1e-3 {
                best = best.min(t / reps as f64);
                break;
            }
        }
    }
    best
}

fn report(kernel: &str, what: &str, flops: f64, t: f64) {
    println!(
        "{:<16} {:<30} {:>10.1} {:>9.1}",
        kernel,
        what,
        t * 1e6,
        flops / t * 1e-9
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only_selected = args.iter().any(|a| a == "--selected");
    let min_s = if quick { 10 } else { 60 };
    println!("selected kernel: {}", kernel_name());
    let kinds = if only_selected {
        vec![selected_kernel()]
    } else {
        available_kernels()
    };
    println!(
        "measuring: {:?}\n",
        kinds.iter().map(|k| k.name().unwrap()).collect::<Vec<_>>()
    );
    println!(
        "{:<16} {:<30} {:>10} {:>9}",
        "kernel", "shape / path", "us", "GFLOP/s"
    );

    for &kind in &kinds {
        let name = kind.name().unwrap();
        for &s in &[256usize, 512, 1024] {
            let (m, n, k) = (s, s, s);
            let a = fill(m * k, 1);
            let b = fill(k * n, 2);
            let mut c = vec![0.0f32; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let t = time(min_s, || {
                sgemm_with_kernel(
                    kind,
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::new(&a, m, k),
                    MatRef::new(&b, k, n),
                    0.0,
                    &mut c,
                    n,
                );
                black_box(&mut c);
            });
            report(name, &format!("{s}^3 sgemm"), flops, t);
            let pb = PackedB::pack_with_kernel(kind, MatRef::new(&b, k, n), k, n);
            let ep = Epilogue::default();
            let t = time(min_s, || {
                sgemm_packed_b(m, MatRef::new(&a, m, k), &pb, &mut c, n, &ep);
                black_box(&mut c);
            });
            report(name, &format!("{s}^3 packed_b"), flops, t);
        }
        for &(m, n, k) in &[(32usize, 12544usize, 27usize), (96, 3136, 16)] {
            let w = fill(m * k, 3);
            let col = fill(k * n, 4);
            let bias = fill(m, 5);
            let mut c = vec![0.0f32; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let pa = PackedA::pack_with_kernel(kind, MatRef::new(&w, m, k), m, k);
            let shape = format!("{m}x{n}x{k}");
            for (label, ep) in [
                ("packed_a", Epilogue::default()),
                (
                    "packed_a +bias+relu",
                    Epilogue::default()
                        .with_bias_row(&bias)
                        .with_activation(Activation::Relu),
                ),
                (
                    "packed_a +bias+silu",
                    Epilogue::default()
                        .with_bias_row(&bias)
                        .with_activation(Activation::SiLU),
                ),
            ] {
                let t = time(min_s, || {
                    sgemm_packed_a(&pa, n, MatRef::new(&col, k, n), &mut c, n, &ep);
                    black_box(&mut c);
                });
                report(name, &format!("{shape} {label}"), flops, t);
            }
            let t = time(min_s, || {
                sgemm_with_kernel(
                    kind,
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::new(&w, m, k),
                    MatRef::new(&col, k, n),
                    0.0,
                    &mut c,
                    n,
                );
                black_box(&mut c);
            });
            report(name, &format!("{shape} sgemm"), flops, t);
        }
        {
            // Batch-1 fully-connected layer: GEMV against packed weights.
            let (k, n) = (1280usize, 1000usize);
            let x = fill(k, 6);
            let wt = fill(k * n, 7);
            let mut y = vec![0.0f32; n];
            let pb = PackedB::pack_with_kernel(kind, MatRef::new(&wt, k, n), k, n);
            let ep = Epilogue::default();
            let t = time(min_s, || {
                sgemm_packed_b(1, MatRef::new(&x, 1, k), &pb, &mut y, n, &ep);
                black_box(&mut y);
            });
            report(name, "1x1000x1280 packed_b (gemv)", 2.0 * (n * k) as f64, t);
        }
        {
            let (m, n, k) = (6usize, 6usize, 6usize);
            let a = fill(m * k, 8);
            let b = fill(k * n, 9);
            let mut c = vec![0.0f32; m * n];
            let t = time(min_s, || {
                sgemm_with_kernel(
                    kind,
                    m,
                    n,
                    k,
                    1.0,
                    MatRef::new(&a, m, k),
                    MatRef::new(&b, k, n),
                    0.0,
                    &mut c,
                    n,
                );
                black_box(&mut c);
            });
            report(name, "6^3 sgemm (small path)", 2.0 * (m * n * k) as f64, t);
        }
    }
}
