//! `kernels/image.cu`, launched by `cuda::ops::image`, against the CPU oracles of
//! cpu/ops/{patch,resize,pool}.rs on the CPU emulator (`emu::*`) and a real GPU (`cuda::*`,
//! skipped without one). Shapes: the model's 2 x 3 x 256 x 256 images in 8 x 8 patches, masks
//! resized 256 -> 32/64/128 (nearest) and back up (bilinear), VGG's 2 x 2 max pool, and odd
//! sizes (non-square, scale factors that are not integers, padded 3 x 3 windows).
//! Exact (bit for bit): patches (a permutation), nearest resize, max pooling values and indices,
//! and the pooling backwards (they add in the CPU's order). Within `be.tol()` of the f64 oracle:
//! bilinear resize and every resize backward (sums of a few products).

mod common;

use common::backend::Backend;
use fdm::cpu::ops::patch::{fold_ref, unfold_ref};
use fdm::cpu::ops::pool::{
    avg_pool2d_bwd_fast, avg_pool2d_bwd_ref, avg_pool2d_fwd_ref, max_pool2d_bwd, max_pool2d_fwd_ref,
};
use fdm::cpu::ops::resize::{resize_bwd_ref, resize_fwd_ref};
use fdm::cuda::ops::image as im;
use fdm::params::patch::PatchParams;
use fdm::params::pool::Pool2dParams;
use fdm::params::resize::{ResizeMode, ResizeParams};
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    patch_unfold_and_fold_match_reference,
    resize_forward_matches_reference,
    resize_backward_matches_reference,
    max_pool_matches_reference_with_ties_and_nan,
    avg_pool_matches_reference,
);

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()));
    if let Some(i) = bad {
        panic!("{what}: element {i}: got {}, expected {}", got[i], want[i]);
    }
}

fn patch_unfold_and_fold_match_reference<B: Backend>(be: &B) {
    for (s, &(b, c, h, w, ps)) in [
        (2usize, 3usize, 256usize, 256usize, 8usize),
        (1, 5, 16, 24, 8),
        (3, 2, 6, 9, 3),
    ]
    .iter()
    .enumerate()
    {
        let p = PatchParams::new(b, c, h, w, ps);
        let n = b * c * h * w;
        let img = random_vec(s as u64, n, -1.0, 1.0);
        let mut want = vec![0.0; n];
        unfold_ref(&p, &img, &mut want);
        let (ib, tb) = (be.f32s(&img), be.f32s(&vec![f32::NAN; n]));
        be.run(&im::patch_unfold_launch(be.ptr(&tb), be.ptr(&ib), &p));
        assert_bits_eq(&be.get_f32(&tb), &want, &format!("unfold {:?}", p.dims()));
        let tokens = random_vec(10 + s as u64, n, -1.0, 1.0);
        fold_ref(&p, &tokens, &mut want);
        let (tb, ib) = (be.f32s(&tokens), be.f32s(&vec![f32::NAN; n]));
        be.run(&im::patch_fold_launch(be.ptr(&ib), be.ptr(&tb), &p));
        assert_bits_eq(&be.get_f32(&ib), &want, &format!("fold {:?}", p.dims()));
    }
}

/// (mode, planes, in (h, w), out (h, w))
fn resize_cases() -> Vec<(ResizeMode, usize, (usize, usize), (usize, usize))> {
    use ResizeMode::*;
    vec![
        (Nearest, 2, (256, 256), (32, 32)),
        (Nearest, 2, (256, 256), (64, 64)),
        (Nearest, 1, (256, 256), (128, 128)),
        (Nearest, 3, (32, 32), (256, 256)),
        (Nearest, 2, (7, 5), (13, 3)),
        (Bilinear, 3, (32, 32), (256, 256)),
        (Bilinear, 3, (256, 256), (128, 128)),
        (Bilinear, 2, (7, 5), (13, 3)),
        (Bilinear, 2, (5, 9), (5, 9)),
        (Bilinear, 1, (1, 4), (3, 1)),
    ]
}

fn resize_forward_matches_reference<B: Backend>(be: &B) {
    for (s, (mode, planes, ih, oh)) in resize_cases().into_iter().enumerate() {
        let p = ResizeParams::new(mode, planes, ih, oh);
        let x = random_vec(20 + s as u64, planes * p.in_plane(), -1.0, 1.0);
        let mut want = vec![0.0; planes * p.out_plane()];
        resize_fwd_ref(&p, &x, &mut want);
        let (xb, yb) = (be.f32s(&x), be.f32s(&vec![f32::NAN; want.len()]));
        be.run(&im::resize_fwd_launch(be.ptr(&yb), be.ptr(&xb), &p));
        let what = format!("resize {mode:?} {ih:?} -> {oh:?}");
        match mode {
            ResizeMode::Nearest => assert_bits_eq(&be.get_f32(&yb), &want, &what),
            ResizeMode::Bilinear => assert_close(&be.get_f32(&yb), &want, be.tol(), &what),
        }
    }
}

fn resize_backward_matches_reference<B: Backend>(be: &B) {
    for (s, (mode, planes, ih, oh)) in resize_cases().into_iter().enumerate() {
        let p = ResizeParams::new(mode, planes, ih, oh);
        let g = random_vec(40 + s as u64, planes * p.out_plane(), -1.0, 1.0);
        let mut want = vec![0.0; planes * p.in_plane()];
        resize_bwd_ref(&p, &g, &mut want);
        let (gb, dx) = (be.f32s(&g), be.f32s(&vec![f32::NAN; want.len()]));
        be.run(&im::resize_bwd_launch(be.ptr(&dx), be.ptr(&gb), &p));
        let what = format!("resize backward {mode:?} {ih:?} -> {oh:?}");
        assert_close(&be.get_f32(&dx), &want, be.tol(), &what);
    }
}

/// (planes, in_h, in_w, kernel, stride, pad) with the output size PyTorch gives.
fn pool_params(
    planes: usize,
    h: usize,
    w: usize,
    k: usize,
    st: usize,
    pad: usize,
    include_pad: bool,
) -> Pool2dParams {
    Pool2dParams {
        planes: planes as u32,
        in_h: h as u32,
        in_w: w as u32,
        out_h: ((h + 2 * pad - k) / st + 1) as u32,
        out_w: ((w + 2 * pad - k) / st + 1) as u32,
        kernel: k as u32,
        stride: st as u32,
        pad: pad as u32,
        count_include_pad: include_pad as u32,
    }
}

const POOLS: [(usize, usize, usize, usize, usize, usize); 5] = [
    (2 * 64, 64, 64, 2, 2, 0),
    (3, 17, 11, 3, 2, 1),
    (2, 9, 9, 3, 1, 1),
    (1, 8, 5, 4, 3, 2),
    (2, 7, 7, 1, 1, 0),
];

fn max_pool_matches_reference_with_ties_and_nan<B: Backend>(be: &B) {
    for (s, &(planes, h, w, k, st, pad)) in POOLS.iter().enumerate() {
        let p = pool_params(planes, h, w, k, st, pad, true);
        let mut x = random_vec(60 + s as u64, planes * h * w, -2.0, 2.0);
        x.iter_mut().for_each(|v| *v = v.round()); // ties in most windows
        x[w + 1] = f32::NAN;
        let n_out = planes * p.out_plane();
        let (mut want_y, mut want_i) = (vec![0.0; n_out], vec![0u32; n_out]);
        max_pool2d_fwd_ref(&p, &x, &mut want_y, &mut want_i);
        let xb = be.f32s(&x);
        let (yb, ib) = (be.f32s(&vec![0.5; n_out]), be.u32s(&vec![u32::MAX; n_out]));
        be.run(&im::max_pool_fwd_launch(
            be.ptr(&yb),
            be.ptr(&ib),
            be.ptr(&xb),
            &p,
        ));
        let what = format!("max pool {:?}", POOLS[s]);
        assert_bits_eq(&be.get_f32(&yb), &want_y, &what);
        assert_eq!(be.get_u32(&ib), want_i, "{what}: indices");

        let g = random_vec(70 + s as u64, n_out, -1.0, 1.0);
        let mut want_dx = vec![0.0; x.len()];
        max_pool2d_bwd(&p, &want_i, &g, &mut want_dx);
        let (gb, dx) = (be.f32s(&g), be.f32s(&vec![f32::NAN; x.len()]));
        be.run(&im::max_pool_bwd_launch(
            be.ptr(&dx),
            be.ptr(&ib),
            be.ptr(&gb),
            &p,
        ));
        assert_bits_eq(&be.get_f32(&dx), &want_dx, &format!("{what} backward"));
    }
}

fn avg_pool_matches_reference<B: Backend>(be: &B) {
    for (s, &(planes, h, w, k, st, pad)) in POOLS.iter().enumerate() {
        for include_pad in [true, false] {
            let p = pool_params(planes, h, w, k, st, pad, include_pad);
            let x = random_vec(80 + s as u64, planes * h * w, -2.0, 2.0);
            let n_out = planes * p.out_plane();
            let mut want_y = vec![0.0; n_out];
            avg_pool2d_fwd_ref(&p, &x, &mut want_y);
            let (xb, yb) = (be.f32s(&x), be.f32s(&vec![f32::NAN; n_out]));
            be.run(&im::avg_pool_fwd_launch(be.ptr(&yb), be.ptr(&xb), &p));
            let what = format!("avg pool {:?} include_pad {include_pad}", POOLS[s]);
            assert_close(&be.get_f32(&yb), &want_y, be.tol(), &what);

            let g = random_vec(90 + s as u64, n_out, -1.0, 1.0);
            let (mut fast, mut oracle) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            avg_pool2d_bwd_fast(&p, &g, &mut fast);
            avg_pool2d_bwd_ref(&p, &g, &mut oracle);
            let (gb, dx) = (be.f32s(&g), be.f32s(&vec![f32::NAN; x.len()]));
            be.run(&im::avg_pool_bwd_launch(be.ptr(&dx), be.ptr(&gb), &p));
            let got = be.get_f32(&dx);
            assert_close(&got, &oracle, be.tol(), &format!("{what} backward"));
            assert_bits_eq(&got, &fast, &format!("{what} backward vs fast"));
        }
    }
}
