//! Small helpers shared by the element-wise, reduction and shape ops of `ops/`: dtype checks,
//! making inputs dense, and building a CPU f32 result. No element loops here.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `t` as a dense f32 tensor, or an error naming `op` when it holds another dtype.
pub fn dense_f32(op: &'static str, t: &Tensor) -> Result<Tensor> {
    if t.dtype() != DType::F32 {
        return Err(Error::DType {
            op,
            dtype: t.dtype(),
        });
    }
    t.contiguous()
}

/// `t` as a dense u32 tensor (indices), or an error naming `op`.
pub fn dense_u32(op: &'static str, t: &Tensor) -> Result<Tensor> {
    if t.dtype() != DType::U32 {
        return Err(Error::DType {
            op,
            dtype: t.dtype(),
        });
    }
    t.contiguous()
}

/// An error unless `t` has exactly `shape`.
pub fn expect_shape(op: &'static str, what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.shape() == shape {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{what} has shape {:?}, expected {shape:?}", t.shape()),
        ))
    }
}

/// An error when a tensor of `n` elements cannot be described by the u32 fields of op params.
pub fn check_u32_len(op: &'static str, n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(Error::shape(
            op,
            format!("{n} elements exceed the 2^32 limit of the kernels"),
        ));
    }
    Ok(())
}
