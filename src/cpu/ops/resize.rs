//! CPU 2-D resize of `[planes = N*C, in_h, in_w]` -> `[planes, out_h, out_w]` (NCHW images and
//! masks), with PyTorch `F.interpolate` semantics, forward and backward:
//! * nearest: source index `min(floor(i * (in/out)), in - 1)` with the scale computed in f32 as
//!   PyTorch does. Downsampling by an integer factor therefore picks the **top-left pixel of each
//!   block** (spec §1.5: masks resized 256 -> 32/64/128 for the decoder's blend, §2.4).
//!   Backward: every output gradient is added to its source pixel.
//! * bilinear, align_corners=False, no antialias: source coordinate
//!   `s = max((i + 0.5) * (in/out) - 0.5, 0)`, `i0 = floor(s)`, `i1 = min(i0 + 1, in - 1)`,
//!   weights `(1 - (s - i0), s - i0)`, separably in y and x. Backward scatters with the same weights.
//!
//! `_ref` walks output pixels one by one (f64 weights and sums); `_fast` precomputes the per-axis
//! tables and runs planes in parallel (each plane's scatter stays on one thread: deterministic).

use crate::params::resize::ResizeParams;
use rayon::prelude::*;

/// PyTorch's nearest source index for output index `i` (f32 scale, clamped to the input).
pub fn nearest_source(i: usize, in_len: usize, out_len: usize) -> usize {
    if in_len == out_len {
        return i;
    }
    let scale = in_len as f32 / out_len as f32;
    ((i as f32 * scale).floor() as usize).min(in_len - 1)
}

/// Bilinear (align_corners=False) taps of output index `i`: (i0, i1, weight of i1) in f64.
pub fn bilinear_taps_f64(i: usize, in_len: usize, out_len: usize) -> (usize, usize, f64) {
    let scale = in_len as f64 / out_len as f64;
    let s = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(in_len - 1);
    let i1 = (i0 + 1).min(in_len - 1);
    (i0, i1, s - i0 as f64)
}

/// The same taps computed in f32, as PyTorch's CPU kernel does for f32 tensors.
fn bilinear_taps_f32(i: usize, in_len: usize, out_len: usize) -> (usize, usize, f32) {
    let scale = in_len as f32 / out_len as f32;
    let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s as usize).min(in_len - 1);
    let i1 = (i0 + 1).min(in_len - 1);
    (i0, i1, (s - i0 as f32).clamp(0.0, 1.0))
}

/// Source taps of one output pixel as (input offset in the plane, weight) pairs, f64.
fn taps_ref(p: &ResizeParams, oy: usize, ox: usize) -> Vec<(usize, f64)> {
    let (ih, iw, oh, ow) = (
        p.in_h as usize,
        p.in_w as usize,
        p.out_h as usize,
        p.out_w as usize,
    );
    if p.is_nearest() {
        return vec![(
            nearest_source(oy, ih, oh) * iw + nearest_source(ox, iw, ow),
            1.0,
        )];
    }
    let (y0, y1, ly) = bilinear_taps_f64(oy, ih, oh);
    let (x0, x1, lx) = bilinear_taps_f64(ox, iw, ow);
    vec![
        (y0 * iw + x0, (1.0 - ly) * (1.0 - lx)),
        (y0 * iw + x1, (1.0 - ly) * lx),
        (y1 * iw + x0, ly * (1.0 - lx)),
        (y1 * iw + x1, ly * lx),
    ]
}

/// The oracle forward.
pub fn resize_fwd_ref(p: &ResizeParams, x: &[f32], y: &mut [f32]) {
    let (ip, op, ow) = (p.in_plane(), p.out_plane(), p.out_w as usize);
    for n in 0..p.planes as usize {
        for o in 0..op {
            let v: f64 = taps_ref(p, o / ow, o % ow)
                .iter()
                .map(|&(i, w)| w * x[n * ip + i] as f64)
                .sum();
            y[n * op + o] = v as f32;
        }
    }
}

/// The oracle backward: `dx` overwritten with the scatter of `g`.
pub fn resize_bwd_ref(p: &ResizeParams, g: &[f32], dx: &mut [f32]) {
    let (ip, op, ow) = (p.in_plane(), p.out_plane(), p.out_w as usize);
    let mut acc = vec![0f64; dx.len()];
    for n in 0..p.planes as usize {
        for o in 0..op {
            for (i, w) in taps_ref(p, o / ow, o % ow) {
                acc[n * ip + i] += w * g[n * op + o] as f64;
            }
        }
    }
    dx.iter_mut().zip(&acc).for_each(|(d, &a)| *d = a as f32);
}

/// Per-axis tables: for each output index, (i0, i1, weight of i1). Nearest: i0 == i1, weight 0.
fn axis_table(nearest: bool, in_len: usize, out_len: usize) -> Vec<(usize, usize, f32)> {
    (0..out_len)
        .map(|i| {
            if nearest {
                let s = nearest_source(i, in_len, out_len);
                (s, s, 0.0)
            } else {
                bilinear_taps_f32(i, in_len, out_len)
            }
        })
        .collect()
}

/// What runs: table-driven, planes in parallel.
pub fn resize_fwd_fast(p: &ResizeParams, x: &[f32], y: &mut [f32]) {
    let (iw, ow) = (p.in_w as usize, p.out_w as usize);
    let (ip, op) = (p.in_plane(), p.out_plane());
    if op == 0 {
        return;
    }
    let ty = axis_table(p.is_nearest(), p.in_h as usize, p.out_h as usize);
    let tx = axis_table(p.is_nearest(), iw, ow);
    let nearest = p.is_nearest();
    y.par_chunks_mut(op).enumerate().for_each(|(n, yp)| {
        let xp = &x[n * ip..][..ip];
        for (oy, yrow) in yp.chunks_mut(ow).enumerate() {
            let (y0, y1, ly) = ty[oy];
            let (r0, r1) = (&xp[y0 * iw..][..iw], &xp[y1 * iw..][..iw]);
            for (o, &(x0, x1, lx)) in yrow.iter_mut().zip(&tx) {
                *o = if nearest {
                    r0[x0]
                } else {
                    let top = r0[x0] + (r0[x1] - r0[x0]) * lx;
                    let bot = r1[x0] + (r1[x1] - r1[x0]) * lx;
                    top + (bot - top) * ly
                };
            }
        }
    });
}

/// What runs: `dx` overwritten with the scatter of `g`, planes in parallel.
pub fn resize_bwd_fast(p: &ResizeParams, g: &[f32], dx: &mut [f32]) {
    let (iw, ow) = (p.in_w as usize, p.out_w as usize);
    let (ip, op) = (p.in_plane(), p.out_plane());
    if ip == 0 {
        return;
    }
    let ty = axis_table(p.is_nearest(), p.in_h as usize, p.out_h as usize);
    let tx = axis_table(p.is_nearest(), iw, ow);
    dx.par_chunks_mut(ip).enumerate().for_each(|(n, dp)| {
        dp.fill(0.0);
        let gp = &g[n * op..][..op];
        for (oy, grow) in gp.chunks(ow).enumerate() {
            let (y0, y1, ly) = ty[oy];
            for (&gv, &(x0, x1, lx)) in grow.iter().zip(&tx) {
                let (top, bot) = (gv * (1.0 - ly), gv * ly);
                dp[y0 * iw + x0] += top * (1.0 - lx);
                dp[y0 * iw + x1] += top * lx;
                dp[y1 * iw + x0] += bot * (1.0 - lx);
                dp[y1 * iw + x1] += bot * lx;
            }
        }
    });
}
