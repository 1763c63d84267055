//! Timing of the conv kernels on EfficientNet-Lite0's and ResNet-50's layers
//! (run with `cargo test --release -p uniml-core ops::nn::bench -- --ignored
//! --nocapture`; `UNIML_BENCH_LAYER=i` times only layer `i` of each table,
//! `UNIML_BENCH_RUNS=n` takes the best of `n` runs instead of 20).

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::op::{BufferPool, EvalCtx, Op};
    use crate::ops::nn::conv::Conv;
    use crate::ops::nn::padding::{AutoPad, Window};
    use crate::ops::nn::test_util::{rand_vec, t};
    use crate::parallel::Serial;
    use uniml_data::TensorView;

    /// (C_in, H, C_out, k, stride, group)
    const EFFNET: &[(usize, usize, usize, usize, usize, usize)] = &[
        (3, 224, 32, 3, 2, 1),
        (32, 112, 32, 3, 1, 32),
        (32, 112, 16, 1, 1, 1),
        (16, 112, 96, 1, 1, 1),
        (96, 112, 96, 3, 2, 96),
        (96, 56, 24, 1, 1, 1),
        (24, 56, 144, 1, 1, 1),
        (144, 56, 144, 3, 1, 144),
        (144, 56, 24, 1, 1, 1),
        (24, 56, 144, 1, 1, 1),
        (144, 56, 144, 5, 2, 144),
        (144, 28, 40, 1, 1, 1),
        (40, 28, 240, 1, 1, 1),
        (240, 28, 240, 5, 1, 240),
        (240, 28, 40, 1, 1, 1),
        (40, 28, 240, 1, 1, 1),
        (240, 28, 240, 3, 2, 240),
        (240, 14, 80, 1, 1, 1),
        (80, 14, 480, 1, 1, 1),
        (480, 14, 480, 3, 1, 480),
        (480, 14, 80, 1, 1, 1),
        (80, 14, 480, 1, 1, 1),
        (480, 14, 480, 3, 1, 480),
        (480, 14, 80, 1, 1, 1),
        (80, 14, 480, 1, 1, 1),
        (480, 14, 480, 5, 1, 480),
        (480, 14, 112, 1, 1, 1),
        (112, 14, 672, 1, 1, 1),
        (672, 14, 672, 5, 1, 672),
        (672, 14, 112, 1, 1, 1),
        (112, 14, 672, 1, 1, 1),
        (672, 14, 672, 5, 1, 672),
        (672, 14, 112, 1, 1, 1),
        (112, 14, 672, 1, 1, 1),
        (672, 14, 672, 5, 2, 672),
        (672, 7, 192, 1, 1, 1),
        (192, 7, 1152, 1, 1, 1),
        (1152, 7, 1152, 5, 1, 1152),
        (1152, 7, 192, 1, 1, 1),
        (192, 7, 1152, 1, 1, 1),
        (1152, 7, 1152, 5, 1, 1152),
        (1152, 7, 192, 1, 1, 1),
        (192, 7, 1152, 1, 1, 1),
        (1152, 7, 1152, 5, 1, 1152),
        (1152, 7, 192, 1, 1, 1),
        (192, 7, 1152, 1, 1, 1),
        (1152, 7, 1152, 3, 1, 1152),
        (1152, 7, 320, 1, 1, 1),
        (320, 7, 1280, 1, 1, 1),
    ];

    /// ResNet-50's distinct conv layers (stem, then per stage: conv1, conv2,
    /// conv3, downsample of the first block, conv1 and conv2 of the others).
    const RESNET50: &[(usize, usize, usize, usize, usize, usize)] = &[
        (3, 224, 64, 7, 2, 1),
        (64, 56, 64, 1, 1, 1),
        (64, 56, 64, 3, 1, 1),
        (64, 56, 256, 1, 1, 1),
        (64, 56, 256, 1, 1, 1),
        (256, 56, 64, 1, 1, 1),
        (256, 56, 128, 1, 1, 1),
        (128, 56, 128, 3, 2, 1),
        (128, 28, 512, 1, 1, 1),
        (256, 56, 512, 1, 2, 1),
        (512, 28, 128, 1, 1, 1),
        (128, 28, 128, 3, 1, 1),
        (512, 28, 256, 1, 1, 1),
        (256, 28, 256, 3, 2, 1),
        (256, 14, 1024, 1, 1, 1),
        (512, 28, 1024, 1, 2, 1),
        (1024, 14, 256, 1, 1, 1),
        (256, 14, 256, 3, 1, 1),
        (1024, 14, 512, 1, 1, 1),
        (512, 14, 512, 3, 2, 1),
        (512, 7, 2048, 1, 1, 1),
        (1024, 14, 2048, 1, 2, 1),
        (2048, 7, 512, 1, 1, 1),
        (512, 7, 512, 3, 1, 1),
    ];

    /// RGB stems: SqueezeNet 1.1, MobileNetV2, ResNet-50.
    const STEMS: &[(usize, usize, usize, usize, usize, usize)] =
        &[(3, 224, 64, 3, 2, 1), (3, 224, 32, 3, 2, 1), (3, 224, 64, 7, 2, 1)];

    #[test]
    #[ignore]
    fn bench_stem_convs() {
        bench_layers(STEMS, crate::ops::nn::FusedActivation::Relu);
    }

    #[test]
    #[ignore]
    fn bench_effnet_convs() {
        bench_layers(EFFNET, crate::ops::nn::FusedActivation::Clip { min: 0.0, max: 6.0 });
    }

    #[test]
    #[ignore]
    fn bench_resnet50_convs() {
        bench_layers(RESNET50, crate::ops::nn::FusedActivation::Relu);
    }

    fn bench_layers(layers: &[(usize, usize, usize, usize, usize, usize)], act: crate::ops::nn::FusedActivation) {
        let only: Option<usize> = std::env::var("UNIML_BENCH_LAYER").ok().and_then(|v| v.parse().ok());
        let mut pool = BufferPool::new(u64::MAX);
        let (mut t_dw, mut t_pw, mut t_gen) = (0f64, 0f64, 0f64);
        for (i, &(c, h, m, k, s, g)) in layers.iter().enumerate() {
            if only.is_some_and(|o| o != i) {
                continue;
            }
            let x = t(&[1, c, h, h], &rand_vec(c * h * h, i as u64));
            let w = Arc::new(t(&[m, c / g, k, k], &rand_vec(m * c / g * k * k, 7)));
            let b = t(&[m], &rand_vec(m, 9));
            let mut op = Conv::new(
                None,
                Window {
                    strides: vec![s, s],
                    auto_pad: AutoPad::SameUpper,
                    ..Default::default()
                },
                g,
            );
            op.activation = act;
            op.prepack_for_input(&w, x.shape());
            let views: Vec<Option<TensorView>> =
                vec![Some(x.view()), Some(w.view()), Some(b.view())];
            let runs: usize = std::env::var("UNIML_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
            let mut best = f64::MAX;
            for _ in 0..runs {
                let mut ctx = EvalCtx::new(&Serial, &mut pool);
                let t0 = Instant::now();
                let y = op.eval(&mut ctx, &views).unwrap();
                best = best.min(t0.elapsed().as_secs_f64() * 1e3);
                for y in y {
                    pool.give(y);
                }
            }
            let kind = if g > 1 {
                "dw"
            } else if k == 1 {
                "pw"
            } else {
                "gen"
            };
            let flops = 2.0 * (m * (c / g) * k * k) as f64 * ((h / s) * (h / s)) as f64;
            println!(
                "{kind:>3} c{c:>4} h{h:>3} m{m:>4} k{k} s{s}: {best:7.3} ms  {:6.1} GFLOP/s",
                flops / best / 1e6
            );
            match kind {
                "dw" => t_dw += best,
                "pw" => t_pw += best,
                _ => t_gen += best,
            }
        }
        println!("total: depthwise {t_dw:.2} ms, pointwise {t_pw:.2} ms, general {t_gen:.2} ms");
    }
}
