//! im2col / col2im for NCHW convolutions (`params::conv2d::Conv2dParams`), on chunks of output
//! positions so the column matrix stays a few MiB whatever the image size (a 3x3 conv 64->3 at
//! 256x256 would otherwise need a 576 x 65536 matrix, 150 MB).
//!
//! The column matrix of one image has a row per (c, i, j) = (input channel, kernel row, kernel
//! column), `r = (c*kh + i)*kw + j`, and a column per output position `q = oh*out_w + ow`:
//! `col[r][q] = x[c, oh*stride_h + i - pad_h, ow*stride_w + j - pad_w]`, 0 in the padding.
//! A chunk holds columns `q0 .. q0+cols` only, stored `[rows, cols]` row-major.

use super::strided::{add_strided, copy_strided};
use crate::params::conv2d::Conv2dParams;
use rayon::prelude::*;
use std::cell::Cell;

/// Column-matrix elements per chunk at most (16 MiB of f32).
const COL_BUDGET: usize = 4 << 20;

/// Split the `out_plane` output positions into equal chunks (multiples of 16 columns) whose
/// column matrix fits the budget. Returns (first column, number of columns) per chunk.
pub fn column_chunks(p: &Conv2dParams) -> Vec<(usize, usize)> {
    let (rows, total) = (p.col_rows().max(1), p.out_plane());
    let chunks = (rows * total).div_ceil(COL_BUDGET).max(1);
    let per = total.div_ceil(chunks).div_ceil(16) * 16;
    (0..total).step_by(per.max(1)).map(|q0| (q0, per.min(total - q0))).collect()
}

/// Output indices `o` (along one axis) whose input index `o*stride + k - pad` lies in
/// `0..in_len`, as a range clipped to `0..out_len`.
pub(super) fn valid_outputs(k: usize, pad: usize, stride: usize, in_len: usize, out_len: usize) -> (usize, usize) {
    let lo = if k >= pad { 0 } else { (pad - k).div_ceil(stride) };
    let hi = if in_len + pad <= k { 0 } else { (in_len - 1 + pad - k) / stride + 1 };
    let hi = hi.min(out_len);
    (lo.min(hi), hi)
}

/// Kernel offsets (c, i, j) of column-matrix row `r`.
fn row_offsets(p: &Conv2dParams, r: usize) -> (usize, usize, usize) {
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    (r / (kh * kw), (r / kw) % kh, r % kw)
}

/// Walk the columns `q0..q0+len` of one row as runs within one output row `oh`; `f(oh, ow0,
/// ow1, t)` receives the output-row segment and its offset `t` inside the chunk.
fn for_each_run(p: &Conv2dParams, q0: usize, len: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
    let ow_n = p.out_w as usize;
    let mut q = q0;
    while q < q0 + len {
        let (oh, ow0) = (q / ow_n, q % ow_n);
        let ow1 = ow_n.min(ow0 + (q0 + len - q));
        f(oh, ow0, ow1, q - q0);
        q += ow1 - ow0;
    }
}

/// Fill the column chunk `col [col_rows, cols]` from one input image `x_img [C, H, W]`.
pub fn im2col_chunk(p: &Conv2dParams, x_img: &[f32], q0: usize, cols: usize, col: &mut [f32]) {
    let (h, w) = (p.in_h as usize, p.in_w as usize);
    let (sh, sw, ph, pw) = (p.stride_h as usize, p.stride_w as usize, p.pad_h as usize, p.pad_w as usize);
    col[..p.col_rows() * cols].par_chunks_mut(cols).enumerate().for_each(|(r, row)| {
        let (c, i, j) = row_offsets(p, r);
        let plane = &x_img[c * h * w..(c + 1) * h * w];
        let (lo, hi) = valid_outputs(j, pw, sw, w, p.out_w as usize);
        for_each_run(p, q0, cols, |oh, ow0, ow1, t| {
            let seg = &mut row[t..t + ow1 - ow0];
            let ih = (oh * sh + i).wrapping_sub(ph);
            if ih >= h {
                seg.fill(0.0);
                return;
            }
            let src = &plane[ih * w..(ih + 1) * w];
            let (a, b) = (lo.clamp(ow0, ow1), hi.clamp(ow0, ow1));
            seg[..a - ow0].fill(0.0);
            seg[b - ow0..].fill(0.0);
            // ow in a..b reads src[ow*sw + j - pw], always inside the row.
            let dst = &mut seg[a - ow0..b - ow0];
            if b > a {
                copy_strided(dst, &src[a * sw + j - pw..], sw);
            }
        });
    });
}

/// Scatter-add a column chunk `dcol [col_rows, cols]` into one image `dx_img [C, H, W]` (the
/// adjoint of `im2col_chunk`). Parallel over channels: each channel's rows touch only its plane.
pub fn col2im_chunk_add(p: &Conv2dParams, dcol: &[f32], q0: usize, cols: usize, dx_img: &mut [f32]) {
    let (h, w) = (p.in_h as usize, p.in_w as usize);
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    let (sh, sw, ph, pw) = (p.stride_h as usize, p.stride_w as usize, p.pad_h as usize, p.pad_w as usize);
    dx_img[..p.in_image_len()].par_chunks_mut(h * w).enumerate().for_each(|(c, plane)| {
        for i in 0..kh {
            for j in 0..kw {
                let r = (c * kh + i) * kw + j;
                let row = &dcol[r * cols..(r + 1) * cols];
                let (lo, hi) = valid_outputs(j, pw, sw, w, p.out_w as usize);
                for_each_run(p, q0, cols, |oh, ow0, ow1, t| {
                    let ih = (oh * sh + i).wrapping_sub(ph);
                    if ih >= h {
                        return;
                    }
                    let dst = &mut plane[ih * w..(ih + 1) * w];
                    let (a, b) = (lo.clamp(ow0, ow1), hi.clamp(ow0, ow1));
                    if b > a {
                        add_strided(&mut dst[a * sw + j - pw..], &row[t + a - ow0..t + b - ow0], sw);
                    }
                });
            }
        }
    });
}

thread_local! {
    // Reused column buffer (taken out while in use, so nested calls allocate their own).
    static COL_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Run `f` with a scratch buffer of at least `len` floats (contents unspecified).
pub fn with_col_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = COL_BUF.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    COL_BUF.set(buf);
    r
}
