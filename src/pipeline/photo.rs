//! Inpainting a photo of any size: the model works at S x S (256), so the image is resized for
//! the model (bilinear), the mask conservatively (a model pixel is a hole when any photo pixel
//! it covers is a hole, so thin holes are never lost), and each sample is resized back and
//! composited at full resolution: known pixels are exactly the input's.

use super::inpaint::{composite, inpaint, InpaintOptions, Inpainted};
use crate::error::{Error, Result};
use crate::model::inpainting::InpaintingModel;
use crate::model::masks;
use crate::ops;
use crate::rng::Rng;
use crate::tensor::Tensor;

pub struct PhotoResult {
    /// Per sample, 3 x H x W in [0, 255] at the photo's size.
    pub images: Vec<Tensor>,
    pub tokens: Vec<Vec<u32>>,
    pub passes: usize,
    pub masked_patches: usize,
    /// Passes replayed from a CUDA graph, and why none was used where one was asked for.
    pub graph_replays: usize,
    pub graph_note: Option<String>,
}

/// `image` [3, H, W] in [0, 255], `mask` [1, H, W] with 1 = visible.
pub fn inpaint_photo(
    model: &InpaintingModel,
    image: &Tensor,
    mask: &Tensor,
    opts: &InpaintOptions,
    tokens: Option<&[Vec<u32>]>,
    on_pass: &mut dyn FnMut(usize, usize),
) -> Result<PhotoResult> {
    let [3, h, w] = image.shape()[..] else {
        return Err(Error::shape("inpaint", format!("image must be [3, H, W], got {:?}", image.shape())));
    };
    if mask.shape() != [1, h, w] {
        return Err(Error::shape("inpaint", format!("mask {:?} does not match image {:?}", mask.shape(), image.shape())));
    }
    let s = model.cfg.image_size;
    if (h, w) == (s, s) {
        let out: Inpainted = inpaint(model, image, mask, opts, tokens, on_pass)?;
        return Ok(PhotoResult { images: out.images, tokens: out.tokens, passes: out.passes, masked_patches: out.masked_patches, graph_replays: out.graph_replays, graph_note: out.graph_note });
    }
    let (small, small_mask) = model_inputs(model, image, mask)?;
    let out = inpaint(model, &small, &small_mask, opts, tokens, on_pass)?;
    let images = out
        .images
        .iter()
        .map(|t| {
            let up = ops::resize::resize_bilinear(&t.reshape(&[1, 3, s, s])?, (h, w))?.reshape(&[3, h, w])?;
            composite(&ops::unary::clamp(&up, 0.0, 255.0)?, image, mask)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PhotoResult { images, tokens: out.tokens, passes: out.passes, masked_patches: out.masked_patches, graph_replays: out.graph_replays, graph_note: out.graph_note })
}

/// What a batched run (`inpaint_photo_batched`) reports besides the samples it handed over.
pub struct BatchedSummary {
    /// Batches run, and transformer passes over all of them.
    pub batches: usize,
    pub passes: usize,
    pub masked_patches: usize,
    pub graph_replays: usize,
    pub graph_note: Option<String>,
}

/// The seed of batch `b` of a batched run: the run's own seed for the first batch (so a run of
/// at most one batch draws exactly what `inpaint_photo` draws), a fork of it for the others.
pub fn batch_seed(seed: u64, b: usize) -> u64 {
    if b == 0 {
        seed
    } else {
        Rng::new(seed).fork(b as u64).next_u64()
    }
}

/// `opts.samples` samples of one photo in batches of at most `batch` samples (each one batched
/// forward, batch b seeded by `batch_seed`), each batch handed to `on_batch(index of its first
/// sample, result)` as soon as it is done, so only one batch of images is held at a time, however
/// many samples are asked for. `tokens`: one vector per sample to replay. `on_pass(p, total)`
/// counts the passes of every batch (all batches have the same number: one mask).
#[allow(clippy::too_many_arguments)]
pub fn inpaint_photo_batched(
    model: &InpaintingModel,
    image: &Tensor,
    mask: &Tensor,
    opts: &InpaintOptions,
    batch: usize,
    tokens: Option<&[Vec<u32>]>,
    on_pass: &mut dyn FnMut(usize, usize),
    on_batch: &mut dyn FnMut(usize, PhotoResult) -> Result<()>,
) -> Result<BatchedSummary> {
    if batch == 0 {
        return Err(Error::msg("the batch size must be at least 1"));
    }
    if opts.samples == 0 {
        return Err(Error::msg("the number of samples must be at least 1"));
    }
    if tokens.is_some_and(|t| t.len() != opts.samples) {
        return Err(Error::msg(format!("token replay needs one token vector per sample ({})", opts.samples)));
    }
    let batches = opts.samples.div_ceil(batch);
    let mut summary = BatchedSummary { batches, passes: 0, masked_patches: 0, graph_replays: 0, graph_note: None };
    for b in 0..batches {
        let first = b * batch;
        let size = batch.min(opts.samples - first);
        let batch_opts = InpaintOptions { samples: size, seed: batch_seed(opts.seed, b), ..opts.clone() };
        let batch_tokens = tokens.map(|t| &t[first..first + size]);
        let res = inpaint_photo(model, image, mask, &batch_opts, batch_tokens, &mut |p, total| on_pass(b * total + p, batches * total))?;
        summary.passes += res.passes;
        summary.masked_patches = res.masked_patches;
        summary.graph_replays += res.graph_replays;
        if summary.graph_note.is_none() {
            summary.graph_note = res.graph_note.clone();
        }
        on_batch(first, res)?;
    }
    Ok(summary)
}

/// The image and mask at the model's resolution S x S: the image resized bilinearly (clamped to
/// [0, 255]), the mask conservatively (`conservative_mask`); unchanged when already S x S.
/// `image` [3, H, W], `mask` [1, H, W] (shapes checked by the callers).
pub fn model_inputs(model: &InpaintingModel, image: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = model.cfg.image_size;
    let (h, w) = (image.shape()[1], image.shape()[2]);
    if (h, w) == (s, s) {
        return Ok((image.clone(), mask.clone()));
    }
    let small = ops::resize::resize_bilinear(&image.reshape(&[1, 3, h, w])?, (s, s))?.reshape(&[3, s, s])?;
    Ok((ops::unary::clamp(&small, 0.0, 255.0)?, conservative_mask(mask, s)?))
}

/// Per patch of the model's grid (row-major), true when fully visible: the hole the model sees
/// for a photo's `mask` [1, H, W] (resized as `model_inputs` does), as `get_features` finds it.
pub fn visible_patches(model: &InpaintingModel, mask: &Tensor) -> Result<Vec<bool>> {
    let s = model.cfg.image_size;
    let small = if mask.shape()[1..] == [s, s] { mask.clone() } else { conservative_mask(mask, s)? };
    masks::visible_tokens(&masks::masked_patch_indicator(&small.reshape(&[1, 1, s, s])?, model.cfg.codec.patch)?)
}

/// Resize a binary mask [1, H, W] to [1, s, s]: hole wherever any covered source pixel is a hole.
pub fn conservative_mask(mask: &Tensor, s: usize) -> Result<Tensor> {
    let (h, w) = (mask.shape()[1], mask.shape()[2]);
    let src = mask.host_f32()?;
    let span = |i: usize, n: usize| (i * n / s, ((i + 1) * n).div_ceil(s).max(i * n / s + 1).min(n));
    let mut out = vec![1.0f32; s * s];
    for y in 0..s {
        let (y0, y1) = span(y, h);
        for x in 0..s {
            let (x0, x1) = span(x, w);
            let hole = (y0..y1).any(|sy| src[sy * w + x0..sy * w + x1].iter().any(|&v| v < 0.5));
            if hole {
                out[y * s + x] = 0.0;
            }
        }
    }
    Tensor::from_vec(out, &[1, s, s])
}
