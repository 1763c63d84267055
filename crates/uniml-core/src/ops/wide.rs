//! Plain loops compiled for the CPU's widest vector instructions.
//!
//! The engine is built for the baseline of its target (SSE2 on x86-64) so
//! that one binary runs everywhere; the auto-vectorised loops of elementwise
//! kernels then use 4-lane SSE. [`wide`] runs a closure inside a function
//! compiled with AVX-512 (or AVX2 + FMA) when this CPU has it: the closure
//! is inlined there, so its loops are vectorised 16 (or 8) lanes wide. Only
//! where the loop is plain Rust; kernels with explicit intrinsics pick their
//! own paths. Elsewhere (wasm32: simd128 is a build-time choice) it just calls.

/// Runs `f` compiled for the widest vector ISA this CPU has. Pass the
/// closure as `wide(#[inline(always)] || ...)`: only when it is inlined into
/// the wrappers below are its loops compiled with their features.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was just detected.
            return unsafe { wide_avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            return unsafe { wide_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn wide_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn wide_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
