//! Argument checks shared by the Tensor-level ops of attention, losses, optimisers, codebook
//! and sampling: dtype, rank and device checks that turn bad input into a clear `Err`.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Err unless `t` holds f32.
pub(crate) fn expect_f32(op: &'static str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F32 => Ok(()),
        dtype => Err(Error::DType { op, dtype }),
    }
}

/// Err unless `t` holds u32.
pub(crate) fn expect_u32(op: &'static str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::U32 => Ok(()),
        dtype => Err(Error::DType { op, dtype }),
    }
}

/// Err unless `t` has the given rank.
pub(crate) fn expect_rank(op: &'static str, name: &str, t: &Tensor, rank: usize) -> Result<()> {
    if t.rank() == rank {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{name} must have rank {rank}, got shape {:?}", t.shape()),
        ))
    }
}

/// Err unless `b` has exactly the shape of `a`.
pub(crate) fn expect_same_shape(
    op: &'static str,
    a_name: &str,
    a: &Tensor,
    b_name: &str,
    b: &Tensor,
) -> Result<()> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!(
                "{b_name} {:?} must have the shape of {a_name} {:?}",
                b.shape(),
                a.shape()
            ),
        ))
    }
}

/// Every tensor on the device of the first.
pub(crate) fn expect_same_device(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    for t in ts.iter().skip(1) {
        super::check_same_device(op, ts[0], t)?;
    }
    Ok(())
}
