//! Host <-> device copies, dtype conversion and making strided device tensors dense.
//! A strided view of 4-byte elements (f32, u32) is made dense on the device by the
//! `strided_copy_b32` kernel; 2-byte dtypes and dtype casts go through the host for now (they are
//! used at load time and in tests, never in the sampler's per-pass path).

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
    let gathered = s.download()?.gather(l.indices());
    to_device(&gathered, t.shape(), s.device())
}

pub fn to_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let dev = cuda_storage(t)?.device().clone();
    let v = t.to_vec_f32()?;
    to_device(&CpuStorage::from_f32(dtype, &v), t.shape(), &dev)
}
