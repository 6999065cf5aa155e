//! Host <-> device copies, dtype conversion and making strided device tensors dense.
//! A strided view of 4-byte elements (f32, u32) is made dense on the device by the
//! `strided_copy_b32` kernel; f32 <-> bf16 casts run on the device (`gemm_tc.cu`); strided 2-byte
//! views and other casts go through the host (used at load time and in tests, never in the
//! sampler's per-pass path).

use super::super::{CudaDevice, CudaStorage};
use super::elementwise;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;

pub fn to_device(host: &CpuStorage, shape: &[usize], dev: &CudaDevice) -> Result<Tensor> {
    Ok(Tensor::from_storage(
        Storage::Cuda(dev.upload(host)?),
        shape,
    ))
}

pub fn to_host(s: &CudaStorage) -> Result<CpuStorage> {
    s.download()
}

fn cuda_storage(t: &Tensor) -> Result<&CudaStorage> {
    match t.storage() {
        Storage::Cuda(s) => Ok(s),
        Storage::Cpu(_) => Err(Error::msg("expected a CUDA tensor")),
    }
}

pub fn contiguous(t: &Tensor) -> Result<Tensor> {
    let s = cuda_storage(t)?;
    let l = t.layout();
    if s.dtype().size_in_bytes() == 4 && l.rank() <= elementwise::MAX_RANK {
        let dense = elementwise::strided_copy(s, &l.shape, &l.strides, l.offset)?;
        return Ok(Tensor::from_storage(Storage::Cuda(dense), t.shape()));
    }
    let gathered = s.download()?.gather_layout(l);
    to_device(&gathered, t.shape(), s.device())
}

/// f32 <-> bf16 on the device (`gemm_tc.cu`'s conversion kernels: the transformer's weights are
/// converted where they live); other pairs through the host.
pub fn to_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if matches!((t.dtype(), dtype), (DType::F32, DType::BF16) | (DType::BF16, DType::F32)) {
        let dense = t.contiguous()?;
        let y = super::gemm_tc::convert(cuda_storage(&dense)?, dtype)?;
        return Ok(Tensor::from_storage(Storage::Cuda(y), t.shape()));
    }
    let dev = cuda_storage(t)?.device().clone();
    let v = t.to_vec_f32()?;
    to_device(&CpuStorage::from_f32(dtype, &v), t.shape(), &dev)
}
