//! `FDM_CONV_WIDE=1` (the opt-in 128 x 64 tile convolution kernel) through the Tensor-level ops:
//! a stride-1 3 x 3 convolution large enough for the wide route (`conv2d_fwd_suits_wide`), its
//! forward and its gradients on the CUDA device equal to the CPU's (tolerance TOL_CUDA_F32).
//! The switch is read once per process, so this file is its own test binary and every test in
//! it sets the switch the same way. `emu::*` on the emulated device, `cuda::*` on a GPU.

mod common;

use common::device::{on, rand, same};
use fdm::cuda::ops::conv2d::{conv2d_fwd_suits_wide, wide_requested, Conv2dParams, WIDE_ENV};
use fdm::cuda::ops::conv2d_backward::conv2d_bwd_input_as_forward;
use fdm::cuda::CudaDevice;
use fdm::ops;

device_tests!(wide_conv_forward_and_gradients_match_the_cpu);

fn wide_conv_forward_and_gradients_match_the_cpu(dev: CudaDevice) {
    std::env::set_var(WIDE_ENV, "1");
    assert!(wide_requested(), "{WIDE_ENV}=1 must turn the wide route on");
    // 256 x 128 pixels: 256 tiles of 128 pixels, one 16-channel tile.
    let (xs, ws) = ([1, 16, 256, 128], [16, 16, 3, 3]);
    let p = Conv2dParams::new(xs, ws, (1, 1), (1, 1), (1, 1)).unwrap();
    assert!(conv2d_fwd_suits_wide(&p), "the forward takes the wide kernel");
    assert!(conv2d_fwd_suits_wide(&conv2d_bwd_input_as_forward(&p).unwrap()), "so does the input gradient");
    let (x, w, b) = (rand(80, &xs, -1.0, 1.0), rand(81, &ws, -0.3, 0.3), rand(82, &[16], -0.1, 0.1));
    let want = ops::conv::conv2d(&x, &w, Some(&b), 1, 1).unwrap();
    let got = ops::conv::conv2d(&on(&dev, &x), &on(&dev, &w), Some(&on(&dev, &b)), 1, 1).unwrap();
    same(&got, &want, "wide conv2d forward");
    let g = rand(83, want.shape(), -1.0, 1.0);
    let want = ops::conv::conv2d_backward(&x, &w, &g, 1, 1).unwrap();
    let got = ops::conv::conv2d_backward(&on(&dev, &x), &on(&dev, &w), &on(&dev, &g), 1, 1).unwrap();
    same(&got.0, &want.0, "dx through the flipped-weight forward");
    same(&got.1, &want.1, "dw");
    same(&got.2, &want.2, "db");
}
