//! Reductions on f32 tensors: `sum`, `mean`, `max`, `min` over a list of dims (with or without
//! keeping them as size 1), over all elements (`*_all`, shape `[]`), `argmax`/`argmin` over the
//! last dim (u32, ties -> lowest index), `sum_to_shape` (the gradient of a broadcast: sums a
//! gradient back to an input's shape), and the backward helpers `expand_reduced` (sum/mean) and
//! `extreme_backward` (max/min: the whole gradient goes to the first extreme element of each
//! reduced group, row-major over the reduced dims; ties are not split).
//!
//! Every reduction becomes `x [outer, reduce, inner] -> [outer, inner]` (params/reduce.rs):
//! directly when the reduced dims are adjacent, otherwise after permuting them to the end.
//! An empty dim list reduces nothing (the result equals the input).

use super::prep::{check_u32_len, dense_f32};
use crate::cpu::ops::reduce as cpu;
use crate::cuda::ops::reduce as cuda;
use crate::error::{Error, Result};
use crate::params::reduce::{ArgReduceOp, ArgReduceParams, ReduceOp, ReduceParams};
use crate::shape::{broadcast_shape, numel};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// How one reduction maps onto `[outer, reduce, inner]`.
struct Plan {
    /// Permutation to apply first (reduced dims moved last) when they are not adjacent.
    perm: Option<Vec<usize>>,
    outer: usize,
    reduce: usize,
    inner: usize,
    /// Output shape with reduced dims kept as 1, and with them removed.
    keep_shape: Vec<usize>,
    drop_shape: Vec<usize>,
}

/// Sorted, de-duplicated and range-checked reduction dims.
fn check_dims(op: &'static str, rank: usize, dims: &[usize]) -> Result<Vec<usize>> {
    let mut d = dims.to_vec();
    d.sort_unstable();
    if let Some(&bad) = d.iter().find(|&&x| x >= rank) {
        return Err(Error::shape(
            op,
            format!("dim {bad} out of range for rank {rank}"),
        ));
    }
    if d.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::shape(op, format!("dims {dims:?} repeat a dim")));
    }
    Ok(d)
}

fn plan(op: &'static str, shape: &[usize], dims: &[usize]) -> Result<Plan> {
    let d = check_dims(op, shape.len(), dims)?;
    let reduced = |i: usize| d.binary_search(&i).is_ok();
    let keep_shape: Vec<usize> = (0..shape.len())
        .map(|i| if reduced(i) { 1 } else { shape[i] })
        .collect();
    let drop_shape: Vec<usize> = (0..shape.len())
        .filter(|&i| !reduced(i))
        .map(|i| shape[i])
        .collect();
    let reduce = d.iter().map(|&i| shape[i]).product();
    let adjacent = d.is_empty() || d[d.len() - 1] - d[0] + 1 == d.len();
    let (perm, outer, inner) = if adjacent {
        let (first, last) = if d.is_empty() {
            (shape.len(), shape.len())
        } else {
            (d[0], d[d.len() - 1] + 1)
        };
        (None, numel(&shape[..first]), numel(&shape[last..]))
    } else {
        let kept: Vec<usize> = (0..shape.len()).filter(|&i| !reduced(i)).collect();
        let outer = kept.iter().map(|&i| shape[i]).product();
        (
            Some(kept.into_iter().chain(d.iter().copied()).collect()),
            outer,
            1,
        )
    };
    check_u32_len(op, numel(shape))?;
    Ok(Plan {
        perm,
        outer,
        reduce,
        inner,
        keep_shape,
        drop_shape,
    })
}

/// `x` dense f32, permuted per the plan so the reduced dims form the middle block.
fn arranged(op: &'static str, x: &Tensor, plan: &Plan) -> Result<Tensor> {
    let x = dense_f32(op, x)?;
    match &plan.perm {
        Some(perm) => x.permute(perm)?.contiguous(),
        None => Ok(x),
    }
}

fn reduce(op: ReduceOp, x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    let name = op.name();
    let plan = plan(name, x.shape(), dims)?;
    let out_shape = if keepdim {
        &plan.keep_shape
    } else {
        &plan.drop_shape
    };
    if plan.reduce == 0 {
        return match op {
            ReduceOp::Sum => Tensor::zeros(out_shape).to_device(&x.device()),
            ReduceOp::Mean => Tensor::full(f32::NAN, out_shape).to_device(&x.device()),
            _ => Err(Error::shape(
                name,
                format!("reduction over an empty dim of {:?}", x.shape()),
            )),
        };
    }
    let xa = arranged(name, x, &plan)?;
    let p = ReduceParams::new(op, plan.outer, plan.reduce, plan.inner);
    match xa.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0f32; plan.outer * plan.inner];
            cpu::reduce_fast(&p, xa.cpu_f32()?, &mut out);
            Tensor::from_vec(out, out_shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::reduce(xa.cuda_dense()?, &p)?, out_shape),
    }
}

/// Sum over `dims` (f64 accumulation).
pub fn sum(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce(ReduceOp::Sum, x, dims, keepdim)
}
/// Mean over `dims` (NaN for an empty reduction, as PyTorch).
pub fn mean(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce(ReduceOp::Mean, x, dims, keepdim)
}
/// Maximum over `dims` (a NaN in a group makes that group NaN).
pub fn max(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce(ReduceOp::Max, x, dims, keepdim)
}
/// Minimum over `dims`.
pub fn min(x: &Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    reduce(ReduceOp::Min, x, dims, keepdim)
}

fn all_dims(x: &Tensor) -> Vec<usize> {
    (0..x.rank()).collect()
}
/// Sum of all elements, shape `[]`.
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    sum(x, &all_dims(x), false)
}
/// Mean of all elements, shape `[]`.
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    mean(x, &all_dims(x), false)
}
/// Maximum of all elements, shape `[]`.
pub fn max_all(x: &Tensor) -> Result<Tensor> {
    max(x, &all_dims(x), false)
}
/// Minimum of all elements, shape `[]`.
pub fn min_all(x: &Tensor) -> Result<Tensor> {
    min(x, &all_dims(x), false)
}

fn arg_reduce(op: ArgReduceOp, name: &'static str, x: &Tensor) -> Result<Tensor> {
    let Some((&len, lead)) = x.shape().split_last() else {
        return Err(Error::shape(name, "needs a tensor of rank >= 1"));
    };
    if len == 0 {
        return Err(Error::shape(
            name,
            format!("last dim of {:?} is empty", x.shape()),
        ));
    }
    let x = dense_f32(name, x)?;
    check_u32_len(name, x.numel())?;
    let p = ArgReduceParams::new(op, numel(lead), len);
    match x.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0u32; numel(lead)];
            cpu::argreduce_fast(&p, x.cpu_f32()?, &mut out);
            Tensor::from_u32(out, lead)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::argreduce(x.cuda_dense()?, &p)?, lead),
    }
}

/// Index (u32) of the maximum over the last dim; ties -> lowest index; a NaN counts as the max.
pub fn argmax(x: &Tensor) -> Result<Tensor> {
    arg_reduce(ArgReduceOp::ArgMax, "argmax", x)
}
/// Index (u32) of the minimum over the last dim; ties -> lowest index; a NaN counts as the min.
pub fn argmin(x: &Tensor) -> Result<Tensor> {
    arg_reduce(ArgReduceOp::ArgMin, "argmin", x)
}

/// Sum a gradient of the broadcast shape back to `shape` (the shape of an input that was
/// broadcast): sums the leading dims `shape` lacks and every dim where `shape` has 1.
/// An error when `shape` does not broadcast to `grad`'s shape.
pub fn sum_to_shape(grad: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    let fits = shape.len() <= grad.rank()
        && broadcast_shape("sum_to_shape", shape, grad.shape())? == grad.shape();
    if !fits {
        return Err(Error::shape(
            "sum_to_shape",
            format!(
                "{shape:?} does not broadcast to gradient {:?}",
                grad.shape()
            ),
        ));
    }
    let lead = grad.rank() - shape.len();
    let dims: Vec<usize> = (0..grad.rank())
        .filter(|&i| i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1))
        .collect();
    sum(grad, &dims, true)?.reshape(shape)
}

/// Backward of `sum` / `mean` over `dims`: the output gradient `g` (with or without the reduced
/// dims kept) broadcast back to `in_shape`, times `scale` (1 for sum, 1/count for mean).
pub fn expand_reduced(
    g: &Tensor,
    in_shape: &[usize],
    dims: &[usize],
    scale: f32,
) -> Result<Tensor> {
    let plan = plan("reduce backward", in_shape, dims)?;
    if g.numel() != numel(&plan.keep_shape) {
        return Err(Error::shape(
            "reduce backward",
            format!(
                "gradient {:?} for a reduction of {in_shape:?} over {dims:?}",
                g.shape()
            ),
        ));
    }
    let full = g.reshape(&plan.keep_shape)?.broadcast_as(in_shape)?;
    if scale == 1.0 {
        full.contiguous()
    } else {
        super::unary::mul_scalar(&full, scale)
    }
}

/// Backward of `max`/`min` (`is_max` picks which) over `dims`: zero except at the first extreme
/// element of each reduced group, which gets the group's gradient `g` (keepdim or not).
pub fn extreme_backward(x: &Tensor, dims: &[usize], g: &Tensor, is_max: bool) -> Result<Tensor> {
    let name = if is_max {
        "max backward"
    } else {
        "min backward"
    };
    let plan = plan(name, x.shape(), dims)?;
    if g.numel() != plan.outer * plan.inner {
        return Err(Error::shape(
            name,
            format!(
                "gradient {:?} for a reduction of {:?} over {dims:?}",
                g.shape(),
                x.shape()
            ),
        ));
    }
    super::check_same_device(name, x, g)?;
    let xa = arranged(name, x, &plan)?;
    let g = dense_f32(name, g)?;
    let op = if is_max { ReduceOp::Max } else { ReduceOp::Min };
    let p = ReduceParams::new(op, plan.outer, plan.reduce, plan.inner);
    let dx = match (xa.storage(), g.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            let mut dx = vec![0f32; xa.numel()];
            cpu::reduce_extreme_backward(&p, xa.cpu_f32()?, g.cpu_f32()?, &mut dx);
            Tensor::from_vec(dx, xa.shape())?
        }
        _ => Tensor::from_cuda(cuda::extreme_backward(xa.cuda_dense()?, g.cuda_dense()?, &p)?, xa.shape())?,
    };
    match &plan.perm {
        None => Ok(dx),
        Some(perm) => dx.permute(&inverse_permutation(perm))?.contiguous(),
    }
}

fn inverse_permutation(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}
