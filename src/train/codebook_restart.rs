//! Dead-code restart of the phase-1a codebook (a deviation from spec §2.3, which has none; off
//! for `paper`, on for `tiny`: `codebook_restart_every`, `codebook_restart_below`).
//!
//! Why: with small batches and short runs the EMA codebook collapses. The bundled tiny model's
//! phase-1a run (844 steps of batch 4) ended with 111 of the 256 unmasked codes at an EMA size
//! below 0.01 and a perplexity of 36 over the 96 dev photos, and the tokens lost most of the
//! colour the encoder's features hold (spec §2.3 has no remedy: its runs are 100 epochs long).
//!
//! Rule, every `codebook_restart_every` steps, after that step's EMA update, per codebook half:
//! * dead codes = the half's codes whose `cluster_size` is below `codebook_restart_below`;
//! * candidates = this step's feature rows that searched that half (the whole global batch);
//! * the rows are picked greedily, farthest first: the candidate worst served by the half's live
//!   codes and the rows already picked (so the new codes spread over what the codebook misses,
//!   and two dead codes never take the same row); one dead code per row, in index order, until
//!   the dead codes or the distinct rows run out;
//! * a restarted code becomes its row: `embedding = row`, `embedding_avg = row`,
//!   `cluster_size = 1` (consistent with `embedding = embedding_avg / cluster_size`).
//!
//! Live codes are untouched, so their token ids keep their meaning. The rule is deterministic
//! (no random numbers), so resume stays bit-exact.

use crate::error::{Error, Result};

/// The codebook buffers on the host, row-major: `cluster_size` `[K]`, `embedding` and
/// `embedding_avg` `[K, D]`.
pub struct HostCodebook {
    pub cluster_size: Vec<f32>,
    pub embedding: Vec<f32>,
    pub embedding_avg: Vec<f32>,
    pub dim: usize,
}

/// Feature rows `[N, D]` of one step with the half each searched (`true` = the masked half).
pub struct StepRows<'a> {
    pub rows: &'a [f32],
    pub masked: &'a [bool],
}

/// Restart the dead codes of both halves (module docs); returns `(code, row)` for each restart.
pub fn restart_dead_codes(
    cb: &mut HostCodebook,
    step: &StepRows,
    masked_start: usize,
    below: f32,
) -> Result<Vec<(usize, usize)>> {
    let (k, d) = (cb.cluster_size.len(), cb.dim);
    if d == 0 || cb.embedding.len() != k * d || cb.embedding_avg.len() != k * d {
        return Err(Error::msg(format!("codebook restart: buffers do not match {k} codes of {d} values")));
    }
    if step.rows.len() != step.masked.len() * d || masked_start > k {
        return Err(Error::msg(format!(
            "codebook restart: {} values for {} rows of {d}, halves split at {masked_start} of {k}",
            step.rows.len(),
            step.masked.len()
        )));
    }
    let mut done = Vec::new();
    for (start, end, masked) in [(0, masked_start, false), (masked_start, k, true)] {
        let dead: Vec<usize> = (start..end).filter(|&c| cb.cluster_size[c] < below).collect();
        let candidates: Vec<usize> = (0..step.masked.len()).filter(|&r| step.masked[r] == masked).collect();
        if dead.is_empty() || candidates.is_empty() {
            continue;
        }
        let live: Vec<usize> = (start..end).filter(|&c| cb.cluster_size[c] >= below).collect();
        let picks = farthest_rows(step.rows, d, &candidates, &cb.embedding, &live, dead.len());
        for (&code, row) in dead.iter().zip(picks) {
            let v = &step.rows[row * d..(row + 1) * d];
            cb.embedding[code * d..(code + 1) * d].copy_from_slice(v);
            cb.embedding_avg[code * d..(code + 1) * d].copy_from_slice(v);
            cb.cluster_size[code] = 1.0;
            done.push((code, row));
        }
    }
    Ok(done)
}

/// Up to `want` candidate rows, greedily farthest (squared distance) from the live codes and the
/// rows already picked; stops early when every remaining row coincides with a pick (distance 0).
/// Ties go to the lower row index.
fn farthest_rows(rows: &[f32], d: usize, candidates: &[usize], codes: &[f32], live: &[usize], want: usize) -> Vec<usize> {
    let row = |r: usize| &rows[r * d..(r + 1) * d];
    let mut gap: Vec<f32> = candidates
        .iter()
        .map(|&r| live.iter().map(|&c| sq_dist(row(r), &codes[c * d..(c + 1) * d])).fold(f32::INFINITY, f32::min))
        .collect();
    let mut picks = Vec::with_capacity(want);
    while picks.len() < want {
        let (best, &far) = gap
            .iter()
            .enumerate()
            .fold((0, &f32::NEG_INFINITY), |acc, (i, g)| if *g > *acc.1 { (i, g) } else { acc });
        if far <= 0.0 {
            break;
        }
        let picked = candidates[best];
        picks.push(picked);
        for (g, &r) in gap.iter_mut().zip(candidates) {
            *g = g.min(sq_dist(row(r), row(picked)));
        }
    }
    picks
}

fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codebook(sizes: &[f32], rows: &[[f32; 2]]) -> HostCodebook {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        HostCodebook { cluster_size: sizes.to_vec(), embedding: flat.clone(), embedding_avg: flat, dim: 2 }
    }

    #[test]
    fn dead_codes_take_the_worst_served_distinct_rows() {
        // Unmasked half: codes 0 (live at the origin) and 1 (dead); masked half: 2 (dead), 3 (live).
        let mut cb = codebook(&[5.0, 0.01, 0.2, 3.0], &[[0.0, 0.0], [9.0, 9.0], [7.0, 7.0], [1.0, 1.0]]);
        let rows = [0.1, 0.0, 3.0, 4.0, 3.0, 4.0, 1.0, 2.0, 5.0, 5.0];
        let masked = [false, false, false, true, true];
        let done = restart_dead_codes(&mut cb, &StepRows { rows: &rows, masked: &masked }, 2, 0.5).unwrap();
        // Row 1 (3, 4) is the unmasked row farthest from code 0; row 4 (5, 5) the masked row
        // farthest from code 3.
        assert_eq!(done, vec![(1, 1), (2, 4)]);
        assert_eq!(&cb.embedding[2..4], &[3.0, 4.0]);
        assert_eq!(&cb.embedding_avg[4..6], &[5.0, 5.0]);
        assert_eq!(cb.cluster_size, vec![5.0, 1.0, 1.0, 3.0]);
        // Live codes keep their rows.
        assert_eq!(&cb.embedding[0..2], &[0.0, 0.0]);
        assert_eq!(&cb.embedding[6..8], &[1.0, 1.0]);
    }

    #[test]
    fn picks_spread_out_and_never_repeat_a_row() {
        // Three dead codes, one live at the origin; rows: a far pair of duplicates and a near row.
        let mut cb = codebook(&[2.0, 0.0, 0.0, 0.0], &[[0.0, 0.0]; 4]);
        let rows = [10.0, 0.0, 10.0, 0.0, 0.0, 3.0];
        let masked = [false; 3];
        let done = restart_dead_codes(&mut cb, &StepRows { rows: &rows, masked: &masked }, 4, 0.5).unwrap();
        // The duplicate of row 0 is at distance 0 from the first pick, so row 2 comes second and
        // the third dead code stays as it was.
        assert_eq!(done, vec![(1, 0), (2, 2)]);
        assert_eq!(cb.cluster_size, vec![2.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn a_half_without_rows_or_dead_codes_is_left_alone() {
        let mut cb = codebook(&[1.0, 1.0, 0.0, 0.0], &[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 3.0]]);
        let before = cb.embedding.clone();
        let rows = [4.0, 4.0];
        let done = restart_dead_codes(&mut cb, &StepRows { rows: &rows, masked: &[false] }, 2, 0.5).unwrap();
        assert!(done.is_empty());
        assert_eq!(cb.embedding, before);
    }

    #[test]
    fn mismatched_buffers_are_an_error() {
        let mut cb = codebook(&[1.0, 0.0], &[[0.0, 0.0], [1.0, 1.0]]);
        let err = restart_dead_codes(&mut cb, &StepRows { rows: &[1.0], masked: &[false] }, 1, 0.5).unwrap_err();
        assert!(err.to_string().contains("values for 1 rows"), "{err}");
    }
}
