//! Tensor-level image losses of spec §6.5 that are not element-wise: the Gram matrix
//! `G = phi phi^T / (h*w*c)` of NCHW features `[B, C, H, W]` -> `[B, C, C]` (the style loss is
//! `l1_mean(gram(phi(y*h)), gram(phi(x*h)))` summed over layers), and the image-gradient loss
//! L_G of two NCHW images (a scalar).

use super::argcheck::{expect_f32, expect_rank, expect_same_device, expect_same_shape};
use super::losses::grad_value;
use crate::cpu::ops::{gram as cpu_gram, image_grad as cpu_grad};
use crate::error::{Error, Result};
use crate::params::losses::{GramParams, ImageGradParams};
use crate::storage::Storage;
use crate::tensor::Tensor;

fn gram_params(op: &'static str, phi: &Tensor) -> Result<GramParams> {
    expect_f32(op, phi)?;
    expect_rank(op, "features", phi, 4)?;
    let s = phi.shape();
    Ok(GramParams {
        batch: s[0] as u32,
        channels: s[1] as u32,
        hw: (s[2] * s[3]) as u32,
    })
}

/// `G_b = phi_b phi_b^T / (h*w*c)` for phi `[B, C, H, W]`; out `[B, C, C]`.
pub fn gram(phi: &Tensor) -> Result<Tensor> {
    let p = gram_params("gram", phi)?;
    let phi = phi.contiguous()?;
    match phi.storage() {
        Storage::Cpu(_) => {
            let (b, c) = (p.batch as usize, p.channels as usize);
            let mut out = vec![0f32; b * c * c];
            cpu_gram::gram_fast(&p, phi.cpu_f32()?, &mut out);
            Tensor::from_vec(out, &[b, c, c])
        }
        Storage::Cuda(_) => Err(super::no_cuda_kernel("gram")),
    }
}

/// d/dphi of the Gram matrix given dG `[B, C, C]`.
pub fn gram_backward(phi: &Tensor, dg: &Tensor) -> Result<Tensor> {
    const OP: &str = "gram_backward";
    let p = gram_params(OP, phi)?;
    let (b, c) = (p.batch as usize, p.channels as usize);
    expect_f32(OP, dg)?;
    if dg.shape() != [b, c, c] {
        return Err(Error::shape(
            OP,
            format!("dG {:?} must be [{b}, {c}, {c}]", dg.shape()),
        ));
    }
    expect_same_device(OP, &[phi, dg])?;
    let (phi, dg) = (phi.contiguous()?, dg.contiguous()?);
    match phi.storage() {
        Storage::Cpu(_) => {
            let mut d = vec![0f32; phi.numel()];
            cpu_gram::gram_backward_fast(&p, phi.cpu_f32()?, dg.cpu_f32()?, &mut d);
            Tensor::from_vec(d, phi.shape())
        }
        Storage::Cuda(_) => Err(super::no_cuda_kernel(OP)),
    }
}

fn grad_params(op: &'static str, y: &Tensor, x: &Tensor) -> Result<ImageGradParams> {
    expect_f32(op, y)?;
    expect_f32(op, x)?;
    expect_rank(op, "y", y, 4)?;
    expect_same_shape(op, "y", y, "x", x)?;
    expect_same_device(op, &[y, x])?;
    let s = y.shape();
    Ok(ImageGradParams {
        batch: s[0] as u32,
        channels: s[1] as u32,
        height: s[2] as u32,
        width: s[3] as u32,
    })
}

/// L_G = (mean|gx(y) - gx(x)| + mean|gy(y) - gy(x)|) / 2 for NCHW y (output) and x (target).
pub fn image_grad_loss(y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let p = grad_params("image_grad_loss", y, x)?;
    let (y, x) = (y.contiguous()?, x.contiguous()?);
    match y.storage() {
        Storage::Cpu(_) => Ok(Tensor::scalar(cpu_grad::image_grad_loss_fast(
            &p,
            y.cpu_f32()?,
            x.cpu_f32()?,
        ))),
        Storage::Cuda(_) => Err(super::no_cuda_kernel("image_grad_loss")),
    }
}

/// (d/dy, d/dx) of L_G times g.
pub fn image_grad_loss_backward(y: &Tensor, x: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "image_grad_loss_backward";
    let p = grad_params(OP, y, x)?;
    let (y, x) = (y.contiguous()?, x.contiguous()?);
    match y.storage() {
        Storage::Cpu(_) => {
            let (mut dy, mut dx) = (vec![0f32; p.numel()], vec![0f32; p.numel()]);
            cpu_grad::image_grad_loss_backward(
                &p,
                y.cpu_f32()?,
                x.cpu_f32()?,
                grad_value(OP, g)?,
                &mut dy,
                &mut dx,
            );
            Ok((
                Tensor::from_vec(dy, y.shape())?,
                Tensor::from_vec(dx, y.shape())?,
            ))
        }
        Storage::Cuda(_) => Err(super::no_cuda_kernel(OP)),
    }
}
