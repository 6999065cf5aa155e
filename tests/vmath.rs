//! The vectorised element kernels of `cpu/ops/vmath.rs` (the attention softmax's exp and
//! column reductions, GELU2's sigmoid) against f64, including ragged tails and the clamped
//! edges of the exp.
use fdm::cpu::ops::vmath::{column_max, exp_columns, exp_inplace, x_sigmoid_kx, PANEL};
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

/// Largest relative error of `exp_inplace` against f64 over `xs`.
fn max_rel_err(xs: &[f32]) -> f64 {
    let mut got = xs.to_vec();
    exp_inplace(&mut got);
    xs.iter()
        .zip(&got)
        .map(|(&x, &g)| {
            let want = (x as f64).exp();
            ((g as f64 - want) / want).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn vmath_exp_is_within_two_ulp_cpu() {
    // A dense grid over the whole normal range plus random points in the softmax range.
    let grid: Vec<f32> = (0..=175_000).map(|i| -87.3 + i as f32 * 0.001).collect();
    let soft = random_vec(1, 100_000, -30.0, 0.0);
    // 2 ulp of f32 at the bottom of a binade: 2 * 2^-23. The Cephes scheme stays near 1 ulp.
    let bound = 2.0 * f32::EPSILON as f64;
    for (name, xs) in [("grid", &grid), ("softmax range", &soft)] {
        let err = max_rel_err(xs);
        assert!(err <= bound, "exp {name}: relative error {err:e} > {bound:e}");
    }
}

#[test]
fn vmath_exp_edges_cpu() {
    // Every length 0..20 covers the 8-lane body and the padded tail.
    for n in 0..20 {
        let xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 - 3.0).collect();
        let mut got = xs.clone();
        exp_inplace(&mut got);
        let want: Vec<f32> = xs.iter().map(|&x| (x as f64).exp() as f32).collect();
        assert_close(&got, &want, TOL_CPU_F32, &format!("exp len {n}"));
    }
    // Clamped ends: tiny but non-negative below the normal range, finite above 88; NaN stays.
    let mut xs = [-1000.0, -88.5, 0.0, 89.0, f32::NAN, -0.0, 1.0, 88.0];
    exp_inplace(&mut xs);
    assert!((0.0..=1.2e-38).contains(&xs[0]) && (0.0..=1.2e-38).contains(&xs[1]), "{xs:?}");
    assert_eq!(xs[2], 1.0);
    assert!(xs[3].is_finite() && xs[3] > 1.6e38, "{}", xs[3]);
    assert!(xs[4].is_nan());
    assert_eq!(xs[5], 1.0);
    assert_close(&xs[6..7], &[std::f32::consts::E], TOL_CPU_F32, "exp(1)");
}

#[test]
fn vmath_column_softmax_parts_match_f64_cpu() {
    for rows in [0usize, 1, 7, 1024] {
        let mut panel = random_vec(rows as u64 + 3, rows * PANEL, -8.0, 8.0);
        let orig = panel.clone();
        let max = column_max(&panel);
        let want_max: Vec<f32> = (0..PANEL)
            .map(|j| (0..rows).map(|t| orig[t * PANEL + j]).fold(f32::NEG_INFINITY, f32::max))
            .collect();
        assert_eq!(max.to_vec(), want_max, "column max, {rows} rows");
        if rows == 0 {
            continue;
        }
        let sum = exp_columns(&mut panel, &max);
        let want: Vec<f32> = orig
            .iter()
            .enumerate()
            .map(|(i, &x)| ((x as f64) - max[i % PANEL] as f64).exp() as f32)
            .collect();
        assert_close(&panel, &want, TOL_CPU_F32, &format!("exp columns, {rows} rows"));
        // Column sums of up to 1024 values in [0, 1] summed in f32: relative error ~1e-7 * rows
        // in the worst case; the f64 sum is the reference and 1e-5 relative holds with room.
        let want_sum: Vec<f32> = (0..PANEL)
            .map(|j| (0..rows).map(|t| want[t * PANEL + j] as f64).sum::<f64>() as f32)
            .collect();
        assert_close(&sum, &want_sum, TOL_CPU_F32, &format!("column sums, {rows} rows"));
    }
}

#[test]
fn vmath_x_sigmoid_kx_matches_f64_cpu() {
    for n in [0usize, 5, 8, 13, 4096] {
        let xs = random_vec(n as u64 + 9, n, -12.0, 12.0);
        let mut got = xs.clone();
        x_sigmoid_kx(&mut got, 1.702);
        let want: Vec<f32> = xs
            .iter()
            .map(|&x| {
                let x = x as f64;
                (x / (1.0 + (-1.702 * x).exp())) as f32
            })
            .collect();
        assert_close(&got, &want, TOL_CPU_F32, &format!("x sigmoid(kx), len {n}"));
    }
}

/// Where a vector kernel runs (AVX2 on x86-64, NEON on 64-bit ARM), every lane must give the
/// Cephes scheme's bits as `cephes::exp_model` evaluates it one element at a time: that is what
/// makes x86 and ARM machines sample the same tokens from a seed. Ragged lengths cover the
/// padded tails of both lane widths.
#[test]
fn vmath_vector_exp_has_the_scheme_bits_cpu() {
    use fdm::cpu::ops::vmath::{cephes::exp_model, simd, Simd};
    if simd() == Simd::None {
        eprintln!("SKIP (no vector kernels on this CPU: plain f32::exp, checked above against f64)");
        return;
    }
    let mut xs: Vec<f32> = (0..=20_000).map(|i| -95.0 + i as f32 * 0.0093).collect();
    xs.extend(random_vec(5, 9_999, -30.0, 0.0));
    xs.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1e-30, -1e-30, 88.0, -87.336_54]);
    let want: Vec<u32> = xs.iter().map(|&x| exp_model(x).to_bits()).collect();
    let mut got = xs.clone();
    exp_inplace(&mut got);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w, "exp({}) on {:?}: {g:e} against the scheme's {:e}", xs[i], simd(), f32::from_bits(w));
    }
    // The panel kernel: exp(x - shift) per column, and column sums in row order.
    let rows = 37;
    let panel = random_vec(6, rows * PANEL, -12.0, 3.0);
    let shift: [f32; PANEL] = std::array::from_fn(|j| j as f32 * 0.25 - 1.0);
    let mut got = panel.clone();
    let sums = exp_columns(&mut got, &shift);
    let mut want_sums = [0f32; PANEL];
    for (t, row) in panel.chunks_exact(PANEL).enumerate() {
        for j in 0..PANEL {
            let e = exp_model(row[j] - shift[j]);
            assert_eq!(got[t * PANEL + j].to_bits(), e.to_bits(), "exp_columns row {t} column {j}");
            want_sums[j] += e;
        }
    }
    assert_eq!(sums.map(f32::to_bits), want_sums.map(f32::to_bits), "exp_columns sums");
    // GELU2's x sigmoid(kx) = x / (1 + exp(-kx)).
    let xs = random_vec(7, 1_003, -8.0, 8.0);
    let mut got = xs.clone();
    x_sigmoid_kx(&mut got, 1.702);
    for (&x, &g) in xs.iter().zip(&got) {
        assert_eq!(g.to_bits(), (x / (1.0 + exp_model(-1.702 * x))).to_bits(), "x sigmoid(kx) at {x}");
    }
}
