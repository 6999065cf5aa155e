//! PatchDecoder with reference-image guidance (spec §2.4). Main path: Conv3x3 + ReLU, residual
//! blocks, three ConvTranspose 4x4/s2/p1 + ReLU, Conv3x3 to 3 channels (no output activation).
//! Reference branch `encoder.layers.0..3` (Conv3x3, then three Conv4x4/s2/p1, each + ReLU, the
//! post-ReLU maps kept) encodes the masked image; before each up-step and before the last conv
//! the decoder's map is blended with the reference map of the same size:
//! `blend(x, E, k) = x (1 - k) + E k`, `k` = the pixel mask resized by nearest neighbour, i.e.
//! the top-left pixel of each block (spec §1.5 trap).

use super::blocks::ConvResBlock;
use super::fx::{add, mul, relu, Tape, Var};
use super::masks::{nearest_masks, ScaleMask};
use super::presets::CodecConfig;
use crate::error::Result;
use crate::nn::layers::{Conv2d, ConvTranspose2d, Init};
use crate::nn::{Bound, ParamStore};
use crate::rng::Rng;

pub struct PatchDecoder {
    pre: Conv2d,
    res: Vec<ConvResBlock>,
    up: Vec<ConvTranspose2d>,
    post: Conv2d,
    reference: Vec<Conv2d>,
}

impl PatchDecoder {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &CodecConfig) -> Result<Self> {
        let w = c.dec_width;
        let up_ch = &c.up_channels; // outputs of up_layers.0..2
        let pre = Conv2d::new(store, rng, &format!("{name}.pre_layers.0"), c.e_dim, w, 3, 1, 1, true, Init::TorchDefault)?;
        let res = (0..c.dec_res_blocks)
            .map(|i| ConvResBlock::new(store, rng, &format!("{name}.res_layers.{i}"), w, c.dec_res_hidden))
            .collect::<Result<Vec<_>>>()?;
        let mut up = Vec::new();
        let mut cin = w;
        for (i, &cout) in up_ch.iter().enumerate() {
            up.push(ConvTranspose2d::new(store, rng, &format!("{name}.up_layers.{i}.deconv"), cin, cout, 4, 2, 1)?);
            cin = cout;
        }
        // Reference maps must match the main path's channels at each blend: E0 = last up
        // output, ..., E3 = decoder width (spec §2.4 table).
        let ref_ch = [up_ch[2], up_ch[1], up_ch[0], w];
        let mut reference = Vec::new();
        let mut rin = c.in_ch;
        for (i, &rout) in ref_ch.iter().enumerate() {
            let (k, s) = if i == 0 { (3, 1) } else { (4, 2) };
            reference.push(Conv2d::new(store, rng, &format!("{name}.encoder.layers.{i}"), rin, rout, k, s, 1, true, Init::TorchDefault)?);
            rin = rout;
        }
        let post = Conv2d::new(store, rng, &format!("{name}.post_layers.0"), up_ch[2], c.in_ch, 3, 1, 1, true, Init::TorchDefault)?;
        Ok(PatchDecoder { pre, res, up, post, reference })
    }

    /// `feat`: B x e_dim x h x w (after post_quant_conv); `masked_image`: B x 3 x H x W in [-1, 1]
    /// with holes at -1; `mask`: B x 1 x H x W, 1 = visible. Returns B x 3 x H x W (normalised).
    pub fn forward(&self, t: &Tape, p: &Bound, feat: &Var, masked_image: &Var, mask: &crate::Tensor) -> Result<Var> {
        // Reference maps E0 (full size) .. E3 (token grid).
        let mut refs = Vec::with_capacity(4);
        let mut r = masked_image.clone();
        for conv in &self.reference {
            r = relu(t, &conv.forward(t, p, &r)?)?;
            refs.push(r.clone());
        }
        let sizes: Vec<usize> = refs.iter().map(|e| e.shape()[2]).collect();
        let masks = nearest_masks(t, mask, &sizes)?;
        let mut x = relu(t, &self.pre.forward(t, p, feat)?)?;
        for block in &self.res {
            x = block.forward(t, p, &x)?;
        }
        for (i, up) in self.up.iter().enumerate() {
            let level = 3 - i; // E3 before up0, E2 before up1, E1 before up2
            x = blend(t, &x, &refs[level], &masks[level])?;
            x = relu(t, &up.forward(t, p, &x)?)?;
        }
        x = blend(t, &x, &refs[0], &masks[0])?;
        self.post.forward(t, p, &x)
    }
}

/// `x (1 - k) + e k`, exact at binary k (each side multiplied by exactly 0 or 1).
fn blend(t: &Tape, x: &Var, e: &Var, k: &ScaleMask) -> Result<Var> {
    add(t, &mul(t, x, &k.drop)?, &mul(t, e, &k.keep)?)
}
