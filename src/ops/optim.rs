//! Tensor-level optimiser ops (spec §6.0-§6.1): one Adam/AdamW update returning the new
//! parameter and moments, squared norm and scaling for gradient clipping, the weight EMA and
//! gradient accumulation. Tensors are immutable values here, so each op returns new tensors.

use super::argcheck::{expect_f32, expect_same_device, expect_same_shape};
use crate::cpu::ops::optim as cpu;
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
        Storage::Cuda(_) => Err(super::no_cuda_kernel(OP)),
    }
}

/// Sum of squares of the elements (f64).
pub fn sq_norm(t: &Tensor) -> Result<f64> {
    expect_f32("sq_norm", t)?;
    let t = t.contiguous()?;
    match t.storage() {
        Storage::Cpu(_) => Ok(cpu::sq_norm_fast(t.cpu_f32()?)),
        Storage::Cuda(_) => Err(super::no_cuda_kernel("sq_norm")),
    }
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
        Storage::Cuda(_) => Err(super::no_cuda_kernel("scale")),
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
        Storage::Cuda(_) => Err(super::no_cuda_kernel("ema_update")),
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
        Storage::Cuda(_) => Err(super::no_cuda_kernel("accumulate")),
    }
}
