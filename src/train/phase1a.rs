//! Phase 1a: the P-VQVAE codec (spec §6.2, §2.3), then the discriminator step.
//!
//! Per batch (`image` possibly erased, training `mask`, `erase_mask`):
//! 1. `x = normalise(image)`: the encoder sees the (erased) image **without** the training mask;
//! 2. `f = quant_conv(encoder(x))`; the token type of each patch comes from the erase mask
//!    (erased patches search the masked half of the codebook); `z_q` = nearest codes with the
//!    codebook as it was before this step's EMA update;
//! 3. `rec = decoder(post_quant_conv(z + sg[z_q - z]), masked(x, mask), mask)`, de-normalised,
//!    clamped and / 255;
//! 4. generator loss `L_rec(rec, image/255) + quantize * mean((sg[z_q] - f)^2)`; one update of
//!    encoder, quant_conv, post_quant_conv and decoder;
//! 5. EMA codebook update from this step's assignments (`codebook_assignment_stats` +
//!    `codebook_ema_apply`, decay 0.99, eps 1e-5), written back into the store (the buffers
//!    `embedding`, `cluster_size`, `embedding_avg`);
//! 6. every `codebook_restart_every` steps (0: never, the official rule), the dead codes are
//!    restarted from this step's features (`codebook_restart`, a deviation for small runs);
//! 7. discriminator step on (`image/255`, `rec/255` detached).
//!
//! Nothing is updated when the loss is not finite.
//!
//! Data-parallel runs (`dist`): the EMA statistics (assignment counts and summed rows) are summed
//! over the ranks before the update, as the official quantizer all-reduces them (spec §2.3), and
//! the data-dependent codebook start reads the features of the whole global batch.

use super::codebook_restart::{restart_dead_codes, HostCodebook, StepRows};
use super::config::Phase;
use super::data::Batch;
use super::dist::{self, ReduceOp};
use super::losses::{reconstruction_loss, to_unit_range, RecContext};
use super::trainer::{StepOutput, Trainer};
use crate::autograd::{losses as al, Tape};
use crate::error::Result;
use crate::model::codec::feature_rows;
use crate::model::masks;
use crate::model::quantizer::{Half, Quantizer};
use crate::ops;
use crate::ops::codebook::CodebookEma;
use crate::tensor::Tensor;

pub const TERMS: [&str; 9] = [
    "total",
    "l1",
    "gradient",
    "adversarial",
    "perceptual",
    "style",
    "quantize",
    "discriminator",
    "codes_restarted",
];

pub fn step(tr: &mut Trainer, batch: &Batch) -> Result<StepOutput> {
    let cfg = tr.cfg.clone();
    let (model, codec) = (&tr.model, &tr.model.codec);
    let tape = Tape::new();
    let p = model.store.bind(&tape, |n| Phase::Phase1a.trains(n));
    let f = codec.encode(&tape, &p, &tape.constant(masks::normalise(&batch.images)?))?;
    let (b, c, h, w) = (f.shape()[0], f.shape()[1], f.shape()[2], f.shape()[3]);

    // Quantise with the erase mask's token types (spec §6.2 step 2).
    let erase_m = masks::masked_patch_indicator(&batch.erase_masks, codec.cfg.patch)?;
    let halves: Vec<Half> = masks::visible_tokens(&erase_m)?
        .iter()
        .map(|&v| if v { Half::Unmasked } else { Half::Masked })
        .collect();
    let rows = feature_rows(f.value())?;
    if tr.step == 0 && cfg.codebook_data_init && codebook_never_updated(tr)? {
        init_codebook_from_features(tr, &rows)?;
    }
    let (model, codec) = (&tr.model, &tr.model.codec);
    let idx = codec.quantizer.nearest(&model.store, &rows, &halves)?;
    let zq = codec
        .quantizer
        .rows(&model.store, &idx)?
        .reshape(&[b, h, w, c])?
        .permute(&[0, 3, 1, 2])?
        .contiguous()?;
    let commit = al::mse_mean(&tape, &f, &tape.constant(zq.clone()))?;
    let zq_st = Quantizer::straight_through(&tape, &f, zq);

    let out = codec.decode(&tape, &p, &zq_st, &batch.images, &batch.masks)?;
    let y = to_unit_range(&tape, &out)?;
    let x01 = ops::unary::mul_scalar(&batch.images, 1.0 / 255.0)?;
    let ctx = RecContext {
        weights: &cfg.losses,
        step: tr.step,
        disc: tr.disc.as_mut(),
        vgg: tr.vgg.as_deref(),
    };
    let (rec, rec_terms) = reconstruction_loss(&tape, &y, &x01, &batch.masks, ctx)?;
    let total = al::weighted_sum(&tape, &[(&rec, 1.0), (&commit, cfg.losses.quantize)])?;
    let total_value = total.value().to_scalar()?;
    tr.guard("generator", total_value)?;

    let grads = tape.backward(&total)?;
    let g = tr.gen.select(&tr.model.store.grads_of(&p, &grads));
    ema_update(tr, &rows, idx)?;
    let restarted = restart_codes(tr, &rows, &halves)?;
    tr.update_generator(g)?;

    let fake = y.value().clone();
    let d_loss = tr.discriminator_step(&x01, &fake)?;
    let mut terms = vec![("total", total_value)];
    terms.extend(rec_terms);
    terms.push(("quantize", commit.value().to_scalar()?));
    terms.push(("discriminator", d_loss.unwrap_or(0.0)));
    terms.push(("codes_restarted", restarted as f32));
    Ok(StepOutput {
        terms,
        preview: Some(ops::unary::mul_scalar(&fake, 255.0)?),
    })
}

/// Whether the codebook is still as initialised: every EMA size 0 (spec §2.3's start). A codebook
/// that weights bring (`--init` of a trained model) has been updated, and the data start must not
/// replace it: that would change the meaning of every token their transformer has learnt.
fn codebook_never_updated(tr: &Trainer) -> Result<bool> {
    let sizes = tr.model.store.get(tr.model.codec.quantizer.cluster_size).to_vec_f32()?;
    Ok(sizes.iter().all(|&s| s == 0.0))
}

/// Data-dependent codebook start (deviation from spec §2.3, on by default for `tiny`): before the
/// first update of a codebook that has never been updated, every code (both halves) becomes a feature of the first batch, taken at evenly
/// spaced positions, `embedding_avg` its copy and `cluster_size` 1. With the official start
/// (N(0, 1) codes, zero sizes) the encoder's small non-negative features all fall to one or two
/// codes, and the first EMA step divides every unused code by a Laplace-smoothed size of ~1e-5,
/// so they are never chosen again: a short, small-batch run ends with a one-code codebook
/// (measured: 1 distinct token on a photo after 133 steps at batch 4).
fn init_codebook_from_features(tr: &mut Trainer, rows: &Tensor) -> Result<()> {
    let rows = &dist::all_gather_rows(&*tr.comm, rows)?;
    let q = &tr.model.codec.quantizer;
    let (emb_id, cs_id, avg_id, n_e) = (q.embedding, q.cluster_size, q.embedding_avg, q.n_e);
    let n = rows.shape()[0];
    let pick: Vec<u32> = (0..n_e).map(|k| ((k * n) / n_e) as u32).collect();
    let init = ops::index::gather_rows(rows, &pick)?;
    let store = &mut tr.model.store;
    store.set(emb_id, init.clone())?;
    store.set(avg_id, init)?;
    let ones = Tensor::full(1.0, &[n_e]).to_device(&rows.device())?;
    store.set(cs_id, ones)?;
    Ok(())
}

/// The EMA codebook update of spec §2.3 from this step's rows and assignments.
///
/// Deviation (small batches): a codebook half that has never been assigned (all its
/// `cluster_size` entries 0) and gets no assignment in this step keeps its initial rows. The
/// official rule would divide those rows' averages by the Laplace-smoothed size ~1e-5 and blow
/// them up ~1e5-fold, so the first erased patch later quantises to a huge code. With the paper's
/// batch of 10 the masked half is nearly always used in the first step; with batch 2 it is not.
/// Once a half has been used, the official rule applies unchanged.
fn ema_update(tr: &mut Trainer, rows: &Tensor, idx: Vec<u32>) -> Result<()> {
    let q = &tr.model.codec.quantizer;
    let (emb_id, cs_id, avg_id, n_e, half) = (
        q.embedding,
        q.cluster_size,
        q.embedding_avg,
        q.n_e,
        q.masked_start,
    );
    let n = idx.len();
    let (counts, sums) =
        ops::codebook::codebook_assignment_stats(rows, &Tensor::from_u32(idx, &[n])?.to_device(&rows.device())?, n_e)?;
    let mut stats = [counts, sums];
    tr.comm.all_reduce(&mut stats, ReduceOp::Sum)?;
    let [counts, sums] = stats;
    let store = &mut tr.model.store;
    let old = CodebookEma {
        cluster_size: store.get(cs_id).clone(),
        embedding_avg: store.get(avg_id).clone(),
        embedding: store.get(emb_id).clone(),
    };
    let mut new = ops::codebook::codebook_ema_apply(
        &old,
        &counts,
        &sums,
        tr.cfg.codebook_decay,
        tr.cfg.codebook_eps,
    )?;
    let (cs_old, cnt) = (old.cluster_size.to_vec_f32()?, counts.to_vec_f32()?);
    for (start, len) in [(0, half), (half, n_e - half)] {
        let unused = |v: &[f32]| v[start..start + len].iter().all(|&x| x == 0.0);
        if unused(&cs_old) && unused(&cnt) {
            let keep = |new_t: &Tensor, old_t: &Tensor| -> Result<Tensor> {
                let parts = [
                    new_t.narrow(0, 0, start)?,
                    old_t.narrow(0, start, len)?,
                    new_t.narrow(0, start + len, n_e - start - len)?,
                ];
                let nonempty: Vec<&Tensor> = parts.iter().filter(|t| t.shape()[0] > 0).collect();
                ops::concat::concat(&nonempty, 0)
            };
            new = CodebookEma {
                cluster_size: keep(&new.cluster_size, &old.cluster_size)?,
                embedding_avg: keep(&new.embedding_avg, &old.embedding_avg)?,
                embedding: keep(&new.embedding, &old.embedding)?,
            };
        }
    }
    store.set(cs_id, new.cluster_size)?;
    store.set(avg_id, new.embedding_avg)?;
    store.set(emb_id, new.embedding)?;
    Ok(())
}

/// Dead-code restart after this step's EMA update when the step is due (module docs of
/// `codebook_restart`); returns how many codes were restarted. Every rank sees the whole global
/// batch (rows tagged with their half), so all ranks restart the same codes with the same rows.
fn restart_codes(tr: &mut Trainer, rows: &Tensor, halves: &[Half]) -> Result<usize> {
    let every = tr.cfg.codebook_restart_every;
    if every == 0 || !(tr.step + 1).is_multiple_of(every) {
        return Ok(0);
    }
    let (n, d) = (rows.shape()[0], rows.shape()[1]);
    let tags: Vec<f32> = halves.iter().map(|h| if *h == Half::Masked { 1.0 } else { 0.0 }).collect();
    let tags = Tensor::from_vec(tags, &[n, 1])?.to_device(&rows.device())?;
    let tagged = dist::all_gather_rows(&*tr.comm, &ops::concat::concat(&[rows, &tags], 1)?)?.to_vec_f32()?;
    let (mut values, mut masked) = (Vec::with_capacity(tagged.len()), Vec::with_capacity(tagged.len() / (d + 1)));
    for r in tagged.chunks_exact(d + 1) {
        values.extend_from_slice(&r[..d]);
        masked.push(r[d] > 0.5);
    }
    let q = &tr.model.codec.quantizer;
    let (emb_id, cs_id, avg_id, n_e, half) = (q.embedding, q.cluster_size, q.embedding_avg, q.n_e, q.masked_start);
    let store = &mut tr.model.store;
    let device = store.get(emb_id).device();
    let mut cb = HostCodebook {
        cluster_size: store.get(cs_id).to_vec_f32()?,
        embedding: store.get(emb_id).to_vec_f32()?,
        embedding_avg: store.get(avg_id).to_vec_f32()?,
        dim: d,
    };
    let done = restart_dead_codes(&mut cb, &StepRows { rows: &values, masked: &masked }, half, tr.cfg.codebook_restart_below)?;
    if !done.is_empty() {
        store.set(cs_id, Tensor::from_vec(cb.cluster_size, &[n_e])?.to_device(&device)?)?;
        store.set(emb_id, Tensor::from_vec(cb.embedding, &[n_e, d])?.to_device(&device)?)?;
        store.set(avg_id, Tensor::from_vec(cb.embedding_avg, &[n_e, d])?.to_device(&device)?)?;
    }
    Ok(done.len())
}
