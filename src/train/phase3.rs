//! Phase 3: FDM + decoder + post_quant_conv fine-tuned jointly, with a fresh discriminator
//! (spec §6.4).
//!
//! Per batch: the phase-2 forward (`v = qv + pv`, target `gt = (f' - f'_q) M`, detached), then
//! `rec = decoder(post_quant_conv(v), masked image, mask)`, de-normalised, clamped, / 255;
//! loss = `L_rec(rec, image/255)` (the phase-1a terms, weights and start steps; no quantize
//! loss) + `feature * mean|pv - gt|`. Gradients reach FDM through both terms and the decoder and
//! post_quant_conv through `L_rec`. Then the discriminator step on (`image/255`, `rec/255`).

use super::config::Phase;
use super::data::Batch;
use super::losses::{reconstruction_loss, to_unit_range, RecContext};
use super::phase2::fdm_forward;
use super::trainer::{StepOutput, Trainer};
use crate::autograd::{losses as al, Tape};
use crate::error::Result;
use crate::ops;

pub const TERMS: [&str; 8] = [
    "total",
    "l1",
    "gradient",
    "adversarial",
    "perceptual",
    "style",
    "feature",
    "discriminator",
];

pub fn step(tr: &mut Trainer, batch: &Batch) -> Result<StepOutput> {
    let tape = Tape::new();
    let p = tr.model.store.bind(&tape, |n| Phase::Phase3.trains(n));
    let fs = fdm_forward(tr, &tape, &p, batch)?;
    let out = tr
        .model
        .codec
        .decode(&tape, &p, &fs.out.v, &batch.images, &batch.masks)?;
    let y = to_unit_range(&tape, &out)?;
    let x01 = ops::unary::mul_scalar(&batch.images, 1.0 / 255.0)?;
    let ctx = RecContext {
        weights: &tr.cfg.losses,
        step: tr.step,
        disc: tr.disc.as_mut(),
        vgg: tr.vgg.as_deref(),
    };
    let (rec, rec_terms) = reconstruction_loss(&tape, &y, &x01, &batch.masks, ctx)?;
    let l_qe = al::l1_mean(&tape, &fs.out.pv, &fs.target)?;
    let total = al::weighted_sum(&tape, &[(&rec, 1.0), (&l_qe, tr.cfg.losses.feature)])?;
    let total_value = total.value().to_scalar()?;
    tr.guard("generator", total_value)?;

    let grads = tape.backward(&total)?;
    let g = tr.gen.select(&tr.model.store.grads_of(&p, &grads));
    tr.update_generator(g)?;

    let fake = y.value().clone();
    let d_loss = tr.discriminator_step(&x01, &fake)?;
    let mut terms = vec![("total", total_value)];
    terms.extend(rec_terms);
    terms.push(("feature", l_qe.value().to_scalar()?));
    terms.push(("discriminator", d_loss.unwrap_or(0.0)));
    Ok(StepOutput {
        terms,
        preview: Some(ops::unary::mul_scalar(&fake, 255.0)?),
    })
}
