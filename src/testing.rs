//! Helpers shared by the test suites: one tolerance rule `|a-b| <= atol + rtol*|ref|`
//! (f32 CPU 1e-5, CUDA f32 1e-4, bf16/f16 1e-2), seeded random inputs and central finite
//! differences in f64 for checking backward rules.

use crate::rng::Rng;

pub const TOL_CPU_F32: (f32, f32) = (1e-5, 1e-5);
pub const TOL_CUDA_F32: (f32, f32) = (1e-4, 1e-4);
pub const TOL_HALF: (f32, f32) = (1e-2, 1e-2);

/// Index and values of the worst violation of `|a-b| <= atol + rtol*|ref|`, if any.
pub fn first_mismatch(actual: &[f32], expected: &[f32], atol: f32, rtol: f32) -> Option<(usize, f32, f32)> {
    let mut worst: Option<(usize, f32, f32, f32)> = None;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let excess = (a - e).abs() - (atol + rtol * e.abs());
        let bad = excess > 0.0 || a.is_nan() != e.is_nan();
        if bad && worst.is_none_or(|w| excess > w.3) {
            worst = Some((i, a, e, if excess.is_nan() { f32::INFINITY } else { excess }));
        }
    }
    worst.map(|(i, a, e, _)| (i, a, e))
}

/// Panics with the first (worst) mismatching index when the slices differ beyond tolerance.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], tol: (f32, f32), what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length {} vs {}", actual.len(), expected.len());
    if let Some((i, a, e)) = first_mismatch(actual, expected, tol.0, tol.1) {
        panic!("{what}: element {i}: got {a}, expected {e} (atol {}, rtol {})", tol.0, tol.1);
    }
}

/// `n` values uniform in [lo, hi) from a seeded generator.
pub fn random_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform_range(lo, hi)).collect()
}

/// Central finite differences of a scalar function in f64: d f / d x_i for every i.
pub fn finite_diff(x: &[f64], eps: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            xp[i] = x[i] + eps;
            let fp = f(&xp);
            xp[i] = x[i] - eps;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (2.0 * eps)
        })
        .collect()
}

/// Compare an analytic gradient with a finite-difference one (both f64).
#[track_caller]
pub fn assert_grad_close(analytic: &[f64], numeric: &[f64], tol: f64, what: &str) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: gradient lengths differ");
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        assert!((a - n).abs() <= tol * (1.0 + n.abs()), "{what}: d/dx[{i}]: analytic {a}, numeric {n}");
    }
}

/// Whether CUDA tests must run (FDM_REQUIRE_CUDA=1) rather than skip.
pub fn cuda_required() -> bool {
    std::env::var("FDM_REQUIRE_CUDA").is_ok_and(|v| v == "1")
}

/// The CUDA device for a GPU test, or None after printing `SKIP (no CUDA device)`.
/// Panics instead of skipping when FDM_REQUIRE_CUDA=1.
/// Whether a test on the CUDA emulator can run: true where it is built (Linux); elsewhere prints
/// `SKIP` with the reason and returns false.
pub fn emulator_or_skip(test: &str) -> bool {
    if !crate::cuda::emu::BUILT {
        println!("{test}: SKIP (the CUDA emulator is built on Linux only)");
    }
    crate::cuda::emu::BUILT
}

pub fn cuda_device_or_skip(test: &str) -> Option<crate::cuda::CudaDevice> {
    match crate::cuda::probe() {
        Ok(d) => Some(d),
        Err(why) if cuda_required() => panic!("{test}: FDM_REQUIRE_CUDA=1 but {why}"),
        Err(_) => {
            println!("{test}: SKIP (no CUDA device)");
            None
        }
    }
}
