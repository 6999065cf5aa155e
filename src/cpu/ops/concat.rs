//! CPU block copy behind concat (each input written into its slot of the output) and the
//! backward of narrow (the gradient written into its slot of a zero tensor of the full shape):
//! dense `src [outer, src_inner]` -> columns `[dst_offset, dst_offset + src_inner)` of dense
//! `dst [outer, dst_inner]` (see `params/concat.rs`). Other columns of `dst` are left untouched.

use crate::params::concat::BlockCopyParams;
use rayon::prelude::*;

const PAR_MIN: usize = 1 << 15;

/// The oracle: one element at a time.
pub fn copy_block_ref(p: &BlockCopyParams, src: &[f32], dst: &mut [f32]) {
    let (outer, si, di, off) = p.dims();
    for o in 0..outer {
        for j in 0..si {
            dst[o * di + off + j] = src[o * si + j];
        }
    }
}

/// What runs: one `copy_from_slice` per outer row, rows in parallel when large.
pub fn copy_block_fast(p: &BlockCopyParams, src: &[f32], dst: &mut [f32]) {
    let (outer, si, di, off) = p.dims();
    if si == 0 || outer == 0 {
        return;
    }
    let copy =
        |(o, row): (usize, &mut [f32])| row[off..off + si].copy_from_slice(&src[o * si..][..si]);
    if outer * si >= PAR_MIN {
        dst.par_chunks_mut(di).enumerate().for_each(copy);
    } else {
        dst.chunks_mut(di).enumerate().for_each(copy);
    }
}
