//! CPU patch unfold / fold (spec §1.1). Unfold: image `[B, C, H, W]` (NCHW) -> tokens
//! `[B, L = (H/p)*(W/p), C*p*p]` with patches row-major over the grid (`l = gy*(W/p) + gx`) and
//! the patch vector channel-major: element `c*p*p + ky*p + kx` = pixel `(c, gy*p + ky, gx*p + kx)`.
//! Fold is the exact inverse (patches do not overlap), so each is the other's backward.
//! Both are pure permutations of the elements: `_ref` walks the token side element by element;
//! `_fast` copies `p`-long pixel runs, in parallel over (batch, grid row).

use crate::params::patch::PatchParams;
use rayon::prelude::*;

/// Flat image index of token element (b, l, e).
#[inline]
fn image_index(p: &PatchParams, b: usize, l: usize, e: usize) -> usize {
    let (_, c_n, h, w, ps) = p.dims();
    let (_, gw) = p.grid();
    let (gy, gx) = (l / gw, l % gw);
    let (c, ky, kx) = (e / (ps * ps), (e / ps) % ps, e % ps);
    ((b * c_n + c) * h + gy * ps + ky) * w + gx * ps + kx
}

/// The oracle unfold.
pub fn unfold_ref(p: &PatchParams, img: &[f32], tokens: &mut [f32]) {
    let (b_n, ..) = p.dims();
    let (gh, gw) = p.grid();
    let k = p.patch_len();
    for b in 0..b_n {
        for l in 0..gh * gw {
            for e in 0..k {
                tokens[(b * gh * gw + l) * k + e] = img[image_index(p, b, l, e)];
            }
        }
    }
}

/// The oracle fold (inverse of unfold).
pub fn fold_ref(p: &PatchParams, tokens: &[f32], img: &mut [f32]) {
    let (b_n, ..) = p.dims();
    let (gh, gw) = p.grid();
    let k = p.patch_len();
    for b in 0..b_n {
        for l in 0..gh * gw {
            for e in 0..k {
                img[image_index(p, b, l, e)] = tokens[(b * gh * gw + l) * k + e];
            }
        }
    }
}

/// Visit every `p`-long run shared by a token row of grid row `gy` and an image row:
/// `f(token_offset_in_row_block, image_offset)`. One grid row of tokens is `gw * k` floats.
#[inline]
fn for_runs(p: &PatchParams, b: usize, gy: usize, mut f: impl FnMut(usize, usize)) {
    let (_, c_n, h, w, ps) = p.dims();
    let (_, gw) = p.grid();
    let k = p.patch_len();
    for gx in 0..gw {
        for c in 0..c_n {
            for ky in 0..ps {
                let tok = gx * k + (c * ps + ky) * ps;
                let pix = ((b * c_n + c) * h + gy * ps + ky) * w + gx * ps;
                f(tok, pix);
            }
        }
    }
}

/// What runs: unfold, parallel over (batch, grid row), each writing its own token rows.
pub fn unfold_fast(p: &PatchParams, img: &[f32], tokens: &mut [f32]) {
    let (_, _, _, _, ps) = p.dims();
    let (gh, gw) = p.grid();
    let block = gw * p.patch_len();
    if block == 0 {
        return;
    }
    tokens
        .par_chunks_mut(block)
        .enumerate()
        .for_each(|(bg, dst)| {
            let (b, gy) = (bg / gh, bg % gh);
            for_runs(p, b, gy, |t, i| {
                dst[t..t + ps].copy_from_slice(&img[i..i + ps])
            });
        });
}

/// What runs: fold. Each (batch, grid row) owns whole image rows `gy*p .. gy*p + p` of every
/// channel, which are not contiguous across channels, so tasks are per batch image instead.
pub fn fold_fast(p: &PatchParams, tokens: &[f32], img: &mut [f32]) {
    let (_, c_n, h, w, ps) = p.dims();
    let (gh, gw) = p.grid();
    let plane = c_n * h * w;
    let block = gw * p.patch_len();
    if plane == 0 || block == 0 {
        return;
    }
    img.par_chunks_mut(plane).enumerate().for_each(|(b, dst)| {
        for gy in 0..gh {
            let src = &tokens[(b * gh + gy) * block..][..block];
            // for_runs gives offsets into the full image; subtract this image's base.
            for_runs(p, b, gy, |t, i| {
                let i = i - b * plane;
                dst[i..i + ps].copy_from_slice(&src[t..t + ps]);
            });
        }
    });
}
