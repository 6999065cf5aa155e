//! Tensor-level image losses of spec §6.5 that are not element-wise: the Gram matrix
//! `G = phi phi^T / (h*w*c)` of NCHW features `[B, C, H, W]` -> `[B, C, C]` (the style loss is
//! `l1_mean(gram(phi(y*h)), gram(phi(x*h)))` summed over layers), and the image-gradient loss
//! L_G of two NCHW images (a scalar).
//!
//! CUDA: there is no dedicated kernel for these (they run once per training step on VGG
//! features or on the output image, never in the sampler), so the device arms compose ops that
//! have kernels, with the CPU loops' semantics: the Gram matrix is one batched GEMM of phi
//! `[B, C, HW]` with its transposed view, then a scale by `1 / (h*w*c)`; its backward is
//! `((dG + dG^T) / (h*w*c)) phi`. L_G takes the neighbour differences with `narrow` + `sub`,
//! `mean_scaled` of `||d(y)| - |d(x)||` with `c = n_pairs / (2N)` per direction (the CPU's mean
//! over all N elements, the padded zero row / column included), and its backward chains the L1,
//! `abs` and `narrow` backwards (`sign(0) = 0` in both, as the CPU's `pair_backward`).

use super::argcheck::{expect_f32, expect_rank, expect_same_device, expect_same_shape};
use super::binary::{add, sub};
use super::concat::narrow_backward;
use super::losses::{self, device_grad, grad_value};
use super::matmul::matmul;
use super::unary::{abs, mul_scalar, unary_backward};
use crate::cpu::ops::{gram as cpu_gram, image_grad as cpu_grad};
use crate::error::{Error, Result};
use crate::params::losses::{GramParams, ImageGradParams};
use crate::params::unary::UnaryOp;
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
        Storage::Cuda(_) => {
            let (b, c, hw) = (p.batch as usize, p.channels as usize, p.hw as usize);
            let f = phi.reshape(&[b, c, hw])?;
            let g = matmul(&f, &f.transpose(1, 2)?)?;
            mul_scalar(&g, (1.0 / gram_norm(&p)) as f32)
        }
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
        Storage::Cuda(_) => {
            let sym = add(&dg, &dg.transpose(1, 2)?)?;
            let coef = mul_scalar(&sym, (1.0 / gram_norm(&p)) as f32)?;
            let f = phi.reshape(&[b, c, p.hw as usize])?;
            matmul(&coef, &f)?.reshape(phi.shape())
        }
    }
}

/// The Gram matrix's divisor h*w*c.
fn gram_norm(p: &GramParams) -> f64 {
    p.hw as f64 * p.channels as f64
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
        Storage::Cuda(_) => image_grad_loss_cuda(&p, &y, &x),
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
        Storage::Cuda(_) => image_grad_loss_backward_cuda(&p, &y, &x, &device_grad(OP, g, &y)?),
    }
}

/// The dims of NCHW along which L_G takes differences (width, then height) that have a pair.
fn pair_dims(p: &ImageGradParams) -> impl Iterator<Item = usize> {
    let (h, w) = (p.height, p.width);
    [(3, w), (2, h)]
        .into_iter()
        .filter(|&(_, n)| n >= 2)
        .map(|(d, _)| d)
}

/// `a[.., i+1, ..] - a[.., i, ..]` along `dim` (one shorter there).
fn neighbour_diff(a: &Tensor, dim: usize) -> Result<Tensor> {
    let n = a.shape()[dim] - 1;
    sub(&a.narrow(dim, 1, n)?, &a.narrow(dim, 0, n)?)
}

/// `c` of the `mean_scaled` term of `pairs` differences: their sum over the 2N of L_G.
fn term_scale(p: &ImageGradParams, pairs: usize) -> f32 {
    (pairs as f64 / (2.0 * p.numel() as f64)) as f32
}

/// L_G on a CUDA device (see the file comment).
fn image_grad_loss_cuda(p: &ImageGradParams, y: &Tensor, x: &Tensor) -> Result<Tensor> {
    let dev = y.device();
    if p.numel() == 0 {
        return Tensor::scalar(f32::NAN).to_device(&dev); // mean of nothing, as the CPU
    }
    let mut total: Option<Tensor> = None;
    for dim in pair_dims(p) {
        let (dy, dx) = (neighbour_diff(y, dim)?, neighbour_diff(x, dim)?);
        let r = abs(&sub(&abs(&dy)?, &abs(&dx)?)?)?;
        let term = losses::mean_scaled(&r, term_scale(p, r.numel()))?;
        total = Some(match total {
            Some(t) => add(&t, &term)?,
            None => term,
        });
    }
    match total {
        Some(t) => Ok(t),
        None => Tensor::scalar(0.0).to_device(&dev), // 1 x 1 planes: no pair
    }
}

/// (d/dy, d/dx) of L_G on a CUDA device, g a one-element device tensor.
fn image_grad_loss_backward_cuda(
    p: &ImageGradParams,
    y: &Tensor,
    x: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let full = y.shape();
    let zeros = Tensor::zeros(full).to_device(&y.device())?;
    let (mut gy, mut gx) = (zeros.clone(), zeros);
    if p.numel() == 0 {
        return Ok((gy, gx));
    }
    for dim in pair_dims(p) {
        let (dy, dx) = (neighbour_diff(y, dim)?, neighbour_diff(x, dim)?);
        let (ay, ax) = (abs(&dy)?, abs(&dx)?);
        // The term is c * mean|ay - ax|: the L1 backward with the output gradient g c.
        let gc = mul_scalar(g, term_scale(p, ay.numel()))?;
        let (d_ay, d_ax) = losses::l1_mean_backward(&ay, &ax, &gc)?;
        let d_dy = unary_backward(UnaryOp::Abs, &dy, &ay, &d_ay, 0.0, 0.0)?;
        let d_dx = unary_backward(UnaryOp::Abs, &dx, &ax, &d_ax, 0.0, 0.0)?;
        // d = a[i+1] - a[i]: +grad at i+1, -grad at i.
        gy = scatter_pairs(&gy, &d_dy, full, dim)?;
        gx = scatter_pairs(&gx, &d_dx, full, dim)?;
    }
    Ok((gy, gx))
}

/// `acc + (d placed at i+1) - (d placed at i)` along `dim` of `full`.
fn scatter_pairs(acc: &Tensor, d: &Tensor, full: &[usize], dim: usize) -> Result<Tensor> {
    let later = narrow_backward(d, full, dim, 1)?;
    let earlier = narrow_backward(d, full, dim, 0)?;
    add(acc, &sub(&later, &earlier)?)
}
