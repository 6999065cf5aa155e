//! Patch and mask bookkeeping (spec §1). Pixel masks are B x 1 x H x W with 1 = visible,
//! 0 = hole (spec §0). Derived quantities:
//! * the masked, normalised image `x/127.5 - 1` with holes at -1 (§1.4);
//! * the masked-patch indicator `M` (B x 1 x h x w, 1 = the patch has at least one hole pixel,
//!   §1.2-§1.3), computed as max-pool of `1 - mask` over each patch, exact for binary masks;
//! * per-scale nearest-neighbour masks for the decoder (top-left pixel of each block, §1.5).

use super::fx::{Tape, Var};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;

/// `k` and `1 - k` at one decoder scale, both constants on the tape.
pub struct ScaleMask {
    pub keep: Var,
    pub drop: Var,
}

/// Check a pixel mask: B x 1 x H x W, every value exactly 0 or 1.
pub fn check_mask(mask: &Tensor, image_shape: &[usize]) -> Result<()> {
    let s = mask.shape();
    if s.len() != 4 || s[1] != 1 || s[0] != image_shape[0] || s[2..] != image_shape[2..] {
        return Err(Error::shape("mask", format!("mask {s:?} does not fit image {image_shape:?} (want B x 1 x H x W)")));
    }
    Ok(())
}

/// `1 - x` for a constant tensor.
pub fn one_minus(x: &Tensor) -> Result<Tensor> {
    ops::unary::add_scalar(&ops::unary::mul_scalar(x, -1.0)?, 1.0)
}

/// Normalise [0, 255] pixels to [-1, 1] and set holes to -1: `normalise(image * mask)` (§1.4).
pub fn masked_normalised(image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    check_mask(mask, image.shape())?;
    normalise(&ops::binary::mul(image, mask)?)
}

pub fn normalise(image: &Tensor) -> Result<Tensor> {
    ops::unary::add_scalar(&ops::unary::mul_scalar(image, 1.0 / 127.5)?, -1.0)
}

/// Back to [0, 255]: `clamp((x + 1) * 127.5, 0, 255)`.
pub fn denormalise(x: &Tensor) -> Result<Tensor> {
    ops::unary::clamp(&ops::unary::mul_scalar(&ops::unary::add_scalar(x, 1.0)?, 127.5)?, 0.0, 255.0)
}

/// `M`: 1 where the patch holds at least one hole pixel (B x 1 x H/p x W/p).
pub fn masked_patch_indicator(mask: &Tensor, patch: usize) -> Result<Tensor> {
    ops::pool::max_pool2d(&one_minus(mask)?, patch, patch, 0)
}

/// Per token (row-major over the grid, batch-major): true when the patch is fully visible.
pub fn visible_tokens(m: &Tensor) -> Result<Vec<bool>> {
    Ok(m.to_vec_f32()?.iter().map(|&x| x == 0.0).collect())
}

/// The pixel mask resized by nearest neighbour to each size (square), as decoder blend masks.
pub fn nearest_masks(t: &Tape, mask: &Tensor, sizes: &[usize]) -> Result<Vec<ScaleMask>> {
    sizes
        .iter()
        .map(|&s| {
            let k = if mask.shape()[2] == s { mask.clone() } else { ops::resize::resize_nearest(mask, (s, s))? };
            let drop = one_minus(&k)?;
            Ok(ScaleMask { keep: t.constant(k), drop: t.constant(drop) })
        })
        .collect()
}
