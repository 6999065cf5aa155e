//! CUDA backend: the probe, the device handle and device storage. Kernels live in `kernels/*.cu`
//! and are compiled by NVRTC at first use; launchers in `cuda/ops/`.
//! Nothing here may panic on a machine without CUDA: cudarc's context constructors panic when
//! libcuda is absent, so `probe()` checks `is_culib_present()` first.

pub mod ops;

use crate::dtype::DType;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use std::sync::Arc;

#[derive(Clone)]
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
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
}

/// Device memory of one tensor: raw bytes plus the element dtype.
pub struct CudaStorage {
    pub(crate) buf: CudaSlice<u8>,
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
}

/// Find a usable CUDA device 0: driver library present, a device, NVRTC present.
/// Returns the reason as text when any piece is missing. Never panics.
pub fn probe() -> Result<CudaDevice, String> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("no NVRTC library (libnvrtc.so.13/.12) on the loader path".into());
    }
    let ctx = CudaContext::new(0).map_err(|e| format!("no usable CUDA device: {e:?}"))?;
    let stream = ctx.default_stream();
    Ok(CudaDevice { ctx, stream })
}
