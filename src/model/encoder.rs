//! PatchEncoder (spec §2.1): a pure per-patch MLP. The masked, normalised image
//! B x 3 x 256 x 256 is cut into 8x8 patches (B x 1024 x 192, element order c*64 + ky*8 + kx,
//! patches row-major), mapped by Linear+ReLU, 8 post-activation LinearResBlocks, Linear+ReLU,
//! and folded back to B x 256 x 32 x 32. No context crosses patches, so a fully visible patch
//! has the same feature whatever is masked elsewhere (the Phase-2 trick relies on this).

use super::blocks::LinearResBlock;
use super::fx::{patch_unfold, permute, relu, reshape, Tape, Var};
use super::presets::CodecConfig;
use crate::error::Result;
use crate::nn::layers::{Init, Linear};
use crate::nn::{Bound, ParamStore};
use crate::rng::Rng;

pub struct PatchEncoder {
    patch: usize,
    pre: Linear,
    res: Vec<LinearResBlock>,
    post: Linear,
}

impl PatchEncoder {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &CodecConfig) -> Result<Self> {
        let patch_dim = c.in_ch * c.patch * c.patch;
        let pre = Linear::new(store, rng, &format!("{name}.pre_layers.0"), patch_dim, c.enc_width, Init::TorchDefault)?;
        let res = (0..c.enc_res_blocks)
            .map(|i| LinearResBlock::new(store, rng, &format!("{name}.res_layers.{i}"), c.enc_width, c.enc_res_hidden))
            .collect::<Result<Vec<_>>>()?;
        let post = Linear::new(store, rng, &format!("{name}.post_layers.0"), c.enc_width, c.e_dim, Init::TorchDefault)?;
        Ok(PatchEncoder { patch: c.patch, pre, res, post })
    }

    /// `image`: B x 3 x H x W normalised to [-1, 1] with holes at -1 -> B x e_dim x H/p x W/p.
    pub fn forward(&self, t: &Tape, p: &Bound, image: &Var) -> Result<Var> {
        let [b, _, h, w] = image.shape()[..] else {
            return Err(crate::Error::shape("PatchEncoder", format!("expected B x C x H x W, got {:?}", image.shape())));
        };
        let (gh, gw) = (h / self.patch, w / self.patch);
        let mut x = relu(t, &self.pre.forward(t, p, &patch_unfold(t, image, self.patch)?)?)?;
        for block in &self.res {
            x = block.forward(t, p, &x)?;
        }
        let x = relu(t, &self.post.forward(t, p, &x)?)?; // B x L x C
        let c = x.shape()[2];
        permute(t, &reshape(t, &x, &[b, gh, gw, c])?, &[0, 3, 1, 2])
    }
}
