//! The transposed convolution's launchers (`cuda::ops::conv_transpose2d`: conv2d kernels run as the
//! adjoint conv, weight `[in, out, kh, kw]`) against the CPU oracles of
//! `cpu::ops::conv_transpose2d` (f64 sums written from the scatter/gather definition, not through
//! Conv2d, so the adjoint mapping is checked too), on the CPU emulator (`emu::*`) and a real GPU
//! (`cuda::*`, skipped without one): forward with and without bias, dx, dw (split-K as
//! `conv_transpose2d_bwd_weight` runs it), db.
//!
//! Tolerance TOL_CUDA_F32 (1e-4 abs + rel), as the conv tests: f32 sums of up to c_in*kh*kw = 4096
//! (forward), c_out*kh*kw = 4096 (dx) or n*h*w = 1024 (dw) products in an order unlike the f64
//! oracle's.

mod common;

use common::backend::Backend;
use fdm::cpu::ops::conv_transpose2d::{
    conv_transpose2d_backward_input_ref_at, conv_transpose2d_backward_weight_ref_at,
    conv_transpose2d_ref_at,
};
use fdm::cuda::ops::conv2d_backward::weight_grad_splits;
use fdm::cuda::ops::conv_transpose2d::*;
use fdm::params::conv_transpose2d::ConvTranspose2dParams;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};
use rayon::prelude::*;

backend_tests!(
    conv_transpose2d_odd_sizes_and_strides,
    conv_transpose2d_decoder_256_to_256,
    conv_transpose2d_decoder_256_to_128_and_128_to_64
);

/// The CPU oracle's parameters for the same transposed convolution.
fn cpu_params(
    input: [usize; 4],
    weight: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    s: &ConvTranspose2dShape,
) -> ConvTranspose2dParams {
    let (oh, ow) = s.output_hw();
    let u = |v: usize| v as u32;
    ConvTranspose2dParams {
        batch: u(input[0]),
        in_channels: u(input[1]),
        in_h: u(input[2]),
        in_w: u(input[3]),
        out_channels: u(weight[1]),
        out_h: u(oh),
        out_w: u(ow),
        kernel_h: u(weight[2]),
        kernel_w: u(weight[3]),
        stride_h: u(stride.0),
        stride_w: u(stride.1),
        pad_h: u(pad.0),
        pad_w: u(pad.1),
        has_bias: 1,
    }
}

/// `got` beside the oracle's value for every element whose channel (index / plane % channels) is
/// a multiple of `step`.
fn sampled(
    got: &[f32],
    plane: usize,
    channels: usize,
    step: usize,
    want: impl Fn(usize) -> f64 + Sync,
) -> (Vec<f32>, Vec<f32>) {
    got.par_iter()
        .enumerate()
        .filter(|(i, _)| ((i / plane) % channels).is_multiple_of(step))
        .map(|(i, &v)| (v, want(i) as f32))
        .unzip()
}

/// Splits an NCHW flat index into (n, c, h, w).
fn nchw(i: usize, c: usize, h: usize, w: usize) -> (usize, usize, usize, usize) {
    (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w)
}

#[allow(clippy::too_many_arguments)]
fn check<B: Backend>(
    be: &B,
    seed: u64,
    input: [usize; 4],
    weight: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    step: usize,
) {
    let s = ConvTranspose2dShape::new(input, weight, stride, pad).unwrap();
    let cp = cpu_params(input, weight, stride, pad, &s);
    let (cin, cout, (oh, ow)) = (input[1], weight[1], s.output_hw());
    let what = format!("conv_transpose2d {input:?} * {weight:?} s{stride:?} p{pad:?}");
    let x = random_vec(seed, s.input_len(), -1.0, 1.0);
    let w = random_vec(seed + 1, s.weight_len(), -0.2, 0.2);
    let bias = random_vec(seed + 2, cout, -0.5, 0.5);
    let g = random_vec(seed + 3, s.output_len(), -1.0, 1.0);
    let (xb, wb, bb, gb) = (be.f32s(&x), be.f32s(&w), be.f32s(&bias), be.f32s(&g));

    for with_bias in [true, false] {
        let y = be.f32s(&vec![f32::NAN; s.output_len()]);
        let bias_ptr = if with_bias { be.ptr(&bb) } else { 0 };
        be.run(&conv_transpose2d_fwd_launch(
            be.ptr(&y),
            be.ptr(&xb),
            be.ptr(&wb),
            bias_ptr,
            &s,
        ));
        let b = with_bias.then_some(&bias[..]);
        let (got, want) = sampled(&be.get_f32(&y), oh * ow, cout, step, |i| {
            let (n, o, r, c) = nchw(i, cout, oh, ow);
            conv_transpose2d_ref_at(&cp, &x, &w, b, n, o, r, c)
        });
        assert_close(
            &got,
            &want,
            TOL_CUDA_F32,
            &format!("{what} forward, bias {with_bias}"),
        );
    }

    let dx = be.f32s(&vec![f32::NAN; s.input_len()]);
    be.run(&conv_transpose2d_bwd_input_launch(
        be.ptr(&dx),
        be.ptr(&gb),
        be.ptr(&wb),
        &s,
    ));
    let (got, want) = sampled(&be.get_f32(&dx), input[2] * input[3], cin, step, |i| {
        let (n, c, r, q) = nchw(i, cin, input[2], input[3]);
        conv_transpose2d_backward_input_ref_at(&cp, &w, &g, n, c, r, q)
    });
    assert_close(&got, &want, TOL_CUDA_F32, &format!("{what} dx"));

    let got = weight_grad(be, &xb, &gb, &s);
    let (kh, kw) = (weight[2], weight[3]);
    let (got, want) = sampled(&got, cout * kh * kw, cin, step, |e| {
        let (c, o, i, j) = nchw(e, cout, kh, kw);
        conv_transpose2d_backward_weight_ref_at(&cp, &x, &g, c, o, i, j)
    });
    assert_close(&got, &want, TOL_CUDA_F32, &format!("{what} dw"));

    let db = be.f32s(&vec![f32::NAN; cout]);
    be.run(&conv_transpose2d_bwd_bias_launch(
        be.ptr(&db),
        be.ptr(&gb),
        &s,
    ));
    let plane = oh * ow;
    let want: Vec<f32> = (0..cout)
        .map(|o| {
            (0..input[0])
                .flat_map(|n| &g[(n * cout + o) * plane..][..plane])
                .map(|&v| v as f64)
                .sum::<f64>() as f32
        })
        .collect();
    assert_close(&be.get_f32(&db), &want, TOL_CUDA_F32, &format!("{what} db"));
}

/// dw as `conv_transpose2d_bwd_weight` runs it: the split of the adjoint conv, partial sums, then
/// the fixed-order sum when there is more than one split.
fn weight_grad<B: Backend>(be: &B, xb: &B::Buf, gb: &B::Buf, s: &ConvTranspose2dShape) -> Vec<f32> {
    let (splits, chunk) = weight_grad_splits(&s.conv);
    let part = be.f32s(&vec![f32::NAN; s.weight_len() * splits as usize]);
    be.run(&conv_transpose2d_bwd_weight_launch(
        be.ptr(&part),
        be.ptr(xb),
        be.ptr(gb),
        s,
        splits,
        chunk,
    ));
    if splits == 1 {
        return be.get_f32(&part);
    }
    let dw = be.f32s(&vec![f32::NAN; s.weight_len()]);
    be.run(&conv_transpose2d_bwd_weight_sum_launch(
        be.ptr(&dw),
        be.ptr(&part),
        s,
        splits,
    ));
    be.get_f32(&dw)
}

fn conv_transpose2d_odd_sizes_and_strides<B: Backend>(be: &B) {
    check(be, 1, [2, 3, 5, 7], [3, 5, 3, 3], (2, 2), (1, 1), 1);
    check(be, 5, [1, 4, 6, 5], [4, 6, 4, 2], (3, 2), (1, 0), 1);
    check(be, 9, [2, 70, 3, 4], [70, 3, 2, 2], (2, 2), (0, 0), 1);
    check(be, 13, [1, 5, 4, 4], [5, 67, 1, 1], (1, 1), (0, 0), 1);
    // Stride 1 with padding: a plain "full" correlation with a flipped kernel.
    check(be, 17, [2, 3, 6, 6], [3, 4, 3, 3], (1, 1), (1, 1), 1);
}

fn conv_transpose2d_decoder_256_to_256<B: Backend>(be: &B) {
    // The decoder's first upsampling (spec §2.4: 4x4 stride 2 pad 1, 256 -> 256, at 32x32) with
    // its real channels at an 8x8 input (16x16 output) so the emulator stays fast; every 5th
    // channel (all four 64-channel tiles) is checked.
    check(be, 20, [1, 256, 8, 8], [256, 256, 4, 4], (2, 2), (1, 1), 5);
}

fn conv_transpose2d_decoder_256_to_128_and_128_to_64<B: Backend>(be: &B) {
    check(be, 30, [1, 256, 6, 6], [256, 128, 4, 4], (2, 2), (1, 1), 3);
    check(be, 40, [2, 128, 16, 16], [128, 64, 4, 4], (2, 2), (1, 1), 1);
}

#[test]
fn conv_transpose2d_shape_matches_pytorch_and_rejects_bad_input() {
    // The decoder's three upsamplings: 32 -> 64 -> 128 -> 256.
    for (hw, cin, cout) in [(32, 256, 256), (64, 256, 128), (128, 128, 64)] {
        let s =
            ConvTranspose2dShape::new([1, cin, hw, hw], [cin, cout, 4, 4], (2, 2), (1, 1)).unwrap();
        assert_eq!(s.output_hw(), (2 * hw, 2 * hw));
        assert_eq!(s.output_len(), cout * 4 * hw * hw);
        assert_eq!(s.weight_len(), cin * cout * 16);
    }
    let err = ConvTranspose2dShape::new([1, 8, 4, 4], [4, 8, 4, 4], (2, 2), (1, 1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_transpose2d") && err.contains("[4, 8, 4, 4]"),
        "channel mismatch: {err}"
    );
    assert!(
        ConvTranspose2dShape::new([1, 3, 1, 1], [3, 2, 1, 1], (1, 1), (1, 1)).is_err(),
        "empty output"
    );
    assert!(
        ConvTranspose2dShape::new([1, 3, 4, 4], [3, 2, 3, 3], (0, 1), (0, 0)).is_err(),
        "zero stride"
    );
}
