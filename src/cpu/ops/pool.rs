//! CPU 2-D max and average pooling over `[planes = N*C, in_h, in_w]` (NCHW) -> `[planes, out_h,
//! out_w]`, square kernel/stride/padding, PyTorch semantics with `ceil_mode=False` (see
//! `params/pool.rs`), forward and backward.
//! * max: padding never wins (-inf); the **first** maximum in row-major window order wins and its
//!   index (`iy * in_w + ix` within the plane, like PyTorch's `return_indices`) is returned for
//!   the backward, which routes each output gradient to that one input; a NaN in the window is
//!   the result (the first NaN wins).
//! * avg: window sum over the valid pixels divided by the padded window size
//!   (`count_include_pad = 1`, PyTorch's default) or by the number of valid pixels (0).
//!
//! `_ref` loops per output pixel (f64 sums); `_fast` runs planes in parallel.

use crate::params::pool::Pool2dParams;
use rayon::prelude::*;

/// One axis of a window: input range `[lo, hi)` and the padded window length (avg divisor).
type Span = (usize, usize, usize);

/// Max over one window: (value, plane index of the first maximum).
#[inline]
fn window_max(xp: &[f32], iw: usize, wy: Span, wx: Span) -> (f32, u32) {
    let (mut best, mut at) = (f32::NEG_INFINITY, wy.0 * iw + wx.0);
    for iy in wy.0..wy.1 {
        for ix in wx.0..wx.1 {
            let v = xp[iy * iw + ix];
            if v.is_nan() {
                return (v, (iy * iw + ix) as u32);
            }
            if v > best {
                (best, at) = (v, iy * iw + ix);
            }
        }
    }
    (best, at as u32)
}

/// Average over one window in f64 (shared by ref and fast: a window is at most kernel^2 values).
#[inline]
fn window_avg(p: &Pool2dParams, xp: &[f32], wy: Span, wx: Span) -> f32 {
    let iw = p.in_w as usize;
    let mut s = 0f64;
    for iy in wy.0..wy.1 {
        s += xp[iy * iw + wx.0..iy * iw + wx.1]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>();
    }
    (s / divisor(p, wy, wx) as f64) as f32
}

fn divisor(p: &Pool2dParams, wy: Span, wx: Span) -> f32 {
    if p.count_include_pad != 0 {
        (wy.2 * wx.2) as f32
    } else {
        ((wy.1 - wy.0) * (wx.1 - wx.0)) as f32
    }
}

/// Window spans of every output row and column, computed once per call by the fast paths.
fn span_tables(p: &Pool2dParams) -> (Vec<Span>, Vec<Span>) {
    let ys = (0..p.out_h as usize)
        .map(|o| p.window(o, p.in_h as usize))
        .collect();
    let xs = (0..p.out_w as usize)
        .map(|o| p.window(o, p.in_w as usize))
        .collect();
    (ys, xs)
}

/// The oracle max-pool forward: values and argmax indices.
pub fn max_pool2d_fwd_ref(p: &Pool2dParams, x: &[f32], y: &mut [f32], idx: &mut [u32]) {
    let (ip, op, ow) = (p.in_plane(), p.out_plane(), p.out_w as usize);
    for n in 0..p.planes as usize {
        for o in 0..op {
            let wy = p.window(o / ow, p.in_h as usize);
            let wx = p.window(o % ow, p.in_w as usize);
            let (v, i) = window_max(&x[n * ip..][..ip], p.in_w as usize, wy, wx);
            y[n * op + o] = v;
            idx[n * op + o] = i;
        }
    }
}

/// What runs: planes in parallel.
pub fn max_pool2d_fwd_fast(p: &Pool2dParams, x: &[f32], y: &mut [f32], idx: &mut [u32]) {
    let (ip, op, ow, iw) = (
        p.in_plane(),
        p.out_plane(),
        p.out_w as usize,
        p.in_w as usize,
    );
    if op == 0 {
        return;
    }
    let (ys, xs) = span_tables(p);
    y.par_chunks_mut(op)
        .zip(idx.par_chunks_mut(op))
        .enumerate()
        .for_each(|(n, (yp, ipl))| {
            let xp = &x[n * ip..][..ip];
            for o in 0..op {
                (yp[o], ipl[o]) = window_max(xp, iw, ys[o / ow], xs[o % ow]);
            }
        });
}

/// The first saved index that does not address a pixel of a `plane`-sized input plane, if any
/// (the backward's indices come from the caller, so they are checked before the scatter).
pub fn first_index_outside(idx: &[u32], plane: usize) -> Option<u32> {
    idx.iter().copied().find(|&i| i as usize >= plane)
}

/// Max-pool backward: `dx` overwritten; each output gradient added at its saved argmax index.
/// One version (a scatter, obviously correct), planes in parallel.
pub fn max_pool2d_bwd(p: &Pool2dParams, idx: &[u32], g: &[f32], dx: &mut [f32]) {
    let (ip, op) = (p.in_plane(), p.out_plane());
    if ip == 0 {
        return;
    }
    dx.par_chunks_mut(ip).enumerate().for_each(|(n, dp)| {
        dp.fill(0.0);
        for o in 0..op {
            dp[idx[n * op + o] as usize] += g[n * op + o];
        }
    });
}

/// The oracle average-pool forward.
pub fn avg_pool2d_fwd_ref(p: &Pool2dParams, x: &[f32], y: &mut [f32]) {
    let (ip, op, ow) = (p.in_plane(), p.out_plane(), p.out_w as usize);
    for n in 0..p.planes as usize {
        for o in 0..op {
            let wy = p.window(o / ow, p.in_h as usize);
            let wx = p.window(o % ow, p.in_w as usize);
            y[n * op + o] = window_avg(p, &x[n * ip..][..ip], wy, wx);
        }
    }
}

/// What runs: planes in parallel.
pub fn avg_pool2d_fwd_fast(p: &Pool2dParams, x: &[f32], y: &mut [f32]) {
    let (ip, op, ow) = (p.in_plane(), p.out_plane(), p.out_w as usize);
    if op == 0 {
        return;
    }
    let (ys, xs) = span_tables(p);
    y.par_chunks_mut(op).enumerate().for_each(|(n, yp)| {
        let xp = &x[n * ip..][..ip];
        for (o, v) in yp.iter_mut().enumerate() {
            *v = window_avg(p, xp, ys[o / ow], xs[o % ow]);
        }
    });
}

/// The oracle average-pool backward (f64 accumulation); `dx` overwritten.
pub fn avg_pool2d_bwd_ref(p: &Pool2dParams, g: &[f32], dx: &mut [f32]) {
    let (ip, op, ow, iw) = (
        p.in_plane(),
        p.out_plane(),
        p.out_w as usize,
        p.in_w as usize,
    );
    let mut acc = vec![0f64; dx.len()];
    for n in 0..p.planes as usize {
        for o in 0..op {
            let wy = p.window(o / ow, p.in_h as usize);
            let wx = p.window(o % ow, iw);
            let share = g[n * op + o] as f64 / divisor(p, wy, wx) as f64;
            for iy in wy.0..wy.1 {
                for ix in wx.0..wx.1 {
                    acc[n * ip + iy * iw + ix] += share;
                }
            }
        }
    }
    dx.iter_mut().zip(&acc).for_each(|(d, &a)| *d = a as f32);
}

/// What runs: planes in parallel; `dx` overwritten.
pub fn avg_pool2d_bwd_fast(p: &Pool2dParams, g: &[f32], dx: &mut [f32]) {
    let (ip, op, ow, iw) = (
        p.in_plane(),
        p.out_plane(),
        p.out_w as usize,
        p.in_w as usize,
    );
    if ip == 0 {
        return;
    }
    let (ys, xs) = span_tables(p);
    dx.par_chunks_mut(ip).enumerate().for_each(|(n, dp)| {
        dp.fill(0.0);
        for o in 0..op {
            let (wy, wx) = (ys[o / ow], xs[o % ow]);
            let share = g[n * op + o] / divisor(p, wy, wx);
            for iy in wy.0..wy.1 {
                dp[iy * iw + wx.0..iy * iw + wx.1]
                    .iter_mut()
                    .for_each(|d| *d += share);
            }
        }
    });
}
