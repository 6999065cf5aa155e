//! `kernels/conv2d.cu` (implicit-GEMM convolution forward), launched by its launcher, against a
//! direct f64 loop nest, on the CPU emulator (`emu::*`) and a real GPU (`cuda::*`, skipped without
//! one). Tolerance TOL_CUDA_F32 (1e-4 abs + rel): the reductions run over up to C*KH*KW = 2304
//! f32 products.

mod common;

use common::backend::Backend;
use common::reference::conv2d_ref;
use fdm::cuda::ops::conv2d::{
    conv2d_fwd_k_splits, conv2d_fwd_launch, conv2d_fwd_split_launches, conv2d_fwd_suits_wide, conv2d_fwd_wide_launch, Conv2dParams,
};
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    conv2d_strided_padded_dilated_odd_sizes,
    conv2d_model_shape_256ch_3x3_at_32x32,
    conv2d_1x1_and_no_bias,
    conv2d_partial_wide_tiles_two_images,
    conv2d_64ch_3x3_at_48x48
);

#[allow(clippy::too_many_arguments)]
fn check<B: Backend>(
    be: &B,
    seed: u64,
    input: [usize; 4],
    weight: [usize; 4],
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    with_bias: bool,
) {
    check_channels(be, seed, input, weight, (stride, pad, dil), with_bias, 1);
}

/// Compares output channels that are multiples of `o_step` (all when 1).
fn check_channels<B: Backend>(
    be: &B,
    seed: u64,
    input: [usize; 4],
    weight: [usize; 4],
    geom: ((usize, usize), (usize, usize), (usize, usize)),
    with_bias: bool,
    o_step: usize,
) {
    let (stride, pad, dil) = geom;
    let p = Conv2dParams::new(input, weight, stride, pad, dil).unwrap();
    let x = random_vec(seed, p.input_len(), -1.0, 1.0);
    let w = random_vec(seed + 1, p.weight_len(), -0.2, 0.2);
    let bias = random_vec(seed + 2, weight[0], -0.5, 0.5);
    let (xb, wb, bb) = (be.f32s(&x), be.f32s(&w), be.f32s(&bias));
    let bias_ptr = if with_bias { be.ptr(&bb) } else { 0 };
    let want = conv2d_ref(
        &x,
        &w,
        with_bias.then_some(&bias[..]),
        input,
        weight,
        (p.oh as usize, p.ow as usize),
        stride,
        pad,
        dil,
        o_step,
    );
    let plane = (p.oh * p.ow) as usize;
    let keep = |i: &usize| ((i / plane) % weight[0]).is_multiple_of(o_step);
    let want: Vec<f32> = want
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(i))
        .map(|(_, v)| v)
        .collect();
    // One pass over the reduction, the launcher's own split count, and 2 and 3 splits (uneven
    // ranges) where the reduction has that many 16-long slices.
    let slices = (weight[1] * weight[2] * weight[3]).div_ceil(16);
    let mut counts = vec![1, conv2d_fwd_k_splits(&p), 2, 3];
    counts.dedup();
    for splits in counts.into_iter().filter(|&s| s <= slices) {
        let y = be.f32s(&vec![f32::NAN; p.output_len()]);
        if splits == 1 {
            be.run(&conv2d_fwd_launch(be.ptr(&y), be.ptr(&xb), be.ptr(&wb), bias_ptr, &p));
        } else {
            let part = be.f32s(&vec![f32::NAN; splits * p.output_len()]);
            for launch in conv2d_fwd_split_launches(be.ptr(&y), be.ptr(&part), be.ptr(&xb), be.ptr(&wb), bias_ptr, &p, splits) {
                be.run(&launch);
            }
        }
        let got: Vec<f32> = be.get_f32(&y).into_iter().enumerate().filter(|(i, _)| keep(i)).map(|(_, v)| v).collect();
        let what = format!("conv2d {input:?} * {weight:?} s{stride:?} p{pad:?} d{dil:?}, reduction in {splits} splits");
        assert_close(&got, &want, TOL_CUDA_F32, &what);
        if splits == 1 {
            // The 128 x 64 tile kernel sums every output in the same order: the same bits.
            let wide = be.f32s(&vec![f32::NAN; p.output_len()]);
            be.run(&conv2d_fwd_wide_launch(be.ptr(&wide), be.ptr(&xb), be.ptr(&wb), bias_ptr, &p));
            let (wide, narrow) = (be.get_f32(&wide), be.get_f32(&y));
            let differ = wide.iter().zip(&narrow).position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(differ, None, "{what}: the wide kernel differs from the 64 x 64 one at the output index shown");
        }
    }
}

#[test]
fn wide_tiles_only_where_the_grid_stays_large() {
    let p = |input, weight| Conv2dParams::new(input, weight, (1, 1), (1, 1), (1, 1)).unwrap();
    assert!(conv2d_fwd_suits_wide(&p([1, 64, 256, 256], [64, 64, 3, 3])), "codec at 256 x 256: 512 blocks");
    assert!(conv2d_fwd_suits_wide(&p([10, 128, 128, 128], [128, 128, 3, 3])), "batch 10 at 128 x 128");
    assert!(!conv2d_fwd_suits_wide(&p([1, 256, 32, 32], [256, 256, 3, 3])), "FDM at batch 1: 32 blocks");
    assert!(!conv2d_fwd_suits_wide(&p([1, 64, 64, 64], [64, 64, 3, 3])), "32 blocks");
    let dilated = |dil| Conv2dParams::new([1, 8, 70000, 40], [64, 8, 3, 1], (1, 1), (dil, 0), (dil, 1)).unwrap();
    assert!(conv2d_fwd_suits_wide(&dilated(32767)), "tap offsets up to 65534 fit 16 bits");
    assert!(!conv2d_fwd_suits_wide(&dilated(32768)), "a tap offset of 65536 does not");
}

#[test]
fn k_splits_only_where_the_output_tiles_leave_the_gpu_idle() {
    let p = |input, weight| Conv2dParams::new(input, weight, (1, 1), (1, 1), (1, 1)).unwrap();
    assert_eq!(conv2d_fwd_k_splits(&p([1, 256, 32, 32], [256, 256, 3, 3])), 4, "FDM at batch 1: 64 tiles");
    assert_eq!(conv2d_fwd_k_splits(&p([4, 256, 32, 32], [256, 256, 3, 3])), 1, "batch 4: 256 tiles");
    assert_eq!(conv2d_fwd_k_splits(&p([1, 64, 256, 256], [64, 64, 3, 3])), 1, "1024 tiles");
    assert_eq!(conv2d_fwd_k_splits(&p([1, 3, 8, 8], [4, 3, 3, 3])), 1, "27-long reduction: 2 slices");
    assert_eq!(conv2d_fwd_k_splits(&p([1, 512, 4, 4], [64, 512, 3, 3])), 8, "one tile, 288 slices");
}

fn conv2d_strided_padded_dilated_odd_sizes<B: Backend>(be: &B) {
    check(
        be,
        1,
        [2, 3, 11, 13],
        [5, 3, 3, 3],
        (1, 1),
        (1, 1),
        (1, 1),
        true,
    );
    check(
        be,
        4,
        [2, 5, 17, 9],
        [70, 5, 3, 2],
        (2, 1),
        (1, 0),
        (1, 1),
        true,
    );
    check(
        be,
        7,
        [1, 4, 12, 12],
        [6, 4, 3, 3],
        (1, 2),
        (2, 2),
        (2, 2),
        true,
    );
    // 4x4 stride-2 downsampling as in the codec's encoder-side convolutions.
    check(
        be,
        10,
        [1, 8, 16, 16],
        [16, 8, 4, 4],
        (2, 2),
        (1, 1),
        (1, 1),
        true,
    );
}

fn conv2d_model_shape_256ch_3x3_at_32x32<B: Backend>(be: &B) {
    // The decoder's 256-channel 3x3 convolution at the 32x32 token grid (design.md §2 real shapes);
    // every output is computed, every 5th output channel (all four 64-channel tiles) is checked.
    check_channels(
        be,
        20,
        [1, 256, 32, 32],
        [256, 256, 3, 3],
        ((1, 1), (1, 1), (1, 1)),
        true,
        5,
    );
}

fn conv2d_1x1_and_no_bias<B: Backend>(be: &B) {
    check(
        be,
        30,
        [3, 64, 8, 8],
        [32, 64, 1, 1],
        (1, 1),
        (0, 0),
        (1, 1),
        false,
    );
}

#[test]
fn conv2d_params_reject_bad_shapes() {
    assert!(
        Conv2dParams::new([1, 3, 2, 2], [4, 3, 3, 3], (1, 1), (0, 0), (1, 1)).is_err(),
        "kernel larger than the input"
    );
    assert!(
        Conv2dParams::new([1, 3, 8, 8], [4, 2, 3, 3], (1, 1), (1, 1), (1, 1)).is_err(),
        "channel mismatch"
    );
    assert!(
        Conv2dParams::new([1, 3, 8, 8], [4, 3, 3, 3], (0, 1), (1, 1), (1, 1)).is_err(),
        "zero stride"
    );
    let p = Conv2dParams::new([2, 3, 32, 32], [8, 3, 4, 4], (2, 2), (1, 1), (1, 1)).unwrap();
    assert_eq!((p.oh, p.ow), (16, 16));
}

fn conv2d_partial_wide_tiles_two_images<B: Backend>(be: &B) {
    // 2 x 20 x 30 = 1200 output pixels (nine full 128-pixel tiles and one of 48, the last rows of
    // a tile in the second image), 70 output channels (a second channel tile of 6), and a
    // 144-long reduction (nine slices).
    check(be, 30, [2, 16, 20, 30], [70, 16, 3, 3], (1, 1), (1, 1), (1, 1), true);
}

fn conv2d_64ch_3x3_at_48x48<B: Backend>(be: &B) {
    // The codec's 64-channel 3 x 3 convolution (256 x 256 in the model) at 48 x 48 to keep the
    // emulator quick: 18 wide tiles over a 576-long reduction.
    check_channels(be, 31, [1, 64, 48, 48], [64, 64, 3, 3], ((1, 1), (1, 1), (1, 1)), true, 3);
}
