//! FDM, the Feature Dequantization Module (spec §4): `mix` = Conv3x3 (e_dim + 1 -> width) + ReLU,
//! residual blocks, Conv3x3 (width -> e_dim), no output activation; the prediction is multiplied
//! by the masked-patch indicator M inside the module. `apply` forms the mixed input
//! `qv = f (1 - M) + q M` and returns `v = qv + FDM(qv, M)` (spec §4.2).

use super::blocks::ConvResBlock;
use super::fx::{add, concat, mul, relu, Tape, Var};
use super::presets::FdmConfig;
use crate::error::Result;
use crate::nn::layers::{Conv2d, Init};
use crate::nn::{Bound, ParamStore};
use crate::rng::Rng;

pub struct Fdm {
    head: Conv2d,
    res: Vec<ConvResBlock>,
    tail: Conv2d,
}

/// The result of `Fdm::apply`: the dequantised features and FDM's own prediction.
pub struct FdmOutput {
    pub v: Var,
    pub pv: Var,
    pub qv: Var,
}

impl Fdm {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, e_dim: usize, c: &FdmConfig) -> Result<Self> {
        let conv = |store: &mut ParamStore, rng: &mut Rng, idx: usize, cin: usize, cout: usize| {
            Conv2d::new(store, rng, &format!("{name}.mix.{idx}"), cin, cout, 3, 1, 1, true, Init::TorchDefault)
        };
        let head = conv(store, rng, 0, e_dim + 1, c.width)?;
        let res = (0..c.res_blocks)
            .map(|i| ConvResBlock::new(store, rng, &format!("{name}.mix.{}", i + 2), c.width, c.res_hidden))
            .collect::<Result<Vec<_>>>()?;
        let tail = conv(store, rng, c.res_blocks + 2, c.width, e_dim)?;
        Ok(Fdm { head, res, tail })
    }

    /// `pv = mix([qv, M]) * M`; `qv` B x e_dim x h x w, `m` B x 1 x h x w (1 = masked patch).
    pub fn forward(&self, t: &Tape, p: &Bound, qv: &Var, m: &Var) -> Result<Var> {
        let mut x = relu(t, &self.head.forward(t, p, &concat(t, &[qv, m], 1)?)?)?;
        for block in &self.res {
            x = block.forward(t, p, &x)?;
        }
        mul(t, &self.tail.forward(t, p, &x)?, m)
    }

    /// `qv = background (1 - M) + quantized M`; `v = qv + FDM(qv, M)` (spec §4.2).
    pub fn apply(&self, t: &Tape, p: &Bound, quantized: &Var, background: &Var, m: &Var) -> Result<FdmOutput> {
        // Each side is multiplied by exactly 0 or 1, so visible patches keep the encoder's
        // features bit for bit and masked ones the codebook rows.
        let keep = t.constant(super::masks::one_minus(m.value())?);
        let qv = add(t, &mul(t, background, &keep)?, &mul(t, quantized, m)?)?;
        let pv = self.forward(t, p, &qv, m)?;
        let v = add(t, &qv, &pv)?;
        Ok(FdmOutput { v, pv, qv })
    }
}
