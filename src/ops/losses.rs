//! Tensor-level element-wise mean losses (spec §6.5): L1, MSE, binary cross-entropy on
//! probabilities, hinge terms, a scaled mean, and the hole fraction that normalises L1.
//! Inputs are f32 tensors of any (equal) shape; every loss is a scalar tensor (shape `[]`).
//! Backward functions take the loss's output gradient `g` (a one-element tensor) and return
//! gradients shaped like the inputs.
//! On a CUDA device every loss runs `cuda::ops::losses::loss_mean` (a two-pass f64 sum, like the
//! CPU's) and stays on the device; the backward reads g from the device (a CPU g is uploaded),
//! so no value makes a host round trip except `hole_fraction`, which returns an f32.

use super::argcheck::{expect_f32, expect_same_device, expect_same_shape};
use crate::cpu::ops::losses as cpu;
use crate::cuda::ops::losses::{self as cuda, LossKind};
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
    grad_numel(op, g)?;
    g.to_scalar()
}

/// The one-element output gradient `g` as a dense tensor on the device of `like` (a CUDA
/// tensor): uploaded when it is on the CPU (a caller's constant), an error on another device.
pub(crate) fn device_grad(op: &'static str, g: &Tensor, like: &Tensor) -> Result<Tensor> {
    grad_numel(op, g)?;
    if super::is_cpu(g) {
        return g.to_device(&like.device());
    }
    expect_same_device(op, &[like, g])?;
    g.contiguous()
}

fn grad_numel(op: &'static str, g: &Tensor) -> Result<()> {
    if g.numel() == 1 {
        return Ok(());
    }
    Err(Error::shape(
        op,
        format!(
            "gradient of a scalar loss must have one element, got {:?}",
            g.shape()
        ),
    ))
}

/// `loss_mean(kind)` of dense device tensors a (and b): a scalar tensor on the device.
fn cuda_mean(kind: LossKind, a: &Tensor, b: Option<&Tensor>, sign: f32, c: f32) -> Result<Tensor> {
    let bs = b.map(|b| b.cuda_dense()).transpose()?;
    let out = cuda::loss_mean(kind, a.cuda_dense()?, bs, a.numel(), sign, c)?;
    Tensor::from_cuda(out, &[])
}

/// The gradients of `cuda_mean(kind, a, b, sign, c)` times g: (d/da, d/db for L1 / MSE).
fn cuda_backward(
    op: &'static str,
    kind: LossKind,
    (a, b): (&Tensor, Option<&Tensor>),
    g: &Tensor,
    sign: f32,
    c: f32,
) -> Result<(Tensor, Option<Tensor>)> {
    let g = device_grad(op, g, a)?;
    let bs = b.map(|b| b.cuda_dense()).transpose()?;
    let (da, db) = cuda::loss_mean_bwd(
        kind,
        a.cuda_dense()?,
        bs,
        g.cuda_dense()?,
        a.numel(),
        sign,
        c,
    )?;
    let db = db.map(|d| Tensor::from_cuda(d, a.shape())).transpose()?;
    Ok((Tensor::from_cuda(da, a.shape())?, db))
}

/// (d/da, d/db) of a paired loss on the device, both present.
fn cuda_pair_backward(
    op: &'static str,
    kind: LossKind,
    a: &Tensor,
    b: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    match cuda_backward(op, kind, (a, Some(b)), g, 0.0, 1.0)? {
        (da, Some(db)) => Ok((da, db)),
        (_, None) => Err(Error::msg(format!(
            "{op}: the CUDA backward returned no second gradient"
        ))),
    }
}

/// `mean|y - x|`.
pub fn l1_mean(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (y, x) = pair("l1_mean", "y", y, "x", x)?;
    match y.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu::l1_mean_fast(
            y.cpu_f32()?,
            x.cpu_f32()?,
        ))),
        Storage::Cuda(_) => cuda_mean(LossKind::L1, &y, Some(&x), 0.0, 1.0),
    }
}

/// (d/dy, d/dx) of `mean|y - x|` times g.
pub fn l1_mean_backward(y: &Tensor, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "l1_mean_backward";
    let (y, x) = pair(OP, "y", y, "x", x)?;
    if !super::is_cpu(&y) {
        return cuda_pair_backward(OP, LossKind::L1, &y, &x, g);
    }
    let (ys, xs) = (y.cpu_f32()?, x.cpu_f32()?);
    let (mut dy, mut dx) = (vec![0f32; ys.len()], vec![0f32; ys.len()]);
    cpu::l1_mean_backward(ys, xs, grad_value(OP, g)?, &mut dy, &mut dx);
    Ok((
        Tensor::from_vec(dy, y.shape())?,
        Tensor::from_vec(dx, y.shape())?,
    ))
}

/// `mean (y - x)^2`.
pub fn mse_mean(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (y, x) = pair("mse_mean", "y", y, "x", x)?;
    match y.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu::mse_mean_fast(
            y.cpu_f32()?,
            x.cpu_f32()?,
        ))),
        Storage::Cuda(_) => cuda_mean(LossKind::Mse, &y, Some(&x), 0.0, 1.0),
    }
}

/// (d/dy, d/dx) of `mean (y - x)^2` times g.
pub fn mse_mean_backward(y: &Tensor, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "mse_mean_backward";
    let (y, x) = pair(OP, "y", y, "x", x)?;
    if !super::is_cpu(&y) {
        return cuda_pair_backward(OP, LossKind::Mse, &y, &x, g);
    }
    let (ys, xs) = (y.cpu_f32()?, x.cpu_f32()?);
    let (mut dy, mut dx) = (vec![0f32; ys.len()], vec![0f32; ys.len()]);
    cpu::mse_mean_backward(ys, xs, grad_value(OP, g)?, &mut dy, &mut dx);
    Ok((
        Tensor::from_vec(dy, y.shape())?,
        Tensor::from_vec(dx, y.shape())?,
    ))
}

/// Binary cross-entropy of probabilities `p` against targets `t` (PyTorch's
/// `binary_cross_entropy`, logs clamped to >= -100), mean.
pub fn bce_mean(p: &Tensor, t: &Tensor) -> Result<Tensor> {
    let (p, t) = pair("bce_mean", "p", p, "target", t)?;
    match p.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu::bce_mean_fast(
            p.cpu_f32()?,
            t.cpu_f32()?,
        ))),
        Storage::Cuda(_) => cuda_mean(LossKind::Bce, &p, Some(&t), 0.0, 1.0),
    }
}

/// d/dp of the mean BCE times g (the target gets no gradient).
pub fn bce_mean_backward(p: &Tensor, t: &Tensor, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "bce_mean_backward";
    let (p, t) = pair(OP, "p", p, "target", t)?;
    if !super::is_cpu(&p) {
        return Ok(cuda_backward(OP, LossKind::Bce, (&p, Some(&t)), g, 0.0, 1.0)?.0);
    }
    let (ps, ts) = (p.cpu_f32()?, t.cpu_f32()?);
    let mut dp = vec![0f32; ps.len()];
    cpu::bce_mean_backward(ps, ts, grad_value(OP, g)?, &mut dp);
    Tensor::from_vec(dp, p.shape())
}

/// One f32 input, dense.
fn single(op: &'static str, x: &Tensor) -> Result<Tensor> {
    expect_f32(op, x)?;
    x.contiguous()
}

/// Hinge term `mean relu(1 -+ d)` of discriminator outputs.
pub fn hinge_mean(d: &Tensor, term: HingeTerm) -> Result<Tensor> {
    let d = single("hinge_mean", d)?;
    match d.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu::hinge_mean_fast(
            d.cpu_f32()?,
            term.sign(),
        ))),
        Storage::Cuda(_) => cuda_mean(LossKind::Hinge, &d, None, term.sign(), 1.0),
    }
}

/// d/dd of the hinge term times g.
pub fn hinge_mean_backward(d: &Tensor, term: HingeTerm, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "hinge_mean_backward";
    let d = single(OP, d)?;
    if !super::is_cpu(&d) {
        return Ok(cuda_backward(OP, LossKind::Hinge, (&d, None), g, term.sign(), 1.0)?.0);
    }
    let ds = d.cpu_f32()?;
    let mut dd = vec![0f32; ds.len()];
    cpu::hinge_mean_backward(ds, term.sign(), grad_value(OP, g)?, &mut dd);
    Tensor::from_vec(dd, d.shape())
}

/// `c * mean(x)` (the hinge generator loss is `mean_scaled(d_fake, -1)`).
pub fn mean_scaled(x: &Tensor, c: f32) -> Result<Tensor> {
    let x = single("mean_scaled", x)?;
    match x.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu::mean_scaled_fast(x.cpu_f32()?, c))),
        Storage::Cuda(_) => cuda_mean(LossKind::ScaledMean, &x, None, 0.0, c),
    }
}

/// d/dx of `c * mean(x)` times g: the constant `g c / n`.
pub fn mean_scaled_backward(x: &Tensor, c: f32, g: &Tensor) -> Result<Tensor> {
    const OP: &str = "mean_scaled_backward";
    let x = single(OP, x)?;
    if !super::is_cpu(&x) {
        return Ok(cuda_backward(OP, LossKind::ScaledMean, (&x, None), g, 0.0, c)?.0);
    }
    let mut dx = vec![0f32; x.numel()];
    cpu::mean_scaled_backward(x.numel(), c, grad_value(OP, g)?, &mut dx);
    Tensor::from_vec(dx, x.shape())
}

/// `mean(1 - mask)` of a visibility mask (1 = visible, 0 = hole; spec §0), the divisor of the
/// hole-normalised L1. Err when the mask has no hole pixel (the loss would be undefined). On a
/// CUDA device the mean is summed there and one f32 comes back (the caller needs a host value).
pub fn hole_fraction(mask: &Tensor) -> Result<f32> {
    let m = single("hole_fraction", mask)?;
    let frac = match m.storage() {
        Storage::Cpu(_) => cpu::hole_fraction(m.cpu_f32()?),
        Storage::Cuda(_) => {
            cuda_mean(LossKind::HoleFraction, &m, None, 0.0, 1.0)?.to_scalar()? as f64
        }
    };
    if frac.is_nan() || frac <= 0.0 {
        return Err(Error::msg(format!(
            "hole_fraction: the mask {:?} has no hole pixel; L1n is undefined",
            mask.shape()
        )));
    }
    Ok(frac as f32)
}
