//! Phase 1b: the UQ-Transformer on the frozen codec (spec §3.5, §6.1).
//!
//! Per batch (`image`, `mask`), with the codec on a gradient-free tape:
//! * `f`, dual-codebook tokens and token types of the masked image (`get_features(image, mask)`);
//!   `f_q` = the codebook rows of those tokens;
//! * targets `t` = the tokens of the unmasked image (codes 0..vocab);
//! * random_quantize (0.3): one uniform per position from the trainer's step generator, drawn in
//!   position order; fully visible positions with `u < p` take `f_q` instead of `f`;
//! * logits = transformer(features); loss = cross-entropy over masked/partial positions only,
//!   `sum_i w_i ce_i / (sum_i w_i + 1e-18)` with `w = 1[type != 1]`;
//! * AdamW (0.9, 0.95), decay 0.01 on Linear weights only.
//!
//! The codec gets no gradient and no EMA update.

use super::config::Phase;
use super::data::Batch;
use super::trainer::{StepOutput, Trainer};
use crate::autograd::{losses as al, Tape};
use crate::error::Result;
use crate::model::codec::feature_rows;
use crate::ops;
use crate::params::losses::CROSS_ENTROPY_NO_IGNORE;
use crate::tensor::Tensor;

pub const TERMS: [&str; 3] = ["total", "cross_entropy", "masked_positions"];

/// The transformer's input rows (B*L x C) after random quantisation, and the loss weights.
pub struct TransformerInput {
    pub features: Tensor,
    pub targets: Tensor,
    pub weights: Tensor,
    pub masked: usize,
}

/// Everything of spec §3.5 before the transformer runs.
pub fn prepare(tr: &mut Trainer, batch: &Batch) -> Result<TransformerInput> {
    let model = &tr.model;
    let ng = Tape::no_grad();
    let p = model.store.bind(&ng, |_| false);
    let feats =
        model
            .codec
            .get_features(&ng, &p, &model.store, &batch.images, Some(&batch.masks))?;
    let gt = model
        .codec
        .get_features(&ng, &p, &model.store, &batch.images, None)?;
    let rows = feature_rows(feats.feature.value())?;
    let (n, c) = (rows.shape()[0], rows.shape()[1]);
    let device = rows.device();
    let quantised = model.codec.quantizer.rows(&model.store, &feats.tokens)?;
    let prob = tr.cfg.random_quantize;
    // One draw per position of the global batch on every rank, this shard's slice used
    // (`dist`): the draws and the generator's state are those of a single-process run.
    let (rank, world) = (tr.comm.rank(), tr.comm.world());
    let draws: Vec<f32> = (0..n * world).map(|_| tr.rng.uniform()).collect();
    let picked: Vec<u32> = feats
        .visible
        .iter()
        .zip(&draws[rank * n..(rank + 1) * n])
        .enumerate()
        .filter_map(|(i, (&vis, &u))| (u < prob && vis).then_some(i as u32))
        .collect();
    let features = if picked.is_empty() {
        rows
    } else {
        ops::index::scatter_rows(
            &rows,
            &picked,
            &ops::index::gather_rows(&quantised, &picked)?,
        )?
    };
    let b = batch.images.shape()[0];
    let l = n / b;
    let weights: Vec<f32> = feats
        .visible
        .iter()
        .map(|&v| if v { 0.0 } else { 1.0 })
        .collect();
    let masked = weights.iter().filter(|&&w| w > 0.0).count();
    Ok(TransformerInput {
        features: features.reshape(&[b, l, c])?,
        targets: Tensor::from_u32(gt.tokens, &[b, l])?.to_device(&device)?,
        weights: Tensor::from_vec(weights, &[b, l])?.to_device(&device)?,
        masked,
    })
}

pub fn step(tr: &mut Trainer, batch: &Batch) -> Result<StepOutput> {
    let input = prepare(tr, batch)?;
    let model = &tr.model;
    let tape = Tape::new();
    let p = model.store.bind(&tape, |n| Phase::Phase1b.trains(n));
    let logits = model
        .transformer
        .forward(&tape, &p, &tape.constant(input.features))?;
    let loss = al::cross_entropy_weighted(
        &tape,
        &logits,
        &input.targets,
        &input.weights,
        CROSS_ENTROPY_NO_IGNORE,
    )?;
    let value = loss.value().to_scalar()?;
    tr.guard("transformer", value)?;
    let grads = tape.backward(&loss)?;
    let g = tr.gen.select(&tr.model.store.grads_of(&p, &grads));
    tr.update_generator(g)?;
    Ok(StepOutput {
        terms: vec![
            ("total", value),
            ("cross_entropy", value),
            ("masked_positions", input.masked as f32),
        ],
        preview: None,
    })
}
