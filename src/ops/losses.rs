//! Tensor-level element-wise mean losses (spec §6.5): L1, MSE, binary cross-entropy on
//! probabilities, hinge terms, a scaled mean, and the hole fraction that normalises L1.
//! Inputs are f32 tensors of any (equal) shape; every loss is a scalar tensor (shape `[]`).
//! Backward functions take the loss's output gradient `g` (a one-element tensor) and return
//! gradients shaped like the inputs.

use super::argcheck::{expect_f32, expect_same_device, expect_same_shape};
use crate::cpu::ops::losses as cpu;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Which hinge term: D on real data `mean relu(1 - d)`, or on fakes `mean relu(1 + d)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HingeTerm {
    Real,
    Fake,
}

impl HingeTerm {
    /// The sign s in `mean relu(1 + s d)`.
    pub fn sign(self) -> f32 {
        match self {
            HingeTerm::Real => -1.0,
            HingeTerm::Fake => 1.0,
        }
    }
}

/// Checks two same-shape f32 inputs on one device and makes them dense.
fn pair(
    op: &'static str,
    a_name: &str,
    a: &Tensor,
    b_name: &str,
    b: &Tensor,
) -> Result<(Tensor, Tensor)> {
    expect_f32(op, a)?;
    expect_f32(op, b)?;
    expect_same_shape(op, a_name, a, b_name, b)?;
    expect_same_device(op, &[a, b])?;
    Ok((a.contiguous()?, b.contiguous()?))
}

/// The value of a one-element output gradient.
pub(crate) fn grad_value(op: &'static str, g: &Tensor) -> Result<f32> {
    if g.numel() != 1 {
        return Err(Error::shape(
            op,
            format!(
                "gradient of a scalar loss must have one element, got {:?}",
                g.shape()
            ),
        ));
    }
    g.to_scalar()
}

/// A pair of CPU input slices, or the "no CUDA kernel" error.
fn cpu_pair<'a>(op: &'static str, a: &'a Tensor, b: &'a Tensor) -> Result<(&'a [f32], &'a [f32])> {
    match a.storage() {
        Storage::Cpu(_) => Ok((a.cpu_f32()?, b.cpu_f32()?)),
        Storage::Cuda(_) => Err(super::no_cuda_kernel(op)),
    }
}

/// `mean|y - x|`.
pub fn l1_mean(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (y, x) = pair("l1_mean", "y", y, "x", x)?;
    let (ys, xs) = cpu_pair("l1_mean", &y, &x)?;
    Ok(Tensor::scalar(cpu::l1_mean_fast(ys, xs)))
}

/// (d/dy, d/dx) of `mean|y - x|` times g.
pub fn l1_mean_backward(y: &Tensor, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    let (y, x) = pair("l1_mean_backward", "y", y, "x", x)?;
    let (ys, xs) = cpu_pair("l1_mean_backward", &y, &x)?;
    let (mut dy, mut dx) = (vec![0f32; ys.len()], vec![0f32; ys.len()]);
    cpu::l1_mean_backward(ys, xs, grad_value("l1_mean_backward", g)?, &mut dy, &mut dx);
    Ok((
        Tensor::from_vec(dy, y.shape())?,
        Tensor::from_vec(dx, y.shape())?,
    ))
}

/// `mean (y - x)^2`.
pub fn mse_mean(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (y, x) = pair("mse_mean", "y", y, "x", x)?;
    let (ys, xs) = cpu_pair("mse_mean", &y, &x)?;
    Ok(Tensor::scalar(cpu::mse_mean_fast(ys, xs)))
}

/// (d/dy, d/dx) of `mean (y - x)^2` times g.
pub fn mse_mean_backward(y: &Tensor, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    let (y, x) = pair("mse_mean_backward", "y", y, "x", x)?;
    let (ys, xs) = cpu_pair("mse_mean_backward", &y, &x)?;
    let (mut dy, mut dx) = (vec![0f32; ys.len()], vec![0f32; ys.len()]);
    cpu::mse_mean_backward(
        ys,
        xs,
        grad_value("mse_mean_backward", g)?,
        &mut dy,
        &mut dx,
    );
    Ok((
        Tensor::from_vec(dy, y.shape())?,
        Tensor::from_vec(dx, y.shape())?,
    ))
}

/// Binary cross-entropy of probabilities `p` against targets `t` (PyTorch's
/// `binary_cross_entropy`, logs clamped to >= -100), mean.
pub fn bce_mean(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let (p, t) = pair("bce_mean", "p", p, "target", t)?;
    let (ps, ts) = cpu_pair("bce_mean", &p, &t)?;
    Ok(Tensor::scalar(cpu::bce_mean_fast(ps, ts)))
}

/// d/dp of the mean BCE times g (the target gets no gradient).
pub fn bce_mean_backward(p: &Tensor, t: &Tensor, g: &Tensor) -> Result<Tensor> {
    let (p, t) = pair("bce_mean_backward", "p", p, "target", t)?;
    let (ps, ts) = cpu_pair("bce_mean_backward", &p, &t)?;
    let mut dp = vec![0f32; ps.len()];
    cpu::bce_mean_backward(ps, ts, grad_value("bce_mean_backward", g)?, &mut dp);
    Tensor::from_vec(dp, p.shape())
}

/// One f32 input, dense, and its CPU slice.
fn single<'a>(op: &'static str, x: &Tensor, keep: &'a mut Option<Tensor>) -> Result<&'a [f32]> {
    expect_f32(op, x)?;
    let t = keep.insert(x.contiguous()?);
    match t.storage() {
        Storage::Cpu(_) => t.cpu_f32(),
        Storage::Cuda(_) => Err(super::no_cuda_kernel(op)),
    }
}

/// Hinge term `mean relu(1 -+ d)` of discriminator outputs.
pub fn hinge_mean(d: &Tensor, term: HingeTerm) -> Result<Tensor> {
    let mut keep = None;
    let ds = single("hinge_mean", d, &mut keep)?;
    Ok(Tensor::scalar(cpu::hinge_mean_fast(ds, term.sign())))
}

/// d/dd of the hinge term times g.
pub fn hinge_mean_backward(d: &Tensor, term: HingeTerm, g: &Tensor) -> Result<Tensor> {
    let mut keep = None;
    let ds = single("hinge_mean_backward", d, &mut keep)?;
    let mut dd = vec![0f32; ds.len()];
    cpu::hinge_mean_backward(
        ds,
        term.sign(),
        grad_value("hinge_mean_backward", g)?,
        &mut dd,
    );
    Tensor::from_vec(dd, d.shape())
}

/// `c * mean(x)` (the hinge generator loss is `mean_scaled(d_fake, -1)`).
pub fn mean_scaled(x: &Tensor, c: f32) -> Result<Tensor> {
    let mut keep = None;
    let xs = single("mean_scaled", x, &mut keep)?;
    Ok(Tensor::scalar(cpu::mean_scaled_fast(xs, c)))
}

/// d/dx of `c * mean(x)` times g: the constant `g c / n`.
pub fn mean_scaled_backward(x: &Tensor, c: f32, g: &Tensor) -> Result<Tensor> {
    let mut keep = None;
    let xs = single("mean_scaled_backward", x, &mut keep)?;
    let mut dx = vec![0f32; xs.len()];
    cpu::mean_scaled_backward(xs.len(), c, grad_value("mean_scaled_backward", g)?, &mut dx);
    Tensor::from_vec(dx, x.shape())
}

/// `mean(1 - mask)` of a visibility mask (1 = visible, 0 = hole; spec §0), the divisor of the
/// hole-normalised L1. Err when the mask has no hole pixel (the loss would be undefined).
pub fn hole_fraction(mask: &Tensor) -> Result<f32> {
    let mut keep = None;
    let ms = single("hole_fraction", mask, &mut keep)?;
    let frac = cpu::hole_fraction(ms);
    if frac.is_nan() || frac <= 0.0 {
        return Err(Error::msg(format!(
            "hole_fraction: the mask {:?} has no hole pixel; L1n is undefined",
            mask.shape()
        )));
    }
    Ok(frac as f32)
}
