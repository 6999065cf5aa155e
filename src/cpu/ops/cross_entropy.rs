//! Cross-entropy over the last dim with integer targets (spec §3.5, §6.5), on flat slices.
//!
//! logits `[rows, classes]` row-major, targets `[rows]` u32. Per row
//! `ce_i = logsumexp_j(logits_ij) - logits_i,t_i`, 0 for rows whose target is `ignore_index`.
//! Two reductions:
//! * plain (`weights` = None): `sum_i ce_i / #(non-ignored rows)` (PyTorch's mean with
//!   ignore_index; 0/0 = NaN when every row is ignored, as in PyTorch);
//! * weighted (`weights` = Some(w), `[rows]`): `sum_i w_i ce_i / (sum_i w_i + 1e-18)` — with
//!   0/1 weights this is spec §3.5: the transformer loss counted on masked/partial positions
//!   only, divided by their number (+ 1e-18, so a batch with none gives 0, not NaN).
//!
//! Backward: `dlogits_ij = g c_i (softmax_ij - [j == t_i])` with `c_i` the row's share of the
//! reduction (1/count or w_i/(sum w + 1e-18); 0 for ignored rows).
//! `_ref` is serial, `_fast` parallel over rows; both use f64 per row.

use crate::error::{Error, Result};
use crate::params::losses::CrossEntropyParams;
use rayon::prelude::*;

/// The spec §3.5 guard added to the count of weighted positions.
pub const WEIGHTED_CE_EPS: f64 = 1e-18;

/// Err for a target that is neither a class nor the ignore index.
fn check_targets(p: &CrossEntropyParams, targets: &[u32]) -> Result<()> {
    match targets
        .iter()
        .position(|&t| t >= p.classes && t != p.ignore_index)
    {
        Some(i) => Err(Error::shape(
            "cross_entropy",
            format!(
                "target {} at row {i} is out of range for {} classes",
                targets[i], p.classes
            ),
        )),
        None => Ok(()),
    }
}

/// log-sum-exp of one row in f64.
fn row_lse(row: &[f32]) -> f64 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

/// ce of row i (0 when ignored).
fn row_ce(p: &CrossEntropyParams, logits: &[f32], targets: &[u32], i: usize) -> f64 {
    let t = targets[i];
    if t == p.ignore_index {
        return 0.0;
    }
    let row = &logits[i * p.classes as usize..][..p.classes as usize];
    row_lse(row) - row[t as usize] as f64
}

/// The denominator of the reduction: count of non-ignored rows, or sum w + 1e-18.
fn denominator(p: &CrossEntropyParams, targets: &[u32], weights: Option<&[f32]>) -> f64 {
    match weights {
        None => targets.iter().filter(|&&t| t != p.ignore_index).count() as f64,
        Some(w) => w.iter().map(|&x| x as f64).sum::<f64>() + WEIGHTED_CE_EPS,
    }
}

fn weight(weights: Option<&[f32]>, i: usize) -> f64 {
    weights.map_or(1.0, |w| w[i] as f64)
}

pub fn cross_entropy_ref(
    p: &CrossEntropyParams,
    logits: &[f32],
    targets: &[u32],
    weights: Option<&[f32]>,
) -> Result<f32> {
    check_targets(p, targets)?;
    let num: f64 = (0..p.rows as usize)
        .map(|i| weight(weights, i) * row_ce(p, logits, targets, i))
        .sum();
    Ok((num / denominator(p, targets, weights)) as f32)
}

pub fn cross_entropy_fast(
    p: &CrossEntropyParams,
    logits: &[f32],
    targets: &[u32],
    weights: Option<&[f32]>,
) -> Result<f32> {
    check_targets(p, targets)?;
    let per_row: Vec<f64> = (0..p.rows as usize)
        .into_par_iter()
        .map(|i| weight(weights, i) * row_ce(p, logits, targets, i))
        .collect();
    Ok((per_row.iter().sum::<f64>() / denominator(p, targets, weights)) as f32)
}

/// Gradient of the loss w.r.t. the logits, scaled by the output gradient `g`.
pub fn cross_entropy_backward(
    p: &CrossEntropyParams,
    logits: &[f32],
    targets: &[u32],
    weights: Option<&[f32]>,
    g: f32,
    dlogits: &mut [f32],
) -> Result<()> {
    check_targets(p, targets)?;
    let c = p.classes as usize;
    let scale = g as f64 / denominator(p, targets, weights);
    dlogits.par_chunks_mut(c).enumerate().for_each(|(i, drow)| {
        let t = targets[i];
        let share = if t == p.ignore_index {
            0.0
        } else {
            scale * weight(weights, i)
        };
        if share == 0.0 {
            drow.fill(0.0);
            return;
        }
        let row = &logits[i * c..][..c];
        let lse = row_lse(row);
        for (j, (d, &x)) in drow.iter_mut().zip(row).enumerate() {
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            *d = (share * ((x as f64 - lse).exp() - onehot)) as f32;
        }
    });
    Ok(())
}
