//! Tensor-level optimiser ops (spec §6.0-§6.1): one Adam/AdamW update returning the new
//! parameter and moments, squared norm and scaling for gradient clipping, the weight EMA and
//! gradient accumulation. Tensors are immutable values here, so each op returns new tensors.
//! The CUDA kernels update their buffers in place (`cuda::ops::optim`); so that no caller's tensor
//! changes under it (a parameter, moment or gradient may be shared, e.g. by the autograd tape or
//! by an accumulator that took a gradient as its first sum), the device arms update a fresh copy
//! (one device-to-device copy per updated tensor) and return it, as the CPU arms return new vectors.

use super::argcheck::{expect_f32, expect_same_device, expect_same_shape};
use crate::cpu::ops::optim as cpu;
use crate::cuda::ops::elementwise::strided_copy;
use crate::cuda::ops::optim as cuda;
use crate::error::{Error, Result};
use crate::params::optim::AdamParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// f32 inputs of one shape on one device.
fn same(op: &'static str, names: &[&str], ts: &[&Tensor]) -> Result<()> {
    for (t, name) in ts.iter().zip(names) {
        expect_f32(op, t)?;
        expect_same_shape(op, names[0], ts[0], name, t)?;
    }
    expect_same_device(op, ts)
}

/// A dense copy of the CUDA tensor `t` in a new device buffer that nothing else holds, for a
/// kernel to update in place.
pub(crate) fn device_copy(t: &Tensor) -> Result<Tensor> {
    if !t.is_dense() {
        // A strided view is gathered into a new buffer already.
        return t.contiguous();
    }
    let n = t.numel();
    Tensor::from_cuda(strided_copy(t.cuda_dense()?, &[n], &[1], 0)?, t.shape())
}

/// One Adam/AdamW update; returns (param, m, v) after the step.
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    p: &AdamParams,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "adam_step";
    same(
        OP,
        &["param", "grad", "exp_avg", "exp_avg_sq"],
        &[param, grad, m, v],
    )?;
    if p.n as usize != param.numel() {
        return Err(Error::shape(
            OP,
            format!(
                "params built for {} elements, param has {}",
                p.n,
                param.numel()
            ),
        ));
    }
    match param.storage() {
        Storage::Cpu(_) => {
            let (mut pv, mut mv, mut vv) = (param.to_vec_f32()?, m.to_vec_f32()?, v.to_vec_f32()?);
            let g = grad.contiguous()?;
            cpu::adam_step_fast(p, &mut pv, g.cpu_f32()?, &mut mv, &mut vv);
            let s = param.shape();
            Ok((
                Tensor::from_vec(pv, s)?,
                Tensor::from_vec(mv, s)?,
                Tensor::from_vec(vv, s)?,
            ))
        }
        Storage::Cuda(_) => {
            let (pv, mv, vv) = (device_copy(param)?, device_copy(m)?, device_copy(v)?);
            let g = grad.contiguous()?;
            cuda::adam_step(
                pv.cuda_dense()?,
                g.cuda_dense()?,
                mv.cuda_dense()?,
                vv.cuda_dense()?,
                p,
            )?;
            Ok((pv, mv, vv))
        }
    }
}

/// Sum of squares of the elements (f64).
pub fn sq_norm(t: &Tensor) -> Result<f64> {
    expect_f32("sq_norm", t)?;
    let t = t.contiguous()?;
    match t.storage() {
        Storage::Cpu(_) => Ok(cpu::sq_norm_fast(t.cpu_f32()?)),
        Storage::Cuda(_) => cuda::sq_norm(t.cuda_dense()?, t.numel()),
    }
}

/// Sums of squares of several tensors (f64 each). Tensors on one CUDA device are reduced there
/// with a single read-back for all of them.
pub fn sq_norms(ts: &[&Tensor]) -> Result<Vec<f64>> {
    let dense = ts.iter().map(|t| expect_f32("sq_norm", t).and_then(|_| t.contiguous())).collect::<Result<Vec<_>>>()?;
    let on_device: Vec<(&crate::cuda::CudaStorage, usize)> = dense.iter().filter_map(|t| t.cuda_dense().ok().map(|s| (s, t.numel()))).collect();
    let one_device = on_device.len() == dense.len() && on_device.windows(2).all(|w| w[0].0.device().same_as(w[1].0.device()));
    if one_device {
        return cuda::sq_norms(&on_device);
    }
    dense.iter().map(sq_norm).collect()
}

/// t * s.
pub fn scale(t: &Tensor, s: f32) -> Result<Tensor> {
    expect_f32("scale", t)?;
    match t.storage() {
        Storage::Cpu(_) => {
            let mut v = t.to_vec_f32()?;
            cpu::scale_in_place(&mut v, s);
            Tensor::from_vec(v, t.shape())
        }
        Storage::Cuda(_) => {
            let out = device_copy(t)?;
            cuda::scale(out.cuda_dense()?, out.numel(), s)?;
            Ok(out)
        }
    }
}

/// decay * ema + (1 - decay) * param.
pub fn ema_update(ema: &Tensor, param: &Tensor, decay: f32) -> Result<Tensor> {
    same("ema_update", &["ema", "param"], &[ema, param])?;
    match ema.storage() {
        Storage::Cpu(_) => {
            let mut e = ema.to_vec_f32()?;
            let p = param.contiguous()?;
            cpu::ema_update(&mut e, p.cpu_f32()?, decay);
            Tensor::from_vec(e, ema.shape())
        }
        Storage::Cuda(_) => {
            let (out, p) = (device_copy(ema)?, param.contiguous()?);
            cuda::ema_update(out.cuda_dense()?, p.cuda_dense()?, out.numel(), decay)?;
            Ok(out)
        }
    }
}

/// acc + g.
pub fn accumulate(acc: &Tensor, g: &Tensor) -> Result<Tensor> {
    same("accumulate", &["accumulator", "gradient"], &[acc, g])?;
    match acc.storage() {
        Storage::Cpu(_) => {
            let mut a = acc.to_vec_f32()?;
            let g = g.contiguous()?;
            cpu::accumulate(&mut a, g.cpu_f32()?);
            Tensor::from_vec(a, acc.shape())
        }
        Storage::Cuda(_) => {
            let (out, g) = (device_copy(acc)?, g.contiguous()?);
            cuda::accumulate(out.cuda_dense()?, g.cuda_dense()?, out.numel())?;
            Ok(out)
        }
    }
}
