//! Mask compositing of images (spec §5.1 step 6: known pixels are exactly the input's):
//! `y = out (1 - m) + input m` on `[planes, H*W]` images, `planes = N * C`, with a mask of one
//! plane per image (`[N, H*W]`) shared by its C channels. Each element is rounded as the three
//! element-wise ops it replaces (`1 - m`, two products, one sum; no fused multiply-add), so the
//! result has their bits; at a binary mask it is exactly `input` or `out`.
//!
//! * `composite_ref`: the plain loop (the oracle).
//! * `composite_fast`: in parallel over pieces of each plane, writing a new buffer once. A
//!   12-megapixel photo went through five full-size temporaries before (`ops::composite`).

use super::out_buf::filled_vec;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// One element.
#[inline(always)]
fn blend(out: f32, input: f32, m: f32) -> f32 {
    out * (1.0 - m) + input * m
}

/// The oracle: `y[p][q] = out[p][q] (1 - m[p / channels][q]) + input[p][q] m[p / channels][q]`.
pub fn composite_ref(channels: usize, plane: usize, out: &[f32], input: &[f32], mask: &[f32], y: &mut [f32]) {
    for (p, y_plane) in y.chunks_mut(plane.max(1)).enumerate() {
        let m = &mask[(p / channels) * plane..][..plane];
        for (q, v) in y_plane.iter_mut().enumerate() {
            *v = blend(out[p * plane + q], input[p * plane + q], m[q]);
        }
    }
}

/// Elements per parallel piece of a plane.
const PIECE: usize = 1 << 16;

/// `composite_ref` into a new vector, in parallel.
pub fn composite_fast(channels: usize, plane: usize, out: &[f32], input: &[f32], mask: &[f32]) -> Vec<f32> {
    assert_eq!(out.len(), input.len(), "composite: out and input differ in length");
    assert!(channels > 0 && plane > 0 && out.len().is_multiple_of(channels * plane), "composite: not whole images");
    assert_eq!(mask.len(), out.len() / channels, "composite: one mask plane per image");
    // SAFETY: every element is written: the pieces cover each plane, and the planes the vector.
    unsafe {
        filled_vec(out.len(), |y: &mut [MaybeUninit<f32>]| {
            y.par_chunks_mut(plane).enumerate().for_each(|(p, y_plane)| {
                let (o, i) = (&out[p * plane..][..plane], &input[p * plane..][..plane]);
                let m = &mask[(p / channels) * plane..][..plane];
                y_plane.par_chunks_mut(PIECE).enumerate().for_each(|(k, piece)| {
                    let at = k * PIECE;
                    for (q, v) in piece.iter_mut().enumerate() {
                        v.write(blend(o[at + q], i[at + q], m[at + q]));
                    }
                });
            });
        })
    }
}
