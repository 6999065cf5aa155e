//! The image losses of phases 1a and 3 (spec §6.5) composed from the autograd losses, and the
//! hook through which a VGG-19 backbone plugs in.
//!
//! `L_rec = w_l1 L1n + w_g L_G + w_a L_A + w_p L_P + w_s L_S` on images in [0, 1]:
//! * L1n = `mean|y - x| / mean(1 - mask)`, from step 0;
//! * L_G (image gradients), L_P (perceptual) and L_S (style on hole-masked images) from
//!   `feature_losses_start`;
//! * L_A = `BCE(D(y), 1)` from `disc_start` (D's weights constant here; its spectral-norm vectors
//!   still take their power iteration, as in PyTorch's training mode).
//!
//! Terms whose weight is 0 or whose start step has not come are not computed at all and are
//! reported as 0. The discriminator loss is `(BCE(D(x), 1) + BCE(D(sg y), 0)) / 2`.
//!
//! VGG: `VggHook` returns the activations the perceptual loss (relu1_1, relu2_1, relu3_1,
//! relu4_1, relu5_1) and the style loss (relu2_2, relu3_4, relu4_4, relu5_2) compare, for a
//! [0, 1] image without ImageNet normalisation (spec §6.5). Any backbone implementing it can be
//! handed to the trainer; with none, L_P and L_S are off (a documented deviation).

use super::config::LossConfig;
use crate::autograd::{binary, losses as al, Tape, Var};
use crate::error::Result;
use crate::model::discriminator::Discriminator;
use crate::model::masks;
use crate::tensor::Tensor;

/// Activations of the perceptual loss (torchvision VGG-19 `features` slices, spec §6.5).
pub const PERCEPTUAL_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
/// Activations of the style loss.
pub const STYLE_LAYERS: [&str; 4] = ["relu2_2", "relu3_4", "relu4_4", "relu5_2"];

/// A frozen feature extractor for the perceptual and style losses.
pub trait VggHook: Send + Sync {
    /// Activations named in `layers` (in that order) of `x` (B x 3 x H x W in [0, 1]), on the
    /// tape so gradients reach `x`; the backbone's own weights are constants.
    fn activations(&self, tape: &Tape, x: &Var, layers: &[&str]) -> Result<Vec<Var>>;
    /// Move the backbone's weights to `device` (the trainer's device). A hook that cannot move
    /// says so for any device but the CPU.
    fn to_device(&mut self, device: &crate::Device) -> Result<()> {
        if device.is_cpu() {
            Ok(())
        } else {
            Err(crate::error::Error::msg(format!(
                "this VGG hook cannot run on {}",
                device.name()
            )))
        }
    }
}

/// Builds a `VggHook` from a weights file (what `TrainConfig::vgg_weights` names).
pub type VggLoader = fn(&std::path::Path) -> Result<Box<dyn VggHook>>;

/// Named scalar values of one step, in a fixed order per phase (the CSV columns).
pub type Terms = Vec<(&'static str, f32)>;

/// Everything the reconstruction loss reads besides the two images.
pub struct RecContext<'a> {
    pub weights: &'a LossConfig,
    pub step: u64,
    pub disc: Option<&'a mut Discriminator>,
    pub vgg: Option<&'a dyn VggHook>,
}

/// Column names of `reconstruction_loss`'s terms.
pub const REC_TERMS: [&str; 5] = ["l1", "gradient", "adversarial", "perceptual", "style"];

/// Decoder output (normalised, [-1, 1] nominal) -> [0, 1] image on the tape:
/// `clamp((x + 1) * 127.5, 0, 255) / 255`, i.e. the official de-normalise + clamp then / 255.
pub fn to_unit_range(tape: &Tape, out: &Var) -> Result<Var> {
    use crate::autograd::unary::{add_scalar, clamp, mul_scalar};
    let px = clamp(
        tape,
        &mul_scalar(tape, &add_scalar(tape, out, 1.0)?, 127.5)?,
        0.0,
        255.0,
    )?;
    mul_scalar(tape, &px, 1.0 / 255.0)
}

/// `L_rec(y, x)` (module docs); `y` on the tape, `x` the [0, 1] target, `mask` 1 = visible.
/// Returns the weighted total and the unweighted terms.
pub fn reconstruction_loss(
    tape: &Tape,
    y: &Var,
    x: &Tensor,
    mask: &Tensor,
    ctx: RecContext<'_>,
) -> Result<(Var, Terms)> {
    let w = ctx.weights;
    let x = tape.constant(x.clone());
    let features_on = ctx.step >= w.feature_losses_start;
    let mut parts: Vec<(Var, f32)> = Vec::new();
    let mut terms: Terms = REC_TERMS.iter().map(|&n| (n, 0.0)).collect();
    let mut push = |idx: usize, v: Var, weight: f32, parts: &mut Vec<(Var, f32)>| -> Result<()> {
        terms[idx].1 = v.value().to_scalar()?;
        parts.push((v, weight));
        Ok(())
    };
    if w.l1 != 0.0 {
        push(
            0,
            al::l1_hole_normalised(tape, y, &x, mask)?,
            w.l1,
            &mut parts,
        )?;
    }
    if w.gradient != 0.0 && features_on {
        push(1, al::image_grad_loss(tape, y, &x)?, w.gradient, &mut parts)?;
    }
    if let Some(d) = ctx.disc {
        if w.adversarial != 0.0 && ctx.step >= w.disc_start {
            let bound = d.bind(tape, false);
            let p = d.forward(tape, &bound, y, true)?;
            push(
                2,
                al::bce_mean_with_value(tape, &p, 1.0)?,
                w.adversarial,
                &mut parts,
            )?;
        }
    }
    if let Some(vgg) = ctx.vgg {
        if w.perceptual != 0.0 && features_on {
            let (fy, fx) = (
                vgg.activations(tape, y, &PERCEPTUAL_LAYERS)?,
                vgg.activations(tape, &x, &PERCEPTUAL_LAYERS)?,
            );
            push(
                3,
                al::perceptual_loss(tape, &fy, &fx)?,
                w.perceptual,
                &mut parts,
            )?;
        }
        if w.style != 0.0 && features_on {
            let h = tape.constant(masks::one_minus(mask)?);
            let (yh, xh) = (binary::mul(tape, y, &h)?, binary::mul(tape, &x, &h)?);
            let (fy, fx) = (
                vgg.activations(tape, &yh, &STYLE_LAYERS)?,
                vgg.activations(tape, &xh, &STYLE_LAYERS)?,
            );
            push(4, al::style_loss(tape, &fy, &fx)?, w.style, &mut parts)?;
        }
    }
    let refs: Vec<(&Var, f32)> = parts.iter().map(|(v, w)| (v, *w)).collect();
    let total = if refs.is_empty() {
        tape.constant(Tensor::scalar(0.0).to_device(&y.value().device())?)
    } else {
        al::weighted_sum(tape, &refs)?
    };
    Ok((total, terms))
}

/// Discriminator loss `(BCE(D(x), 1) + BCE(D(y), 0)) / 2` with `y` detached; two training
/// forwards (each with its power iteration). Returns the loss and D's bound parameters.
pub fn discriminator_loss(
    tape: &Tape,
    disc: &mut Discriminator,
    real: &Tensor,
    fake: &Tensor,
) -> Result<(Var, crate::nn::Bound)> {
    let bound = disc.bind(tape, true);
    let p_real = disc.forward(tape, &bound, &tape.constant(real.clone()), true)?;
    let real_loss = al::bce_mean_with_value(tape, &p_real, 1.0)?;
    let p_fake = disc.forward(tape, &bound, &tape.constant(fake.clone()), true)?;
    let fake_loss = al::bce_mean_with_value(tape, &p_fake, 0.0)?;
    Ok((
        al::weighted_sum(tape, &[(&real_loss, 0.5), (&fake_loss, 0.5)])?,
        bound,
    ))
}
