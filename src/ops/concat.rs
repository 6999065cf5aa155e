//! Concatenation of f32 tensors along any dim, and the backward of `Tensor::narrow` (the
//! gradient of a slice written into zeros of the full shape). Both are block copies
//! (`cpu/ops/concat.rs`); the backward of concat is `narrow` + `contiguous` of each piece.

use super::prep::{check_u32_len, dense_f32};
use crate::cpu::ops::concat as cpu;
use crate::cuda::ops::gather as cuda;
use crate::error::{Error, Result};
use crate::params::concat::BlockCopyParams;
use crate::shape::numel;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Write dense `src` into `dst` (dense, shape `dst_shape`) at offset `start` along `dim`.
fn copy_into(
    op: &'static str,
    src: &Tensor,
    dst: &mut [f32],
    dst_shape: &[usize],
    dim: usize,
    start: usize,
) -> Result<()> {
    let rest = numel(&dst_shape[dim + 1..]);
    let p = BlockCopyParams::new(
        numel(&dst_shape[..dim]),
        src.shape()[dim] * rest,
        dst_shape[dim] * rest,
        start * rest,
    );
    match src.storage() {
        Storage::Cpu(_) => {
            cpu::copy_block_fast(&p, src.cpu_f32()?, dst);
            Ok(())
        }
        // The CUDA paths of `concat` and `narrow_backward` copy on the device before this.
        Storage::Cuda(_) => Err(super::no_cuda_kernel(op)),
    }
}

/// Concatenate along `dim`: every input has the same rank and the same size in every other dim.
pub fn concat(xs: &[&Tensor], dim: usize) -> Result<Tensor> {
    const OP: &str = "concat";
    let Some(first) = xs.first() else {
        return Err(Error::shape(OP, "no tensors to concatenate"));
    };
    let rank = first.rank();
    if dim >= rank {
        return Err(Error::shape(
            OP,
            format!("dim {dim} out of range for rank {rank}"),
        ));
    }
    let mut shape = first.shape().to_vec();
    shape[dim] = 0;
    for (i, x) in xs.iter().enumerate() {
        let same_elsewhere =
            x.rank() == rank && (0..rank).all(|d| d == dim || x.shape()[d] == first.shape()[d]);
        if !same_elsewhere {
            return Err(Error::shape(
                OP,
                format!(
                    "input {i} has shape {:?}, input 0 has {:?} (may differ only in dim {dim})",
                    x.shape(),
                    first.shape()
                ),
            ));
        }
        super::check_same_device(OP, first, x)?;
        shape[dim] += x.shape()[dim];
    }
    check_u32_len(OP, numel(&shape))?;
    if !super::is_cpu(first) {
        let dense: Vec<Tensor> = xs.iter().map(|x| dense_f32(OP, x)).collect::<Result<_>>()?;
        let parts: Vec<_> = dense.iter().map(|x| x.cuda_dense()).collect::<Result<_>>()?;
        let rest = numel(&shape[dim + 1..]);
        let inners: Vec<usize> = xs.iter().map(|x| x.shape()[dim] * rest).collect();
        return Tensor::from_cuda(cuda::concat(&parts, numel(&shape[..dim]), &inners)?, &shape);
    }
    let mut out = vec![0f32; numel(&shape)];
    let mut start = 0;
    for x in xs {
        copy_into(OP, &dense_f32(OP, x)?, &mut out, &shape, dim, start)?;
        start += x.shape()[dim];
    }
    Tensor::from_vec(out, &shape)
}

/// Backward of `x.narrow(dim, start, len)`: zeros of `full_shape` with `g` (the slice's
/// gradient, shape of the slice) written at `start` along `dim`.
pub fn narrow_backward(
    g: &Tensor,
    full_shape: &[usize],
    dim: usize,
    start: usize,
) -> Result<Tensor> {
    const OP: &str = "narrow backward";
    let fits = dim < full_shape.len()
        && g.rank() == full_shape.len()
        && start + g.shape()[dim] <= full_shape[dim]
        && (0..g.rank()).all(|d| d == dim || g.shape()[d] == full_shape[d]);
    if !fits {
        return Err(Error::shape(
            OP,
            format!(
                "gradient {:?} at {start} along dim {dim} does not fit in {full_shape:?}",
                g.shape()
            ),
        ));
    }
    check_u32_len(OP, numel(full_shape))?;
    let g = dense_f32(OP, g)?;
    if !super::is_cpu(&g) {
        let rest = numel(&full_shape[dim + 1..]);
        let p = BlockCopyParams::new(numel(&full_shape[..dim]), g.shape()[dim] * rest, full_shape[dim] * rest, start * rest);
        return Tensor::from_cuda(cuda::narrow_backward(g.cuda_dense()?, &p)?, full_shape);
    }
    let mut out = vec![0f32; numel(full_shape)];
    copy_into(OP, &g, &mut out, full_shape, dim, start)?;
    Tensor::from_vec(out, full_shape)
}
