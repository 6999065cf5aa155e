//! Host <-> device copies, dtype conversion and making strided device tensors dense.
//! Strided gathers and dtype casts go through the host for now: they are used only at
//! load time and in tests, never in the sampler's per-pass path.

use super::super::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;

fn cuda_err(e: cudarc::driver::DriverError) -> Error {
    Error::Cuda(format!("{e:?}"))
}

fn host_bytes(s: &CpuStorage) -> &[u8] {
    match s {
        CpuStorage::F32(v) => bytemuck::cast_slice(v),
        CpuStorage::F16(v) => bytemuck::cast_slice(v),
        CpuStorage::BF16(v) => bytemuck::cast_slice(v),
        CpuStorage::U32(v) => bytemuck::cast_slice(v),
    }
}

pub fn to_device(host: &CpuStorage, shape: &[usize], dev: &CudaDevice) -> Result<Tensor> {
    let buf = dev.stream().clone_htod(host_bytes(host)).map_err(cuda_err)?;
    Ok(Tensor::from_storage(Storage::Cuda(CudaStorage { buf, dtype: host.dtype(), device: dev.clone() }), shape))
}

pub fn to_host(s: &CudaStorage) -> Result<CpuStorage> {
    let bytes: Vec<u8> = s.device.stream().clone_dtoh(&s.buf).map_err(cuda_err)?;
    Ok(match s.dtype {
        DType::F32 => CpuStorage::F32(bytemuck::pod_collect_to_vec(&bytes)),
        DType::F16 => CpuStorage::F16(bytemuck::pod_collect_to_vec(&bytes)),
        DType::BF16 => CpuStorage::BF16(bytemuck::pod_collect_to_vec(&bytes)),
        DType::U32 => CpuStorage::U32(bytemuck::pod_collect_to_vec(&bytes)),
    })
}

fn device_of(t: &Tensor) -> Result<CudaDevice> {
    match t.storage() {
        Storage::Cuda(s) => Ok(s.device.clone()),
        Storage::Cpu(_) => Err(Error::msg("expected a CUDA tensor")),
    }
}

pub fn contiguous(t: &Tensor) -> Result<Tensor> {
    let dev = device_of(t)?;
    let Storage::Cuda(s) = t.storage() else { unreachable!("device_of checked the storage") };
    let gathered = to_host(s)?.gather(t.layout().indices());
    to_device(&gathered, t.shape(), &dev)
}

pub fn to_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let dev = device_of(t)?;
    let v = t.to_vec_f32()?;
    to_device(&CpuStorage::from_f32(dtype, &v), t.shape(), &dev)
}
