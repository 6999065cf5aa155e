//! CPU embedding lookup: `table [vocab, dim]`, `n` u32 indices -> `out [n, dim]`
//! (`out[i] = table[idx[i]]`), and its backward, the scatter-add `dtable[idx[i]] += g[i]`.
//! Indices must be `< vocab`; `first_out_of_range` finds a bad one so the Tensor-level op can
//! name it in its error (the loops below assume valid indices).
//! The fast backward groups the positions of each vocabulary row (a counting sort) and sums every
//! row's gradients in position order, in parallel over rows: no atomics, bit-reproducible.

use crate::params::embedding::EmbeddingParams;
use rayon::prelude::*;

const PAR_MIN: usize = 1 << 15;

/// The first (position, index) with index >= vocab, if any.
pub fn first_out_of_range(idx: &[u32], vocab: usize) -> Option<(usize, u32)> {
    idx.iter()
        .enumerate()
        .find(|(_, &i)| i as usize >= vocab)
        .map(|(p, &i)| (p, i))
}

/// The oracle lookup.
pub fn embedding_fwd_ref(p: &EmbeddingParams, table: &[f32], idx: &[u32], out: &mut [f32]) {
    let (n, _, d) = p.dims();
    for i in 0..n {
        let v = idx[i] as usize;
        for j in 0..d {
            out[i * d + j] = table[v * d + j];
        }
    }
}

/// What runs: row copies, in parallel when large.
pub fn embedding_fwd_fast(p: &EmbeddingParams, table: &[f32], idx: &[u32], out: &mut [f32]) {
    let (_, _, d) = p.dims();
    if d == 0 {
        return;
    }
    let copy =
        |(i, row): (usize, &mut [f32])| row.copy_from_slice(&table[idx[i] as usize * d..][..d]);
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(d).enumerate().for_each(copy);
    } else {
        out.chunks_mut(d).enumerate().for_each(copy);
    }
}

/// The oracle backward: sequential scatter-add in f64. `dtable` is overwritten.
pub fn embedding_bwd_ref(p: &EmbeddingParams, idx: &[u32], g: &[f32], dtable: &mut [f32]) {
    let (n, vocab, d) = p.dims();
    let mut acc = vec![0f64; vocab * d];
    for i in 0..n {
        let v = idx[i] as usize;
        for j in 0..d {
            acc[v * d + j] += g[i * d + j] as f64;
        }
    }
    dtable
        .iter_mut()
        .zip(&acc)
        .for_each(|(o, &a)| *o = a as f32);
}

/// What runs: positions grouped by vocabulary row, rows summed in parallel. `dtable` is
/// overwritten (rows never looked up get 0).
pub fn embedding_bwd_fast(p: &EmbeddingParams, idx: &[u32], g: &[f32], dtable: &mut [f32]) {
    let (n, vocab, d) = p.dims();
    if d == 0 {
        return;
    }
    // Counting sort of positions by index: start[v]..start[v+1] are the positions reading row v.
    let mut start = vec![0usize; vocab + 1];
    for &v in &idx[..n] {
        start[v as usize + 1] += 1;
    }
    for v in 0..vocab {
        start[v + 1] += start[v];
    }
    let mut fill = start.clone();
    let mut order = vec![0usize; n];
    for (i, &v) in idx[..n].iter().enumerate() {
        order[fill[v as usize]] = i;
        fill[v as usize] += 1;
    }
    let row = |(v, dst): (usize, &mut [f32])| {
        dst.fill(0.0);
        for &i in &order[start[v]..start[v + 1]] {
            dst.iter_mut()
                .zip(&g[i * d..][..d])
                .for_each(|(a, &b)| *a += b);
        }
    };
    if n * d >= PAR_MIN {
        dtable.par_chunks_mut(d).enumerate().for_each(row);
    } else {
        dtable.chunks_mut(d).enumerate().for_each(row);
    }
}
