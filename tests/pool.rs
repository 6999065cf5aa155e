//! 2-D max / average pooling: literal values (numpy, PyTorch's window rule), first-max ties,
//! fast vs ref on real shapes, backward vs finite differences, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::pool as ag;
use fdm::cpu::ops::pool::{
    avg_pool2d_bwd_fast, avg_pool2d_bwd_ref, avg_pool2d_fwd_fast, avg_pool2d_fwd_ref,
    max_pool2d_fwd_fast, max_pool2d_fwd_ref,
};
use fdm::ops::pool::{avg_pool2d, max_pool2d, max_pool2d_backward, max_pool2d_with_indices};
use fdm::params::pool::Pool2dParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

/// x = (np.arange(20.).reshape(4,5) * 7 % 11) - 5
fn literal_x() -> Tensor {
    let v: Vec<f32> = (0..20).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    t(&v, &[1, 1, 4, 5])
}

#[test]
fn pool_literal_cpu() -> Result<()> {
    // numpy reference (the window rule of PyTorch: start = o*s - p, end = min(start + k, in + p),
    // divisor = padded window size if count_include_pad else the valid pixel count):
    //   pool(x,2,2,0,'max'); pool(x,3,2,1,'max'); pool(x,3,2,1,'avg',True); pool(x,3,2,1,'avg',False)
    let x = literal_x();
    let (y, idx) = max_pool2d_with_indices(&x, 2, 2, 0)?;
    assert_eq!(y.shape(), &[1, 1, 2, 2]);
    assert_eq!(vals(&y), [4.0, 5.0, 1.0, 4.0]);
    assert_eq!(idx.to_vec_u32()?, [6, 3, 15, 17]);
    assert_eq!(
        vals(&max_pool2d(&x, 3, 2, 1)?),
        [4.0, 5.0, 5.0, 4.0, 4.0, 5.0]
    );
    let cip = [
        -0.2222222222222222,
        0.5555555555555556,
        0.5555555555555556,
        -0.7777777777777778,
        -0.4444444444444444,
        -0.2222222222222222,
    ];
    let nocip = [
        -0.5,
        0.8333333333333334,
        1.25,
        -1.1666666666666667,
        -0.4444444444444444,
        -0.3333333333333333,
    ];
    assert_close(
        &vals(&avg_pool2d(&x, 3, 2, 1, true)?),
        &cip.map(|v| v as f32),
        TOL_CPU_F32,
        "avg count_include_pad",
    );
    assert_close(
        &vals(&avg_pool2d(&x, 3, 2, 1, false)?),
        &nocip.map(|v| v as f32),
        TOL_CPU_F32,
        "avg valid only",
    );
    Ok(())
}

#[test]
fn pool_max_ties_route_to_first_cpu() -> Result<()> {
    // Window of equal values: the first (row-major) one wins and gets the whole gradient.
    let x = t(
        &[
            1., 3., 3., 0., 3., 3., 2., 2., 3., 1., 0., 0., 3., 3., 3., 3.,
        ],
        &[1, 1, 4, 4],
    );
    let (_, idx) = max_pool2d_with_indices(&x, 2, 2, 0)?;
    assert_eq!(idx.to_vec_u32()?, [1, 2, 8, 14]);
    let g = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    let dx = max_pool2d_backward(&g, &idx, &[1, 1, 4, 4], 2, 2, 0)?;
    assert_eq!(
        vals(&dx),
        [0., 1., 2., 0., 0., 0., 0., 0., 3., 0., 0., 0., 0., 0., 4., 0.]
    );
    // A NaN in the window is the result.
    let n = t(&[1., f32::NAN, 5., 2.], &[1, 1, 2, 2]);
    assert!(vals(&max_pool2d(&n, 2, 2, 0)?)[0].is_nan());
    Ok(())
}

fn params(
    planes: usize,
    hw: (usize, usize),
    k: usize,
    s: usize,
    p: usize,
    cip: bool,
) -> Pool2dParams {
    let (oh, ow) = ((hw.0 + 2 * p - k) / s + 1, (hw.1 + 2 * p - k) / s + 1);
    Pool2dParams {
        planes: planes as u32,
        in_h: hw.0 as u32,
        in_w: hw.1 as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        kernel: k as u32,
        stride: s as u32,
        pad: p as u32,
        count_include_pad: cip as u32,
    }
}

#[test]
fn pool_fast_matches_ref_cpu() {
    // Real shapes: VGG/LPIPS-style 2x2 s2 on 2 x 64 x 128 x 128; Inception-style 3x3 s2 and
    // 3x3 s1 p1 on 2 x 64 x 35 x 35.
    for (k, (planes, hw, kern, s, p, cip)) in [
        (128, (128, 128), 2, 2, 0, true),
        (128, (35, 35), 3, 2, 0, true),
        (128, (35, 35), 3, 1, 1, false),
        (3, (7, 6), 3, 2, 1, true),
    ]
    .into_iter()
    .enumerate()
    {
        let pr = params(planes, hw, kern, s, p, cip);
        let x = random_vec(k as u64, planes * hw.0 * hw.1, -1.0, 1.0);
        let n_out = planes * pr.out_plane();
        let (mut ya, mut yb, mut ia, mut ib) = (
            vec![0f32; n_out],
            vec![0f32; n_out],
            vec![0u32; n_out],
            vec![0u32; n_out],
        );
        max_pool2d_fwd_ref(&pr, &x, &mut ya, &mut ia);
        max_pool2d_fwd_fast(&pr, &x, &mut yb, &mut ib);
        assert_eq!((&ya, &ia), (&yb, &ib), "max {hw:?} k{kern} s{s} p{p}");
        avg_pool2d_fwd_ref(&pr, &x, &mut ya);
        avg_pool2d_fwd_fast(&pr, &x, &mut yb);
        assert_close(
            &yb,
            &ya,
            TOL_CPU_F32,
            &format!("avg {hw:?} k{kern} s{s} p{p}"),
        );
        let g = random_vec(k as u64 + 5, n_out, -1.0, 1.0);
        let (mut da, mut db) = (vec![0f32; x.len()], vec![3f32; x.len()]);
        avg_pool2d_bwd_ref(&pr, &g, &mut da);
        avg_pool2d_bwd_fast(&pr, &g, &mut db);
        assert_close(
            &db,
            &da,
            TOL_CPU_F32,
            &format!("avg backward {hw:?} k{kern} s{s} p{p}"),
        );
    }
}

/// f64 twin of pooling one or more planes (the numpy rule above).
fn twin(
    max: bool,
    hw: (usize, usize),
    k: usize,
    s: usize,
    p: usize,
    cip: bool,
    x: &[f64],
) -> Vec<f64> {
    let (h, w) = hw;
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = Vec::new();
    for plane in x.chunks(h * w) {
        for a in 0..oh {
            for b in 0..ow {
                let (y0, x0) = ((a * s) as isize - p as isize, (b * s) as isize - p as isize);
                let (y1, x1) = (
                    (y0 + k as isize).min((h + p) as isize),
                    (x0 + k as isize).min((w + p) as isize),
                );
                let size = ((y1 - y0) * (x1 - x0)) as f64;
                let mut vals = Vec::new();
                for yy in y0.max(0)..y1.min(h as isize) {
                    for xx in x0.max(0)..x1.min(w as isize) {
                        vals.push(plane[yy as usize * w + xx as usize]);
                    }
                }
                out.push(if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / if cip { size } else { vals.len() as f64 }
                });
            }
        }
    }
    out
}

#[test]
fn pool_backward_matches_finite_diff_cpu() {
    let hw = (5, 6);
    // Distinct values 0.04 apart (shuffled): no max tie within the FD step.
    let mut x: Vec<f32> = (0..60).map(|i| i as f32 * 0.04 - 1.2).collect();
    fdm::rng::Rng::new(9).shuffle(&mut x);
    for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 1)] {
        check_grads(
            &format!("max_pool k{k} s{s} p{p}"),
            &[(x.clone(), vec![1, 2, hw.0, hw.1])],
            move |tape, v| ag::max_pool2d(tape, &v[0], k, s, p),
            move |xs| twin(true, hw, k, s, p, true, &xs[0]),
        );
        for cip in [true, false] {
            check_grads(
                &format!("avg_pool k{k} s{s} p{p} cip {cip}"),
                &[(x.clone(), vec![1, 2, hw.0, hw.1])],
                move |tape, v| ag::avg_pool2d(tape, &v[0], k, s, p, cip),
                move |xs| twin(false, hw, k, s, p, cip, &xs[0]),
            );
        }
    }
}

#[test]
fn pool_rejects_bad_inputs_cpu() -> Result<()> {
    let x = literal_x();
    let err = max_pool2d(&x, 2, 2, 2).unwrap_err().to_string();
    assert!(
        err.contains("padding 2") && err.contains("half the kernel 2"),
        "{err}"
    );
    let err = avg_pool2d(&x, 0, 1, 0, true).unwrap_err().to_string();
    assert!(err.contains("kernel (0)"), "{err}");
    let err = max_pool2d(&x, 5, 1, 0).unwrap_err().to_string();
    assert!(err.contains("larger than the padded input 4x5"), "{err}");
    let idx = Tensor::from_u32(vec![0, 1, 99, 2], &[1, 1, 2, 2])?;
    let err = max_pool2d_backward(
        &rand(1, &[1, 1, 2, 2], 0.0, 1.0),
        &idx,
        &[1, 1, 4, 5],
        2,
        2,
        0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("index 99"), "{err}");
    Ok(())
}
