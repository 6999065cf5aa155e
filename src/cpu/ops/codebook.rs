//! Dual-codebook nearest neighbour and EMA codebook update (spec §2.3), on flat slices.
//!
//! z `[n, dim]` row-major (the B x 256 x 32 x 32 feature map flattened to BHW x 256), codebook
//! `[codes, dim]`, one half selector per row (`CODEBOOK_HALF_UNMASKED`: codes 0..K/2,
//! `CODEBOOK_HALF_MASKED`: K/2..K, `CODEBOOK_ALL`), out `[n]` u32 code indices (absolute,
//! so a masked-half answer is already offset by K/2). Ties: the lowest index wins (strict `<`
//! scanning upwards). A row containing NaN gets the first code of its range.
//!
//! * `codebook_argmin_ref`: `sum_d (z_d - e_d)^2` directly, in f64: the oracle.
//! * `codebook_argmin_fast`: PyTorch's expanded form in f32, `(|z|^2 + |e|^2) - 2 z.e`, with
//!   the dot products of a block of rows against the codebook computed as unit-stride axpys
//!   over the transposed codebook; rayon over row blocks.
//!
//! EMA update (training only, Phase 1a), split in two so the statistics can be all-reduced
//! across GPUs in between:
//! 1. `codebook_assignment_stats`: `n_k` = rows assigned to code k, `s_k` = sum of those rows;
//! 2. `codebook_ema_apply`: `cluster_size = decay*cluster_size + (1-decay)*n`,
//!    `embedding_avg = decay*embedding_avg + (1-decay)*s`, `N = sum cluster_size`,
//!    `cs_k = (cluster_size_k + eps) / (N + K*eps) * N` (Laplace smoothing, a temporary),
//!    `embedding_k = embedding_avg_k / cs_k`.

use crate::error::{Error, Result};
use crate::params::codebook::{CodebookEmaParams, CodebookParams};
use rayon::prelude::*;

/// Rows of z handled together (they share each loaded codebook column).
const ROW_BLOCK: usize = 8;

/// The code range of each row, or an error naming the first bad or empty selector.
pub fn ranges(p: &CodebookParams, half: &[u32]) -> Result<Vec<(usize, usize)>> {
    half.iter()
        .enumerate()
        .map(|(i, &h)| match p.range(h) {
            None => Err(Error::shape(
                "codebook_argmin",
                format!("row {i}: unknown half selector {h}"),
            )),
            Some((lo, hi)) if lo >= hi => Err(Error::shape(
                "codebook_argmin",
                format!("row {i}: selector {h} names no code of {}", p.codes),
            )),
            Some(r) => Ok(r),
        })
        .collect()
}

pub fn codebook_argmin_ref(
    p: &CodebookParams,
    z: &[f32],
    codebook: &[f32],
    half: &[u32],
    out: &mut [u32],
) -> Result<()> {
    let d = p.dim as usize;
    for (i, (lo, hi)) in ranges(p, half)?.into_iter().enumerate() {
        let zi = &z[i * d..][..d];
        let (mut best, mut best_dist) = (lo, f64::INFINITY);
        for k in lo..hi {
            let ek = &codebook[k * d..][..d];
            let dist: f64 = zi
                .iter()
                .zip(ek)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum();
            if dist < best_dist {
                (best, best_dist) = (k, dist);
            }
        }
        out[i] = best as u32;
    }
    Ok(())
}

pub fn codebook_argmin_fast(
    p: &CodebookParams,
    z: &[f32],
    codebook: &[f32],
    half: &[u32],
    out: &mut [u32],
) -> Result<()> {
    let (d, k) = (p.dim as usize, p.codes as usize);
    let ranges = ranges(p, half)?;
    if p.n == 0 || k == 0 {
        return Ok(());
    }
    let code_norms: Vec<f32> = (0..k)
        .map(|c| codebook[c * d..][..d].iter().map(|x| x * x).sum())
        .collect();
    let mut et = vec![0f32; d * k]; // codebook transposed: et[j * k + c] = e_c[j]
    for c in 0..k {
        for j in 0..d {
            et[j * k + c] = codebook[c * d + j];
        }
    }
    out.par_chunks_mut(ROW_BLOCK)
        .enumerate()
        .for_each(|(blk, ob)| {
            let r0 = blk * ROW_BLOCK;
            let block_ranges = &ranges[r0..r0 + ob.len()];
            let lo = block_ranges.iter().map(|r| r.0).min().unwrap_or(0);
            let hi = block_ranges.iter().map(|r| r.1).max().unwrap_or(0);
            // j outer, rows inner: each codebook column segment is loaded once per row block.
            let mut dots = vec![0f32; ob.len() * (hi - lo)];
            for j in 0..d {
                let col = &et[j * k + lo..j * k + hi];
                for (r, drow) in dots.chunks_mut(hi - lo).enumerate() {
                    let zj = z[(r0 + r) * d + j];
                    drow.iter_mut()
                        .zip(col)
                        .for_each(|(acc, &e)| *acc += zj * e);
                }
            }
            for (r, o) in ob.iter_mut().enumerate() {
                let zr = &z[(r0 + r) * d..][..d];
                let z_norm: f32 = zr.iter().map(|x| x * x).sum();
                let (rlo, rhi) = block_ranges[r];
                let drow = &dots[r * (hi - lo)..][..hi - lo];
                let (mut best, mut best_dist) = (rlo, f32::INFINITY);
                for c in rlo..rhi {
                    let dist = (z_norm + code_norms[c]) - 2.0 * drow[c - lo];
                    if dist < best_dist {
                        (best, best_dist) = (c, dist);
                    }
                }
                *o = best as u32;
            }
        });
    Ok(())
}

/// `counts[k]` = rows with index k, `sums[k]` = sum of those rows of z (f64 accumulation).
pub fn codebook_assignment_stats(
    p: &CodebookParams,
    z: &[f32],
    idx: &[u32],
    counts: &mut [f32],
    sums: &mut [f32],
) -> Result<()> {
    let (d, k) = (p.dim as usize, p.codes as usize);
    if let Some(i) = idx.iter().position(|&c| c as usize >= k) {
        return Err(Error::shape(
            "codebook_assignment_stats",
            format!("index {} at row {i} is not below {k} codes", idx[i]),
        ));
    }
    let mut c64 = vec![0f64; k];
    let mut s64 = vec![0f64; k * d];
    for (i, &c) in idx.iter().enumerate() {
        c64[c as usize] += 1.0;
        let srow = &mut s64[c as usize * d..][..d];
        srow.iter_mut()
            .zip(&z[i * d..][..d])
            .for_each(|(s, &x)| *s += x as f64);
    }
    counts
        .iter_mut()
        .zip(&c64)
        .for_each(|(o, &v)| *o = v as f32);
    sums.iter_mut().zip(&s64).for_each(|(o, &v)| *o = v as f32);
    Ok(())
}

/// The EMA update from (all-reduced) statistics; updates the three buffers in place.
pub fn codebook_ema_apply(
    p: &CodebookEmaParams,
    counts: &[f32],
    sums: &[f32],
    cluster_size: &mut [f32],
    embedding_avg: &mut [f32],
    embedding: &mut [f32],
) {
    let (d, k) = (p.dim as usize, p.codes as usize);
    let keep = 1.0 - p.decay;
    cluster_size
        .iter_mut()
        .zip(counts)
        .for_each(|(c, &n)| *c = *c * p.decay + keep * n);
    embedding_avg
        .iter_mut()
        .zip(sums)
        .for_each(|(a, &s)| *a = *a * p.decay + keep * s);
    let total = cluster_size.iter().map(|&c| c as f64).sum::<f64>() as f32;
    let denom = total + (k as f64 * p.eps as f64) as f32;
    for c in 0..k {
        let smoothed = (cluster_size[c] + p.eps) / denom * total;
        let (avg, emb) = (&embedding_avg[c * d..][..d], &mut embedding[c * d..][..d]);
        emb.iter_mut()
            .zip(avg)
            .for_each(|(e, &a)| *e = a / smoothed);
    }
}
