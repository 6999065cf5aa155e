//! LayerNorm over the last dim (spec §3.2, eps 1e-5): literal values (numpy), fast vs ref on the
//! real shape (1024 tokens x 512), backward vs finite differences, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::layernorm as ag;
use fdm::cpu::ops::layernorm::{
    add_layernorm_fwd_fast, add_layernorm_fwd_ref, layernorm_bwd_fast, layernorm_bwd_ref, layernorm_fwd_fast, layernorm_fwd_ref,
};
use fdm::ops::layernorm::{layer_norm, layer_norm_backward, layer_norm_with_stats};
use fdm::params::layernorm::LayerNormParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::Result;

const EPS: f32 = 1e-5;

#[test]
fn layernorm_literal_cpu() -> Result<()> {
    // numpy:
    //   x = np.array([[1,2,4,7],[-1,0.5,0.5,3]]); w = np.array([1,0.5,-2,1.5]); b = np.array([0.1,0,-0.3,0.2])
    //   m = x.mean(-1, keepdims=True); v = ((x-m)**2).mean(-1, keepdims=True)
    //   (x-m)/np.sqrt(v+1e-5)*w+b
    let x = t(&[1., 2., 4., 7., -1., 0.5, 0.5, 3.], &[2, 4]);
    let w = t(&[1.0, 0.5, -2.0, 1.5], &[4]);
    let b = t(&[0.1, 0.0, -0.3, 0.2], &[4]);
    let want = [
        -0.9910884120486357,
        -0.32732652361459075,
        -0.7364353648194543,
        2.491285665302135,
        -1.1185406376555558,
        -0.08703861697539686,
        0.04815446790158745,
        2.550042658335715,
    ];
    let y = layer_norm(&x, &w, &b, EPS)?;
    assert_close(
        &vals(&y),
        &want.map(|v| v as f32),
        TOL_CPU_F32,
        "layernorm literal",
    );
    let (_, mean, rstd) = layer_norm_with_stats(&x, &w, &b, EPS)?;
    assert_eq!(vals(&mean), [3.5, 0.75]);
    // var row 0 = (6.25+2.25+0.25+12.25)/4 = 5.25
    assert_close(
        &vals(&rstd)[..1],
        &[(1.0 / (5.25f64 + 1e-5).sqrt()) as f32],
        TOL_CPU_F32,
        "rstd",
    );
    Ok(())
}

#[test]
fn layernorm_fast_matches_ref_cpu() {
    // Real shapes: 1024 tokens x 512 (one image), 2 x 1024 x 512 (a batch of two). Inputs with a
    // non-zero mean and varied scale per row, as residual streams have.
    for (rows, d) in [(1024, 512), (2048, 512), (7, 33)] {
        let p = LayerNormParams::new(rows, d, EPS);
        let x: Vec<f32> = random_vec(1, rows * d, -1.0, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + (i / d % 5) as f32) + 0.5)
            .collect();
        let w = random_vec(2, d, 0.5, 1.5);
        let b = random_vec(3, d, -0.2, 0.2);
        let g = random_vec(4, rows * d, -1.0, 1.0);
        let (mut yr, mut mr, mut sr) = (vec![0f32; rows * d], vec![0f32; rows], vec![0f32; rows]);
        let (mut yf, mut mf, mut sf) = (vec![0f32; rows * d], vec![0f32; rows], vec![0f32; rows]);
        layernorm_fwd_ref(&p, &x, &w, &b, &mut yr, &mut mr, &mut sr);
        layernorm_fwd_fast(&p, &x, &w, &b, &mut yf, &mut mf, &mut sf);
        assert_close(&yf, &yr, TOL_CPU_F32, "y");
        assert_close(&mf, &mr, TOL_CPU_F32, "mean");
        assert_close(&sf, &sr, TOL_CPU_F32, "rstd");
        let (mut dxr, mut dwr, mut dbr) = (vec![0f32; rows * d], vec![0f32; d], vec![0f32; d]);
        let (mut dxf, mut dwf, mut dbf) = (vec![0f32; rows * d], vec![0f32; d], vec![0f32; d]);
        layernorm_bwd_ref(&p, &x, &w, &g, &mut dxr, &mut dwr, &mut dbr);
        layernorm_bwd_fast(&p, &x, &w, &mf, &sf, &g, &mut dxf, &mut dwf, &mut dbf);
        assert_close(&dxf, &dxr, TOL_CPU_F32, "dx");
        // dweight sums 2048 products g * xhat (|xhat| up to ~1.7): each f32 term carries ~1e-7
        // relative error from the f32 xhat, the f64 sum adds none, so the error is ~sqrt(rows)*1e-7
        // = 5e-6 absolute at worst: inside 1e-5.
        assert_close(&dwf, &dwr, TOL_CPU_F32, "dweight");
        assert_close(&dbf, &dbr, TOL_CPU_F32, "dbias");
    }
}

#[test]
fn add_layernorm_fast_is_the_add_then_the_layernorm_cpu() {
    // The fused residual add + LayerNorm of inference: the very bits of the f32 add and
    // layernorm_fwd_fast on the sum (the transformer's outputs must not change with the fusion),
    // and within TOL_CPU_F32 of the f64 oracle; the real width and an odd one.
    for (rows, d) in [(1024, 512), (2048, 512), (7, 33)] {
        let p = LayerNormParams::new(rows, d, EPS);
        let (x, a) = (random_vec(11, rows * d, -3.0, 3.0), random_vec(12, rows * d, -1.0, 1.0));
        let (w, b) = (random_vec(13, d, 0.5, 1.5), random_vec(14, d, -0.2, 0.2));
        let (mut s, mut y) = (vec![f32::NAN; rows * d], vec![f32::NAN; rows * d]);
        add_layernorm_fwd_fast(&p, &x, &a, &w, &b, &mut s, &mut y);
        let sum: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();
        let (mut want, mut mean, mut rstd) = (vec![0f32; rows * d], vec![0f32; rows], vec![0f32; rows]);
        layernorm_fwd_fast(&p, &sum, &w, &b, &mut want, &mut mean, &mut rstd);
        let bits = |v: &[f32]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s), bits(&sum), "{rows}x{d}: the sum");
        assert_eq!(bits(&y), bits(&want), "{rows}x{d}: the normalised rows");
        let (mut s_ref, mut y_ref) = (vec![0f32; rows * d], vec![0f32; rows * d]);
        add_layernorm_fwd_ref(&p, &x, &a, &w, &b, &mut s_ref, &mut y_ref);
        assert_eq!(bits(&s_ref), bits(&sum));
        assert_close(&y, &y_ref, TOL_CPU_F32, &format!("{rows}x{d}: against the oracle"));
    }
}

/// f64 twin of LayerNorm on flat values.
fn twin(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let d = w.len();
    x.chunks(d)
        .flat_map(|r| {
            let m = r.iter().sum::<f64>() / d as f64;
            let v = r.iter().map(|a| (a - m).powi(2)).sum::<f64>() / d as f64;
            let s = 1.0 / (v + EPS as f64).sqrt();
            (0..d)
                .map(move |j| (r[j] - m) * s * w[j] + b[j])
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layernorm_backward_matches_finite_diff_cpu() {
    let (rows, d) = (3, 5);
    check_grads(
        "layernorm",
        &[
            (random_vec(7, rows * d, -2.0, 2.0), vec![rows, d]),
            (random_vec(8, d, 0.5, 1.5), vec![d]),
            (random_vec(9, d, -0.5, 0.5), vec![d]),
        ],
        |tape, v| ag::layer_norm(tape, &v[0], &v[1], &v[2], EPS),
        |xs| twin(&xs[0], &xs[1], &xs[2]),
    );
}

#[test]
fn layernorm_rejects_bad_inputs_cpu() -> Result<()> {
    let x = rand(1, &[2, 4], 0.0, 1.0);
    let err = layer_norm(&x, &rand(2, &[3], 0.0, 1.0), &rand(3, &[4], 0.0, 1.0), EPS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("weight") && err.contains("[3]") && err.contains("[4]"),
        "{err}"
    );
    let err = layer_norm(&x, &rand(2, &[4], 0.0, 1.0), &rand(3, &[4], 0.0, 1.0), 0.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("eps"), "{err}");
    let (_, m, s) =
        layer_norm_with_stats(&x, &rand(2, &[4], 0.0, 1.0), &rand(3, &[4], 0.0, 1.0), EPS)?;
    let err = layer_norm_backward(
        &x,
        &rand(2, &[4], 0.0, 1.0),
        &m,
        &s,
        &rand(4, &[4, 2], 0.0, 1.0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("gradient"), "{err}");
    Ok(())
}
