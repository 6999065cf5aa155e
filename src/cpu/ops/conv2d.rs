//! Conv2d on the CPU, NCHW, weight `[out, in, kh, kw]`, bias `[out]`, zero padding, groups 1
//! (`params::conv2d::Conv2dParams`; spec §2.4 decoder, §4.1 FDM, §6.5 discriminator), forward
//! and backward.
//!
//! Fast path, per image and per chunk of output positions (`im2col::column_chunks`):
//! * forward: `y[:, chunk] = W [out, K] * col [K, chunk] (+ bias)`, K = in*kh*kw;
//! * weight gradient: `dW [out, K] += g[:, chunk] * col^T` (stride 1: `conv2d_weight_grad.rs`,
//!   which reads col's rows in place);
//! * input gradient: `dcol = W^T * g[:, chunk]`, then col2im scatter-adds dcol into dx.
//!
//! A 1x1 stride-1 unpadded conv skips im2col: the image is its own column matrix. Other stride-1
//! forwards skip it too: the input is zero-padded once and the GEMM reads the column matrix's
//! rows in place from it (`conv2d_stride1_implicit`, `gemm_rows.rs`), adding the bias as it
//! stores y. Elsewhere the bias is written into y first and the GEMM accumulates onto it
//! (beta = 1). The input gradient of a stride-1 conv is the same implicit forward run on the
//! output gradient with the kernel turned round (`stride1_adjoint`), so it needs neither the
//! column matrix nor its scatter-add. Strided convs whose stride divides the kernel (the 4x4
//! stride-2 ones) run their forward and weight gradient as stride-1 convs over phase planes
//! (`conv2d_phases.rs`).
//!
//! `_ref` functions are direct loop nests with f64 sums, written from the definition (gather
//! form for the input gradient), independent of the GEMM path; they are the oracles.

use super::gemm::gemm_fast;
use super::conv2d_phases::{self, phase_view};
use super::conv2d_weight_grad;
use super::gemm_kernel::{MicroKernel, NR};
use super::gemm_rows::{gemm_b_in_place, BInPlace};
use super::reduce::sum_f64;
use super::im2col::{col2im_chunk_add, column_chunks, im2col_chunk, with_col_buffer};
use crate::params::conv2d::Conv2dParams;
use crate::params::gemm::GemmParams;
use rayon::prelude::*;

/// The input index `o*stride + k - pad` when it lies in `0..len`.
fn input_index(o: usize, k: usize, stride: u32, pad: u32, len: u32) -> Option<usize> {
    let i = (o * stride as usize + k).checked_sub(pad as usize)?;
    (i < len as usize).then_some(i)
}

/// One output element from the definition, summed in f64 (`T` is f32 or f64).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_ref_at<T: Copy + Into<f64>>(p: &Conv2dParams, x: &[T], w: &[T], b: Option<&[T]>, n: usize, o: usize, oh: usize, ow: usize) -> f64 {
    let (c_n, h, wd) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let mut s = b.map_or(0.0, |b| b[o].into());
    for c in 0..c_n {
        for i in 0..kh {
            let Some(ih) = input_index(oh, i, p.stride_h, p.pad_h, p.in_h) else { continue };
            for j in 0..kw {
                let Some(iw) = input_index(ow, j, p.stride_w, p.pad_w, p.in_w) else { continue };
                s += x[((n * c_n + c) * h + ih) * wd + iw].into() * w[((o * c_n + c) * kh + i) * kw + j].into();
            }
        }
    }
    s
}

/// Forward oracle on any float type (f64 for finite differences), parallel over (n, out) planes.
pub fn conv2d_ref_generic<T: Copy + Into<f64> + Sync + Send>(p: &Conv2dParams, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T], from_f64: impl Fn(f64) -> T + Sync) {
    let (oc_n, ow_n) = (p.out_channels as usize, p.out_w as usize);
    y[..p.batch as usize * p.out_image_len()].par_chunks_mut(p.out_plane().max(1)).enumerate().for_each(|(plane, out)| {
        let (n, o) = (plane / oc_n, plane % oc_n);
        for (q, v) in out.iter_mut().enumerate() {
            *v = from_f64(conv2d_ref_at(p, x, w, b, n, o, q / ow_n, q % ow_n));
        }
    });
}

/// The forward oracle in f32.
pub fn conv2d_ref(p: &Conv2dParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    conv2d_ref_generic(p, x, w, b, y, |v| v as f32);
}

/// The forward oracle in f64 (inputs and outputs), for finite-difference checks.
pub fn conv2d_ref_f64(p: &Conv2dParams, x: &[f64], w: &[f64], b: Option<&[f64]>, y: &mut [f64]) {
    conv2d_ref_generic(p, x, w, b, y, |v| v);
}

/// The output index `o` with `o*stride + k - pad == i` (the output that reads input `i`
/// through kernel tap `k`), when there is one in `0..out_len`.
fn output_index(i: usize, k: usize, stride: u32, pad: u32, out_len: u32) -> Option<usize> {
    let t = (i + pad as usize).checked_sub(k)?;
    (t % stride as usize == 0 && t / (stride as usize) < out_len as usize).then_some(t / stride as usize)
}

/// One input-gradient element `dx[n,c,ih,iw]` from the definition (gather form), in f64:
/// the sum over (o, i, j) whose output position reads (ih, iw).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_input_ref_at(p: &Conv2dParams, w: &[f32], g: &[f32], n: usize, c: usize, ih: usize, iw: usize) -> f64 {
    let (c_n, oc_n, oh_n, ow_n) = (p.in_channels as usize, p.out_channels as usize, p.out_h as usize, p.out_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let mut s = 0f64;
    for i in 0..kh {
        let Some(oh) = output_index(ih, i, p.stride_h, p.pad_h, p.out_h) else { continue };
        for j in 0..kw {
            let Some(ow) = output_index(iw, j, p.stride_w, p.pad_w, p.out_w) else { continue };
            for o in 0..oc_n {
                s += g[((n * oc_n + o) * oh_n + oh) * ow_n + ow] as f64 * w[((o * c_n + c) * kh + i) * kw + j] as f64;
            }
        }
    }
    s
}

/// One weight-gradient element `dw[o,c,i,j]` from the definition, in f64: the sum over
/// (n, oh, ow) of g times the input element that weight multiplied.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight_ref_at(p: &Conv2dParams, x: &[f32], g: &[f32], o: usize, c: usize, i: usize, j: usize) -> f64 {
    let (c_n, oc_n, h, wd) = (p.in_channels as usize, p.out_channels as usize, p.in_h as usize, p.in_w as usize);
    let (oh_n, ow_n) = (p.out_h as usize, p.out_w as usize);
    let mut s = 0f64;
    for n in 0..p.batch as usize {
        for oh in 0..oh_n {
            let Some(ih) = input_index(oh, i, p.stride_h, p.pad_h, p.in_h) else { continue };
            for ow in 0..ow_n {
                let Some(iw) = input_index(ow, j, p.stride_w, p.pad_w, p.in_w) else { continue };
                s += g[((n * oc_n + o) * oh_n + oh) * ow_n + ow] as f64 * x[((n * c_n + c) * h + ih) * wd + iw] as f64;
            }
        }
    }
    s
}

/// Backward oracle: `dx`, `dw`, `db` for output gradient `g`, every element from the
/// definition (parallel over elements only for test speed).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_ref(p: &Conv2dParams, x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
    let (n_n, c_n, oc_n) = (p.batch as usize, p.in_channels as usize, p.out_channels as usize);
    let (h, wd) = (p.in_h as usize, p.in_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    dx[..n_n * c_n * h * wd].par_iter_mut().enumerate().for_each(|(idx, v)| {
        let (n, c, ih, iw) = (idx / (c_n * h * wd), (idx / (h * wd)) % c_n, (idx / wd) % h, idx % wd);
        *v = conv2d_backward_input_ref_at(p, w, g, n, c, ih, iw) as f32;
    });
    dw[..p.weight_len()].par_iter_mut().enumerate().for_each(|(idx, v)| {
        let (o, c, i, j) = (idx / (c_n * kh * kw), (idx / (kh * kw)) % c_n, (idx / kw) % kh, idx % kw);
        *v = conv2d_backward_weight_ref_at(p, x, g, o, c, i, j) as f32;
    });
    let plane = p.out_plane();
    for (o, v) in db[..oc_n].iter_mut().enumerate() {
        *v = (0..n_n).map(|n| g[(n * oc_n + o) * plane..][..plane].iter().map(|&e| e as f64).sum::<f64>()).sum::<f64>() as f32;
    }
}

/// Forward: `y = conv2d(x, w) + b` via a GEMM (im2col only for strided convs).
pub fn conv2d_fast(p: &Conv2dParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    if let Some(view) = phase_view(p) {
        conv2d_phases::forward(&view, x, w, b, y);
        return;
    }
    let (oc, k, plane) = (p.out_channels as usize, p.col_rows(), p.out_plane());
    let (xl, yl) = (p.in_image_len(), p.out_image_len());
    for n in 0..p.batch as usize {
        let (x_img, y_img) = (&x[n * xl..(n + 1) * xl], &mut y[n * yl..(n + 1) * yl]);
        if p.stride_h == 1 && p.stride_w == 1 && !p.is_pointwise() {
            conv2d_stride1_implicit(p, x_img, w, b, 0.0, y_img);
            continue;
        }
        let beta = match b {
            Some(b) => {
                fill_channels(y_img, b, plane);
                1.0
            }
            None => 0.0,
        };
        if p.is_pointwise() {
            gemm_fast(&GemmParams::new(oc, plane, k).beta(beta), w, x_img, y_img);
            continue;
        }
        for (q0, cols) in column_chunks(p) {
            with_col_buffer(k * cols, |col| {
                im2col_chunk(p, x_img, q0, cols, col);
                let gp = GemmParams::new(oc, cols, k).leading_dims(k, cols, plane).beta(beta);
                gemm_fast(&gp, w, col, &mut y_img[q0..]);
            });
        }
    }
}

/// One image of a stride-1 convolution as a single GEMM with no column matrix: the input is
/// zero-padded once into `xpad [C, Hp, Wp]`, and row `(c, i, j)` of the column matrix is then
/// `xpad[c]` read from offset `i * Wp + j`, one run of `OW` contiguous columns per output row,
/// `Wp` apart. `gemm_b_in_place` reads those rows where they lie and writes `y [O, OH * OW]`
/// directly: `y = beta * y + conv(x) (+ bias)`.
fn conv2d_stride1_implicit(p: &Conv2dParams, x_img: &[f32], w: &[f32], b: Option<&[f32]>, beta: f32, y_img: &mut [f32]) {
    implicit_of_padded(p, &|xpad: &mut [f32]| pad_image(p, x_img, xpad), w, b, beta, y_img);
}

/// `conv2d_stride1_implicit` on a padded input `[C, H + 2 ph, W + 2 pw]` that `fill` writes
/// (every element, the tail included: a padded image, or the phase planes of a strided
/// convolution, `conv2d_phases`).
pub(super) fn implicit_of_padded(p: &Conv2dParams, fill: &dyn Fn(&mut [f32]), w: &[f32], b: Option<&[f32]>, beta: f32, y_img: &mut [f32]) {
    let (c_n, h, wd) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize);
    let (ph, pw) = (p.pad_h as usize, p.pad_w as usize);
    let (oc, oh, ow) = (p.out_channels as usize, p.out_h as usize, p.out_w as usize);
    let (hp, wp) = (h + 2 * ph, wd + 2 * pw);
    let ps = hp * wp;
    // NR zeros past the last plane: the micro-kernel loads whole NR-wide rows, so a run's last
    // panel of the last channel reads up to NR - 1 floats past its row; with this tail it still
    // reads inside the buffer (in place instead of packed).
    with_col_buffer(c_n * ps + NR, |xpad| {
        fill(xpad);
        let rows = padded_row_offsets(p);
        let layout = BInPlace { rows: &rows, width: ow, stride: wp };
        gemm_b_in_place(&GemmParams::new(oc, oh * ow, rows.len()).beta(beta), w, xpad, layout, b, y_img);
    });
}

/// Where row `(c, i, j)` of a stride-1 convolution's column matrix starts in its zero-padded
/// input `[C, H + 2 ph, W + 2 pw]`: plane c, shifted by i rows and j columns.
pub(super) fn padded_row_offsets(p: &Conv2dParams) -> Vec<usize> {
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let wp = (p.in_w + 2 * p.pad_w) as usize;
    let ps = (p.in_h + 2 * p.pad_h) as usize * wp;
    (0..p.col_rows()).map(|r| (r / (kh * kw)) * ps + ((r / kw) % kh) * wp + r % kw).collect()
}

/// `pad_planes` with the input's shape and padding taken from `p`.
pub(super) fn pad_image(p: &Conv2dParams, x_img: &[f32], dst: &mut [f32]) {
    let (c_n, h, wd) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize);
    pad_planes(x_img, (c_n, h, wd), (p.pad_h as usize, p.pad_w as usize), dst);
}

/// `dst [C, H + 2 ph, W + 2 pw] (+ tail)` = `x [C, H, W]` with zero borders; every element of
/// dst is written (it may be a reused buffer).
fn pad_planes(x: &[f32], (c_n, h, wd): (usize, usize, usize), (ph, pw): (usize, usize), dst: &mut [f32]) {
    let (wp, ps) = (wd + 2 * pw, (h + 2 * ph) * (wd + 2 * pw));
    let (planes, tail) = dst.split_at_mut(c_n * ps);
    tail.fill(0.0);
    planes.par_chunks_mut(ps).zip(x.par_chunks(h * wd)).for_each(|(dst, src)| {
        dst[..ph * wp].fill(0.0);
        dst[(ph + h) * wp..].fill(0.0);
        for (r, row) in src.chunks_exact(wd).enumerate() {
            let d = &mut dst[(r + ph) * wp..][..wp];
            d[..pw].fill(0.0);
            d[pw..pw + wd].copy_from_slice(row);
            d[pw + wd..].fill(0.0);
        }
    });
}

/// Every plane of channel `c` of `img [C, plane]` set to `values[c]`.
pub fn fill_channels(img: &mut [f32], values: &[f32], plane: usize) {
    if plane == 0 {
        return;
    }
    img.par_chunks_mut(plane).zip(values).for_each(|(dst, &v)| dst.fill(v));
}

/// Weight gradient: `dw [out, in, kh, kw] = sum over images of g * col^T` (overwrites dw).
pub fn conv2d_backward_weight_fast(p: &Conv2dParams, x: &[f32], g: &[f32], dw: &mut [f32]) {
    if conv2d_weight_grad::handles(p) {
        conv2d_weight_grad::conv2d_weight_grad_stride1(MicroKernel::detect(), p, x, g, dw);
        return;
    }
    if let Some(view) = phase_view(p) {
        conv2d_phases::backward_weight(&view, x, g, dw);
        return;
    }
    let (oc, k, plane) = (p.out_channels as usize, p.col_rows(), p.out_plane());
    let (xl, gl) = (p.in_image_len(), p.out_image_len());
    dw[..p.weight_len()].fill(0.0);
    for n in 0..p.batch as usize {
        let (x_img, g_img) = (&x[n * xl..(n + 1) * xl], &g[n * gl..(n + 1) * gl]);
        for (q0, cols) in column_chunks(p) {
            with_col_buffer(k * cols, |col| {
                im2col_chunk(p, x_img, q0, cols, col);
                let gp = GemmParams::with_trans(oc, k, cols, false, true).leading_dims(plane, cols, k).beta(1.0);
                gemm_fast(&gp, &g_img[q0..], col, dw);
            });
        }
    }
}

/// Input gradient added into `dx` (`dx += conv2d^T(g)`); callers zero or pre-fill `dx` (the
/// transposed convolution pre-fills its bias here).
pub fn conv2d_backward_input_add(p: &Conv2dParams, w: &[f32], g: &[f32], dx: &mut [f32]) {
    if let Some(t) = stride1_adjoint(p) {
        backward_input_as_forward(p, &t, w, g, 1.0, dx);
        return;
    }
    let (oc, k, plane) = (p.out_channels as usize, p.col_rows(), p.out_plane());
    let (xl, gl) = (p.in_image_len(), p.out_image_len());
    for n in 0..p.batch as usize {
        let (g_img, dx_img) = (&g[n * gl..(n + 1) * gl], &mut dx[n * xl..(n + 1) * xl]);
        if p.is_pointwise() {
            // dx [in, plane] += W^T [in, out] * g [out, plane].
            gemm_fast(&GemmParams::with_trans(k, plane, oc, true, false).beta(1.0), w, g_img, dx_img);
            continue;
        }
        for (q0, cols) in column_chunks(p) {
            with_col_buffer(k * cols, |dcol| {
                let gp = GemmParams::with_trans(k, cols, oc, true, false).leading_dims(k, plane, cols);
                gemm_fast(&gp, w, &g_img[q0..], dcol);
                col2im_chunk_add(p, dcol, q0, cols, dx_img);
            });
        }
    }
}

/// Input gradient (overwrites dx).
pub fn conv2d_backward_input_fast(p: &Conv2dParams, w: &[f32], g: &[f32], dx: &mut [f32]) {
    if let Some(t) = stride1_adjoint(p) {
        backward_input_as_forward(p, &t, w, g, 0.0, dx);
        return;
    }
    dx[..p.batch as usize * p.in_image_len()].fill(0.0);
    conv2d_backward_input_add(p, w, g, dx);
}

/// The input gradient of a stride-1 convolution is itself a stride-1 convolution: of `g`, zero
/// padded by `k - 1 - pad`, with the weights' channel axes swapped and the kernel turned by 180
/// degrees (`dx[c, y, x] = sum_{o,i,j} w[o, c, i, j] g[o, y + pad - i, x + pad - j]`). Its
/// parameters, where that holds (stride 1, a kernel wider than one pixel, pad < kernel): then it
/// runs through the implicit forward GEMM, with no column matrix to scatter back and no zeroed
/// `dx` to add into.
fn stride1_adjoint(p: &Conv2dParams) -> Option<Conv2dParams> {
    let fits = p.stride_h == 1 && p.stride_w == 1 && !p.is_pointwise() && p.pad_h < p.kernel_h && p.pad_w < p.kernel_w;
    fits.then(|| Conv2dParams {
        batch: 1,
        in_channels: p.out_channels,
        in_h: p.out_h,
        in_w: p.out_w,
        out_channels: p.in_channels,
        out_h: p.in_h,
        out_w: p.in_w,
        pad_h: p.kernel_h - 1 - p.pad_h,
        pad_w: p.kernel_w - 1 - p.pad_w,
        has_bias: 0,
        ..*p
    })
}

/// `dx = beta * dx + conv2d^T(g)` per image through the adjoint convolution `t`
/// (`stride1_adjoint`).
fn backward_input_as_forward(p: &Conv2dParams, t: &Conv2dParams, w: &[f32], g: &[f32], beta: f32, dx: &mut [f32]) {
    let (oc, c_n, kh, kw) = (p.out_channels as usize, p.in_channels as usize, p.kernel_h as usize, p.kernel_w as usize);
    let taps = kh * kw;
    // turned[c, o, i, j] = w[o, c, kh - 1 - i, kw - 1 - j]
    // (one kernel at a time: an index split per element was 0.7 % of a phase-1a step)
    let mut turned = vec![0f32; p.weight_len()];
    for (co, dst) in turned.chunks_exact_mut(taps).enumerate() {
        let (c, o) = (co / oc, co % oc);
        dst.iter_mut().zip(w[(o * c_n + c) * taps..][..taps].iter().rev()).for_each(|(d, &s)| *d = s);
    }
    let (xl, gl) = (p.in_image_len(), p.out_image_len());
    for n in 0..p.batch as usize {
        conv2d_stride1_implicit(t, &g[n * gl..(n + 1) * gl], &turned, None, beta, &mut dx[n * xl..(n + 1) * xl]);
    }
}

/// Bias gradient: `db[c] = sum over images and positions of g[n, c, :]`.
pub fn conv2d_backward_bias_fast(p: &Conv2dParams, g: &[f32], db: &mut [f32]) {
    channel_sums(g, p.batch as usize, p.out_channels as usize, p.out_plane(), db);
}

/// `out[c] = sum_{n, q} t[n, c, q]` for a dense `[batch, channels, plane]` tensor (f64 sums,
/// each plane's over independent partial sums: one chain of dependent adds was 2 % of a
/// phase-1a step).
pub fn channel_sums(t: &[f32], batch: usize, channels: usize, plane: usize, out: &mut [f32]) {
    out[..channels].par_iter_mut().enumerate().for_each(|(c, v)| {
        let s: f64 = (0..batch).map(|n| sum_f64(&t[(n * channels + c) * plane..][..plane])).sum();
        *v = s as f32;
    });
}
