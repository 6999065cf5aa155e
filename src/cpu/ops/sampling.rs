//! Sampling references (spec §5.2), on flat slices. These are the oracles of the GPU sampling
//! kernels, which take the same uniforms as input so both backends draw the same tokens.
//!
//! * `choose_positions`: logits `[L, C]`, `known [L]`: the score of a position is its maximum
//!   raw logit (not a probability); known positions are excluded; the `k` unknown positions
//!   with the largest scores are returned in descending score order, ties broken by the lowest
//!   position first. Fewer than `k` unknown positions: all of them (the official code would
//!   also return known ones with score -inf and then skip them; the result is the same).
//!   NaN logits never count as a maximum.
//! * `topk_sample`: one row of logits `[C]`; keep the `K` largest (order: value descending,
//!   then index ascending — so at a tie on the K-th value the lowest indices are kept and
//!   exactly K survive; NaN ranks as -inf; K is clamped to C); weights
//!   `w_i = exp((l_i - m) / temperature)` in f32 for kept i (m = the largest logit), 0 for the
//!   rest; the token is `rng::categorical_with_uniform(w, u)`: the first index, in ascending
//!   index order, whose running f64 sum of weights exceeds `u * sum(w)`. None when no kept
//!   logit is finite.

use crate::params::sampling::{ChoosePositionsParams, TopkSampleParams};
use crate::rng::categorical_with_uniform;
use rayon::prelude::*;
use std::cmp::Ordering;

/// The largest non-NaN value of a row (-inf when none).
fn row_max(row: &[f32]) -> f32 {
    row.iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Total order "better first": larger value first, then lower index. NaN ranks as -inf.
fn better_first(a: (f32, u32), b: (f32, u32)) -> Ordering {
    let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
    key(b.0)
        .partial_cmp(&key(a.0))
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

pub fn choose_positions_ref(p: &ChoosePositionsParams, logits: &[f32], known: &[bool]) -> Vec<u32> {
    let c = p.classes as usize;
    let mut cand: Vec<(f32, u32)> = (0..p.seq_len as usize)
        .filter(|&i| !known[i])
        .map(|i| (row_max(&logits[i * c..][..c]), i as u32))
        .collect();
    cand.sort_by(|&a, &b| better_first(a, b));
    cand.into_iter()
        .take(p.k as usize)
        .map(|(_, i)| i)
        .collect()
}

/// The `k` best of `cand` under `better_first`, in that order (partial selection).
fn best_k(mut cand: Vec<(f32, u32)>, k: usize) -> Vec<(f32, u32)> {
    if k == 0 {
        return Vec::new();
    }
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, |&a, &b| better_first(a, b));
        cand.truncate(k);
    }
    cand.sort_by(|&a, &b| better_first(a, b));
    cand
}

pub fn choose_positions_fast(
    p: &ChoosePositionsParams,
    logits: &[f32],
    known: &[bool],
) -> Vec<u32> {
    let c = p.classes as usize;
    if c == 0 {
        return (0..p.seq_len)
            .filter(|&i| !known[i as usize])
            .take(p.k as usize)
            .collect();
    }
    let maxima: Vec<f32> = logits[..p.seq_len as usize * c]
        .par_chunks(c)
        .map(row_max)
        .collect();
    let cand: Vec<(f32, u32)> = maxima
        .iter()
        .enumerate()
        .filter(|&(i, _)| !known[i])
        .map(|(i, &m)| (m, i as u32))
        .collect();
    best_k(cand, p.k as usize)
        .into_iter()
        .map(|(_, i)| i)
        .collect()
}

/// The weights of the kept logits: `(index, exp((l - m)/T))`, sorted by index; None when the
/// largest kept logit is not finite.
fn kept_weights(kept: &[(f32, u32)], temperature: f32) -> Option<Vec<(u32, f32)>> {
    let m = kept.first()?.0;
    if !m.is_finite() {
        return None;
    }
    // A NaN logit can only be kept when fewer than K are finite; it gets weight 0.
    let weight = |l: f32| {
        if l.is_nan() {
            0.0
        } else {
            ((l - m) / temperature).exp()
        }
    };
    let mut w: Vec<(u32, f32)> = kept.iter().map(|&(l, i)| (i, weight(l))).collect();
    w.sort_by_key(|&(i, _)| i);
    Some(w)
}

/// One row: keep the top `k` logits, softmax of logits / temperature, inverse-CDF draw with `u`.
pub fn topk_sample_ref(logits: &[f32], k: usize, temperature: f32, u: f32) -> Option<u32> {
    let mut all: Vec<(f32, u32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (l, i as u32))
        .collect();
    all.sort_by(|&a, &b| better_first(a, b));
    all.truncate(k.min(logits.len()));
    let kept = kept_weights(&all, temperature)?;
    let mut weights = vec![0f32; logits.len()];
    for (i, w) in kept {
        weights[i as usize] = w;
    }
    categorical_with_uniform(&weights, u).map(|i| i as u32)
}

/// The same draw with a partial selection and a CDF over the kept entries only (zero weights
/// add nothing to the running sum, so the result is identical to the reference).
fn topk_sample_row_fast(logits: &[f32], k: usize, temperature: f32, u: f32) -> Option<u32> {
    let cand: Vec<(f32, u32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (l, i as u32))
        .collect();
    let kept = kept_weights(&best_k(cand, k.min(logits.len())), temperature)?;
    let weights: Vec<f32> = kept.iter().map(|&(_, w)| w).collect();
    categorical_with_uniform(&weights, u).map(|j| kept[j].0)
}

/// Every row of `logits [rows, classes]` with its own uniform `u[row]`.
pub fn topk_sample_rows_ref(p: &TopkSampleParams, logits: &[f32], u: &[f32]) -> Vec<Option<u32>> {
    let c = p.classes as usize;
    (0..p.rows as usize)
        .map(|r| topk_sample_ref(&logits[r * c..][..c], p.k as usize, p.temperature, u[r]))
        .collect()
}

pub fn topk_sample_rows_fast(p: &TopkSampleParams, logits: &[f32], u: &[f32]) -> Vec<Option<u32>> {
    let c = p.classes as usize;
    (0..p.rows as usize)
        .into_par_iter()
        .map(|r| topk_sample_row_fast(&logits[r * c..][..c], p.k as usize, p.temperature, u[r]))
        .collect()
}
