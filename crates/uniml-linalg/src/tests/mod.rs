//! Every path (blocked, small, GEMV, packed A / B, ranges) on every kernel
//! this machine can run — each also with tiny cache blocks so that the
//! multi-block loops run on small shapes — against a naive f64 triple loop.

use proptest::prelude::*;

mod fixed;

use super::*;
use crate::driver::{self, Post};
use crate::epilogue::exp_approx;
use crate::kernels::{table, Kernel};

const SENTINEL: f32 = 12345.0;

fn rand_vec(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Storage layouts for an operand.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Contiguous row-major.
    Row,
    /// Transposed view of a contiguous matrix (column-major).
    Col,
    /// Row-major with padded rows (padding holds NaN).
    Padded,
    /// Column stride 2, odd row stride (gaps hold NaN).
    Strided,
    /// Column-major with padded columns.
    ColPadded,
}

const LAYOUTS: [Layout; 5] = [
    Layout::Row,
    Layout::Col,
    Layout::Padded,
    Layout::Strided,
    Layout::ColPadded,
];

struct Mat {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Mat {
    fn new(rows: usize, cols: usize, layout: Layout, seed: u64) -> Mat {
        let (rs, cs) = match layout {
            Layout::Row => (cols, 1),
            Layout::Col => (1, rows),
            Layout::Padded => (cols + 3, 1),
            Layout::Strided => (2 * cols + 1, 2),
            Layout::ColPadded => (1, rows + 5),
        };
        let len = if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        };
        let mut data = vec![f32::NAN; len];
        let vals = rand_vec(seed, rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data[i * rs + j * cs] = vals[i * cols + j];
            }
        }
        Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
    fn view(&self) -> MatRef<'_> {
        MatRef::with_strides(&self.data, self.rows, self.cols, self.rs, self.cs)
    }
}

fn act_f64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.max(min as f64).min(max as f64),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::SiLU => x / (1.0 + (-x).exp()),
        Activation::Gelu => 0.5 * x * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2),
    }
}

const ACTS: [Activation; 8] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { min: 0.0, max: 6.0 },
    Activation::Clip {
        min: -0.5,
        max: 0.25,
    },
    Activation::HardSwish,
    Activation::Sigmoid,
    Activation::SiLU,
    Activation::Gelu,
];

/// What a call should produce: `act(alpha·A·B + beta·C + bias)` and the
/// magnitude used for the tolerance.
struct Expect {
    want: Vec<f64>,
    mag: Vec<f64>,
}

#[allow(clippy::too_many_arguments)]
fn reference(
    a: &MatRef,
    b: &MatRef,
    c0: &[f32],
    ldc: usize,
    alpha: f32,
    beta: f32,
    bias_row: Option<&[f32]>,
    bias_col: Option<&[f32]>,
    act: Activation,
) -> Expect {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut want = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut sa) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = a.at(i, p) as f64 * b.at(p, j) as f64;
                s += t;
                sa += t.abs();
            }
            let mut v = alpha as f64 * s;
            let mut mg = (alpha as f64).abs() * sa;
            if beta != 0.0 {
                v += beta as f64 * c0[i * ldc + j] as f64;
                mg += (beta as f64 * c0[i * ldc + j] as f64).abs();
            }
            if let Some(br) = bias_row {
                v += br[i] as f64;
                mg += (br[i] as f64).abs();
            }
            if let Some(bc) = bias_col {
                v += bc[j] as f64;
                mg += (bc[j] as f64).abs();
            }
            want[i * n + j] = act_f64(act, v);
            mag[i * n + j] = mg;
        }
    }
    Expect { want, mag }
}

/// Checks `c` against `e` on `rows × cols`; elements outside that region
/// must still equal `c0` (bit for bit, NaN included).
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    c: &[f32],
    c0: &[f32],
    ldc: usize,
    n: usize,
    e: &Expect,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    for i in 0..c.len() / ldc.max(1) + 1 {
        for jj in 0..ldc {
            let idx = i * ldc + jj;
            if idx >= c.len() {
                break;
            }
            let inside = rows.contains(&i) && cols.contains(&jj) && jj < n;
            if inside {
                let (got, want, mag) = (c[idx] as f64, e.want[i * n + jj], e.mag[i * n + jj]);
                let tol = 1e-4 * (mag + want.abs()) + 1e-6;
                assert!(
                    (got - want).abs() <= tol,
                    "{what}: C[{i},{jj}] = {got}, want {want} (tol {tol:e})"
                );
            } else {
                assert!(
                    c[idx].to_bits() == c0[idx].to_bits(),
                    "{what}: C[{i},{jj}] outside {rows:?}x{cols:?} changed: {} -> {}",
                    c0[idx],
                    c[idx]
                );
            }
        }
    }
}

/// Every available kernel, plus a copy of each with tiny cache blocks.
fn kernels_under_test() -> Vec<Kernel> {
    let mut v = Vec::new();
    for kind in KernelKind::ALL {
        if let Some(k) = table(kind) {
            v.push(k);
            v.push(Kernel {
                kc: 5,
                mc: 2 * k.mr,
                nc: 2 * k.nr,
                ..k
            });
        }
    }
    v
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    la: Layout,
    lb: Layout,
    seed: u64,
    alpha: f32,
    beta: f32,
    act: Activation,
    bias_row: bool,
    bias_col: bool,
    ldc_pad: usize,
}

fn c_init(m: usize, n: usize, ldc: usize, seed: u64, nan: bool) -> Vec<f32> {
    let len = if m == 0 { 0 } else { (m - 1) * ldc + n };
    let vals = rand_vec(seed, len);
    (0..len)
        .map(|idx| {
            if idx % ldc >= n {
                SENTINEL
            } else if nan {
                f32::NAN
            } else {
                vals[idx]
            }
        })
        .collect()
}

/// Splits `0..len` into three consecutive ranges derived from `seed`.
fn splits(len: usize, seed: u64) -> Vec<Range<usize>> {
    let s1 = (seed as usize / 7) % (len + 1);
    let s2 = s1 + (seed as usize / 131) % (len - s1 + 1);
    vec![0..s1, s1..s2, s2..len]
}

/// A [`PackB`] over a plain matrix: its panels, element by element.
struct FillFromMat<'a>(MatRef<'a>);

impl PackB for FillFromMat<'_> {
    fn pack(&self, p0: usize, kc: usize, j0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        assert_eq!(dst.len(), nc.div_ceil(nr) * nr * kc, "fill_b: dst is exactly the panels");
        for (q, panel) in dst.chunks_exact_mut(kc * nr).enumerate() {
            for p in 0..kc {
                for t in 0..nr {
                    let j = q * nr + t;
                    panel[p * nr + t] = if j < nc { self.0.at(p0 + p, j0 + j) } else { 0.0 };
                }
            }
        }
    }
}

fn run_case(cs: &Case) {
    let Case { m, n, k, .. } = *cs;
    let a = Mat::new(m, k, cs.la, cs.seed);
    let b = Mat::new(k, n, cs.lb, cs.seed + 1);
    let (av, bv) = (a.view(), b.view());
    let ldc = n + cs.ldc_pad;
    let br = rand_vec(cs.seed + 2, m);
    let bc = rand_vec(cs.seed + 3, n);

    // 1. BLAS-style alpha / beta.
    let c0 = c_init(m, n, ldc, cs.seed + 4, cs.beta == 0.0);
    let e = reference(
        &av,
        &bv,
        &c0,
        ldc,
        cs.alpha,
        cs.beta,
        None,
        None,
        Activation::None,
    );
    for kern in kernels_under_test() {
        for path in [Path::Auto, Path::Blocked, Path::Small] {
            let mut c = c0.clone();
            sgemm_impl(&kern, path, m, n, k, cs.alpha, av, bv, cs.beta, &mut c, ldc);
            check(
                &format!("sgemm {} {path:?} {cs:?}", kern.name),
                &c,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
        }
    }

    // 2. Epilogue forms.
    let accumulate = cs.beta != 0.0;
    let ep = Epilogue {
        bias_row: cs.bias_row.then_some(&br[..]),
        bias_col: cs.bias_col.then_some(&bc[..]),
        activation: cs.act,
        accumulate,
    };
    let c0 = c_init(m, n, ldc, cs.seed + 5, !accumulate);
    let e = reference(
        &av,
        &bv,
        &c0,
        ldc,
        1.0,
        if accumulate { 1.0 } else { 0.0 },
        ep.bias_row,
        ep.bias_col,
        cs.act,
    );
    let post = Post::from_epilogue(&ep);
    for kern in kernels_under_test() {
        let what = |s: &str| format!("{s} {} {cs:?}", kern.name);
        for path in [Path::Auto, Path::Blocked, Path::Small] {
            let mut c = c0.clone();
            // SAFETY: c covers m×n at ldc.
            unsafe {
                driver::gemm(
                    &kern,
                    path,
                    (m, n, k),
                    &ASrc::Mat(av),
                    &BSrc::Mat(bv),
                    c.as_mut_ptr(),
                    ldc,
                    &post,
                    0..m,
                    0..n,
                )
            };
            check(
                &what(&format!("epilogue {path:?}")),
                &c,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
        }
        let pb = PackedB::pack_for(kern, bv, k, n);
        let pa = PackedA::pack_for(kern, av, m, k);
        for path in [Path::Auto, Path::Blocked] {
            let mut c = c0.clone();
            unsafe { packed_b_impl(path, m, av, &pb, c.as_mut_ptr(), ldc, &ep, 0..m, 0..n) };
            check(
                &what(&format!("packed_b {path:?}")),
                &c,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
            let mut c = c0.clone();
            unsafe { packed_a_impl(path, &pa, n, bv, c.as_mut_ptr(), ldc, &ep, 0..m, 0..n) };
            check(
                &what(&format!("packed_a {path:?}")),
                &c,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
            // B packed block by block by the caller, over column ranges.
            let fill = FillFromMat(bv);
            for r in splits(n, cs.seed / 5).into_iter().chain([0..n]) {
                let mut c = c0.clone();
                unsafe { sgemm_packed_a_fill_b_ptr(&pa, n, &fill, c.as_mut_ptr(), ldc, &ep, 0..m, r.clone()) };
                check(&what(&format!("fill_b cols {r:?}")), &c, &c0, ldc, n, &e, 0..m, r);
            }
            // B rows read in place at offsets (an implicit im2col): rows
            // stored in reverse order with NaN gaps (an over-read would
            // poison C), over row and column ranges.
            let stride = n + 3;
            let mut base = vec![f32::NAN; k * stride + 2];
            let offs: Vec<usize> = (0..k).map(|p| (k - 1 - p) * stride + 2).collect();
            for (p, &o) in offs.iter().enumerate() {
                for j in 0..n {
                    base[o + j] = bv.at(p, j);
                }
            }
            let row_ranges = splits(m, cs.seed / 3).into_iter().chain([0..m]);
            for (rr, cr) in row_ranges.zip(splits(n, cs.seed / 11).into_iter().chain([0..n])) {
                let mut c = c0.clone();
                unsafe {
                    sgemm_packed_a_offs_b_ptr(&pa, n, &base, &offs, c.as_mut_ptr(), ldc, &ep, rr.clone(), cr.clone())
                };
                check(&what(&format!("offs_b {rr:?} x {cr:?}")), &c, &c0, ldc, n, &e, rr, cr);
            }
            // Ranges: each piece alone writes only its part; together all.
            let mut all_b = c0.clone();
            let mut all_a = c0.clone();
            for r in splits(m, cs.seed) {
                let mut c = c0.clone();
                unsafe {
                    packed_b_impl(path, m, av, &pb, c.as_mut_ptr(), ldc, &ep, r.clone(), 0..n)
                };
                check(
                    &what(&format!("packed_b rows {r:?} {path:?}")),
                    &c,
                    &c0,
                    ldc,
                    n,
                    &e,
                    r.clone(),
                    0..n,
                );
                unsafe {
                    packed_b_impl(
                        path,
                        m,
                        av,
                        &pb,
                        all_b.as_mut_ptr(),
                        ldc,
                        &ep,
                        r.clone(),
                        0..n,
                    )
                };
            }
            for r in splits(n, cs.seed / 3) {
                let mut c = c0.clone();
                unsafe {
                    packed_a_impl(path, &pa, n, bv, c.as_mut_ptr(), ldc, &ep, 0..m, r.clone())
                };
                check(
                    &what(&format!("packed_a cols {r:?} {path:?}")),
                    &c,
                    &c0,
                    ldc,
                    n,
                    &e,
                    0..m,
                    r.clone(),
                );
                unsafe {
                    packed_a_impl(
                        path,
                        &pa,
                        n,
                        bv,
                        all_a.as_mut_ptr(),
                        ldc,
                        &ep,
                        0..m,
                        r.clone(),
                    )
                };
                // Column ranges on packed B and row ranges on packed A too.
                let mut c = c0.clone();
                unsafe {
                    packed_b_impl(path, m, av, &pb, c.as_mut_ptr(), ldc, &ep, 0..m, r.clone())
                };
                check(
                    &what(&format!("packed_b cols {r:?} {path:?}")),
                    &c,
                    &c0,
                    ldc,
                    n,
                    &e,
                    0..m,
                    r.clone(),
                );
            }
            for r in splits(m, cs.seed / 5) {
                let mut c = c0.clone();
                unsafe {
                    packed_a_impl(path, &pa, n, bv, c.as_mut_ptr(), ldc, &ep, r.clone(), 0..n)
                };
                check(
                    &what(&format!("packed_a rows {r:?} {path:?}")),
                    &c,
                    &c0,
                    ldc,
                    n,
                    &e,
                    r.clone(),
                    0..n,
                );
            }
            check(
                &what("packed_b all row ranges"),
                &all_b,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
            check(
                &what("packed_a all col ranges"),
                &all_a,
                &c0,
                ldc,
                n,
                &e,
                0..m,
                0..n,
            );
            // Partitioning never changes a bit.
            let mut full_b = c0.clone();
            unsafe { packed_b_impl(path, m, av, &pb, full_b.as_mut_ptr(), ldc, &ep, 0..m, 0..n) };
            let mut full_a = c0.clone();
            unsafe { packed_a_impl(path, &pa, n, bv, full_a.as_mut_ptr(), ldc, &ep, 0..m, 0..n) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&all_b),
                bits(&full_b),
                "{}",
                what("packed_b ranges not bit-identical")
            );
            assert_eq!(
                bits(&all_a),
                bits(&full_a),
                "{}",
                what("packed_a ranges not bit-identical")
            );
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    (0..LAYOUTS.len()).prop_map(|i| LAYOUTS[i])
}

prop_compose! {
    fn case(mmax: usize, nmax: usize, kmax: usize)(
        m in 1..=mmax, n in 1..=nmax, k in 0..=kmax,
        la in layout(), lb in layout(), seed in 0u64..1_000_000,
        alpha in prop::sample::select(vec![1.0f32, -0.5, 2.0]),
        beta in prop::sample::select(vec![0.0f32, 1.0, 0.5]),
        act in (0..ACTS.len()).prop_map(|i| ACTS[i]),
        bias_row in any::<bool>(), bias_col in any::<bool>(), ldc_pad in 0usize..3,
    ) -> Case {
        Case { m, n, k, la, lb, seed, alpha, beta, act, bias_row, bias_col, ldc_pad }
    }
}

proptest! {
    // 96 cases per property by default; `PROPTEST_CASES=n` for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_random_shapes(cs in case(70, 70, 70)) {
        run_case(&cs);
    }

    #[test]
    fn prop_single_row(cs in case(1, 70, 70)) {
        run_case(&cs);
    }

    #[test]
    fn prop_single_col(cs in case(70, 1, 70)) {
        run_case(&cs);
    }

    #[test]
    fn prop_tiny(cs in case(6, 6, 6)) {
        run_case(&cs);
    }
}
