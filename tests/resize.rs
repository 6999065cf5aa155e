//! Resize with PyTorch `interpolate` semantics: the nearest-downsampling trap of spec §1.5
//! (256 -> 32 picks pixel (8i, 8j)) on the real mask shapes (1 x 1 x 256 x 256 -> 32/64/128),
//! literal bilinear (align_corners=False) values, fast vs ref, backward vs finite differences,
//! errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::resize as ag;
use fdm::cpu::ops::resize::{
    nearest_source, resize_bwd_fast, resize_bwd_ref, resize_fwd_fast, resize_fwd_ref,
};
use fdm::ops::resize::{resize_backward, resize_bilinear, resize_nearest};
use fdm::params::resize::{ResizeMode, ResizeParams};
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::Result;

/// A 256 x 256 binary mask (1 = visible) with random holes, plus two planted 8x8 blocks:
/// block (0, 0) visible except its top-left pixel; block (1, 1) a hole except its top-left pixel.
fn mask_256() -> Vec<f32> {
    let mut r = Rng::new(42);
    let mut m: Vec<f32> = (0..256 * 256)
        .map(|_| if r.bernoulli(0.3) { 0.0 } else { 1.0 })
        .collect();
    for y in 0..8 {
        for x in 0..8 {
            m[y * 256 + x] = 1.0;
            m[(8 + y) * 256 + 8 + x] = 0.0;
        }
    }
    m[0] = 0.0;
    m[8 * 256 + 8] = 1.0;
    m
}

#[test]
fn resize_nearest_downsample_picks_top_left_cpu() -> Result<()> {
    // Spec §1.5: PyTorch nearest takes floor(i * in/out), the top-left pixel of each block — not a
    // majority vote and not "fully visible".
    let m = mask_256();
    let mask = t(&m, &[1, 1, 256, 256]);
    for size in [32, 64, 128] {
        let s = 256 / size;
        let out = resize_nearest(&mask, (size, size))?;
        assert_eq!(out.shape(), &[1, 1, size, size]);
        let ov = vals(&out);
        for i in 0..size {
            for j in 0..size {
                assert_eq!(
                    ov[i * size + j],
                    m[(s * i) * 256 + s * j],
                    "size {size} at ({i},{j})"
                );
            }
        }
    }
    let m32 = vals(&resize_nearest(&mask, (32, 32))?);
    assert_eq!(
        m32[0], 0.0,
        "block with only its top-left pixel a hole reads as hole"
    );
    assert_eq!(
        m32[32 + 1],
        1.0,
        "block that is a hole except its top-left pixel reads as visible"
    );
    Ok(())
}

#[test]
fn resize_nearest_index_rule_cpu() {
    // PyTorch: scale = in/out in f32, src = min(floor(i * scale), in - 1).
    let idx = |i_n: usize, o_n: usize| {
        (0..o_n)
            .map(|i| nearest_source(i, i_n, o_n))
            .collect::<Vec<_>>()
    };
    assert_eq!(idx(5, 3), [0, 1, 3]);
    assert_eq!(idx(2, 5), [0, 0, 0, 1, 1]);
    assert_eq!(idx(256, 32), (0..32).map(|i| 8 * i).collect::<Vec<_>>());
    assert_eq!(idx(32, 256), (0..256).map(|i| i / 8).collect::<Vec<_>>());
}

#[test]
fn resize_bilinear_literal_cpu() -> Result<()> {
    // PyTorch: F.interpolate(torch.tensor([[[[1.,2.],[3.,4.]]]]), size=4, mode='bilinear',
    //          align_corners=False)
    let x = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert_close(
        &vals(&resize_bilinear(&x, (4, 4))?),
        &want,
        TOL_CPU_F32,
        "2x2 -> 4x4",
    );
    // numpy, PyTorch's per-axis rule (s = max((i + 0.5) * in/out - 0.5, 0), i0 = floor(s),
    // i1 = min(i0 + 1, in - 1), weight s - i0):
    //   x = np.arange(25.).reshape(5,5) ** 1.5; bilinear(x, 3, 3); bilinear(x, 2, 7)
    let x: Vec<f32> = (0..25).map(|v| (v as f32).powf(1.5)).collect();
    let x = t(&x, &[5, 5]);
    let to3 = [
        4.339735359077441,
        8.059037808981506,
        13.224413538153645,
        33.242808632425664,
        41.569219381653056,
        50.546191136900745,
        81.1587284415927,
        92.15702968924371,
        103.65733032327202,
    ];
    assert_close(
        &vals(&resize_bilinear(&x, (3, 3))?),
        &to3.map(|v| v as f32),
        TOL_CPU_F32,
        "5x5 -> 3x3",
    );
    let to2x7 = [
        8.385254915624213,
        10.035225730995691,
        12.222588791596115,
        14.59730116427565,
        17.220372371331475,
        19.9754862023736,
        22.25,
        65.93174241983134,
        69.43275955050953,
        73.86091125769984,
        78.36688340565402,
        82.99888135530007,
        87.70446895959888,
        91.50818685885272,
    ];
    assert_close(
        &vals(&resize_bilinear(&x, (2, 7))?),
        &to2x7.map(|v| v as f32),
        TOL_CPU_F32,
        "5x5 -> 2x7",
    );
    Ok(())
}

#[test]
fn resize_fast_matches_ref_cpu() {
    // Real shapes: the mask pyramid 1 x 1 x 256 x 256 -> 32/64/128 (decoder blend, spec §2.4),
    // upsampling 2 x 3 x 32 x 32 -> 256, and an odd non-integer case.
    let cases = [
        (1, (256, 256), (32, 32)),
        (1, (256, 256), (64, 64)),
        (1, (256, 256), (128, 128)),
        (6, (32, 32), (256, 256)),
        (4, (7, 5), (3, 11)),
    ];
    for (k, &(planes, ihw, ohw)) in cases.iter().enumerate() {
        for mode in [ResizeMode::Nearest, ResizeMode::Bilinear] {
            let p = ResizeParams::new(mode, planes, ihw, ohw);
            let x = random_vec(k as u64, planes * ihw.0 * ihw.1, -1.0, 1.0);
            let (mut a, mut b) = (
                vec![0f32; planes * ohw.0 * ohw.1],
                vec![0f32; planes * ohw.0 * ohw.1],
            );
            resize_fwd_ref(&p, &x, &mut a);
            resize_fwd_fast(&p, &x, &mut b);
            assert_close(
                &b,
                &a,
                TOL_CPU_F32,
                &format!("{mode:?} {ihw:?} -> {ohw:?} forward"),
            );
            let g = random_vec(k as u64 + 9, a.len(), -1.0, 1.0);
            let (mut da, mut db) = (vec![0f32; x.len()], vec![7f32; x.len()]);
            resize_bwd_ref(&p, &g, &mut da);
            resize_bwd_fast(&p, &g, &mut db);
            assert_close(
                &db,
                &da,
                TOL_CPU_F32,
                &format!("{mode:?} {ihw:?} -> {ohw:?} backward"),
            );
        }
    }
}

/// f64 twin with the same per-axis rules (bilinear taps in f64; nearest indices are integers).
fn twin(mode: ResizeMode, ihw: (usize, usize), ohw: (usize, usize), x: &[f64]) -> Vec<f64> {
    let taps = |i: usize, n_in: usize, n_out: usize| -> (usize, usize, f64) {
        if mode == ResizeMode::Nearest {
            let s = nearest_source(i, n_in, n_out);
            return (s, s, 0.0);
        }
        let s = ((i as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        (i0, (i0 + 1).min(n_in - 1), s - i0 as f64)
    };
    let planes = x.len() / (ihw.0 * ihw.1);
    let mut out = Vec::new();
    for n in 0..planes {
        let at = |y: usize, xx: usize| x[n * ihw.0 * ihw.1 + y * ihw.1 + xx];
        for a in 0..ohw.0 {
            let (y0, y1, ly) = taps(a, ihw.0, ohw.0);
            for b in 0..ohw.1 {
                let (x0, x1, lx) = taps(b, ihw.1, ohw.1);
                out.push(
                    (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1))
                        + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1)),
                );
            }
        }
    }
    out
}

#[test]
fn resize_backward_matches_finite_diff_cpu() {
    for mode in [ResizeMode::Nearest, ResizeMode::Bilinear] {
        for (ihw, ohw) in [((4, 6), (8, 3)), ((5, 5), (3, 3)), ((3, 2), (7, 5))] {
            check_grads(
                &format!("{mode:?} {ihw:?} -> {ohw:?}"),
                &[(
                    random_vec(1, 2 * ihw.0 * ihw.1, -1.0, 1.0),
                    vec![2, 1, ihw.0, ihw.1],
                )],
                move |tape, v| ag::resize(tape, &v[0], mode, ohw),
                move |xs| twin(mode, ihw, ohw, &xs[0]),
            );
        }
    }
}

#[test]
fn resize_rejects_bad_inputs_cpu() -> Result<()> {
    let err = resize_nearest(&rand(1, &[5], 0.0, 1.0), (2, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("[..., H, W]"), "{err}");
    let err = resize_bilinear(&rand(1, &[1, 4, 4], 0.0, 1.0), (0, 2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = resize_backward(
        &rand(1, &[1, 2, 2], 0.0, 1.0),
        ResizeMode::Nearest,
        &[2, 4, 4],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("gradient") && err.contains("[2, 2, 2]"),
        "{err}"
    );
    Ok(())
}
