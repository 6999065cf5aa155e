//! ConvTranspose2d on the CPU, NCHW, weight `[in, out, kh, kw]` (PyTorch's layout, spec §0),
//! bias `[out]`, output_padding 0 (`params::conv_transpose2d`): the decoder's 4x4 stride-2
//! pad-1 upsampling layers (spec §2.4: 256->256 32->64, 256->128 64->128, 128->64 128->256).
//!
//! A transposed convolution is the adjoint of the Conv2d `C` that maps y's shape to x's
//! (`ConvTranspose2dParams::as_conv`, same weight tensor read as `[conv_out, conv_in, kh, kw]`):
//! * forward       `y  = C^T(x) + b`        = Conv2d input gradient (GEMM + col2im);
//! * input grad    `dx = C(g)`              = Conv2d forward of g (im2col + GEMM), no bias;
//! * weight grad   `dW[c,o,i,j] = sum x*g`  = Conv2d weight gradient with input g, output grad x;
//! * bias grad     `db[o] = sum over (n, h, w) of g[n, o]`.
//!
//! The `_ref` functions are written from the scatter/gather definition directly (not through
//! Conv2d), so the tests also check the adjoint mapping.

use super::conv2d::{channel_sums, conv2d_backward_input_add, conv2d_backward_weight_fast, conv2d_fast, fill_channels};
use crate::params::conv_transpose2d::ConvTranspose2dParams;
use rayon::prelude::*;

/// The input index `ih` with `ih*stride - pad + k == o`, when there is one in `0..in_len`.
fn source_index(o: usize, k: usize, stride: u32, pad: u32, in_len: u32) -> Option<usize> {
    let t = (o + pad as usize).checked_sub(k)?;
    (t % stride as usize == 0 && t / (stride as usize) < in_len as usize).then_some(t / stride as usize)
}

/// One output element from the definition (gather form), summed in f64.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_ref_at<T: Copy + Into<f64>>(p: &ConvTranspose2dParams, x: &[T], w: &[T], b: Option<&[T]>, n: usize, o: usize, oh: usize, ow: usize) -> f64 {
    let (c_n, oc_n, h, wd) = (p.in_channels as usize, p.out_channels as usize, p.in_h as usize, p.in_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let mut s = b.map_or(0.0, |b| b[o].into());
    for c in 0..c_n {
        for i in 0..kh {
            let Some(ih) = source_index(oh, i, p.stride_h, p.pad_h, p.in_h) else { continue };
            for j in 0..kw {
                let Some(iw) = source_index(ow, j, p.stride_w, p.pad_w, p.in_w) else { continue };
                s += x[((n * c_n + c) * h + ih) * wd + iw].into() * w[((c * oc_n + o) * kh + i) * kw + j].into();
            }
        }
    }
    s
}

/// Forward oracle on any float type, parallel over (n, out) planes.
pub fn conv_transpose2d_ref_generic<T: Copy + Into<f64> + Sync + Send>(p: &ConvTranspose2dParams, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T], from_f64: impl Fn(f64) -> T + Sync) {
    let (oc_n, ow_n) = (p.out_channels as usize, p.out_w as usize);
    let plane = (p.out_h * p.out_w) as usize;
    y[..p.batch as usize * p.out_image_len()].par_chunks_mut(plane.max(1)).enumerate().for_each(|(idx, out)| {
        let (n, o) = (idx / oc_n, idx % oc_n);
        for (q, v) in out.iter_mut().enumerate() {
            *v = from_f64(conv_transpose2d_ref_at(p, x, w, b, n, o, q / ow_n, q % ow_n));
        }
    });
}

pub fn conv_transpose2d_ref(p: &ConvTranspose2dParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    conv_transpose2d_ref_generic(p, x, w, b, y, |v| v as f32);
}

/// The forward oracle in f64, for finite-difference checks.
pub fn conv_transpose2d_ref_f64(p: &ConvTranspose2dParams, x: &[f64], w: &[f64], b: Option<&[f64]>, y: &mut [f64]) {
    conv_transpose2d_ref_generic(p, x, w, b, y, |v| v);
}

/// The output index `ih*stride - pad + k` written by input `ih` through tap `k`, if inside y.
fn target_index(ih: usize, k: usize, stride: u32, pad: u32, out_len: u32) -> Option<usize> {
    let o = (ih * stride as usize + k).checked_sub(pad as usize)?;
    (o < out_len as usize).then_some(o)
}

/// One input-gradient element `dx[n,c,ih,iw]` from the scatter definition
/// `y[n,o,ih*s-p+i, iw*s-p+j] += x[n,c,ih,iw]*w[c,o,i,j]`, in f64.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_backward_input_ref_at(p: &ConvTranspose2dParams, w: &[f32], g: &[f32], n: usize, c: usize, ih: usize, iw: usize) -> f64 {
    let (oc_n, oh_n, ow_n) = (p.out_channels as usize, p.out_h as usize, p.out_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let mut s = 0f64;
    for i in 0..kh {
        let Some(oh) = target_index(ih, i, p.stride_h, p.pad_h, p.out_h) else { continue };
        for j in 0..kw {
            let Some(ow) = target_index(iw, j, p.stride_w, p.pad_w, p.out_w) else { continue };
            for o in 0..oc_n {
                s += g[((n * oc_n + o) * oh_n + oh) * ow_n + ow] as f64 * w[((c * oc_n + o) * kh + i) * kw + j] as f64;
            }
        }
    }
    s
}

/// One weight-gradient element `dw[c,o,i,j]` from the scatter definition, in f64.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_backward_weight_ref_at(p: &ConvTranspose2dParams, x: &[f32], g: &[f32], c: usize, o: usize, i: usize, j: usize) -> f64 {
    let (c_n, oc_n, h, wd) = (p.in_channels as usize, p.out_channels as usize, p.in_h as usize, p.in_w as usize);
    let (oh_n, ow_n) = (p.out_h as usize, p.out_w as usize);
    let mut s = 0f64;
    for n in 0..p.batch as usize {
        for ih in 0..h {
            let Some(oh) = target_index(ih, i, p.stride_h, p.pad_h, p.out_h) else { continue };
            for iw in 0..wd {
                let Some(ow) = target_index(iw, j, p.stride_w, p.pad_w, p.out_w) else { continue };
                s += x[((n * c_n + c) * h + ih) * wd + iw] as f64 * g[((n * oc_n + o) * oh_n + oh) * ow_n + ow] as f64;
            }
        }
    }
    s
}

/// Backward oracle: every element of `dx`, `dw`, `db` from the scatter definition (parallel
/// over elements only for test speed).
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_backward_ref(p: &ConvTranspose2dParams, x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
    let (n_n, c_n, oc_n) = (p.batch as usize, p.in_channels as usize, p.out_channels as usize);
    let (h, wd, plane) = (p.in_h as usize, p.in_w as usize, (p.out_h * p.out_w) as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    dx[..n_n * c_n * h * wd].par_iter_mut().enumerate().for_each(|(idx, v)| {
        let (n, c, ih, iw) = (idx / (c_n * h * wd), (idx / (h * wd)) % c_n, (idx / wd) % h, idx % wd);
        *v = conv_transpose2d_backward_input_ref_at(p, w, g, n, c, ih, iw) as f32;
    });
    dw[..p.weight_len()].par_iter_mut().enumerate().for_each(|(idx, v)| {
        let (c, o, i, j) = (idx / (oc_n * kh * kw), (idx / (kh * kw)) % oc_n, (idx / kw) % kh, idx % kw);
        *v = conv_transpose2d_backward_weight_ref_at(p, x, g, c, o, i, j) as f32;
    });
    for (o, v) in db[..oc_n].iter_mut().enumerate() {
        *v = (0..n_n).map(|n| g[(n * oc_n + o) * plane..][..plane].iter().map(|&e| e as f64).sum::<f64>()).sum::<f64>() as f32;
    }
}

/// Forward: bias written into y, then the adjoint conv's input gradient added onto it.
pub fn conv_transpose2d_fast(p: &ConvTranspose2dParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let y = &mut y[..p.batch as usize * p.out_image_len()];
    let plane = (p.out_h * p.out_w) as usize;
    match b {
        Some(b) => y.chunks_mut(p.out_image_len().max(1)).for_each(|img| fill_channels(img, b, plane)),
        None => y.fill(0.0),
    }
    conv2d_backward_input_add(&p.as_conv(), w, x, y);
}

/// Input gradient: the adjoint conv applied to g (overwrites dx).
pub fn conv_transpose2d_backward_input_fast(p: &ConvTranspose2dParams, w: &[f32], g: &[f32], dx: &mut [f32]) {
    conv2d_fast(&p.as_conv(), g, w, None, dx);
}

/// Weight gradient `[in, out, kh, kw]` (overwrites dw).
pub fn conv_transpose2d_backward_weight_fast(p: &ConvTranspose2dParams, x: &[f32], g: &[f32], dw: &mut [f32]) {
    conv2d_backward_weight_fast(&p.as_conv(), g, x, dw);
}

/// Bias gradient `[out]`.
pub fn conv_transpose2d_backward_bias_fast(p: &ConvTranspose2dParams, g: &[f32], db: &mut [f32]) {
    channel_sums(g, p.batch as usize, p.out_channels as usize, (p.out_h * p.out_w) as usize, db);
}
