//! `Tensor`: shared storage + layout (shape, strides, offset) + dtype. Cloning is cheap (Arc).
//! Views (reshape, permute, narrow, broadcast, transpose) share storage; `contiguous()` copies
//! only when the layout is not already row-major.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::{numel, Layout};
use crate::storage::{CpuStorage, Storage};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
}

impl Tensor {
    pub fn from_storage(storage: Storage, shape: &[usize]) -> Tensor {
        crate::host_alloc::tune_once();
        Tensor { storage: Arc::new(storage), layout: Layout::contiguous(shape) }
    }
    pub fn from_cpu(storage: CpuStorage, shape: &[usize]) -> Result<Tensor> {
        if storage.len() != numel(shape) {
            return Err(Error::shape("from_cpu", format!("{} values for shape {shape:?}", storage.len())));
        }
        Ok(Tensor::from_storage(Storage::Cpu(storage), shape))
    }
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_cpu(CpuStorage::F32(data), shape)
    }
    pub fn from_u32(data: Vec<u32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_cpu(CpuStorage::U32(data), shape)
    }
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::from_storage(Storage::Cpu(CpuStorage::zeros(DType::F32, numel(shape))), shape)
    }
    pub fn full(value: f32, shape: &[usize]) -> Tensor {
        Tensor::from_storage(Storage::Cpu(CpuStorage::F32(vec![value; numel(shape)])), shape)
    }
    pub fn scalar(value: f32) -> Tensor {
        Tensor::full(value, &[])
    }

    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }
    pub fn dims(&self) -> &[usize] {
        &self.layout.shape
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.device().clone()),
        }
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// True when the tensor is contiguous and starts at element 0 of its storage, so kernels and
    /// CPU loops may read the storage as one flat slice.
    pub fn is_dense(&self) -> bool {
        self.layout.offset == 0 && self.is_contiguous() && self.storage_len() == self.numel()
    }
    fn storage_len(&self) -> usize {
        match &*self.storage {
            Storage::Cpu(s) => s.len(),
            Storage::Cuda(s) => s.len(),
        }
    }

    fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout }
    }
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let t = if self.is_contiguous() { self.clone() } else { self.contiguous()? };
        Ok(t.with_layout(t.layout.reshape(shape)?))
    }
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(dims)?))
    }
    /// Swap two dimensions (a view).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        let mut dims: Vec<usize> = (0..self.rank()).collect();
        if a >= dims.len() || b >= dims.len() {
            return Err(Error::shape("transpose", format!("dims {a},{b} of rank {}", self.rank())));
        }
        dims.swap(a, b);
        self.permute(&dims)
    }
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.narrow(dim, start, len)?))
    }
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_as(shape)?))
    }

    /// A dense row-major copy (or `self` when already dense).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_dense() {
            return Ok(self.clone());
        }
        match &*self.storage {
            Storage::Cpu(s) => Ok(Tensor::from_storage(Storage::Cpu(s.gather_layout(&self.layout)), self.shape())),
            Storage::Cuda(_) => crate::cuda::ops::copy::contiguous(self),
        }
    }

    /// Dense CPU storage of this tensor (copies from the device when needed).
    pub fn to_cpu_storage(&self) -> Result<CpuStorage> {
        let t = self.contiguous()?;
        match &*t.storage {
            Storage::Cpu(s) => Ok(s.clone()),
            Storage::Cuda(s) => crate::cuda::ops::copy::to_host(s),
        }
    }
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        Ok(self.to_cpu_storage()?.to_f32_vec())
    }
    /// The values on the host: borrowed from a dense f32 CPU tensor, else copied
    /// (`to_vec_f32`). Saves a copy where a caller only reads (a 12-megapixel photo is 144 MB).
    pub fn host_f32(&self) -> Result<std::borrow::Cow<'_, [f32]>> {
        match self.cpu_f32() {
            Ok(v) => Ok(std::borrow::Cow::Borrowed(v)),
            Err(_) => Ok(std::borrow::Cow::Owned(self.to_vec_f32()?)),
        }
    }
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        match self.to_cpu_storage()? {
            CpuStorage::U32(v) => Ok(v),
            s => Err(Error::DType { op: "to_vec_u32", dtype: s.dtype() }),
        }
    }
    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape("to_scalar", format!("tensor of shape {:?}", self.shape())));
        }
        Ok(self.to_vec_f32()?[0])
    }
    /// Borrow the flat f32 data of a dense CPU tensor (no copy).
    pub fn cpu_f32(&self) -> Result<&[f32]> {
        match (&*self.storage, self.is_dense()) {
            (Storage::Cpu(CpuStorage::F32(v)), true) => Ok(v),
            (Storage::Cpu(s), true) => Err(Error::DType { op: "cpu_f32", dtype: s.dtype() }),
            (Storage::Cpu(_), false) => Err(Error::msg("cpu_f32: tensor is a strided view; call contiguous() first")),
            (Storage::Cuda(_), _) => Err(Error::msg("cpu_f32: tensor lives on a CUDA device")),
        }
    }
    /// The device buffer of a dense CUDA tensor (kernels read it from element 0 as a flat array).
    pub fn cuda_dense(&self) -> Result<&crate::cuda::CudaStorage> {
        match (&*self.storage, self.is_dense()) {
            (Storage::Cuda(s), true) => Ok(s),
            (Storage::Cuda(_), false) => Err(Error::msg("cuda_dense: tensor is a strided view; call contiguous() first")),
            (Storage::Cpu(_), _) => Err(Error::msg("cuda_dense: tensor lives on the CPU")),
        }
    }
    /// A dense tensor over a device buffer of exactly `numel(shape)` elements.
    pub fn from_cuda(storage: crate::cuda::CudaStorage, shape: &[usize]) -> Result<Tensor> {
        if storage.len() != numel(shape) {
            return Err(Error::shape("from_cuda", format!("{} values for shape {shape:?}", storage.len())));
        }
        Ok(Tensor::from_storage(Storage::Cuda(storage), shape))
    }
    pub fn cpu_u32(&self) -> Result<&[u32]> {
        match (&*self.storage, self.is_dense()) {
            (Storage::Cpu(CpuStorage::U32(v)), true) => Ok(v),
            _ => Err(Error::msg("cpu_u32: not a dense CPU u32 tensor")),
        }
    }
    /// Convert to another dtype (on the same device).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        match &*self.storage {
            Storage::Cpu(_) => {
                let v = self.to_vec_f32()?;
                Tensor::from_cpu(CpuStorage::from_f32(dtype, &v), self.shape())
            }
            Storage::Cuda(_) => crate::cuda::ops::copy::to_dtype(self, dtype),
        }
    }
    /// Move to a device (a no-op when already there).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        match (device, &*self.storage) {
            (Device::Cpu, Storage::Cpu(_)) => Ok(self.clone()),
            (Device::Cuda(d), Storage::Cuda(s)) if s.device().same_as(d) => Ok(self.clone()),
            (Device::Cpu, Storage::Cuda(_)) => Tensor::from_cpu(self.to_cpu_storage()?, self.shape()),
            (Device::Cuda(d), _) => {
                let host = self.to_cpu_storage()?;
                crate::cuda::ops::copy::to_device(&host, self.shape(), d)
            }
        }
    }
}
