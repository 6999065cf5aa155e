//! The intermediate tensors of one image through the model (spec §10 verification hooks), for
//! `fdm inspect` and for tests; `docs/INSPECT.md` defines each one exactly.
//!
//! The deterministic path, batch 1, at the model's resolution S x S:
//! 1. `feat` = quant_conv(encoder(masked, normalised image)) (spec §1.4, §2.1-2.2), B x C x h x w;
//! 2. `tokens` = its dual-codebook quantisation (spec §2.3): fully visible patches take the nearest
//!    code of the unmasked half (ids < vocab), patches with a hole pixel the nearest code of the
//!    masked half (vocab..n_e); `feat_q` = the codebook rows of `tokens`, B x C x h x w;
//! 3. `logits` = the transformer on the table the sampler's first pass sees (spec §3.1, §5.2):
//!    the continuous `feat` at every position, B x L x vocab;
//! 4. replay (spec §5.6, the code path of `fdm inpaint --tokens`): the given tokens, or `tokens`,
//!    give codebook rows at masked patches; visible patches keep `feat`;
//! 5. FDM (spec §4.2): `qv` = step 4's features, `pv = FDM(qv, M)` (`fdm`, zero at visible
//!    patches), `v = qv + pv`;
//! 6. `decoded` = decoder(post_quant_conv(v), masked image, mask), de-normalised to [0, 255] and
//!    not composited (spec §5.1 step 6).
//! No randomness anywhere: the same weights, image and mask give the same tensors.

use super::inpaint::{dequantize_and_decode, replay, Decoded};
use crate::autograd::Tape;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::model::codec::feature_rows;
use crate::model::inpainting::InpaintingModel;
use crate::tensor::Tensor;

/// Where the tokens decoded in step 4 came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// The quantised input (`Inspection::tokens`).
    Quantized,
    /// Tokens given by the caller (a token file).
    Given,
}

/// The intermediates of one image (B = 1), every tensor f32 on the CPU.
pub struct Inspection {
    /// B x C x h x w encoder features after quant_conv (continuous).
    pub feat: Tensor,
    /// B*L dual-codebook token ids of `feat` (row-major over the grid).
    pub tokens: Vec<u32>,
    /// B x C x h x w codebook rows of `tokens`.
    pub feat_q: Tensor,
    /// B x L x vocab transformer logits on the first sampling pass's input.
    pub logits: Tensor,
    /// B x C x h x w FDM prediction `pv = FDM(qv, M)`, zero at fully visible patches.
    pub fdm: Tensor,
    /// B x C x h x w features given to the decoder, `v = qv + pv`.
    pub dequantized: Tensor,
    /// B x 3 x S x S decoded image in [0, 255] (not composited).
    pub decoded: Tensor,
    /// B*L tokens replayed in step 4 (only masked positions are used).
    pub replayed: Vec<u32>,
    pub source: TokenSource,
    /// B*L flags: true at fully visible patches (token type 1).
    pub visible: Vec<bool>,
    /// Patches with at least one hole pixel.
    pub masked_patches: usize,
    /// Masked patches whose replayed token is in the masked half of the codebook (>= vocab).
    pub masked_half_decoded: usize,
}

/// Check replay tokens for `fdm inspect`: one per patch and each a row of the codebook (< n_e).
/// Both halves are allowed because the quantised input itself holds masked-half ids at masked
/// patches, so its `tokens` replay to the same image.
pub fn check_tokens(model: &InpaintingModel, tokens: &[u32]) -> Result<()> {
    let l = model.cfg.grid() * model.cfg.grid();
    if tokens.len() != l {
        return Err(Error::msg(format!("{} tokens, expected {l} (one per patch of the {g} x {g} grid)", tokens.len(), g = model.cfg.grid())));
    }
    let n_e = model.cfg.codec.n_e as u32;
    if let Some((pos, &tok)) = tokens.iter().enumerate().find(|(_, &t)| t >= n_e) {
        return Err(Error::msg(format!(
            "token {tok} at position {pos} is not a codebook index: the {} preset's codebook has {n_e} rows (0-{} unmasked half, {}-{} masked half)",
            model.cfg.preset,
            model.cfg.transformer.vocab - 1,
            model.cfg.transformer.vocab,
            n_e - 1
        )));
    }
    Ok(())
}

/// Run the deterministic path (module docs) on `image` [3, S, S] in [0, 255] and `mask`
/// [1, S, S] (1 = visible; a mask with no hole is allowed). `tokens`: L ids to replay instead of
/// the quantised input's.
pub fn inspect(model: &InpaintingModel, image: &Tensor, mask: &Tensor, tokens: Option<&[u32]>) -> Result<Inspection> {
    let s = model.cfg.image_size;
    if image.shape() != [3, s, s] || mask.shape() != [1, s, s] {
        return Err(Error::shape("inspect", format!("image {:?} and mask {:?}, expected [3, {s}, {s}] and [1, {s}, {s}]", image.shape(), mask.shape())));
    }
    if let Some(t) = tokens {
        check_tokens(model, t)?;
    }
    let (e, g) = (model.cfg.codec.e_dim, model.cfg.grid());
    let l = g * g;
    let device = model.device();
    let images = image.reshape(&[1, 3, s, s])?.to_device(&device)?;
    let masks_b = mask.reshape(&[1, 1, s, s])?.to_device(&device)?;
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);

    let feats = model.codec.get_features(&tape, &params, &model.store, &images, Some(&masks_b))?;
    let feat_q = model.codec.codebook_features(&model.store, &feats.tokens, 1, (g, g))?;
    let table = feature_rows(feats.feature.value())?.reshape(&[1, l, e])?;
    // The sampler's first pass runs the transformer on exactly this table (spec §5.2 step 2).
    let logits = model.transformer.forward(&tape, &params, &tape.constant(table.clone()))?.value().clone();

    let (source, chosen) = match tokens {
        Some(t) => (TokenSource::Given, t.to_vec()),
        None => (TokenSource::Quantized, feats.tokens.clone()),
    };
    let n_e = model.cfg.codec.n_e as u32;
    let replayed = replay(model, std::slice::from_ref(&chosen), &table, &feats.visible, 1, l, n_e)?;
    let generated = replayed.table.reshape(&[1, g, g, e])?.permute(&[0, 3, 1, 2])?.contiguous()?;
    let Decoded { feature, fdm, out } = dequantize_and_decode(model, &tape, &params, &generated, &feats.feature, &images, &masks_b, true)?;
    let fdm = fdm.ok_or_else(|| Error::msg("FDM ran but returned no prediction"))?;

    let vocab = model.cfg.transformer.vocab as u32;
    let masked_patches = feats.visible.iter().filter(|v| !**v).count();
    let masked_half_decoded = chosen.iter().zip(&feats.visible).filter(|(&t, &vis)| !vis && t >= vocab).count();
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu);
    Ok(Inspection {
        feat: cpu(feats.feature.value())?,
        tokens: feats.tokens,
        feat_q: cpu(&feat_q)?,
        logits: cpu(&logits)?,
        fdm: cpu(&fdm)?,
        dequantized: cpu(&feature)?,
        decoded: cpu(&out)?,
        replayed: chosen,
        source,
        visible: feats.visible,
        masked_patches,
        masked_half_decoded,
    })
}
