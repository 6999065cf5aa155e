//! Image-gradient loss L_G (spec §6.5, weight 5 in the codec/decoder loss), on flat slices.
//!
//! y (reconstruction) and x (target): NCHW `[batch, channels, height, width]`, same shape,
//! N = batch*channels*height*width elements. Horizontal gradient magnitudes
//! `gx(a)[i, j] = |a[i, j+1] - a[i, j]|` with the last column 0, vertical
//! `gy(a)[i, j] = |a[i+1, j] - a[i, j]|` with the last row 0 (per plane), and
//! `L_G = ( mean|gx(y) - gx(x)| + mean|gy(y) - gy(x)| ) / 2`, both means over all N elements
//! (the zero last column / row included, as the official code pads them).
//!
//! Backward: for a horizontal pair (j, j+1) with `r = |dy| - |dx|` (dy = y[j+1] - y[j],
//! dx likewise on x), `dL/dy[j+1] += c sign(r) sign(dy)`, `dL/dy[j] -= ...`, with
//! c = g / (2N); the target gets `-c sign(r) sign(dx)` the same way. sign(0) = 0 (PyTorch).
//! `_ref` serial in f64; `_fast` one task per plane (B*C planes), f64 partial sums.

use crate::params::losses::ImageGradParams;
use rayon::prelude::*;

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Sum of |gx(y) - gx(x)| + |gy(y) - gy(x)| over one H x W plane, in f64.
fn plane_sum(h: usize, w: usize, y: &[f32], x: &[f32]) -> f64 {
    let step = |v: &[f32], a: usize, b: usize| (v[b] as f64 - v[a] as f64).abs();
    let diff = |a: usize, b: usize| (step(y, a, b) - step(x, a, b)).abs();
    let mut s = 0f64;
    for i in 0..h {
        for j in 0..w {
            let at = i * w + j;
            if j + 1 < w {
                s += diff(at, at + 1);
            }
            if i + 1 < h {
                s += diff(at, at + w);
            }
        }
    }
    s
}

fn plane(p: &ImageGradParams) -> (usize, usize, usize) {
    let (h, w) = (p.height as usize, p.width as usize);
    (h, w, h * w)
}

pub fn image_grad_loss_ref(p: &ImageGradParams, y: &[f32], x: &[f32]) -> f32 {
    let (h, w, hw) = plane(p);
    let planes = (p.batch * p.channels) as usize;
    let s: f64 = (0..planes)
        .map(|k| plane_sum(h, w, &y[k * hw..][..hw], &x[k * hw..][..hw]))
        .sum();
    (s / (2.0 * p.numel() as f64)) as f32
}

pub fn image_grad_loss_fast(p: &ImageGradParams, y: &[f32], x: &[f32]) -> f32 {
    let (h, w, hw) = plane(p);
    if hw == 0 {
        return f32::NAN; // mean of nothing, as PyTorch
    }
    let partial: Vec<f64> = y
        .par_chunks(hw)
        .zip(x.par_chunks(hw))
        .map(|(yp, xp)| plane_sum(h, w, yp, xp))
        .collect();
    (partial.iter().sum::<f64>() / (2.0 * p.numel() as f64)) as f32
}

/// Adds the contribution of the pair (a, b) (b the later pixel) to both gradients.
fn pair_backward(c: f32, y: &[f32], x: &[f32], a: usize, b: usize, dy: &mut [f32], dx: &mut [f32]) {
    let (ddy, ddx) = (y[b] - y[a], x[b] - x[a]);
    let r = sign(ddy.abs() - ddx.abs());
    let gy = c * r * sign(ddy);
    let gx = -c * r * sign(ddx);
    dy[b] += gy;
    dy[a] -= gy;
    dx[b] += gx;
    dx[a] -= gx;
}

/// Gradients w.r.t. y and x, scaled by the output gradient `g`.
pub fn image_grad_loss_backward(
    p: &ImageGradParams,
    y: &[f32],
    x: &[f32],
    g: f32,
    dy: &mut [f32],
    dx: &mut [f32],
) {
    let (h, w, hw) = plane(p);
    if hw == 0 {
        return;
    }
    let c = (g as f64 / (2.0 * p.numel() as f64)) as f32;
    (
        dy.par_chunks_mut(hw),
        dx.par_chunks_mut(hw),
        y.par_chunks(hw),
        x.par_chunks(hw),
    )
        .into_par_iter()
        .for_each(|(dyp, dxp, yp, xp)| {
            dyp.fill(0.0);
            dxp.fill(0.0);
            for i in 0..h {
                for j in 0..w {
                    let at = i * w + j;
                    if j + 1 < w {
                        pair_backward(c, yp, xp, at, at + 1, dyp, dxp);
                    }
                    if i + 1 < h {
                        pair_backward(c, yp, xp, at, at + w, dyp, dxp);
                    }
                }
            }
        });
}
