//! Tensor-level row gather and scatter over the leading dimension(s): a table `[.., width]` seen
//! as `rows x width`, u32 row indices. Out-of-range indices are an error naming the index.

use crate::cpu::ops::index as cpu;
use crate::cuda::ops::gather as cuda;
use crate::error::{Error, Result};
use crate::params::index::RowsParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

fn rows_params(op: &'static str, table: &Tensor, idx: &[u32]) -> Result<RowsParams> {
    let width = *table.shape().last().ok_or_else(|| Error::shape(op, "table must have at least one dimension"))?;
    let rows = table.numel().checked_div(width).unwrap_or(0);
    if let Some(&bad) = idx.iter().find(|&&r| r as usize >= rows) {
        return Err(Error::shape(op, format!("row index {bad} out of range for {rows} rows")));
    }
    Ok(RowsParams { rows: rows as u32, width: width as u32, count: idx.len() as u32 })
}

/// `out[i, :] = table[idx[i], :]` -> `[idx.len(), width]`.
pub fn gather_rows(table: &Tensor, idx: &[u32]) -> Result<Tensor> {
    let p = rows_params("gather_rows", table, idx)?;
    let t = table.contiguous()?;
    match t.storage() {
        Storage::Cpu(_) => Tensor::from_vec(cpu::gather_rows_fast(t.cpu_f32()?, idx, p), &[idx.len(), p.width as usize]),
        Storage::Cuda(_) => Tensor::from_cuda(cuda::gather_rows(t.cuda_dense()?, idx, p)?, &[idx.len(), p.width as usize]),
    }
}

/// A copy of `table` with `table[idx[i], :] = values[i, :]` (later indices win on repeats).
pub fn scatter_rows(table: &Tensor, idx: &[u32], values: &Tensor) -> Result<Tensor> {
    let p = rows_params("scatter_rows", table, idx)?;
    if values.shape() != [idx.len(), p.width as usize] {
        return Err(Error::shape("scatter_rows", format!("values {:?}, expected [{}, {}]", values.shape(), idx.len(), p.width)));
    }
    super::check_same_device("scatter_rows", table, values)?;
    let (t, v) = (table.contiguous()?, values.contiguous()?);
    match t.storage() {
        Storage::Cpu(_) => {
            let mut out = t.cpu_f32()?.to_vec();
            cpu::scatter_rows_fast(&mut out, idx, v.cpu_f32()?, p);
            Tensor::from_vec(out, table.shape())
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::scatter_rows(t.cuda_dense()?, idx, v.cuda_dense()?, p)?, table.shape()),
    }
}
