//! Backend-agnostic ops on `Tensor`: shape checks, then one match on the storage that calls the
//! CPU loops (`cpu::ops`) or the CUDA launcher (`cuda::ops`). Nothing here loops over elements.
pub mod binary;
pub mod index;
pub mod composite;
pub mod concat;
pub mod embedding;
pub mod layernorm;
pub mod patch;
pub mod pool;
pub mod prep;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod unary;

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Error for an op whose CUDA kernel is not wired into this dispatch yet.
pub fn no_cuda_kernel(op: &'static str) -> Error {
    Error::Cuda(format!("{op}: no CUDA kernel wired for this op yet; run it on the CPU"))
}

/// Both tensors on the CPU, or both on the same CUDA device; otherwise a clear error.
pub fn check_same_device(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    let (da, db) = (a.device(), b.device());
    if da.same_as(&db) {
        Ok(())
    } else {
        Err(Error::DeviceMismatch { op, a: da.name(), b: db.name() })
    }
}

/// True when the tensor's storage is on the CPU.
pub fn is_cpu(t: &Tensor) -> bool {
    matches!(t.storage(), Storage::Cpu(_))
}
pub mod matmul;
pub mod conv;
pub(crate) mod argcheck;
pub mod attention;
pub mod cross_entropy;
pub mod image_losses;
pub mod losses;
pub mod optim;
pub mod codebook;
pub mod sampling;
pub mod sampling_device;
pub mod graph;
