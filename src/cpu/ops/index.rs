//! Row gather and scatter: `out[i] = table[idx[i]]` and `table[idx[i]] = values[i]`, rows of
//! `width` elements, row-major. The sampler uses them to read the logits of chosen positions and
//! to write codebook rows into the feature table (spec §5.2 step 5). Indices are checked by the
//! caller (`ops::index`); these loops assume `idx[i] < rows`.

use crate::params::index::RowsParams;
use rayon::prelude::*;

pub fn gather_rows_ref(table: &[f32], idx: &[u32], p: RowsParams) -> Vec<f32> {
    let w = p.width as usize;
    let mut out = Vec::with_capacity(idx.len() * w);
    for &r in idx {
        for c in 0..w {
            out.push(table[r as usize * w + c]);
        }
    }
    out
}

pub fn gather_rows_fast(table: &[f32], idx: &[u32], p: RowsParams) -> Vec<f32> {
    let w = p.width as usize;
    let mut out = vec![0.0; idx.len() * w];
    out.par_chunks_mut(w.max(1)).zip(idx.par_iter()).for_each(|(dst, &r)| {
        dst.copy_from_slice(&table[r as usize * w..(r as usize + 1) * w]);
    });
    out
}

/// Later indices win when an index repeats (the order a sequential loop gives).
pub fn scatter_rows_ref(table: &mut [f32], idx: &[u32], values: &[f32], p: RowsParams) {
    let w = p.width as usize;
    for (i, &r) in idx.iter().enumerate() {
        for c in 0..w {
            table[r as usize * w + c] = values[i * w + c];
        }
    }
}

/// Sequential over indices (a handful per sampling pass), each a row memcpy.
pub fn scatter_rows_fast(table: &mut [f32], idx: &[u32], values: &[f32], p: RowsParams) {
    let w = p.width as usize;
    for (i, &r) in idx.iter().enumerate() {
        table[r as usize * w..(r as usize + 1) * w].copy_from_slice(&values[i * w..(i + 1) * w]);
    }
}
