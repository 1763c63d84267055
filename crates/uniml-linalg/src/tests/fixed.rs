//! Fixed cases: edge shapes, layouts, real cache-block sizes, the public
//! API, threads over range variants, NaN handling, activations, panics.

use super::*;

fn base_case(m: usize, n: usize, k: usize) -> Case {
    Case {
        m,
        n,
        k,
        la: Layout::Row,
        lb: Layout::Row,
        seed: 42,
        alpha: 1.0,
        beta: 0.0,
        act: Activation::None,
        bias_row: false,
        bias_col: false,
        ldc_pad: 0,
    }
}

#[test]
fn fixed_edge_shapes() {
    for (m, n, k) in [
        (1, 1, 1),
        (1, 1, 0),
        (3, 5, 0),
        (1, 37, 0),
        (2, 2, 1),
        (13, 17, 1),
        (6, 16, 4),
        (12, 32, 8),
        (7, 1, 9),
    ] {
        for &act in &ACTS {
            for (beta, br, bc) in [
                (0.0, true, false),
                (1.0, false, true),
                (0.5, true, true),
                (0.0, false, false),
            ] {
                run_case(&Case {
                    act,
                    beta,
                    bias_row: br,
                    bias_col: bc,
                    ..base_case(m, n, k)
                });
            }
        }
    }
}

#[test]
fn every_layout_pair() {
    for la in LAYOUTS {
        for lb in LAYOUTS {
            run_case(&Case {
                la,
                lb,
                alpha: -0.5,
                beta: 0.5,
                bias_row: true,
                act: Activation::SiLU,
                ..base_case(19, 23, 29)
            });
        }
    }
}

#[test]
fn crosses_real_cache_blocks() {
    // Default blocks: kc 256, mc up to 144, nc 2048.
    let (m, n, k) = (150, 2100, 300);
    let a = Mat::new(m, k, Layout::Row, 7);
    let b = Mat::new(k, n, Layout::Col, 8);
    let bias = rand_vec(9, m);
    let c0 = c_init(m, n, n, 10, false);
    let e = reference(
        &a.view(),
        &b.view(),
        &c0,
        n,
        1.0,
        1.0,
        Some(&bias),
        None,
        Activation::Relu,
    );
    let ep = Epilogue::default()
        .with_bias_row(&bias)
        .with_activation(Activation::Relu)
        .with_accumulate(true);
    for kind in available_kernels() {
        let pa = PackedA::pack_with_kernel(kind, a.view(), m, k);
        let mut c = c0.clone();
        sgemm_packed_a(&pa, n, b.view(), &mut c, n, &ep);
        check(
            &format!("{kind:?} big packed_a"),
            &c,
            &c0,
            n,
            n,
            &e,
            0..m,
            0..n,
        );
        let pb = PackedB::pack_with_kernel(kind, b.view(), k, n);
        let mut c = c0.clone();
        sgemm_packed_b(m, a.view(), &pb, &mut c, n, &ep);
        check(
            &format!("{kind:?} big packed_b"),
            &c,
            &c0,
            n,
            n,
            &e,
            0..m,
            0..n,
        );
    }
    let e = reference(
        &a.view(),
        &b.view(),
        &c0,
        n,
        0.5,
        -1.0,
        None,
        None,
        Activation::None,
    );
    for kind in available_kernels() {
        let mut c = c0.clone();
        sgemm_with_kernel(kind, m, n, k, 0.5, a.view(), b.view(), -1.0, &mut c, n);
        check(
            &format!("{kind:?} big sgemm"),
            &c,
            &c0,
            n,
            n,
            &e,
            0..m,
            0..n,
        );
    }
}

#[test]
fn public_api_and_views() {
    // C = Aᵀ·Bᵀ through `.t()` views of contiguous storage.
    let (m, n, k) = (9, 11, 13);
    let at = rand_vec(1, k * m); // k×m
    let bt = rand_vec(2, n * k); // n×k
    let a = MatRef::new(&at, k, m).t();
    let b = MatRef::new(&bt, n, k).t();
    assert_eq!((a.rows, a.cols, b.rows, b.cols), (m, k, k, n));
    let mut c = vec![0.0; m * n];
    sgemm(m, n, k, 1.0, a, b, 0.0, &mut c, n);
    for i in 0..m {
        for j in 0..n {
            let want: f32 = (0..k).map(|p| at[p * m + i] * bt[j * k + p]).sum();
            assert!((c[i * n + j] - want).abs() < 1e-4, "({i},{j})");
        }
    }
    // Sub-views.
    let big = rand_vec(3, 20 * 30);
    let v = MatRef::new(&big, 20, 30).sub(2, 5, 3, 7);
    assert_eq!(v.at(0, 0), big[2 * 30 + 3]);
    assert_eq!(v.at(4, 6), big[6 * 30 + 9]);
    assert_eq!(v.t().at(6, 4), big[6 * 30 + 9]);
    assert!(!kernel_name().is_empty());
    assert!(available_kernels().contains(&selected_kernel()));
    assert_eq!(selected_kernel().name(), Some(kernel_name()));
    assert!(KernelKind::Generic.is_available());
    // sgemm_epilogue.
    let bias = rand_vec(4, n);
    let ep = Epilogue::none()
        .with_bias_col(&bias)
        .with_activation(Activation::Relu);
    let mut c2 = vec![f32::NAN; m * n];
    sgemm_epilogue(m, n, k, a, b, &mut c2, n, &ep);
    for (idx, (&x, &y)) in c2.iter().zip(&c).enumerate() {
        let want = (y + bias[idx % n]).max(0.0);
        assert!((x - want).abs() < 1e-4);
    }
}

#[test]
#[cfg_attr(target_os = "wasi", ignore = "wasm32-wasip1 has no threads")]
fn range_ptr_variants_from_threads() {
    let (m, n, k) = (40, 333, 27);
    let w = rand_vec(1, m * k);
    let col = rand_vec(2, k * n);
    let bias = rand_vec(3, m);
    let pa = PackedA::pack(MatRef::new(&w, m, k), m, k);
    let ep = Epilogue::default()
        .with_bias_row(&bias)
        .with_activation(Activation::HardSwish);
    let mut want = vec![0.0; m * n];
    sgemm_packed_a(&pa, n, MatRef::new(&col, k, n), &mut want, n, &ep);
    let mut c = vec![0.0f32; m * n];
    struct SendPtr(*mut f32);
    unsafe impl Send for SendPtr {}
    unsafe impl Sync for SendPtr {}
    let p = SendPtr(c.as_mut_ptr());
    std::thread::scope(|s| {
        for r in [0..100, 100..101, 101..250, 250..n] {
            let (pa, col, ep, p) = (&pa, &col, &ep, &p);
            s.spawn(move || unsafe {
                sgemm_packed_a_range_ptr(pa, n, MatRef::new(col, k, n), p.0, n, ep, r);
            });
        }
    });
    assert_eq!(c, want);

    // Row ranges with packed B, from threads.
    let pb = PackedB::pack(MatRef::new(&col, k, n), k, n);
    let a = rand_vec(4, m * k);
    let mut want = vec![0.0; m * n];
    sgemm_packed_b(
        m,
        MatRef::new(&a, m, k),
        &pb,
        &mut want,
        n,
        &Epilogue::default(),
    );
    let mut c = vec![0.0f32; m * n];
    let (top, bottom) = c.split_at_mut(17 * n);
    sgemm_packed_b_range(
        17,
        MatRef::new(&a, m, k).sub(0, 17, 0, k),
        &pb,
        top,
        n,
        &Epilogue::default(),
        0..17,
    );
    sgemm_packed_b_range(
        m,
        MatRef::new(&a, m, k),
        &pb,
        &mut vec![0.0; m * n],
        n,
        &Epilogue::default(),
        17..m,
    );
    let rest = MatRef::new(&a, m, k).sub(17, m - 17, 0, k);
    sgemm_packed_b(m - 17, rest, &pb, bottom, n, &Epilogue::default());
    assert_eq!(c, want);
}

#[test]
fn beta_zero_ignores_nan_and_k_zero() {
    let mut c = vec![f32::NAN; 6];
    let e: [f32; 0] = [];
    sgemm(
        2,
        3,
        0,
        1.0,
        MatRef::new(&e, 2, 0),
        MatRef::new(&e, 0, 3),
        0.0,
        &mut c,
        3,
    );
    assert_eq!(c, vec![0.0; 6]);
    let mut c = vec![2.0f32; 6];
    sgemm(
        2,
        3,
        0,
        1.0,
        MatRef::new(&e, 2, 0),
        MatRef::new(&e, 0, 3),
        0.5,
        &mut c,
        3,
    );
    assert_eq!(c, vec![1.0; 6]);
    let pb = PackedB::pack(MatRef::new(&e, 0, 3), 0, 3);
    let bias = [1.0f32, -2.0, 3.0];
    let mut c = vec![f32::NAN; 6];
    sgemm_packed_b(
        2,
        MatRef::new(&e, 2, 0),
        &pb,
        &mut c,
        3,
        &Epilogue::none()
            .with_bias_col(&bias)
            .with_activation(Activation::Relu),
    );
    assert_eq!(c, vec![1.0, 0.0, 3.0, 1.0, 0.0, 3.0]);
}

#[test]
fn activations_match_f64() {
    for i in -2000..=2000 {
        let x = i as f32 * 0.05;
        for act in ACTS {
            let got = act.apply(x) as f64;
            let want = act_f64(act, x as f64);
            assert!(
                (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{act:?}({x}) = {got}, want {want}"
            );
        }
    }
    for x in [
        -1000.0f32,
        -88.0,
        -87.5,
        87.5,
        88.0,
        1000.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let e = exp_approx(x);
        assert!(e.is_finite() && e > 0.0, "exp({x}) = {e}");
        assert!(Activation::Sigmoid.apply(x).is_finite());
    }
    assert!(exp_approx(f32::NAN).is_nan());
    assert!(Activation::Relu.apply(f32::NAN).is_nan());
    for i in -870..=880 {
        let x = i as f32 * 0.1;
        let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
        assert!(
            ((got - want) / want).abs() < 1e-6,
            "exp({x}) = {got}, want {want}"
        );
    }
}

/// `activate` (the slice pass) against the f64 formulas, odd lengths for the tails.
#[test]
fn activate_slices_match_f64() {
    for len in [0usize, 1, 15, 17, 1000] {
        let xs: Vec<f32> = (0..len).map(|i| (i as f32 - len as f32 / 2.0) * 0.037).collect();
        for act in ACTS {
            let mut ys = xs.clone();
            crate::activate(act, &mut ys);
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = act_f64(act, x as f64);
                assert!((y as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{act:?}({x}) = {y}, want {want}");
            }
        }
    }
    let mut nan = [f32::NAN; 3];
    crate::activate(Activation::Sigmoid, &mut nan);
    assert!(nan.iter().all(|v| v.is_nan()));
}

/// The GELU in every kernel's epilogue (in registers on full 32-wide tiles,
/// the tile pass on 5-wide ones) against `x·Φ(x)` in f64, through its
/// clamps and the specials (NaN stays NaN, ±∞ → ∞ / 0).
#[test]
fn gelu_every_kernel_matches_f64() {
    let mut xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.05).collect();
    xs.extend([-13.0, -12.7, -12.0, 12.8, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    let m = xs.len();
    for kind in available_kernels() {
        for n in [32usize, 5] {
            let ones = vec![1.0f32; n];
            let pb = PackedB::pack_with_kernel(kind, MatRef::new(&ones, 1, n), 1, n);
            let mut c = vec![0.0; m * n];
            sgemm_packed_b(m, MatRef::new(&xs, m, 1), &pb, &mut c, n, &Epilogue::none().with_activation(Activation::Gelu));
            for (i, &x) in xs.iter().enumerate() {
                let want = act_f64(Activation::Gelu, x as f64);
                for &y in &c[i * n..(i + 1) * n] {
                    let ok = if x.is_nan() {
                        y.is_nan()
                    } else if x.is_infinite() {
                        y as f64 == want.max(0.0) || (x < 0.0 && y == 0.0)
                    } else {
                        (y as f64 - want).abs() <= 1e-6 * (1.0 + want.abs())
                    };
                    assert!(ok, "{kind:?} n={n}: gelu({x}) = {y}, want {want}");
                }
            }
        }
    }
}

/// Every kernel's vector `exp_sum` (and the portable loop) against f64, with
/// tails of every length below a vector, values below the clamp, -inf and NaN.
#[test]
fn exp_sum_every_kernel_matches_f64() {
    let portable = |x: *mut f32, n: usize, shift: f32| -> f32 {
        // SAFETY: called below on a live slice of `n` values.
        let xs = unsafe { core::slice::from_raw_parts_mut(x, n) };
        let mut sum = 0.0;
        for v in xs.iter_mut() {
            let d = *v - shift;
            *v = if d < crate::epilogue::exp_consts::LO { 0.0 } else { exp_approx(d) };
            sum += *v;
        }
        sum
    };
    let mut fns: Vec<(String, Box<dyn Fn(*mut f32, usize, f32) -> f32>)> = vec![("portable".into(), Box::new(portable))];
    for kind in available_kernels() {
        if let Some(f) = crate::kernels::table_or_panic(kind).exp_sum {
            // SAFETY: the kernel is available on this machine; called on live slices.
            fns.push((format!("{kind:?}"), Box::new(move |x, n, s| unsafe { f(x, n, s) })));
        }
    }
    for (name, f) in &fns {
        for len in (0usize..20).chain([33, 500]) {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.71).sin() * 30.0 - 5.0).collect();
            let mut ys = xs.clone();
            let sum = f(ys.as_mut_ptr(), len, 2.0);
            let mut want_sum = 0f64;
            for (&x, &y) in xs.iter().zip(&ys) {
                let want = ((x - 2.0) as f64).exp();
                want_sum += want;
                assert!((y as f64 - want).abs() <= 1e-6 * want, "{name}: exp({x} - 2) = {y}, want {want}");
            }
            assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1e-30), "{name} len {len}: sum {sum} vs {want_sum}");
        }
        let mut v = [-1000f32, 0.0, f32::NEG_INFINITY, -1000.0, 0.0, -200.0, f32::NEG_INFINITY, 0.0, -88.0];
        assert_eq!(f(v.as_mut_ptr(), v.len(), 0.0), 3.0, "{name}");
        assert_eq!(v, [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0], "{name}");
        let mut n = [f32::NAN, 0.0, 1.0, 2.0, f32::NAN, 0.0, 0.0, 0.0, 0.0];
        assert!(f(n.as_mut_ptr(), n.len(), 0.0).is_nan() && n[0].is_nan() && n[4].is_nan(), "{name}");
    }
}

#[test]
fn exp_sum_matches_f64() {
    for len in [0usize, 1, 16, 33, 500] {
        let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.71).sin() * 30.0 - 5.0).collect();
        let mut ys = xs.clone();
        let sum = crate::exp_sum(&mut ys, 2.0);
        let mut want_sum = 0f64;
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = ((x - 2.0) as f64).exp();
            want_sum += want;
            assert!((y as f64 - want).abs() <= 1e-6 * want, "exp({x} - 2) = {y}, want {want}");
        }
        assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1e-30));
    }
    let mut v = [-1000f32, 0.0, f32::NEG_INFINITY];
    assert_eq!(crate::exp_sum(&mut v, 0.0), 1.0);
    assert_eq!(v, [0.0, 1.0, 0.0]);
    let mut n = [f32::NAN, 0.0];
    assert!(crate::exp_sum(&mut n, 0.0).is_nan() && n[0].is_nan());
}

#[test]
fn nan_propagates_through_fused_activations() {
    // A NaN in A must reach C through every kernel's epilogue (no silent
    // clamping to 0 by max/min).
    let (m, n, k) = (12, 32, 3);
    let mut a = rand_vec(1, m * k);
    a[0] = f32::NAN;
    let b = rand_vec(2, k * n);
    for kind in available_kernels() {
        let pb = PackedB::pack_with_kernel(kind, MatRef::new(&b, k, n), k, n);
        for act in ACTS {
            let mut c = vec![0.0; m * n];
            sgemm_packed_b(
                m,
                MatRef::new(&a, m, k),
                &pb,
                &mut c,
                n,
                &Epilogue::none().with_activation(act),
            );
            assert!(
                c[..n].iter().all(|v| v.is_nan()),
                "{kind:?} {act:?}: {:?}",
                &c[..4]
            );
            assert!(c[n..].iter().all(|v| !v.is_nan()));
        }
    }
}

#[test]
#[should_panic(expected = "expected 3x4")]
fn wrong_dims_panic() {
    let d = vec![0.0; 12];
    let mut c = vec![0.0; 9];
    sgemm(
        3,
        3,
        4,
        1.0,
        MatRef::new(&d, 4, 3),
        MatRef::new(&d, 4, 3),
        0.0,
        &mut c,
        3,
    );
}

#[test]
#[should_panic(expected = "exceeds its data")]
fn short_data_panics() {
    let d = vec![0.0; 11];
    let mut c = vec![0.0; 9];
    sgemm(
        3,
        3,
        4,
        1.0,
        MatRef::new(&d, 3, 4),
        MatRef::new(&d, 4, 3),
        0.0,
        &mut c,
        3,
    );
}

#[test]
#[should_panic(expected = "too small")]
fn short_c_panics() {
    let d = vec![0.0; 12];
    let mut c = vec![0.0; 8];
    sgemm(
        3,
        3,
        4,
        1.0,
        MatRef::new(&d, 3, 4),
        MatRef::new(&d, 4, 3),
        0.0,
        &mut c,
        3,
    );
}

#[test]
fn packed_operands_are_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PackedA>();
    assert_send_sync::<PackedB>();
    assert_send_sync::<MatRef<'static>>();
    assert_send_sync::<Epilogue<'static>>();
}

/// A wasm build with `simd128` runs the simd128 kernel (`cargo xtask wasm` runs these tests in
/// wasm32-wasip1), fusing its multiply-adds exactly when the build has relaxed SIMD.
#[test]
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn wasm_simd_builds_select_the_simd128_kernel() {
    let k = crate::kernels::selected();
    assert_eq!(k.kind, KernelKind::WasmSimd128, "selected {}", k.name);
    assert_eq!(k.name.contains("relaxed"), cfg!(target_feature = "relaxed-simd"), "selected {}", k.name);
}
