//! `kernels/conv2d_backward.cu` (conv2d input / weight / bias gradients), launched by its
//! launchers, against the CPU oracles `conv2d_backward_input_ref_at` /
//! `conv2d_backward_weight_ref_at` (f64 sums from the definition), on the CPU emulator (`emu::*`)
//! and a real GPU (`cuda::*`, skipped without one).
//!
//! The CPU parameters have no dilation; a dilated case is checked against the same oracles run
//! on the equivalent undilated kernel of size dil*(k-1)+1 with zeros between the taps.
//!
//! Tolerance TOL_CUDA_F32 (1e-4 abs + rel), as the forward conv tests: the kernels sum up to
//! O*KH*KW = 2304 (dx) or N*OH*OW = 1024 (dw) f32 products in f32, in an order unlike the
//! reference's, so their rounding differs from the f64 oracle by more than TOL_CPU_F32 allows.

mod common;

use common::backend::Backend;
use fdm::cpu::ops::conv2d::{conv2d_backward_input_ref_at, conv2d_backward_weight_ref_at};
use fdm::cuda::ops::conv2d::{conv2d_fwd_wide_launch, Conv2dParams};
use fdm::cuda::ops::conv2d_backward::*;
use fdm::dtype::DType;
use fdm::params::conv2d::Conv2dParams as CpuConv2dParams;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};
use rayon::prelude::*;

backend_tests!(
    conv2d_backward_odd_sizes_stride_pad_dilation,
    conv2d_backward_model_shape_256ch_3x3_at_32x32,
    conv2d_backward_fdm_input_257_to_256,
    conv2d_backward_4x4_stride2_downsampling,
    conv2d_backward_1x1,
    conv2d_backward_weight_uneven_splits
);

/// One convolution: input [n, c, h, w], weight [o, c, kh, kw], (stride, pad, dilation) as (h, w).
struct Case {
    input: [usize; 4],
    weight: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
}

impl Case {
    fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: (usize, usize),
        pad: (usize, usize),
        dil: (usize, usize),
    ) -> Self {
        Case {
            input,
            weight,
            stride,
            pad,
            dil,
        }
    }
    fn params(&self) -> Conv2dParams {
        Conv2dParams::new(self.input, self.weight, self.stride, self.pad, self.dil).unwrap()
    }
}

/// The CPU oracle's view of `p`: the undilated kernel of size dil*(k-1)+1 (zeros between the
/// taps) and its parameters.
fn undilated(p: &Conv2dParams, w: &[f32]) -> (CpuConv2dParams, Vec<f32>) {
    let (keh, kew) = ((p.kh - 1) * p.dil_h + 1, (p.kw - 1) * p.dil_w + 1);
    let cp = CpuConv2dParams {
        batch: p.n,
        in_channels: p.c,
        in_h: p.h,
        in_w: p.w,
        out_channels: p.o,
        out_h: p.oh,
        out_w: p.ow,
        kernel_h: keh,
        kernel_w: kew,
        stride_h: p.stride_h,
        stride_w: p.stride_w,
        pad_h: p.pad_h,
        pad_w: p.pad_w,
        has_bias: 0,
    };
    let (kh, kw, keh, kew) = (p.kh as usize, p.kw as usize, keh as usize, kew as usize);
    let mut we = vec![0.0f32; (p.o * p.c) as usize * keh * kew];
    for oc in 0..(p.o * p.c) as usize {
        for i in 0..kh {
            for j in 0..kw {
                we[(oc * keh + i * p.dil_h as usize) * kew + j * p.dil_w as usize] =
                    w[(oc * kh + i) * kw + j];
            }
        }
    }
    (cp, we)
}

/// Elements of `got` whose channel (index / plane % channels) is a multiple of `step`, beside the
/// oracle's value for each.
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

/// dx, dw (through `weight_grad_splits`, as `conv2d_bwd_weight` runs it) and db of one case,
/// each checked on the channels that are multiples of `step` (all when 1).
fn check<B: Backend>(be: &B, seed: u64, case: &Case, step: usize) {
    let p = case.params();
    let x = random_vec(seed, p.input_len(), -1.0, 1.0);
    let w = random_vec(seed + 1, p.weight_len(), -0.2, 0.2);
    let g = random_vec(seed + 2, p.output_len(), -1.0, 1.0);
    let (xb, wb, gb) = (be.f32s(&x), be.f32s(&w), be.f32s(&g));
    let what = format!(
        "{:?} * {:?} s{:?} p{:?} d{:?}",
        case.input, case.weight, case.stride, case.pad, case.dil
    );
    let (cp, we) = undilated(&p, &w);
    let (c, h, wd) = (p.c as usize, p.h as usize, p.w as usize);

    let dx = be.f32s(&vec![f32::NAN; p.input_len()]);
    be.run(&conv2d_bwd_input_launch(
        be.ptr(&dx),
        be.ptr(&gb),
        be.ptr(&wb),
        0,
        &p,
    ));
    let (got, want) = sampled(&be.get_f32(&dx), h * wd, c, step, |i| {
        conv2d_backward_input_ref_at(
            &cp,
            &we,
            &g,
            i / (c * h * wd),
            (i / (h * wd)) % c,
            (i / wd) % h,
            i % wd,
        )
    });
    assert_close(&got, &want, TOL_CUDA_F32, &format!("conv2d dx {what}"));
    if let Some(dual) = conv2d_bwd_input_as_forward(&p) {
        // The stride-1 route of `FDM_CONV_WIDE=1`: the forward convolution of g with the flipped
        // weight, on the 128 x 64 tile kernel.
        let (wt, dx2) = (be.f32s(&vec![f32::NAN; p.weight_len()]), be.f32s(&vec![f32::NAN; p.input_len()]));
        be.run(&conv2d_flip_weight_launch(be.ptr(&wt), be.ptr(&wb), &p));
        be.run(&conv2d_fwd_wide_launch(be.ptr(&dx2), be.ptr(&gb), be.ptr(&wt), 0, &dual));
        let got_dual: Vec<f32> = be.get_f32(&dx2).into_iter().enumerate().filter(|(i, _)| ((i / (h * wd)) % c).is_multiple_of(step)).map(|(_, v)| v).collect();
        assert_close(&got_dual, &want, TOL_CUDA_F32, &format!("conv2d dx as a forward on the wide kernel {what}"));
    }

    let (splits, chunk) = weight_grad_splits(&p);
    let got = weight_grad(be, &xb, &gb, &p, splits, chunk);
    check_weight_grad(
        &got,
        &p,
        &cp,
        &x,
        &g,
        step,
        &format!("conv2d dw {what} ({splits} splits of {chunk})"),
    );

    let db = be.f32s(&vec![f32::NAN; p.o as usize]);
    be.run(&conv2d_bwd_bias_launch(
        be.ptr(&db),
        be.ptr(&gb),
        p.n,
        p.o,
        p.oh * p.ow,
    ));
    let plane = (p.oh * p.ow) as usize;
    let want: Vec<f32> = (0..p.o as usize)
        .map(|o| {
            (0..p.n as usize)
                .flat_map(|n| &g[(n * p.o as usize + o) * plane..][..plane])
                .map(|&v| v as f64)
                .sum::<f64>() as f32
        })
        .collect();
    assert_close(
        &be.get_f32(&db),
        &want,
        TOL_CUDA_F32,
        &format!("conv2d db {what}"),
    );
}

/// dw with the given split, run as `conv2d_bwd_weight` runs it: partial sums, then the fixed-order
/// sum when there is more than one split.
fn weight_grad<B: Backend>(
    be: &B,
    xb: &B::Buf,
    gb: &B::Buf,
    p: &Conv2dParams,
    splits: u32,
    chunk: u32,
) -> Vec<f32> {
    let len = p.weight_len();
    let part = be.f32s(&vec![f32::NAN; len * splits as usize]);
    be.run(&conv2d_bwd_weight_launch(
        be.ptr(&part),
        be.ptr(xb),
        be.ptr(gb),
        p,
        splits,
        chunk,
    ));
    if splits == 1 {
        return be.get_f32(&part);
    }
    let dw = be.f32s(&vec![f32::NAN; len]);
    be.run(&conv2d_bwd_weight_sum_launch(
        be.ptr(&dw),
        be.ptr(&part),
        len as u32,
        splits,
    ));
    be.get_f32(&dw)
}

fn check_weight_grad(
    got: &[f32],
    p: &Conv2dParams,
    cp: &CpuConv2dParams,
    x: &[f32],
    g: &[f32],
    step: usize,
    what: &str,
) {
    let (c, kh, kw) = (p.c as usize, p.kh as usize, p.kw as usize);
    let (dh, dw) = (p.dil_h as usize, p.dil_w as usize);
    let (got, want) = sampled(got, c * kh * kw, p.o as usize, step, |e| {
        let (o, ci, i, j) = (
            e / (c * kh * kw),
            (e / (kh * kw)) % c,
            (e / kw) % kh,
            e % kw,
        );
        conv2d_backward_weight_ref_at(cp, x, g, o, ci, i * dh, j * dw)
    });
    assert_close(&got, &want, TOL_CUDA_F32, what);
}

fn conv2d_backward_odd_sizes_stride_pad_dilation<B: Backend>(be: &B) {
    check(
        be,
        1,
        &Case::new([2, 3, 11, 13], [5, 3, 3, 3], (1, 1), (1, 1), (1, 1)),
        1,
    );
    check(
        be,
        4,
        &Case::new([2, 5, 17, 9], [70, 5, 3, 2], (2, 1), (1, 0), (1, 1)),
        1,
    );
    check(
        be,
        7,
        &Case::new([1, 4, 12, 12], [6, 4, 3, 3], (1, 2), (2, 2), (2, 2)),
        1,
    );
    // Stride 3 with dilation: most input pixels are reached by no tap or by one only.
    check(
        be,
        10,
        &Case::new([2, 3, 10, 9], [4, 3, 2, 3], (3, 2), (1, 2), (2, 3)),
        1,
    );
    // Stride 2, dilation 2: the odd rows / columns (with pad 1: the even ones) are reached by no
    // tap at all, so their stride phase has an empty reduction and dx is 0 there.
    check(
        be,
        11,
        &Case::new([1, 3, 9, 8], [4, 3, 3, 2], (2, 2), (1, 0), (2, 2)),
        1,
    );
    // Stride 3 over 2 rows: the phase of residue 2 has no pixels.
    check(
        be,
        12,
        &Case::new([1, 2, 2, 5], [3, 2, 1, 2], (3, 2), (0, 0), (1, 1)),
        1,
    );
    // Stride 1 with dilation 2 on one axis: the dual forward pads by 2 and 1.
    check(
        be,
        14,
        &Case::new([1, 4, 12, 12], [6, 4, 3, 3], (1, 1), (2, 1), (2, 1)),
        1,
    );
    // More input channels than one 64-channel tile, one output channel.
    check(
        be,
        13,
        &Case::new([1, 67, 5, 6], [1, 67, 3, 3], (1, 1), (1, 1), (1, 1)),
        1,
    );
}

fn conv2d_backward_model_shape_256ch_3x3_at_32x32<B: Backend>(be: &B) {
    // The FDM / decoder res-block convolution (design.md §2 real shapes); everything is computed,
    // every 5th channel (spread over all four 64-channel tiles) is checked.
    check(
        be,
        20,
        &Case::new([1, 256, 32, 32], [256, 256, 3, 3], (1, 1), (1, 1), (1, 1)),
        5,
    );
}

fn conv2d_backward_fdm_input_257_to_256<B: Backend>(be: &B) {
    // The FDM input convolution's real channels (256 features + the mask), at 16x16 instead of
    // 32x32 to keep the emulator fast; batch 2 so dw sums over two images.
    check(
        be,
        30,
        &Case::new([2, 257, 16, 16], [256, 257, 3, 3], (1, 1), (1, 1), (1, 1)),
        3,
    );
}

fn conv2d_backward_4x4_stride2_downsampling<B: Backend>(be: &B) {
    // The encoder's 4x4 stride-2 pad-1 downsampling, 64 -> 128 channels at a 32x32 input (the
    // real one runs at 256x256).
    check(
        be,
        40,
        &Case::new([1, 64, 32, 32], [128, 64, 4, 4], (2, 2), (1, 1), (1, 1)),
        1,
    );
}

fn conv2d_backward_1x1<B: Backend>(be: &B) {
    check(
        be,
        50,
        &Case::new([3, 64, 8, 8], [32, 64, 1, 1], (1, 1), (0, 0), (1, 1)),
        1,
    );
}

fn conv2d_backward_weight_uneven_splits<B: Backend>(be: &B) {
    // 2 x 9 x 7 = 126 output positions in chunks of 48: three splits, the last one partial (30),
    // and one split of everything; both must match the oracle.
    let case = Case::new([2, 6, 9, 7], [9, 6, 3, 3], (1, 1), (1, 1), (1, 1));
    let p = case.params();
    let x = random_vec(60, p.input_len(), -1.0, 1.0);
    let w = random_vec(61, p.weight_len(), -0.2, 0.2);
    let g = random_vec(62, p.output_len(), -1.0, 1.0);
    let (xb, gb) = (be.f32s(&x), be.f32s(&g));
    let (cp, _) = undilated(&p, &w);
    for (splits, chunk) in [(3, 48), (1, 128)] {
        let got = weight_grad(be, &xb, &gb, &p, splits, chunk);
        check_weight_grad(
            &got,
            &p,
            &cp,
            &x,
            &g,
            1,
            &format!("conv2d dw, {splits} splits of {chunk}"),
        );
    }
}

#[test]
fn conv2d_backward_input_as_forward_only_for_stride_1() {
    let p = |weight, stride, pad, dil| Conv2dParams::new([2, 8, 16, 12], weight, stride, pad, dil).unwrap();
    let dual = conv2d_bwd_input_as_forward(&p([4, 8, 3, 3], (1, 1), (1, 1), (1, 1))).unwrap();
    assert_eq!((dual.n, dual.c, dual.h, dual.w, dual.o), (2, 4, 16, 12, 8), "g [2, 4, 16, 12] in, dx [2, 8, 16, 12] out");
    assert_eq!((dual.pad_h, dual.pad_w, dual.oh, dual.ow), (1, 1, 16, 12));
    let dual = conv2d_bwd_input_as_forward(&p([4, 8, 3, 5], (1, 1), (0, 1), (2, 1))).unwrap();
    assert_eq!((dual.pad_h, dual.pad_w, dual.dil_h, dual.oh, dual.ow), (4, 3, 2, 16, 12));
    assert!(conv2d_bwd_input_as_forward(&p([4, 8, 4, 4], (2, 2), (1, 1), (1, 1))).is_none(), "stride 2");
    assert!(conv2d_bwd_input_as_forward(&p([4, 8, 1, 1], (1, 1), (1, 0), (1, 1))).is_none(), "padding past the kernel");
}

#[test]
fn conv2d_backward_split_choice_covers_the_reduction() {
    for case in [
        Case::new([1, 256, 32, 32], [256, 256, 3, 3], (1, 1), (1, 1), (1, 1)),
        Case::new([8, 3, 256, 256], [64, 3, 4, 4], (2, 2), (1, 1), (1, 1)),
        Case::new([1, 3, 5, 5], [2, 3, 3, 3], (1, 1), (0, 0), (1, 1)),
    ] {
        let p = case.params();
        let m = p.n * p.oh * p.ow;
        let (splits, chunk) = weight_grad_splits(&p);
        assert!(chunk % 16 == 0 && splits >= 1, "{splits} x {chunk}");
        assert!(
            splits * chunk >= m && (splits - 1) * chunk < m,
            "{splits} x {chunk} for {m} positions"
        );
    }
    // A small weight with a long reduction is split to fill the GPU.
    let p = Case::new([8, 3, 256, 256], [64, 3, 4, 4], (2, 2), (1, 1), (1, 1)).params();
    assert!(weight_grad_splits(&p).0 > 1);
}

#[test]
fn conv2d_backward_arg_checks_name_the_argument() {
    let err = check_arg("conv2d_backward_input", "weight", DType::F32, 10, 27)
        .unwrap_err()
        .to_string();
    assert!(err.contains("weight") && err.contains("27"), "{err}");
    let err = check_arg("conv2d_backward_weight", "input", DType::U32, 100, 27)
        .unwrap_err()
        .to_string();
    assert!(err.contains("input") && err.contains("f32"), "{err}");
    assert!(check_arg(
        "conv2d_backward_bias",
        "output gradient",
        DType::F32,
        27,
        27
    )
    .is_ok());
}
