//! Embedding lookup: `table [V, D]` (f32), `indices [...]` (u32) -> `[..., D]`, and its backward
//! (scatter-add of the output gradient into a `[V, D]` zero table; repeated indices add up).
//! An index >= V is an error naming the index and its position.

use super::prep::{check_u32_len, dense_f32, dense_u32};
use crate::cpu::ops::embedding as cpu;
use crate::cuda::ops::gather as cuda;
use crate::error::{Error, Result};
use crate::params::embedding::EmbeddingParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

const OP: &str = "embedding";

fn check_indices(idx: &[u32], vocab: usize) -> Result<()> {
    match cpu::first_out_of_range(idx, vocab) {
        Some((pos, i)) => Err(Error::shape(
            OP,
            format!("index {i} at position {pos} is out of range for a table of {vocab} rows"),
        )),
        None => Ok(()),
    }
}

/// `out[..., :] = table[indices[...], :]`.
pub fn embedding(table: &Tensor, indices: &Tensor) -> Result<Tensor> {
    let &[vocab, dim] = table.shape() else {
        return Err(Error::shape(
            OP,
            format!("table must be [vocab, dim], got {:?}", table.shape()),
        ));
    };
    super::check_same_device(OP, table, indices)?;
    let (table, idx) = (dense_f32(OP, table)?, dense_u32(OP, indices)?);
    let mut out_shape = idx.shape().to_vec();
    out_shape.push(dim);
    check_u32_len(OP, idx.numel() * dim)?;
    check_u32_len(OP, table.numel())?;
    let p = EmbeddingParams::new(idx.numel(), vocab, dim);
    match (table.storage(), idx.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            let ids = idx.cpu_u32()?;
            check_indices(ids, vocab)?;
            let mut out = vec![0f32; idx.numel() * dim];
            cpu::embedding_fwd_fast(&p, table.cpu_f32()?, ids, &mut out);
            Tensor::from_vec(out, &out_shape)
        }
        _ => Tensor::from_cuda(cuda::embedding_fwd(table.cuda_dense()?, idx.cuda_dense()?, &p)?, &out_shape),
    }
}

/// Gradient of the table: `[vocab, D]`, row `v` = sum of `g[i]` over every position `i` with
/// `indices[i] == v`. `g` has shape `indices.shape() + [D]`.
pub fn embedding_backward(indices: &Tensor, g: &Tensor, vocab: usize) -> Result<Tensor> {
    let Some((&dim, lead)) = g.shape().split_last() else {
        return Err(Error::shape(OP, "gradient must have rank >= 1"));
    };
    if lead != indices.shape() {
        return Err(Error::shape(
            OP,
            format!(
                "gradient {:?} does not match indices {:?} + [dim]",
                g.shape(),
                indices.shape()
            ),
        ));
    }
    super::check_same_device(OP, indices, g)?;
    let (idx, g) = (dense_u32(OP, indices)?, dense_f32(OP, g)?);
    check_u32_len(OP, vocab * dim)?;
    check_u32_len(OP, g.numel())?;
    let p = EmbeddingParams::new(idx.numel(), vocab, dim);
    match (idx.storage(), g.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            let ids = idx.cpu_u32()?;
            check_indices(ids, vocab)?;
            let mut dt = vec![0f32; vocab * dim];
            cpu::embedding_bwd_fast(&p, ids, g.cpu_f32()?, &mut dt);
            Tensor::from_vec(dt, &[vocab, dim])
        }
        _ => Tensor::from_cuda(cuda::embedding_bwd(idx.cuda_dense()?, g.cuda_dense()?, &p)?, &[vocab, dim]),
    }
}
