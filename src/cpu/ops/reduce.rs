//! CPU reductions on a dense `x [outer, reduce, inner]` -> `out [outer, inner]` (see
//! `params/reduce.rs`): sum, mean, max, min; the backward of max/min (the whole gradient goes to
//! the *first* extreme element of each reduced group, in row-major order of the reduced dims —
//! no splitting between ties); argmax/argmin over the last dim of `x [rows, len]` -> u32 with
//! ties going to the lowest index.
//!
//! NaN: max/min/argmax/argmin propagate NaN — the first NaN of a group is the result (as PyTorch
//! and numpy do), so a NaN is never silently dropped.
//!
//! `_ref` loops in f64. `_fast` accumulates sums in f64 too (a long f32 running sum, e.g. over
//! 8M elements, would drift by far more than the 1e-5 tolerance), in several lanes so the adds
//! pipeline, with rayon over rows, column blocks, or pieces of one long row.

use crate::params::reduce::{ArgReduceParams, ReduceOp, ReduceParams};
use rayon::prelude::*;

/// Work (elements read) below which a reduction runs on one thread.
const PAR_MIN: usize = 1 << 15;
/// Columns per task when reducing over a middle dim (`inner > 1`).
const COL_BLOCK: usize = 256;
/// Piece of one long row summed per task.
const ROW_PIECE: usize = 1 << 16;

/// True when `v` should replace the running extreme `best` (first extreme and first NaN win).
#[inline(always)]
fn replaces(is_max: bool, v: f32, best: f32) -> bool {
    if best.is_nan() {
        return false;
    }
    v.is_nan() || if is_max { v > best } else { v < best }
}

/// The oracle: plain loops, f64 sums.
pub fn reduce_ref(p: &ReduceParams, x: &[f32], out: &mut [f32]) {
    let (outer, red, inner) = p.dims();
    let op = p.kind();
    for o in 0..outer {
        for i in 0..inner {
            let at = |r: usize| x[(o * red + r) * inner + i];
            out[o * inner + i] = match op {
                ReduceOp::Sum | ReduceOp::Mean => {
                    let s: f64 = (0..red).map(|r| at(r) as f64).sum();
                    (if op == ReduceOp::Mean {
                        s / red as f64
                    } else {
                        s
                    }) as f32
                }
                ReduceOp::Max | ReduceOp::Min => {
                    let mut best = at(0);
                    for r in 1..red {
                        if replaces(op == ReduceOp::Max, at(r), best) {
                            best = at(r);
                        }
                    }
                    best
                }
            };
        }
    }
}

/// Sum of a contiguous slice in f64 with four independent accumulators.
pub(super) fn sum_f64(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let mut it = xs.chunks_exact(4);
    for c in &mut it {
        for k in 0..4 {
            acc[k] += c[k] as f64;
        }
    }
    let tail: f64 = it.remainder().iter().map(|&v| v as f64).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn extreme(is_max: bool, xs: &[f32]) -> f32 {
    xs[1..].iter().fold(
        xs[0],
        |best, &v| if replaces(is_max, v, best) { v } else { best },
    )
}

/// Reduce one contiguous row (the `inner == 1` case), splitting a long row across threads.
fn reduce_row(op: ReduceOp, row: &[f32], split: bool) -> f32 {
    let is_max = op == ReduceOp::Max;
    match op {
        ReduceOp::Sum | ReduceOp::Mean => {
            let s = if split {
                row.par_chunks(ROW_PIECE).map(sum_f64).sum()
            } else {
                sum_f64(row)
            };
            (if op == ReduceOp::Mean {
                s / row.len() as f64
            } else {
                s
            }) as f32
        }
        ReduceOp::Max | ReduceOp::Min => {
            if split {
                // Pieces are combined in order, so "first extreme / first NaN wins" still holds.
                let parts: Vec<f32> = row
                    .par_chunks(ROW_PIECE)
                    .map(|c| extreme(is_max, c))
                    .collect();
                extreme(is_max, &parts)
            } else {
                extreme(is_max, row)
            }
        }
    }
}

/// Reduce columns `[c0, c0 + out.len())` of group `o` over the middle dim.
fn reduce_cols(
    op: ReduceOp,
    x: &[f32],
    o: usize,
    red: usize,
    inner: usize,
    c0: usize,
    out: &mut [f32],
) {
    let w = out.len();
    let base = o * red * inner + c0;
    match op {
        ReduceOp::Sum | ReduceOp::Mean => {
            let mut acc = vec![0f64; w];
            for r in 0..red {
                let src = &x[base + r * inner..][..w];
                acc.iter_mut().zip(src).for_each(|(a, &v)| *a += v as f64);
            }
            let scale = if op == ReduceOp::Mean {
                1.0 / red as f64
            } else {
                1.0
            };
            out.iter_mut()
                .zip(&acc)
                .for_each(|(d, &a)| *d = (a * scale) as f32);
        }
        ReduceOp::Max | ReduceOp::Min => {
            let is_max = op == ReduceOp::Max;
            out.copy_from_slice(&x[base..][..w]);
            for r in 1..red {
                let src = &x[base + r * inner..][..w];
                out.iter_mut().zip(src).for_each(|(d, &v)| {
                    if replaces(is_max, v, *d) {
                        *d = v
                    }
                });
            }
        }
    }
}

/// What runs. `reduce == 0` is not handled here (the Tensor-level op rejects or special-cases it).
pub fn reduce_fast(p: &ReduceParams, x: &[f32], out: &mut [f32]) {
    let (outer, red, inner) = p.dims();
    let op = p.kind();
    let big = outer * red * inner >= PAR_MIN;
    if inner == 1 {
        let split = big && outer < 4 && red >= 2 * ROW_PIECE;
        if big && !split {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(o, d)| *d = reduce_row(op, &x[o * red..][..red], false));
        } else {
            out.iter_mut()
                .enumerate()
                .for_each(|(o, d)| *d = reduce_row(op, &x[o * red..][..red], split));
        }
        return;
    }
    let task = |o: usize, c0: usize, dst: &mut [f32]| reduce_cols(op, x, o, red, inner, c0, dst);
    if big {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, row)| {
            row.par_chunks_mut(COL_BLOCK)
                .enumerate()
                .for_each(|(b, dst)| task(o, b * COL_BLOCK, dst));
        });
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(o, row)| task(o, 0, row));
    }
}

/// Backward of max/min: `dx` (shape of x) is zero except at the first extreme element of each
/// group, which receives that group's gradient `g [outer, inner]`. One version (rayon over the
/// outer groups): it is a scan plus a scatter, obviously correct as written.
pub fn reduce_extreme_backward(p: &ReduceParams, x: &[f32], g: &[f32], dx: &mut [f32]) {
    let (_, red, inner) = p.dims();
    let is_max = p.kind() == ReduceOp::Max;
    dx.fill(0.0);
    if red == 0 || inner == 0 {
        return;
    }
    let group = |o: usize, dxo: &mut [f32]| {
        let xo = &x[o * red * inner..][..red * inner];
        for i in 0..inner {
            let mut best_r = 0;
            for r in 1..red {
                if replaces(is_max, xo[r * inner + i], xo[best_r * inner + i]) {
                    best_r = r;
                }
            }
            dxo[best_r * inner + i] = g[o * inner + i];
        }
    };
    if dx.len() >= PAR_MIN {
        dx.par_chunks_mut(red * inner)
            .enumerate()
            .for_each(|(o, dxo)| group(o, dxo));
    } else {
        dx.chunks_mut(red * inner)
            .enumerate()
            .for_each(|(o, dxo)| group(o, dxo));
    }
}

/// Index of the first maximum (or minimum) of `row`; the first NaN wins.
#[inline]
fn arg_extreme(is_max: bool, row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if replaces(is_max, v, row[best]) {
            best = i;
        }
    }
    best as u32
}

/// The oracle argmax/argmin over the last dim: rows one by one.
pub fn argreduce_ref(p: &ArgReduceParams, x: &[f32], out: &mut [u32]) {
    let len = p.len as usize;
    for (r, o) in out.iter_mut().enumerate() {
        let row = &x[r * len..][..len];
        let mut best = 0;
        for i in 1..len {
            let better = if p.is_argmax() {
                row[i] > row[best]
            } else {
                row[i] < row[best]
            };
            if !row[best].is_nan() && (row[i].is_nan() || better) {
                best = i;
            }
        }
        *o = best as u32;
    }
}

/// What runs: rayon over rows.
pub fn argreduce_fast(p: &ArgReduceParams, x: &[f32], out: &mut [u32]) {
    let len = p.len as usize;
    let is_max = p.is_argmax();
    if out.len() * len >= PAR_MIN {
        out.par_iter_mut()
            .enumerate()
            .for_each(|(r, o)| *o = arg_extreme(is_max, &x[r * len..][..len]));
    } else {
        out.iter_mut()
            .enumerate()
            .for_each(|(r, o)| *o = arg_extreme(is_max, &x[r * len..][..len]));
    }
}
