//! CUDA backend: the probe, the device handle (context, its one stream, its caching allocator)
//! and device storage. Kernels live in `kernels/*.cu` and are compiled by NVRTC at first use
//! (`module`); the launchers in `ops/` describe each launch as data (`launch`), which runs on a GPU
//! or, in tests, on the CPU emulator of the CUDA execution model (`emu`); `ptxas` reads the
//! register/spill report of the kernel compile tier; `alloc` is the caching allocator.
//! Nothing here may panic on a machine without CUDA: cudarc's context constructors panic when
//! libcuda is absent, so `probe()` checks `is_culib_present()` first.

pub mod alloc;
pub mod emu;
pub mod launch;
pub mod module;
pub mod ops;
pub mod ptxas;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use alloc::{DeviceAllocator, PooledBuf};
use cudarc::driver::{CudaContext, CudaStream};
use std::sync::Arc;

#[derive(Clone)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    allocator: DeviceAllocator,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaDevice({})", self.ordinal())
    }
}

impl CudaDevice {
    pub fn ordinal(&self) -> usize {
        self.ctx.ordinal()
    }
    pub fn name(&self) -> String {
        let n = self.ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        format!("cuda:{} ({n})", self.ordinal())
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    /// An uninitialised buffer of `n` elements of `dtype` from the device's caching allocator
    /// (kernels write every element of their outputs before anything reads them).
    pub fn alloc(&self, dtype: DType, n: usize) -> Result<CudaStorage> {
        let buf = self
            .allocator
            .alloc(&self.stream, n * dtype.size_in_bytes())?;
        Ok(CudaStorage {
            buf,
            dtype,
            device: self.clone(),
        })
    }
    /// The caching allocator of this device (statistics, `empty_cache`).
    pub fn allocator(&self) -> &DeviceAllocator {
        &self.allocator
    }
    /// Copy host data to a new device buffer of the same dtype.
    pub fn upload(&self, host: &CpuStorage) -> Result<CudaStorage> {
        let bytes: &[u8] = match host {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::U32(v) => bytemuck::cast_slice(v),
        };
        let mut buf = self.allocator.alloc(&self.stream, bytes.len())?;
        self.stream
            .memcpy_htod(bytes, &mut buf.view_mut())
            .map_err(|e| Error::Cuda(format!("copy to device: {e:?}")))?;
        Ok(CudaStorage {
            buf,
            dtype: host.dtype(),
            device: self.clone(),
        })
    }
    /// Wait for every kernel queued on this device's stream.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| Error::Cuda(format!("synchronize: {e:?}")))
    }
}

/// Device memory of one tensor: raw bytes plus the element dtype.
pub struct CudaStorage {
    pub(crate) buf: PooledBuf,
    pub(crate) dtype: DType,
    pub(crate) device: CudaDevice,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStorage({:?}, {} bytes)", self.dtype, self.buf.len())
    }
}

impl CudaStorage {
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn device(&self) -> &CudaDevice {
        &self.device
    }
    /// Copy the buffer back to the host (waits for the kernels that write it).
    pub fn download(&self) -> Result<CpuStorage> {
        let bytes: Vec<u8> = self
            .device
            .stream
            .clone_dtoh(&self.buf.view())
            .map_err(|e| Error::Cuda(format!("copy to host: {e:?}")))?;
        Ok(match self.dtype {
            DType::F32 => CpuStorage::F32(bytemuck::pod_collect_to_vec(&bytes)),
            DType::F16 => CpuStorage::F16(bytemuck::pod_collect_to_vec(&bytes)),
            DType::BF16 => CpuStorage::BF16(bytemuck::pod_collect_to_vec(&bytes)),
            DType::U32 => CpuStorage::U32(bytemuck::pod_collect_to_vec(&bytes)),
        })
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.buf.len() / self.dtype.size_in_bytes()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Find a usable CUDA device 0: driver library present, a device, NVRTC present.
/// Returns the reason as text when any piece is missing. Never panics.
pub fn probe() -> std::result::Result<CudaDevice, String> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("no NVRTC library (libnvrtc.so.13/.12) on the loader path".into());
    }
    let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device: {e:?}"))?;
    let stream = ctx.default_stream();
    let allocator = DeviceAllocator::for_ordinal(ctx.ordinal());
    Ok(CudaDevice {
        ctx,
        stream,
        allocator,
    })
}
