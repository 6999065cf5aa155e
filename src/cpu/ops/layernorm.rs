//! CPU LayerNorm over the last dim (spec §3.2: eps 1e-5, affine), as PyTorch `nn.LayerNorm`:
//! `x [rows, dim]`, `weight [dim]`, `bias [dim]`:
//!   mean = sum_j x_j / dim,  var = sum_j (x_j - mean)^2 / dim  (biased),
//!   rstd = 1 / sqrt(var + eps),  y_j = (x_j - mean) * rstd * weight_j + bias_j.
//! The forward also returns per-row `mean` and `rstd` (f32, `[rows]`) for the backward:
//!   xhat = (x - mean) * rstd,  dxhat = g * weight,
//!   dx = rstd * (dxhat - mean_j(dxhat) - xhat * mean_j(dxhat * xhat)),
//!   dweight = sum_rows g * xhat,  dbias = sum_rows g.
//! `_ref` computes everything in f64 from `x` alone; `_fast` runs rows in parallel (row sums in
//! f64) and sums dweight/dbias over fixed row blocks combined in a fixed order, so results are
//! bit-reproducible from run to run.

use crate::params::layernorm::LayerNormParams;
use rayon::prelude::*;

/// Rows per task in the backward's dweight/dbias partial sums (fixed: keeps the sum order fixed).
const ROWS_PER_TASK: usize = 32;

/// Mean and rstd of one row, f64 accumulation, two passes (no E[x^2]-E[x]^2 cancellation).
fn row_stats(row: &[f32], eps: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// `row_stats` with eight independent f64 partial sums per pass, combined in a fixed order:
/// the same f64 accuracy, but the adds no longer wait on each other (one chain of 64 dependent
/// f64 adds per pass made the row statistics most of the forward's time).
fn row_stats_lanes(row: &[f32], eps: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = sum_lanes(row, |v| v as f64) / n;
    let var = sum_lanes(row, |v| (v as f64 - mean).powi(2)) / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// `sum_j f(row_j)` in f64 over eight interleaved partial sums.
#[inline(always)]
fn sum_lanes(row: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        acc.iter_mut().zip(c).for_each(|(a, &v)| *a += f(v));
    }
    acc.iter().sum::<f64>() + tail
}

/// The oracle forward (f64).
pub fn layernorm_fwd_ref(
    p: &LayerNormParams,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let (rows, d) = p.dims();
    for r in 0..rows {
        let row = &x[r * d..][..d];
        let (m, s) = row_stats(row, p.eps);
        for j in 0..d {
            y[r * d + j] = ((row[j] as f64 - m) * s * w[j] as f64 + b[j] as f64) as f32;
        }
        mean[r] = m as f32;
        rstd[r] = s as f32;
    }
}

/// What runs: rows in parallel.
pub fn layernorm_fwd_fast(
    p: &LayerNormParams,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let (_, d) = p.dims();
    if d == 0 {
        return;
    }
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((yr, xr), (m_out, s_out))| {
            let (m, s) = row_stats_lanes(xr, p.eps);
            let (m, s) = (m as f32, s as f32);
            for j in 0..d {
                yr[j] = (xr[j] - m) * s * w[j] + b[j];
            }
            *m_out = m;
            *s_out = s;
        });
}

/// The residual add and the LayerNorm after it (inference, no statistics): `s = x + a`,
/// `y = layernorm(s)`, the oracle: the f32 add, then `layernorm_fwd_ref`.
pub fn add_layernorm_fwd_ref(p: &LayerNormParams, x: &[f32], a: &[f32], w: &[f32], b: &[f32], s: &mut [f32], y: &mut [f32]) {
    s.iter_mut().zip(x.iter().zip(a)).for_each(|(s, (x, a))| *s = x + a);
    let rows = p.dims().0;
    let (mut mean, mut rstd) = (vec![0f32; rows], vec![0f32; rows]);
    layernorm_fwd_ref(p, s, w, b, y, &mut mean, &mut rstd);
}

/// What runs: `add_layernorm_fwd_ref` in one parallel pass over the rows, each row's sum written
/// and normalised while it is in cache. The same bits as the add and `layernorm_fwd_fast`.
pub fn add_layernorm_fwd_fast(p: &LayerNormParams, x: &[f32], a: &[f32], w: &[f32], b: &[f32], s: &mut [f32], y: &mut [f32]) {
    let (_, d) = p.dims();
    if d == 0 {
        return;
    }
    s.par_chunks_mut(d)
        .zip(y.par_chunks_mut(d))
        .zip(x.par_chunks(d).zip(a.par_chunks(d)))
        .for_each(|((sr, yr), (xr, ar))| {
            sr.iter_mut().zip(xr.iter().zip(ar)).for_each(|(s, (x, a))| *s = x + a);
            let (m, r) = row_stats_lanes(sr, p.eps);
            let (m, r) = (m as f32, r as f32);
            for j in 0..d {
                yr[j] = (sr[j] - m) * r * w[j] + b[j];
            }
        });
}

/// The oracle backward (f64, statistics recomputed from `x`).
pub fn layernorm_bwd_ref(
    p: &LayerNormParams,
    x: &[f32],
    w: &[f32],
    g: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (rows, d) = p.dims();
    let mut dw64 = vec![0f64; d];
    let mut db64 = vec![0f64; d];
    for r in 0..rows {
        let (xr, gr) = (&x[r * d..][..d], &g[r * d..][..d]);
        let (m, s) = row_stats(xr, p.eps);
        let xhat: Vec<f64> = xr.iter().map(|&v| (v as f64 - m) * s).collect();
        let dxhat: Vec<f64> = (0..d).map(|j| gr[j] as f64 * w[j] as f64).collect();
        let mean_dxhat = dxhat.iter().sum::<f64>() / d as f64;
        let mean_dxhat_xhat = (0..d).map(|j| dxhat[j] * xhat[j]).sum::<f64>() / d as f64;
        for j in 0..d {
            dx[r * d + j] = (s * (dxhat[j] - mean_dxhat - xhat[j] * mean_dxhat_xhat)) as f32;
            dw64[j] += gr[j] as f64 * xhat[j];
            db64[j] += gr[j] as f64;
        }
    }
    dw.iter_mut().zip(&dw64).for_each(|(o, &v)| *o = v as f32);
    db.iter_mut().zip(&db64).for_each(|(o, &v)| *o = v as f32);
}

/// dx of one row from the saved statistics.
fn row_dx(xr: &[f32], gr: &[f32], w: &[f32], m: f32, s: f32, dxr: &mut [f32]) {
    let d = xr.len();
    let (mut sum_dxhat, mut sum_dxhat_xhat) = (0f64, 0f64);
    for j in 0..d {
        let dxhat = gr[j] * w[j];
        sum_dxhat += dxhat as f64;
        sum_dxhat_xhat += (dxhat * (xr[j] - m) * s) as f64;
    }
    let a = (sum_dxhat / d as f64) as f32;
    let c = (sum_dxhat_xhat / d as f64) as f32;
    for j in 0..d {
        let xhat = (xr[j] - m) * s;
        dxr[j] = s * (gr[j] * w[j] - a - xhat * c);
    }
}

/// What runs: `dx` rows in parallel from the saved `mean`/`rstd`; `dw`/`db` as f64 partial sums
/// over fixed blocks of rows, added in block order.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd_fast(
    p: &LayerNormParams,
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    g: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let (_, d) = p.dims();
    if d == 0 {
        return;
    }
    let block = ROWS_PER_TASK * d;
    let partials: Vec<(Vec<f64>, Vec<f64>)> = dx
        .par_chunks_mut(block)
        .enumerate()
        .map(|(t, dxb)| {
            let (mut pw, mut pb) = (vec![0f64; d], vec![0f64; d]);
            for (k, dxr) in dxb.chunks_mut(d).enumerate() {
                let r = t * ROWS_PER_TASK + k;
                let (xr, gr) = (&x[r * d..][..d], &g[r * d..][..d]);
                row_dx(xr, gr, w, mean[r], rstd[r], dxr);
                for j in 0..d {
                    pw[j] += (gr[j] * (xr[j] - mean[r]) * rstd[r]) as f64;
                    pb[j] += gr[j] as f64;
                }
            }
            (pw, pb)
        })
        .collect();
    let (mut sw, mut sb) = (vec![0f64; d], vec![0f64; d]);
    for (pw, pb) in &partials {
        sw.iter_mut().zip(pw).for_each(|(a, v)| *a += v);
        sb.iter_mut().zip(pb).for_each(|(a, v)| *a += v);
    }
    dw.iter_mut().zip(&sw).for_each(|(o, &v)| *o = v as f32);
    db.iter_mut().zip(&sb).for_each(|(o, &v)| *o = v as f32);
}
