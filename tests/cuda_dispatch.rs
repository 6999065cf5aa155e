//! The Tensor-level ops (`fdm::ops`) dispatched to CUDA: the same call on a tensor that lives on a
//! CUDA device must give what it gives on the CPU (whose loops are tested against the `_ref`
//! oracles). `emu::*` runs on the emulated CUDA device (the real dispatch, launchers and kernels,
//! executed by the CPU emulator); `cuda::*` on a GPU (SKIP without one, a failure with
//! FDM_REQUIRE_CUDA=1). Tolerance TOL_CUDA_F32 (1e-4 abs + rel): the kernels sum in other orders.

mod common;

use common::device::{on, rand, same};

use fdm::cuda::CudaDevice;
use fdm::ops;
use fdm::params::unary::UnaryOp;
use fdm::testing::random_vec;
use fdm::{Device, Tensor};

device_tests!(
    unary_ops_forward_and_backward,
    binary_ops_with_broadcasting_and_nan,
    softmax_and_log_softmax,
    layer_norm_forward_and_backward,
    matmul_plain_transposed_and_shared,
    linear_and_its_gradients,
    conv2d_forward_at_model_strides,
    attention_forward_both_head_dims,
    codebook_argmin_by_half,
    sampling_draws_the_cpu_tokens,
    mixed_devices_are_an_error,
    reductions_and_arg_reductions,
    embedding_and_row_gather_scatter,
    concat_and_narrow_backward,
    patches_resize_and_pools,
    conv_gradients_and_transposed_conv,
    attention_backward_head_dim_64,
    profiling_on_the_device_records_synchronised_ops
);


fn unary_ops_forward_and_backward(dev: CudaDevice) {
    let x = rand(1, &[3, 7, 11], -2.0, 2.0);
    let positive = rand(2, &[3, 7, 11], 0.1, 3.0);
    let g = rand(3, &[3, 7, 11], -1.0, 1.0);
    for op in UnaryOp::ALL {
        let input = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::PowScalar) { &positive } else { &x };
        let (alpha, beta) = match op {
            UnaryOp::Clamp => (-0.5, 0.75),
            UnaryOp::PowScalar => (1.5, 0.0),
            _ => (0.2, 0.0),
        };
        let y_cpu = ops::unary::unary(op, input, alpha, beta).unwrap();
        let y_dev = ops::unary::unary(op, &on(&dev, input), alpha, beta).unwrap();
        same(&y_dev, &y_cpu, &format!("{op:?} forward"));
        let dx_cpu = ops::unary::unary_backward(op, input, &y_cpu, &g, alpha, beta).unwrap();
        let dx_dev = ops::unary::unary_backward(op, &on(&dev, input), &y_dev, &on(&dev, &g), alpha, beta).unwrap();
        same(&dx_dev, &dx_cpu, &format!("{op:?} backward"));
    }
}

fn binary_ops_with_broadcasting_and_nan(dev: CudaDevice) {
    use fdm::params::binary::BinaryOp;
    let mut a = rand(4, &[2, 3, 4, 5], -2.0, 2.0).to_vec_f32().unwrap();
    a[7] = f32::NAN;
    let a = Tensor::from_vec(a, &[2, 3, 4, 5]).unwrap();
    let cases = [rand(5, &[2, 3, 4, 5], -2.0, 2.0), rand(6, &[1, 3, 1, 1], 0.5, 2.0), rand(7, &[5], 0.5, 2.0), rand(8, &[2, 1, 4, 1], -1.0, 1.0)];
    for b in &cases {
        for op in BinaryOp::ALL {
            let want = ops::binary::binary(op, &a, b).unwrap();
            let got = ops::binary::binary(op, &on(&dev, &a), &on(&dev, b)).unwrap();
            same(&got, &want, &format!("{op:?} with b {:?}", b.shape()));
        }
    }
    // A transposed (strided) operand is made dense on the device first.
    let t = rand(9, &[5, 4], -1.0, 1.0).transpose(0, 1).unwrap();
    let want = ops::binary::mul(&rand(10, &[4, 5], -1.0, 1.0), &t).unwrap();
    let got = ops::binary::mul(&on(&dev, &rand(10, &[4, 5], -1.0, 1.0)), &on(&dev, &rand(9, &[5, 4], -1.0, 1.0)).transpose(0, 1).unwrap()).unwrap();
    same(&got, &want, "mul with a transposed view");
}

fn softmax_and_log_softmax(dev: CudaDevice) {
    let x = rand(11, &[2, 1024, 256], -6.0, 6.0);
    let g = rand(12, &[2, 1024, 256], -1.0, 1.0);
    let (xd, gd) = (on(&dev, &x), on(&dev, &g));
    let y = ops::softmax::softmax(&x).unwrap();
    let yd = ops::softmax::softmax(&xd).unwrap();
    same(&yd, &y, "softmax");
    same(&ops::softmax::softmax_backward(&yd, &gd).unwrap(), &ops::softmax::softmax_backward(&y, &g).unwrap(), "softmax backward");
    let ly = ops::softmax::log_softmax(&x).unwrap();
    let lyd = ops::softmax::log_softmax(&xd).unwrap();
    same(&lyd, &ly, "log_softmax");
    same(&ops::softmax::log_softmax_backward(&lyd, &gd).unwrap(), &ops::softmax::log_softmax_backward(&ly, &g).unwrap(), "log_softmax backward");
}

fn layer_norm_forward_and_backward(dev: CudaDevice) {
    let (x, w, b) = (rand(13, &[2, 100, 64], -3.0, 3.0), rand(14, &[64], 0.5, 1.5), rand(15, &[64], -0.5, 0.5));
    let g = rand(16, &[2, 100, 64], -1.0, 1.0);
    let (y, mean, rstd) = ops::layernorm::layer_norm_with_stats(&x, &w, &b, 1e-5).unwrap();
    let [xd, wd, bd, gd] = [&x, &w, &b, &g].map(|t| on(&dev, t));
    let (yd, meand, rstdd) = ops::layernorm::layer_norm_with_stats(&xd, &wd, &bd, 1e-5).unwrap();
    same(&yd, &y, "layer_norm");
    same(&meand, &mean, "layer_norm mean");
    same(&rstdd, &rstd, "layer_norm rstd");
    let want = ops::layernorm::layer_norm_backward(&x, &w, &mean, &rstd, &g).unwrap();
    let got = ops::layernorm::layer_norm_backward(&xd, &wd, &meand, &rstdd, &gd).unwrap();
    same(&got.0, &want.0, "layer_norm dx");
    same(&got.1, &want.1, "layer_norm dweight");
    same(&got.2, &want.2, "layer_norm dbias");
}

fn matmul_plain_transposed_and_shared(dev: CudaDevice) {
    // [B, M, K] x [B, K, N]; a transposed view as b (k^T in attention); a 2-D b shared by the batch.
    let a = rand(17, &[3, 37, 29], -1.0, 1.0);
    let cases = [rand(18, &[3, 29, 41], -1.0, 1.0), rand(19, &[3, 41, 29], -1.0, 1.0).transpose(1, 2).unwrap(), rand(20, &[29, 41], -1.0, 1.0)];
    for (i, b) in cases.iter().enumerate() {
        let bd = if i == 1 { on(&dev, &rand(19, &[3, 41, 29], -1.0, 1.0)).transpose(1, 2).unwrap() } else { on(&dev, b) };
        let ad = on(&dev, &a);
        same(&ops::matmul::matmul(&ad, &bd).unwrap(), &ops::matmul::matmul(&a, b).unwrap(), &format!("matmul case {i}"));
        let g = rand(21, &[3, 37, 41], -1.0, 1.0);
        let (da, db) = ops::matmul::matmul_backward(&a, b, &g).unwrap();
        let (dad, dbd) = ops::matmul::matmul_backward(&ad, &bd, &on(&dev, &g)).unwrap();
        same(&dad, &da, &format!("matmul case {i} da"));
        same(&dbd, &db, &format!("matmul case {i} db"));
    }
}

fn linear_and_its_gradients(dev: CudaDevice) {
    // The transformer's MLP shape at a reduced token count: [2, 70, 64] -> 256.
    let (x, w, b) = (rand(22, &[2, 70, 64], -1.0, 1.0), rand(23, &[256, 64], -0.2, 0.2), rand(24, &[256], -0.1, 0.1));
    let g = rand(25, &[2, 70, 256], -1.0, 1.0);
    let [xd, wd, bd, gd] = [&x, &w, &b, &g].map(|t| on(&dev, t));
    same(&ops::matmul::linear(&xd, &wd, Some(&bd)).unwrap(), &ops::matmul::linear(&x, &w, Some(&b)).unwrap(), "linear");
    same(&ops::matmul::linear(&xd, &wd, None).unwrap(), &ops::matmul::linear(&x, &w, None).unwrap(), "linear without bias");
    let want = ops::matmul::linear_backward(&x, &w, &g).unwrap();
    let got = ops::matmul::linear_backward(&xd, &wd, &gd).unwrap();
    same(&got.0, &want.0, "linear dx");
    same(&got.1, &want.1, "linear dW");
    same(&got.2, &want.2, "linear db");
}

fn conv2d_forward_at_model_strides(dev: CudaDevice) {
    // 3x3 pad 1 (residual blocks, FDM's 257 -> 64 input conv of the tiny preset) and 4x4 stride 2
    // pad 1 (the reference-image encoder), at reduced spatial sizes.
    for (xs, ws, stride, pad) in [([1, 65, 16, 16], [64, 65, 3, 3], 1, 1), ([2, 16, 20, 20], [32, 16, 4, 4], 2, 1), ([1, 8, 9, 9], [4, 8, 1, 1], 1, 0)] {
        let (x, w, b) = (rand(26, &xs, -1.0, 1.0), rand(27, &ws, -0.2, 0.2), rand(28, &[ws[0]], -0.1, 0.1));
        let want = ops::conv::conv2d(&x, &w, Some(&b), stride, pad).unwrap();
        let got = ops::conv::conv2d(&on(&dev, &x), &on(&dev, &w), Some(&on(&dev, &b)), stride, pad).unwrap();
        same(&got, &want, &format!("conv2d {xs:?} * {ws:?} stride {stride} pad {pad}"));
    }
}

fn attention_forward_both_head_dims(dev: CudaDevice) {
    for (b, l, heads, dh) in [(1, 130, 2, 32), (1, 100, 2, 64)] {
        let shape = [b, l, heads * dh];
        let (q, k, v) = (rand(29, &shape, -1.0, 1.0), rand(30, &shape, -1.0, 1.0), rand(31, &shape, -1.0, 1.0));
        let (o, lse) = ops::attention::attention_with_lse(&q, &k, &v, heads).unwrap();
        let (od, lsed) = ops::attention::attention_with_lse(&on(&dev, &q), &on(&dev, &k), &on(&dev, &v), heads).unwrap();
        same(&od, &o, &format!("attention head dim {dh}"));
        same(&lsed, &lse, &format!("attention lse head dim {dh}"));
    }
}

fn codebook_argmin_by_half(dev: CudaDevice) {
    use fdm::params::codebook::{CODEBOOK_HALF_MASKED, CODEBOOK_HALF_UNMASKED};
    let (z, cb) = (rand(32, &[300, 16], -1.0, 1.0), rand(33, &[64, 16], -1.0, 1.0));
    let half: Vec<u32> = (0..300).map(|i| if i % 3 == 0 { CODEBOOK_HALF_MASKED } else { CODEBOOK_HALF_UNMASKED }).collect();
    let host_half = half.clone();
    let half = Tensor::from_u32(half, &[300]).unwrap();
    let want = ops::codebook::codebook_argmin(&z, &cb, &half).unwrap().to_vec_u32().unwrap();
    let got = ops::codebook::codebook_argmin(&on(&dev, &z), &on(&dev, &cb), &on(&dev, &half)).unwrap();
    assert_eq!(got.to_vec_u32().unwrap(), want, "nearest code per half");
    // The selectors as host data (the quantizer's path): the same codes on both backends.
    let got = ops::codebook::codebook_argmin_halves(&on(&dev, &z), &on(&dev, &cb), &host_half).unwrap();
    assert_eq!(got.to_vec_u32().unwrap(), want, "nearest code per half, host selectors");
    let cpu_host = ops::codebook::codebook_argmin_halves(&z, &cb, &host_half).unwrap();
    assert_eq!(cpu_host.to_vec_u32().unwrap(), want, "host selectors on the CPU");
    let want = ops::codebook::codebook_argmin_all(&z, &cb).unwrap().to_vec_u32().unwrap();
    let got = ops::codebook::codebook_argmin_all(&on(&dev, &z), &on(&dev, &cb)).unwrap();
    assert_eq!(got.to_vec_u32().unwrap(), want, "nearest code over the whole codebook");
    // Every row in one half: the unmasked half starts at code 0 (no offsets on the device), the
    // masked one does not.
    for one in [CODEBOOK_HALF_UNMASKED, CODEBOOK_HALF_MASKED] {
        let want = ops::codebook::codebook_argmin_halves(&z, &cb, &[one; 300]).unwrap().to_vec_u32().unwrap();
        let got = ops::codebook::codebook_argmin_halves(&on(&dev, &z), &on(&dev, &cb), &[one; 300]).unwrap();
        assert_eq!(got.to_vec_u32().unwrap(), want, "every row in half {one}");
        assert!(want.iter().all(|&c| (c >= 32) == (one == CODEBOOK_HALF_MASKED)), "half {one} gives codes of its half");
    }
}

fn sampling_draws_the_cpu_tokens(dev: CudaDevice) {
    // Two images of 1024 positions x 256 classes (the tiny vocabulary): the chosen positions and
    // the drawn tokens must be the CPU's exactly (the uniforms come from the host).
    let logits = rand(34, &[2, 1024, 256], -5.0, 5.0);
    let known: Vec<bool> = (0..2048).map(|i| i % 5 != 0).collect();
    let want = ops::sampling::choose_positions(&logits, &known, 7).unwrap();
    let got = ops::sampling::choose_positions(&on(&dev, &logits), &known, 7).unwrap();
    assert_eq!(got, want, "chosen positions");
    let rows = rand(35, &[40, 256], -5.0, 5.0);
    let u = random_vec(36, 40, 0.0, 1.0);
    for (k, t) in [(50, 1.0), (1, 1.0), (256, 0.7)] {
        let want = ops::sampling::topk_sample(&rows, &u, k, t).unwrap();
        let got = ops::sampling::topk_sample(&on(&dev, &rows), &u, k, t).unwrap();
        assert_eq!(got, want, "top-{k} tokens at temperature {t}");
    }
}

fn mixed_devices_are_an_error(dev: CudaDevice) {
    let (a, b) = (rand(37, &[4, 4], -1.0, 1.0), rand(38, &[4, 4], -1.0, 1.0));
    let err = ops::binary::add(&a, &on(&dev, &b)).unwrap_err().to_string();
    assert!(err.contains("cpu") && err.contains("cuda"), "{err}");
    let err = ops::matmul::matmul(&on(&dev, &a), &b).unwrap_err().to_string();
    assert!(err.contains("matmul"), "{err}");
}

fn reductions_and_arg_reductions(dev: CudaDevice) {
    let mut v = random_vec(40, 2 * 3 * 50 * 7, -3.0, 3.0);
    v[11] = v[12]; // a tie inside a group
    let x = Tensor::from_vec(v, &[2, 3, 50, 7]).unwrap();
    let xd = on(&dev, &x);
    for dims in [vec![2], vec![1, 3], vec![0, 1, 2, 3], vec![3]] {
        for keep in [false, true] {
            same(&ops::reduce::sum(&xd, &dims, keep).unwrap(), &ops::reduce::sum(&x, &dims, keep).unwrap(), &format!("sum {dims:?}"));
            same(&ops::reduce::mean(&xd, &dims, keep).unwrap(), &ops::reduce::mean(&x, &dims, keep).unwrap(), &format!("mean {dims:?}"));
            same(&ops::reduce::max(&xd, &dims, keep).unwrap(), &ops::reduce::max(&x, &dims, keep).unwrap(), &format!("max {dims:?}"));
            same(&ops::reduce::min(&xd, &dims, keep).unwrap(), &ops::reduce::min(&x, &dims, keep).unwrap(), &format!("min {dims:?}"));
        }
        let g = rand(41, ops::reduce::max(&x, &dims, false).unwrap().shape(), -1.0, 1.0);
        let want = ops::reduce::extreme_backward(&x, &dims, &g, true).unwrap();
        same(&ops::reduce::extreme_backward(&xd, &dims, &on(&dev, &g), true).unwrap(), &want, &format!("max backward {dims:?}"));
    }
    assert_eq!(ops::reduce::argmax(&xd).unwrap().to_vec_u32().unwrap(), ops::reduce::argmax(&x).unwrap().to_vec_u32().unwrap(), "argmax");
    assert_eq!(ops::reduce::argmin(&xd).unwrap().to_vec_u32().unwrap(), ops::reduce::argmin(&x).unwrap().to_vec_u32().unwrap(), "argmin");
}

fn embedding_and_row_gather_scatter(dev: CudaDevice) {
    // Token embedding of the tiny preset: vocab 256 (+ mask token), width 64, 2 x 1024 tokens.
    let table = rand(42, &[257, 64], -1.0, 1.0);
    let ids: Vec<u32> = (0..2048u32).map(|i| (i * 37 + i / 5) % 257).collect();
    let idx = Tensor::from_u32(ids.clone(), &[2, 1024]).unwrap();
    let (td, id) = (on(&dev, &table), on(&dev, &idx));
    same(&ops::embedding::embedding(&td, &id).unwrap(), &ops::embedding::embedding(&table, &idx).unwrap(), "embedding");
    let g = rand(43, &[2, 1024, 64], -1.0, 1.0);
    let want = ops::embedding::embedding_backward(&idx, &g, 257).unwrap();
    same(&ops::embedding::embedding_backward(&id, &on(&dev, &g), 257).unwrap(), &want, "embedding backward");
    let bad = on(&dev, &Tensor::from_u32(vec![3, 300], &[2]).unwrap());
    let err = ops::embedding::embedding(&td, &bad).unwrap_err().to_string();
    assert!(err.contains("300"), "out-of-range index named: {err}");
    let rows = [5u32, 0, 256, 5];
    same(&ops::index::gather_rows(&td, &rows).unwrap(), &ops::index::gather_rows(&table, &rows).unwrap(), "gather_rows");
    let vals = rand(44, &[4, 64], -1.0, 1.0);
    let want = ops::index::scatter_rows(&table, &rows, &vals).unwrap();
    same(&ops::index::scatter_rows(&td, &rows, &on(&dev, &vals)).unwrap(), &want, "scatter_rows (later rows win)");
}

fn concat_and_narrow_backward(dev: CudaDevice) {
    // FDM's input: features [B, 64, 32, 32] ++ the mask [B, 1, 32, 32] along channels.
    let (a, b) = (rand(45, &[2, 64, 32, 32], -1.0, 1.0), rand(46, &[2, 1, 32, 32], 0.0, 1.0));
    let got = ops::concat::concat(&[&on(&dev, &a), &on(&dev, &b)], 1).unwrap();
    same(&got, &ops::concat::concat(&[&a, &b], 1).unwrap(), "concat along channels");
    let c = rand(47, &[2, 64, 5, 32], -1.0, 1.0);
    let got = ops::concat::concat(&[&on(&dev, &a), &on(&dev, &c)], 2).unwrap();
    same(&got, &ops::concat::concat(&[&a, &c], 2).unwrap(), "concat along rows");
    let g = rand(48, &[2, 10, 32, 32], -1.0, 1.0);
    let want = ops::concat::narrow_backward(&g, &[2, 65, 32, 32], 1, 20).unwrap();
    same(&ops::concat::narrow_backward(&on(&dev, &g), &[2, 65, 32, 32], 1, 20).unwrap(), &want, "narrow backward");
}

fn patches_resize_and_pools(dev: CudaDevice) {
    use fdm::params::resize::ResizeMode;
    let img = rand(49, &[2, 3, 64, 48], -1.0, 1.0);
    let imgd = on(&dev, &img);
    let tokens = ops::patch::patch_unfold(&img, 8).unwrap();
    let tokensd = ops::patch::patch_unfold(&imgd, 8).unwrap();
    same(&tokensd, &tokens, "patch unfold");
    same(&ops::patch::patch_fold(&tokensd, 8, (64, 48)).unwrap(), &img, "patch fold inverts unfold");
    for mode in [ResizeMode::Nearest, ResizeMode::Bilinear] {
        for out in [(32, 24), (100, 70)] {
            let y = ops::resize::resize(&img, mode, out).unwrap();
            same(&ops::resize::resize(&imgd, mode, out).unwrap(), &y, &format!("{mode:?} resize to {out:?}"));
            let g = rand(50, y.shape(), -1.0, 1.0);
            let want = ops::resize::resize_backward(&g, mode, img.shape()).unwrap();
            same(&ops::resize::resize_backward(&on(&dev, &g), mode, img.shape()).unwrap(), &want, &format!("{mode:?} resize backward"));
        }
    }
    let (y, idx) = ops::pool::max_pool2d_with_indices(&img, 3, 2, 1).unwrap();
    let (yd, idxd) = ops::pool::max_pool2d_with_indices(&imgd, 3, 2, 1).unwrap();
    same(&yd, &y, "max pool");
    assert_eq!(idxd.to_vec_u32().unwrap(), idx.to_vec_u32().unwrap(), "max pool indices");
    let g = rand(51, y.shape(), -1.0, 1.0);
    let want = ops::pool::max_pool2d_backward(&g, &idx, img.shape(), 3, 2, 1).unwrap();
    same(&ops::pool::max_pool2d_backward(&on(&dev, &g), &idxd, img.shape(), 3, 2, 1).unwrap(), &want, "max pool backward");
    for include in [true, false] {
        let y = ops::pool::avg_pool2d(&img, 3, 1, 1, include).unwrap();
        same(&ops::pool::avg_pool2d(&imgd, 3, 1, 1, include).unwrap(), &y, &format!("avg pool (count pad {include})"));
        let g = rand(52, y.shape(), -1.0, 1.0);
        let want = ops::pool::avg_pool2d_backward(&g, img.shape(), 3, 1, 1, include).unwrap();
        same(&ops::pool::avg_pool2d_backward(&on(&dev, &g), img.shape(), 3, 1, 1, include).unwrap(), &want, "avg pool backward");
    }
}

fn conv_gradients_and_transposed_conv(dev: CudaDevice) {
    // conv2d 3x3 pad 1 and 4x4 stride 2 pad 1; the decoder's ConvTranspose 4x4 stride 2 pad 1.
    for (xs, ws, stride, pad) in [([2, 16, 12, 12], [24, 16, 3, 3], 1, 1), ([1, 8, 16, 16], [16, 8, 4, 4], 2, 1)] {
        let (x, w) = (rand(60, &xs, -1.0, 1.0), rand(61, &ws, -0.3, 0.3));
        let y = ops::conv::conv2d(&x, &w, None, stride, pad).unwrap();
        let g = rand(62, y.shape(), -1.0, 1.0);
        let want = ops::conv::conv2d_backward(&x, &w, &g, stride, pad).unwrap();
        let got = ops::conv::conv2d_backward(&on(&dev, &x), &on(&dev, &w), &on(&dev, &g), stride, pad).unwrap();
        same(&got.0, &want.0, &format!("conv2d dx {xs:?}"));
        same(&got.1, &want.1, &format!("conv2d dw {xs:?}"));
        same(&got.2, &want.2, &format!("conv2d db {xs:?}"));
    }
    let (x, w, b) = (rand(63, &[2, 16, 8, 8], -1.0, 1.0), rand(64, &[16, 8, 4, 4], -0.3, 0.3), rand(65, &[8], -0.1, 0.1));
    let [xd, wd, bd] = [&x, &w, &b].map(|t| on(&dev, t));
    let y = ops::conv::conv_transpose2d(&x, &w, Some(&b), 2, 1).unwrap();
    same(&ops::conv::conv_transpose2d(&xd, &wd, Some(&bd), 2, 1).unwrap(), &y, "conv_transpose2d");
    let g = rand(66, y.shape(), -1.0, 1.0);
    let gd = on(&dev, &g);
    let want = ops::conv::conv_transpose2d_backward_input(x.shape(), &w, &g, 2, 1).unwrap();
    same(&ops::conv::conv_transpose2d_backward_input(x.shape(), &wd, &gd, 2, 1).unwrap(), &want, "conv_transpose2d dx");
    let want = ops::conv::conv_transpose2d_backward_weight(&x, w.shape(), &g, 2, 1).unwrap();
    same(&ops::conv::conv_transpose2d_backward_weight(&xd, w.shape(), &gd, 2, 1).unwrap(), &want, "conv_transpose2d dw");
}

fn attention_backward_head_dim_64(dev: CudaDevice) {
    let shape = [1, 100, 128];
    let (q, k, v, dout) = (rand(67, &shape, -1.0, 1.0), rand(68, &shape, -1.0, 1.0), rand(69, &shape, -1.0, 1.0), rand(70, &shape, -1.0, 1.0));
    let (o, lse) = ops::attention::attention_with_lse(&q, &k, &v, 2).unwrap();
    let want = ops::attention::attention_backward(&q, &k, &v, &o, &lse, &dout, 2).unwrap();
    let [qd, kd, vd, dd] = [&q, &k, &v, &dout].map(|t| on(&dev, t));
    let (od, lsed) = ops::attention::attention_with_lse(&qd, &kd, &vd, 2).unwrap();
    let got = ops::attention::attention_backward(&qd, &kd, &vd, &od, &lsed, &dd, 2).unwrap();
    same(&got.0, &want.0, "attention dq");
    same(&got.1, &want.1, "attention dk");
    same(&got.2, &want.2, "attention dv");
}

fn profiling_on_the_device_records_synchronised_ops(dev: CudaDevice) {
    use fdm::profile;
    let (a, b) = (on(&dev, &rand(71, &[64, 32], -1.0, 1.0)), on(&dev, &rand(72, &[32, 48], -1.0, 1.0)));
    profile::start_for(&Device::Cuda(dev.clone()));
    let y = profile::stage("decode", || profile::op("matmul", || ops::matmul::matmul(&a, &b), |_| 64 * 32 * 48)).unwrap();
    let events = profile::finish();
    assert_eq!(y.shape(), &[64, 48]);
    let op = events.iter().find(|e| e.op == "matmul").expect("the op was recorded");
    assert_eq!((op.stage, op.macs), ("decode", 64 * 32 * 48));
    let stage = events.iter().find(|e| e.op == "(stage)").expect("the stage was recorded");
    assert!(stage.dur_us >= op.dur_us && op.dur_us > 0.0, "stage {stage:?} spans op {op:?}");
}
