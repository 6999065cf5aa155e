//! Autograd nodes for the losses of spec §3.5 and §6.5. Every loss returns a scalar `Var`
//! (shape `[]`); targets, masks and weights are plain tensors (data, no gradient).
//!
//! Composition of the codec / decoder loss (images in [0, 1], `h = 1 - mask` at holes):
//! * L1n = `l1_hole_normalised(y, x, mask)`;
//! * L_G = `image_grad_loss(y, x)`;
//! * L_A (generator) = `bce_mean_with_value(D(y), 1.0)`; D loss =
//!   `weighted_sum([(bce(D(x), 1), 0.5), (bce(D(sg y), 0), 0.5)])`;
//! * L_P = `perceptual_loss(phi(y), phi(x))` = sum_k l1_mean(phi_k(y), phi_k(x));
//! * L_S = `style_loss(phi(y*h), phi(x*h))` = sum_k l1_mean(gram(.), gram(.));
//! * total = `weighted_sum([(L1n, 1), (L_G, 5), (L_A, 0.1), (L_P, 0.1), (L_S, 250)])`.

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::ops::cross_entropy as ce;
use crate::ops::image_losses as img;
use crate::ops::losses::{self as ops, HingeTerm};
use crate::tensor::Tensor;

/// `mean|y - x|`; both inputs may carry gradients.
pub fn l1_mean(tape: &Tape, y: &Var, x: &Var) -> Result<Var> {
    let out = ops::l1_mean(y.value(), x.value())?;
    let (yt, xt) = (y.value().clone(), x.value().clone());
    Ok(tape.record(
        out,
        &[y, x],
        Box::new(move |g| {
            let (dy, dx) = ops::l1_mean_backward(&yt, &xt, g)?;
            Ok(vec![Some(dy), Some(dx)])
        }),
    ))
}

/// L1n of spec §6.5: `mean|y - x| / mean(1 - mask)` with the visibility mask (1 = visible);
/// an error when the mask has no hole pixel.
pub fn l1_hole_normalised(tape: &Tape, y: &Var, x: &Var, mask: &Tensor) -> Result<Var> {
    let frac = ops::hole_fraction(mask)?;
    let l1 = ops::l1_mean(y.value(), x.value())?;
    let out = Tensor::scalar(l1.to_scalar()? / frac).to_device(&l1.device())?;
    let (yt, xt) = (y.value().clone(), x.value().clone());
    Ok(tape.record(
        out,
        &[y, x],
        Box::new(move |g| {
            let scaled = Tensor::scalar(g.to_scalar()? / frac).to_device(&g.device())?;
            let (dy, dx) = ops::l1_mean_backward(&yt, &xt, &scaled)?;
            Ok(vec![Some(dy), Some(dx)])
        }),
    ))
}

/// `mean (y - x)^2`.
pub fn mse_mean(tape: &Tape, y: &Var, x: &Var) -> Result<Var> {
    let out = ops::mse_mean(y.value(), x.value())?;
    let (yt, xt) = (y.value().clone(), x.value().clone());
    Ok(tape.record(
        out,
        &[y, x],
        Box::new(move |g| {
            let (dy, dx) = ops::mse_mean_backward(&yt, &xt, g)?;
            Ok(vec![Some(dy), Some(dx)])
        }),
    ))
}

/// Binary cross-entropy of probabilities `p` (after D's sigmoid) against `target`, mean.
pub fn bce_mean(tape: &Tape, p: &Var, target: &Tensor) -> Result<Var> {
    let out = ops::bce_mean(p.value(), target)?;
    let (pt, tt) = (p.value().clone(), target.clone());
    Ok(tape.record(
        out,
        &[p],
        Box::new(move |g| Ok(vec![Some(ops::bce_mean_backward(&pt, &tt, g)?)])),
    ))
}

/// `bce_mean` against a constant target (1 for "real", 0 for "fake").
pub fn bce_mean_with_value(tape: &Tape, p: &Var, target: f32) -> Result<Var> {
    let t = Tensor::full(target, p.shape()).to_device(&p.value().device())?;
    bce_mean(tape, p, &t)
}

/// Hinge term of the discriminator: `mean relu(1 - d)` (Real) or `mean relu(1 + d)` (Fake).
pub fn hinge_d(tape: &Tape, d: &Var, term: HingeTerm) -> Result<Var> {
    let out = ops::hinge_mean(d.value(), term)?;
    let dt = d.value().clone();
    Ok(tape.record(
        out,
        &[d],
        Box::new(move |g| Ok(vec![Some(ops::hinge_mean_backward(&dt, term, g)?)])),
    ))
}

/// Hinge generator loss `-mean(d_fake)`.
pub fn hinge_g(tape: &Tape, d_fake: &Var) -> Result<Var> {
    mean_scaled(tape, d_fake, -1.0)
}

/// `c * mean(x)`.
pub fn mean_scaled(tape: &Tape, x: &Var, c: f32) -> Result<Var> {
    let out = ops::mean_scaled(x.value(), c)?;
    let xt = x.value().clone();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::mean_scaled_backward(&xt, c, g)?)])),
    ))
}

/// Mean cross-entropy of logits `[..., C]` against u32 targets `[...]`, rows with target
/// `ignore_index` left out.
pub fn cross_entropy(
    tape: &Tape,
    logits: &Var,
    targets: &Tensor,
    ignore_index: u32,
) -> Result<Var> {
    let out = ce::cross_entropy(logits.value(), targets, ignore_index)?;
    let (lt, tt) = (logits.value().clone(), targets.clone());
    Ok(tape.record(
        out,
        &[logits],
        Box::new(move |g| {
            Ok(vec![Some(ce::cross_entropy_backward(
                &lt,
                &tt,
                None,
                ignore_index,
                g,
            )?)])
        }),
    ))
}

/// Spec §3.5: `sum_i w_i ce_i / (sum_i w_i + 1e-18)`, w = 1 at masked/partial positions.
pub fn cross_entropy_weighted(
    tape: &Tape,
    logits: &Var,
    targets: &Tensor,
    weights: &Tensor,
    ignore_index: u32,
) -> Result<Var> {
    let out = ce::cross_entropy_weighted(logits.value(), targets, weights, ignore_index)?;
    let (lt, tt, wt) = (logits.value().clone(), targets.clone(), weights.clone());
    Ok(tape.record(
        out,
        &[logits],
        Box::new(move |g| {
            Ok(vec![Some(ce::cross_entropy_backward(
                &lt,
                &tt,
                Some(&wt),
                ignore_index,
                g,
            )?)])
        }),
    ))
}

/// Gram matrix `[B, C, C]` of features `[B, C, H, W]`, divided by h*w*c.
pub fn gram(tape: &Tape, phi: &Var) -> Result<Var> {
    let out = img::gram(phi.value())?;
    let pt = phi.value().clone();
    Ok(tape.record(
        out,
        &[phi],
        Box::new(move |g| Ok(vec![Some(img::gram_backward(&pt, g)?)])),
    ))
}

/// Image-gradient loss L_G of NCHW y (output) and x (target).
pub fn image_grad_loss(tape: &Tape, y: &Var, x: &Var) -> Result<Var> {
    let out = img::image_grad_loss(y.value(), x.value())?;
    let (yt, xt) = (y.value().clone(), x.value().clone());
    Ok(tape.record(
        out,
        &[y, x],
        Box::new(move |g| {
            let (dy, dx) = img::image_grad_loss_backward(&yt, &xt, g)?;
            Ok(vec![Some(dy), Some(dx)])
        }),
    ))
}

/// `sum_k w_k L_k` of scalar losses (the weighted total of spec §6.2 / §6.4).
pub fn weighted_sum(tape: &Tape, terms: &[(&Var, f32)]) -> Result<Var> {
    let Some((first, _)) = terms.first() else {
        return Err(Error::msg("weighted_sum: no terms"));
    };
    let mut total = 0f64;
    for (v, w) in terms {
        if v.value().numel() != 1 {
            return Err(Error::shape(
                "weighted_sum",
                format!("term of shape {:?} is not a scalar", v.shape()),
            ));
        }
        total += *w as f64 * v.value().to_scalar()? as f64;
    }
    let device = first.value().device();
    let out = Tensor::scalar(total as f32).to_device(&device)?;
    let parts: Vec<(Vec<usize>, crate::Device, f32)> = terms
        .iter()
        .map(|(v, w)| (v.shape().to_vec(), v.value().device(), *w))
        .collect();
    let inputs: Vec<&Var> = terms.iter().map(|(v, _)| *v).collect();
    Ok(tape.record(
        out,
        &inputs,
        Box::new(move |g| {
            let gv = g.to_scalar()?;
            parts
                .iter()
                .map(|(shape, dev, w)| Ok(Some(Tensor::full(gv * w, shape).to_device(dev)?)))
                .collect()
        }),
    ))
}

/// Perceptual loss `sum_k mean|phi_k(y) - phi_k(x)|` over matching feature maps.
pub fn perceptual_loss(tape: &Tape, phi_y: &[Var], phi_x: &[Var]) -> Result<Var> {
    let terms = pairwise("perceptual_loss", phi_y, phi_x, |a, b| l1_mean(tape, a, b))?;
    let refs: Vec<(&Var, f32)> = terms.iter().map(|v| (v, 1.0)).collect();
    weighted_sum(tape, &refs)
}

/// Style loss `sum_k mean|G(phi_k(y)) - G(phi_k(x))|` (callers pass features of the
/// hole-masked images, spec §6.5).
pub fn style_loss(tape: &Tape, phi_y: &[Var], phi_x: &[Var]) -> Result<Var> {
    let terms = pairwise("style_loss", phi_y, phi_x, |a, b| {
        l1_mean(tape, &gram(tape, a)?, &gram(tape, b)?)
    })?;
    let refs: Vec<(&Var, f32)> = terms.iter().map(|v| (v, 1.0)).collect();
    weighted_sum(tape, &refs)
}

fn pairwise(
    op: &'static str,
    a: &[Var],
    b: &[Var],
    f: impl Fn(&Var, &Var) -> Result<Var>,
) -> Result<Vec<Var>> {
    if a.len() != b.len() || a.is_empty() {
        return Err(Error::shape(
            op,
            format!("{} feature maps for y vs {} for x", a.len(), b.len()),
        ));
    }
    a.iter().zip(b).map(|(p, q)| f(p, q)).collect()
}
