//! Dual-codebook vector quantizer (spec §2.3). The codebook has n_e rows: indices
//! 0..masked_start are the "unmasked" codes (for fully visible patches), masked_start..n_e the
//! "masked" codes (for patches with any hole pixel). Quantisation = nearest row by squared
//! Euclidean distance within the patch's half (lowest index on ties); `z_q` = the row itself.
//! The codebook and its EMA statistics are buffers (not trained by gradients): `embedding`,
//! `cluster_size`, `embedding_avg`, registered under the official keys.

use super::fx::{Tape, Var};
use super::presets::CodecConfig;
use crate::error::{Error, Result};
use crate::nn::{ParamId, ParamStore};
use crate::ops;
use crate::params::codebook::{CODEBOOK_HALF_MASKED, CODEBOOK_HALF_UNMASKED};
use crate::rng::Rng;
use crate::tensor::Tensor;

pub struct Quantizer {
    pub embedding: ParamId,
    pub cluster_size: ParamId,
    pub embedding_avg: ParamId,
    pub n_e: usize,
    pub e_dim: usize,
    pub masked_start: usize,
}

/// Which half of the codebook each position searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    Unmasked,
    Masked,
}

impl Quantizer {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &CodecConfig) -> Result<Self> {
        if c.masked_embed_start * 2 != c.n_e {
            return Err(Error::msg(format!(
                "codebook halves must be equal: masked_embed_start {} with n_e {}",
                c.masked_embed_start, c.n_e
            )));
        }
        let emb = crate::nn::init::normal(rng, &[c.n_e, c.e_dim], 0.0, 1.0);
        Ok(Quantizer {
            embedding: store.add(format!("{name}.embedding"), emb.clone())?,
            cluster_size: store.add(format!("{name}.cluster_size"), Tensor::zeros(&[c.n_e]))?,
            embedding_avg: store.add(format!("{name}.embedding_avg"), emb)?,
            n_e: c.n_e,
            e_dim: c.e_dim,
            masked_start: c.masked_embed_start,
        })
    }

    /// Nearest code per row of `rows` (N x e_dim) within each row's half; returns global
    /// codebook indices (masked-half results are offset by `masked_start`).
    pub fn nearest(&self, store: &ParamStore, rows: &Tensor, halves: &[Half]) -> Result<Vec<u32>> {
        if rows.shape() != [halves.len(), self.e_dim] {
            return Err(Error::shape("quantize", format!("rows {:?} for {} halves", rows.shape(), halves.len())));
        }
        let sel: Vec<u32> = halves
            .iter()
            .map(|h| match h {
                Half::Unmasked => CODEBOOK_HALF_UNMASKED,
                Half::Masked => CODEBOOK_HALF_MASKED,
            })
            .collect();
        let cb = store.get(self.embedding);
        let macs = (rows.shape()[0] * self.n_e / 2 * self.e_dim) as u64; // one half per row
        crate::profile::op("codebook_argmin", || ops::codebook::codebook_argmin_halves(rows, cb, &sel), |_| macs)?.to_vec_u32()
    }

    /// Codebook rows of the given tokens: N -> N x e_dim.
    pub fn rows(&self, store: &ParamStore, tokens: &[u32]) -> Result<Tensor> {
        let idx = Tensor::from_u32(tokens.to_vec(), &[tokens.len()])?.to_device(&store.get(self.embedding).device())?;
        ops::embedding::embedding(store.get(self.embedding), &idx)
    }

    /// Straight-through estimator (spec §2.3 step 6): the value is `z_q`, the gradient flows to
    /// `z` unchanged.
    pub fn straight_through(t: &Tape, z: &Var, z_q: Tensor) -> Var {
        t.record(z_q, &[z], Box::new(|g| Ok(vec![Some(g.clone())])))
    }
}
