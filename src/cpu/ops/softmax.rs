//! CPU softmax and log-softmax over the last dim of `x [rows, len]` (numerically stable: the row
//! maximum is subtracted before exp), and their backward from the saved output `y`:
//!   softmax:     dx = y * (g - sum_j g_j y_j)
//!   log-softmax: dx = g - exp(y) * sum_j g_j
//! Used by attention (scores over keys) and the cross-entropy loss (log-softmax).
//! `_ref` loops in f64; `_fast` runs rows in parallel with f32 exp and f64 row sums.

use crate::params::softmax::SoftmaxParams;
use rayon::prelude::*;

/// The oracle forward (f64).
pub fn softmax_ref(p: &SoftmaxParams, x: &[f32], y: &mut [f32]) {
    let (rows, len) = p.dims();
    for r in 0..rows {
        let row = &x[r * len..][..len];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let z: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for j in 0..len {
            let shifted = row[j] as f64 - m;
            y[r * len + j] = if p.is_log() {
                shifted - z.ln()
            } else {
                shifted.exp() / z
            } as f32;
        }
    }
}

fn row_fwd(log: bool, xr: &[f32], yr: &mut [f32]) {
    let m = xr.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let mut z = 0f64;
    for (o, &v) in yr.iter_mut().zip(xr) {
        let e = (v - m).exp();
        *o = e;
        z += e as f64;
    }
    if log {
        let log_z = z.ln() as f32;
        yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = v - m - log_z);
    } else {
        let inv = (1.0 / z) as f32;
        yr.iter_mut().for_each(|o| *o *= inv);
    }
}

/// What runs: rows in parallel.
pub fn softmax_fast(p: &SoftmaxParams, x: &[f32], y: &mut [f32]) {
    let (_, len) = p.dims();
    if len == 0 {
        return;
    }
    let log = p.is_log();
    y.par_chunks_mut(len)
        .zip(x.par_chunks(len))
        .for_each(|(yr, xr)| row_fwd(log, xr, yr));
}

/// The oracle backward (f64) from the saved output `y` and the output gradient `g`.
pub fn softmax_bwd_ref(p: &SoftmaxParams, y: &[f32], g: &[f32], dx: &mut [f32]) {
    let (rows, len) = p.dims();
    for r in 0..rows {
        let (yr, gr) = (&y[r * len..][..len], &g[r * len..][..len]);
        if p.is_log() {
            let sg: f64 = gr.iter().map(|&v| v as f64).sum();
            for j in 0..len {
                dx[r * len + j] = (gr[j] as f64 - (yr[j] as f64).exp() * sg) as f32;
            }
        } else {
            let dot: f64 = (0..len).map(|j| gr[j] as f64 * yr[j] as f64).sum();
            for j in 0..len {
                dx[r * len + j] = (yr[j] as f64 * (gr[j] as f64 - dot)) as f32;
            }
        }
    }
}

/// What runs: rows in parallel.
pub fn softmax_bwd_fast(p: &SoftmaxParams, y: &[f32], g: &[f32], dx: &mut [f32]) {
    let (_, len) = p.dims();
    if len == 0 {
        return;
    }
    let log = p.is_log();
    dx.par_chunks_mut(len)
        .zip(y.par_chunks(len).zip(g.par_chunks(len)))
        .for_each(|(dr, (yr, gr))| {
            if log {
                let sg = gr.iter().map(|&v| v as f64).sum::<f64>() as f32;
                for j in 0..len {
                    dr[j] = gr[j] - yr[j].exp() * sg;
                }
            } else {
                let dot = yr
                    .iter()
                    .zip(gr)
                    .map(|(&a, &b)| (a * b) as f64)
                    .sum::<f64>() as f32;
                for j in 0..len {
                    dr[j] = yr[j] * (gr[j] - dot);
                }
            }
        });
}
