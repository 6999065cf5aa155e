//! Phase 2: FDM trained from ideal features, without the sampler (spec §6.3).
//!
//! Per batch (`image`, `mask`), with the frozen codec on a gradient-free tape:
//! 1. `M` = masked-patch indicator of `mask`;
//! 2. `f'` = continuous features of the **unmasked** image, `f'_q` = their nearest codes in the
//!    unmasked half (codes 0..vocab at every position);
//! 3. `qv = f' (1 - M) + f'_q M`, `pv = FDM(qv, M)` (already multiplied by M);
//! 4. target `gt = (f' - f'_q) M` (the code's target, not the paper's formula);
//! 5. `L_qe = mean|pv - gt|` over all elements (zeros at visible patches included).
//!
//! Valid because the encoder is per-patch: `f'` at visible patches equals what inference sees.
//!
//! `sampler_comparison` times this step against what training with the sampler would need for
//! the same batch (features of the masked image + the full token sampling loop), the reason the
//! paper trains this way.

use super::config::Phase;
use super::data::Batch;
use super::trainer::{StepOutput, Trainer};
use crate::autograd::{losses as al, Tape, Var};
use crate::error::Result;
use crate::model::codec::feature_rows;
use crate::model::fdm::FdmOutput;
use crate::model::masks;
use crate::ops;
use crate::pipeline::sampler::{sample, SamplerInput, SamplerOptions};
use crate::rng::Rng;
use std::time::Instant;

pub const TERMS: [&str; 2] = ["total", "feature"];

/// The FDM forward of phases 2 and 3 on `tape` with `p`: its output and the detached target.
pub struct FdmStep {
    pub out: FdmOutput,
    pub target: Var,
}

/// Steps 1-4 of the module docs (shared with phase 3).
pub fn fdm_forward(
    tr: &Trainer,
    tape: &Tape,
    p: &crate::nn::Bound,
    batch: &Batch,
) -> Result<FdmStep> {
    let model = &tr.model;
    let codec = &model.codec;
    let ng = Tape::no_grad();
    let pn = model.store.bind(&ng, |_| false);
    let ideal = codec.get_features(&ng, &pn, &model.store, &batch.images, None)?;
    let f = ideal.feature.value().clone();
    let s = f.shape().to_vec();
    let fq = codec.codebook_features(&model.store, &ideal.tokens, s[0], (s[2], s[3]))?;
    let m = masks::masked_patch_indicator(&batch.masks, codec.cfg.patch)?;
    let target = ops::binary::mul(&ops::binary::sub(&f, &fq)?, &m)?;
    let out = model.fdm.apply(
        tape,
        p,
        &tape.constant(fq),
        &tape.constant(f),
        &tape.constant(m),
    )?;
    Ok(FdmStep {
        out,
        target: tape.constant(target),
    })
}

pub fn step(tr: &mut Trainer, batch: &Batch) -> Result<StepOutput> {
    let tape = Tape::new();
    let p = tr.model.store.bind(&tape, |n| Phase::Phase2.trains(n));
    let fs = fdm_forward(tr, &tape, &p, batch)?;
    let l_qe = al::l1_mean(&tape, &fs.out.pv, &fs.target)?;
    let total = al::weighted_sum(&tape, &[(&l_qe, tr.cfg.losses.feature)])?;
    let value = total.value().to_scalar()?;
    tr.guard("fdm", value)?;
    let grads = tape.backward(&total)?;
    let g = tr.gen.select(&tr.model.store.grads_of(&p, &grads));
    tr.update_generator(g)?;
    Ok(StepOutput {
        terms: vec![("total", value), ("feature", l_qe.value().to_scalar()?)],
        preview: None,
    })
}

/// Seconds of one phase-2 step vs. the sampling a sampler-based training would run for the
/// same batch (masked-image features + the paper-mode sampling loop), and the transformer
/// passes that took. The trainer advances by one step.
pub struct SamplerComparison {
    pub step_seconds: f64,
    pub sampler_seconds: f64,
    pub passes: usize,
}

impl SamplerComparison {
    /// How many times faster the phase-2 step is.
    pub fn ratio(&self) -> f64 {
        self.sampler_seconds / self.step_seconds.max(1e-12)
    }
}

pub fn sampler_comparison(tr: &mut Trainer, batch: &Batch) -> Result<SamplerComparison> {
    let t0 = Instant::now();
    tr.train_step(batch)?;
    let step_seconds = t0.elapsed().as_secs_f64();
    let batch = &batch.to_device(&tr.device())?;
    let model = &tr.model;
    let t1 = Instant::now();
    let ng = Tape::no_grad();
    let p = model.store.bind(&ng, |_| false);
    let feats =
        model
            .codec
            .get_features(&ng, &p, &model.store, &batch.images, Some(&batch.masks))?;
    let rows = feature_rows(feats.feature.value())?;
    let b = batch.images.shape()[0];
    let table = rows.reshape(&[b, rows.shape()[0] / b, rows.shape()[1]])?;
    let input = SamplerInput {
        model,
        tape: &ng,
        params: &p,
        table,
        tokens: feats.tokens.clone(),
        visible: feats.visible.clone(),
    };
    let sampled = sample(
        input,
        &SamplerOptions::default(),
        &mut Rng::new(tr.cfg.seed),
        &mut |_, _| {},
    )?;
    Ok(SamplerComparison {
        step_seconds,
        sampler_seconds: t1.elapsed().as_secs_f64(),
        passes: sampled.passes,
    })
}
