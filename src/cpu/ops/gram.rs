//! Gram matrix of feature maps for the style loss (spec §6.5), on flat slices.
//!
//! phi `[batch, channels, h*w]` (an NCHW feature map with H, W flattened); out
//! `[batch, channels, channels]` with `G_b = phi_b phi_b^T / (h*w*channels)`.
//! Backward: `dphi_b = (dG_b + dG_b^T) phi_b / (h*w*channels)`.
//!
//! `gram_ref` / `gram_backward_ref`: f64 loops (the oracle). `gram_fast`: one task per
//! (batch, row) computing the upper triangle (G is symmetric); dot products over h*w up to 65536
//! terms accumulate 8 f32 lanes per 512-element chunk, and chunks in f64, so the result stays
//! within f32 rounding of the f64 oracle. `gram_backward_fast`: per (batch, row) axpys.

use crate::params::losses::GramParams;
use rayon::prelude::*;

fn sizes(p: &GramParams) -> (usize, usize, usize, f64) {
    let (b, c, hw) = (p.batch as usize, p.channels as usize, p.hw as usize);
    (b, c, hw, (hw * c) as f64)
}

pub fn gram_ref(p: &GramParams, phi: &[f32], out: &mut [f32]) {
    let (b, c, hw, norm) = sizes(p);
    for bb in 0..b {
        let f = &phi[bb * c * hw..][..c * hw];
        for i in 0..c {
            for j in 0..c {
                let s: f64 = (0..hw)
                    .map(|t| f[i * hw + t] as f64 * f[j * hw + t] as f64)
                    .sum();
                out[(bb * c + i) * c + j] = (s / norm) as f32;
            }
        }
    }
}

/// Dot product of two equal-length slices: f32 lanes within 512-element chunks, f64 across.
fn dot_chunked(a: &[f32], b: &[f32]) -> f64 {
    let mut total = 0f64;
    for (ca, cb) in a.chunks(512).zip(b.chunks(512)) {
        let mut lanes = [0f32; 8];
        let (ea, eb) = (ca.chunks_exact(8), cb.chunks_exact(8));
        let tail: f32 = ea
            .remainder()
            .iter()
            .zip(eb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (xa, xb) in ea.zip(eb) {
            for l in 0..8 {
                lanes[l] += xa[l] * xb[l];
            }
        }
        total += lanes.iter().map(|&x| x as f64).sum::<f64>() + tail as f64;
    }
    total
}

pub fn gram_fast(p: &GramParams, phi: &[f32], out: &mut [f32]) {
    let (_, c, hw, norm) = sizes(p);
    if c == 0 {
        return;
    }
    // Upper triangle, one row per task; the lower triangle is mirrored afterwards.
    out.par_chunks_mut(c).enumerate().for_each(|(row, orow)| {
        let (bb, i) = (row / c, row % c);
        let f = &phi[bb * c * hw..][..c * hw];
        let fi = &f[i * hw..][..hw];
        for j in i..c {
            orow[j] = (dot_chunked(fi, &f[j * hw..][..hw]) / norm) as f32;
        }
    });
    out.par_chunks_mut(c * c).for_each(|g| {
        for i in 0..c {
            for j in 0..i {
                g[i * c + j] = g[j * c + i];
            }
        }
    });
}

pub fn gram_backward_ref(p: &GramParams, phi: &[f32], dg: &[f32], dphi: &mut [f32]) {
    let (b, c, hw, norm) = sizes(p);
    for bb in 0..b {
        let (f, g) = (&phi[bb * c * hw..][..c * hw], &dg[bb * c * c..][..c * c]);
        for i in 0..c {
            for t in 0..hw {
                let s: f64 = (0..c)
                    .map(|j| (g[i * c + j] as f64 + g[j * c + i] as f64) * f[j * hw + t] as f64)
                    .sum();
                dphi[(bb * c + i) * hw + t] = (s / norm) as f32;
            }
        }
    }
}

pub fn gram_backward_fast(p: &GramParams, phi: &[f32], dg: &[f32], dphi: &mut [f32]) {
    let (_, c, hw, norm) = sizes(p);
    if hw == 0 {
        return;
    }
    dphi.par_chunks_mut(hw).enumerate().for_each(|(row, drow)| {
        let (bb, i) = (row / c, row % c);
        let (f, g) = (&phi[bb * c * hw..][..c * hw], &dg[bb * c * c..][..c * c]);
        drow.fill(0.0);
        for j in 0..c {
            let coef = ((g[i * c + j] as f64 + g[j * c + i] as f64) / norm) as f32;
            if coef != 0.0 {
                for (d, &x) in drow.iter_mut().zip(&f[j * hw..][..hw]) {
                    *d += coef * x;
                }
            }
        }
    });
}
