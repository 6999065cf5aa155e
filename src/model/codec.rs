//! P-VQVAE codec (`PatchVQGAN`, spec §2): encoder -> quant_conv (1x1) -> dual-codebook
//! quantizer; post_quant_conv (1x1) -> decoder with reference guidance. State-dict prefix
//! `content_codec.`. The pipeline operations of spec §2.7 live here: features of a (masked)
//! image with their tokens, codebook rows of tokens, and decoding features with the masked image.

use super::decoder::PatchDecoder;
use super::encoder::PatchEncoder;
use super::fx::{permute, reshape, Tape, Var};
use super::masks;
use super::presets::CodecConfig;
use super::quantizer::{Half, Quantizer};
use crate::error::Result;
use crate::nn::layers::{Conv2d, Init};
use crate::nn::{Bound, ParamStore};
use crate::rng::Rng;
use crate::tensor::Tensor;

pub struct Codec {
    pub cfg: CodecConfig,
    pub encoder: PatchEncoder,
    pub quant_conv: Conv2d,
    pub quantizer: Quantizer,
    pub post_quant_conv: Conv2d,
    pub decoder: PatchDecoder,
}

/// Continuous features of a masked image and the dual-codebook tokens of each position.
pub struct Features {
    /// B x e_dim x h x w, after quant_conv (the "feature" of spec §2.2).
    pub feature: Var,
    /// B*h*w global codebook indices (visible patches in the unmasked half, others masked).
    pub tokens: Vec<u32>,
    /// B*h*w: true where the patch is fully visible (token type 1).
    pub visible: Vec<bool>,
}

impl Codec {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &CodecConfig) -> Result<Self> {
        let conv1x1 = |s: &mut ParamStore, r: &mut Rng, n: &str| Conv2d::new(s, r, &format!("{name}.{n}"), c.e_dim, c.e_dim, 1, 1, 0, true, Init::TorchDefault);
        Ok(Codec {
            cfg: c.clone(),
            encoder: PatchEncoder::new(store, rng, &format!("{name}.encoder"), c)?,
            quant_conv: conv1x1(store, rng, "quant_conv")?,
            quantizer: Quantizer::new(store, rng, &format!("{name}.quantize"), c)?,
            post_quant_conv: conv1x1(store, rng, "post_quant_conv")?,
            decoder: PatchDecoder::new(store, rng, &format!("{name}.decoder"), c)?,
        })
    }

    /// Encoder + quant_conv of an image already normalised to [-1, 1] (holes at -1).
    pub fn encode(&self, t: &Tape, p: &Bound, normalised: &Var) -> Result<Var> {
        self.quant_conv.forward(t, p, &self.encoder.forward(t, p, normalised)?)
    }

    /// `get_features(image, mask)` (spec §2.7): `image` B x 3 x H x W in [0, 255], `mask`
    /// B x 1 x H x W (1 = visible) or None for the unmasked image.
    pub fn get_features(&self, t: &Tape, p: &Bound, store: &ParamStore, image: &Tensor, mask: Option<&Tensor>) -> Result<Features> {
        let (normalised, visible) = match mask {
            Some(m) => {
                let mp = masks::masked_patch_indicator(m, self.cfg.patch)?;
                (masks::masked_normalised(image, m)?, masks::visible_tokens(&mp)?)
            }
            None => {
                let s = image.shape();
                let n = s[0] * (s[2] / self.cfg.patch) * (s[3] / self.cfg.patch);
                (masks::normalise(image)?, vec![true; n])
            }
        };
        let feature = self.encode(t, p, &t.constant(normalised))?;
        let halves: Vec<Half> = visible.iter().map(|&v| if v { Half::Unmasked } else { Half::Masked }).collect();
        let rows = feature_rows(feature.value())?;
        let tokens = self.quantizer.nearest(store, &rows, &halves)?;
        Ok(Features { feature, tokens, visible })
    }

    /// Codebook rows of `tokens` (B*L) as a B x e_dim x h x w feature map.
    pub fn codebook_features(&self, store: &ParamStore, tokens: &[u32], batch: usize, grid: (usize, usize)) -> Result<Tensor> {
        let rows = self.quantizer.rows(store, tokens)?; // (B*L) x C
        rows.reshape(&[batch, grid.0, grid.1, self.cfg.e_dim])?.permute(&[0, 3, 1, 2])?.contiguous()
    }

    /// `decode_with_feature` (spec §2.7): post_quant_conv + decoder with the masked image as
    /// reference. Returns the normalised output B x 3 x H x W (denormalise for pixels).
    pub fn decode(&self, t: &Tape, p: &Bound, feat: &Var, image: &Tensor, mask: &Tensor) -> Result<Var> {
        let reference = t.constant(masks::masked_normalised(image, mask)?);
        let f = self.post_quant_conv.forward(t, p, feat)?;
        self.decoder.forward(t, p, &f, &reference, mask)
    }

    /// `decode` with no reference pixels: the reference image is fully masked (pixel mask all
    /// hole, masked image all -1), so every blend of the decoder takes its own path and the
    /// output depends on `feat` alone, as for features made from tokens only (image generation,
    /// `fdm reproduce table4`). `feat` B x e_dim x h x w -> normalised B x 3 x (h p) x (w p).
    pub fn decode_unguided(&self, t: &Tape, p: &Bound, feat: &Var) -> Result<Var> {
        let s = feat.shape();
        let (b, h, w) = (s[0], s[2] * self.cfg.patch, s[3] * self.cfg.patch);
        let device = feat.value().device();
        let image = Tensor::zeros(&[b, 3, h, w]).to_device(&device)?;
        let all_hole = Tensor::zeros(&[b, 1, h, w]).to_device(&device)?;
        self.decode(t, p, feat, &image, &all_hole)
    }
}

/// B x C x h x w -> (B*h*w) x C rows, row-major positions (spec §2.3 step 1).
pub fn feature_rows(f: &Tensor) -> Result<Tensor> {
    let s = f.shape();
    f.permute(&[0, 2, 3, 1])?.contiguous()?.reshape(&[s[0] * s[2] * s[3], s[1]])
}

/// The tape version of `feature_rows`, for training.
pub fn feature_rows_var(t: &Tape, f: &Var) -> Result<Var> {
    let s = f.shape().to_vec();
    reshape(t, &permute(t, f, &[0, 2, 3, 1])?, &[s[0] * s[2] * s[3], s[1]])
}
