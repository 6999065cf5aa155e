//! Residual blocks shared by the codec and FDM (spec §2.1, §2.4, §4.1). Both are
//! **post-activation**: `y = ReLU(x + f(x))` (FDM's layout; PUT's pre-activation blocks differ,
//! spec §8.4).

use super::fx::{add, relu, Tape, Var};
use crate::error::Result;
use crate::nn::layers::{Conv2d, Init, Linear};
use crate::nn::{Bound, ParamStore};
use crate::rng::Rng;

/// `y = ReLU(x + L2(ReLU(L1(x))))`, L1: dim -> hidden (`layers.0`), L2: hidden -> dim (`layers.2`).
pub struct LinearResBlock {
    l1: Linear,
    l2: Linear,
}

impl LinearResBlock {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, dim: usize, hidden: usize) -> Result<Self> {
        Ok(LinearResBlock {
            l1: Linear::new(store, rng, &format!("{name}.layers.0"), dim, hidden, Init::TorchDefault)?,
            l2: Linear::new(store, rng, &format!("{name}.layers.2"), hidden, dim, Init::TorchDefault)?,
        })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let h = relu(t, &self.l1.forward(t, p, x)?)?;
        relu(t, &add(t, x, &self.l2.forward(t, p, &h)?)?)
    }
}

/// `y = ReLU(x + C2(ReLU(C1(x))))`, C1: 3x3 dim -> hidden pad 1 (`conv.0`), C2: 1x1 hidden -> dim
/// (`conv.2`).
pub struct ConvResBlock {
    c1: Conv2d,
    c2: Conv2d,
}

impl ConvResBlock {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, dim: usize, hidden: usize) -> Result<Self> {
        Ok(ConvResBlock {
            c1: Conv2d::new(store, rng, &format!("{name}.conv.0"), dim, hidden, 3, 1, 1, true, Init::TorchDefault)?,
            c2: Conv2d::new(store, rng, &format!("{name}.conv.2"), hidden, dim, 1, 1, 0, true, Init::TorchDefault)?,
        })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let h = relu(t, &self.c1.forward(t, p, x)?)?;
        relu(t, &add(t, x, &self.c2.forward(t, p, &h)?)?)
    }
}
