//! CUDA backend: the probe, the device handle (context, its one stream, its caching allocator)
//! and device storage. Kernels live in `kernels/*.cu` and are compiled by NVRTC at first use
//! (`module`); the launchers in `ops/` describe each launch as data (`launch`), which runs on a GPU
//! or, in tests, on the CPU emulator of the CUDA execution model (`emu`); `ptxas` reads the
//! register/spill report of the kernel compile tier; `alloc` is the caching allocator; `blas`
//! the cuBLAS fast path of the Linear GEMMs; `graph` records and replays CUDA graphs.
//! Nothing here may panic on a machine without CUDA: cudarc's context constructors panic when
//! libcuda is absent, so `probe()` checks `is_culib_present()` first.

pub mod alloc;
pub mod blas;
pub mod blas_gemm;
pub mod blas_lt;
pub mod emu;
pub mod graph;
pub mod launch;
pub mod memory;
pub mod module;
pub mod ops;
pub mod ptxas;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use alloc::DeviceAllocator;
use memory::{DeviceBuf, HostBlock};
use cudarc::driver::{CudaContext, CudaStream};
use std::sync::Arc;

/// A CUDA device: a real GPU (context, its one stream, its caching allocator), or the emulated
/// device, on which every launch runs on the CPU emulator of the CUDA execution model (`emu`) over
/// host memory. The emulated device takes the same dispatch, launchers and kernels as a GPU, so
/// the whole CUDA path of the engine (ops, model, sampler) is tested on machines without one.
#[derive(Clone)]
pub struct CudaDevice {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Gpu(Arc<Gpu>),
    Emulated,
}

struct Gpu {
    // First, so it is dropped (the handle destroyed) before the context goes.
    blas: blas::BlasSlot,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    allocator: DeviceAllocator,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Gpu(_) => write!(f, "CudaDevice({})", self.ordinal()),
            Backend::Emulated => write!(f, "CudaDevice(emulated)"),
        }
    }
}

impl CudaDevice {
    /// The emulated device: kernels run on the CPU emulator (slow: for tests and debugging).
    pub fn emulated() -> CudaDevice {
        CudaDevice {
            backend: Backend::Emulated,
        }
    }
    pub fn is_emulated(&self) -> bool {
        matches!(self.backend, Backend::Emulated)
    }
    fn gpu(&self) -> Option<&Gpu> {
        match &self.backend {
            Backend::Gpu(g) => Some(g),
            Backend::Emulated => None,
        }
    }
    fn require_gpu(&self, what: &str) -> Result<&Gpu> {
        self.gpu()
            .ok_or_else(|| Error::Cuda(format!("{what} needs a real GPU, not the emulated device")))
    }
    pub fn ordinal(&self) -> usize {
        self.gpu().map_or(0, |g| g.ctx.ordinal())
    }
    pub fn name(&self) -> String {
        match self.gpu() {
            Some(g) => {
                let n = g.ctx.name().unwrap_or_else(|_| "unknown GPU".into());
                format!("cuda:{} ({n})", self.ordinal())
            }
            None => "cuda:emu (CUDA kernels on the CPU emulator)".to_string(),
        }
    }
    /// Same device: the same GPU ordinal, or both the emulated device.
    pub fn same_as(&self, other: &CudaDevice) -> bool {
        self.is_emulated() == other.is_emulated() && self.ordinal() == other.ordinal()
    }
    /// The GPU's stream (Err on the emulated device, which has none).
    pub fn stream(&self) -> Result<&Arc<CudaStream>> {
        Ok(&self.require_gpu("a stream")?.stream)
    }
    /// The GPU's context (Err on the emulated device).
    pub fn context(&self) -> Result<&Arc<CudaContext>> {
        Ok(&self.require_gpu("a context")?.ctx)
    }
    /// An uninitialised buffer of `n` elements of `dtype` (zero-filled on the emulated device;
    /// kernels write every element of their outputs before anything reads them).
    pub fn alloc(&self, dtype: DType, n: usize) -> Result<CudaStorage> {
        let bytes = n * dtype.size_in_bytes();
        let buf = match self.gpu() {
            Some(g) => DeviceBuf::Gpu(g.allocator.alloc(&g.stream, bytes)?),
            None => DeviceBuf::Host(HostBlock::zeroed(bytes)),
        };
        Ok(CudaStorage {
            buf,
            dtype,
            device: self.clone(),
        })
    }
    /// The caching allocator of a GPU (statistics, `empty_cache`); None on the emulated device.
    pub fn allocator(&self) -> Option<&DeviceAllocator> {
        self.gpu().map(|g| &g.allocator)
    }
    /// Copy host data to a new device buffer of the same dtype.
    pub fn upload(&self, host: &CpuStorage) -> Result<CudaStorage> {
        let bytes: &[u8] = match host {
            CpuStorage::F32(v) => bytemuck::cast_slice(v),
            CpuStorage::F16(v) => bytemuck::cast_slice(v),
            CpuStorage::BF16(v) => bytemuck::cast_slice(v),
            CpuStorage::U32(v) => bytemuck::cast_slice(v),
        };
        let buf = match self.gpu() {
            Some(g) => {
                let mut buf = g.allocator.alloc(&g.stream, bytes.len())?;
                g.stream
                    .memcpy_htod(bytes, &mut buf.view_mut())
                    .map_err(|e| Error::Cuda(format!("copy to device: {e:?}")))?;
                DeviceBuf::Gpu(buf)
            }
            None => {
                let mut block = HostBlock::zeroed(bytes.len());
                block.copy_from(bytes);
                DeviceBuf::Host(block)
            }
        };
        Ok(CudaStorage {
            buf,
            dtype: host.dtype(),
            device: self.clone(),
        })
    }
    /// A marker after the work queued so far on the stream; `Fence::wait` blocks until the device
    /// has reached it (emulated launches are synchronous: their fence is always reached).
    pub fn fence(&self) -> Result<Fence> {
        match self.gpu() {
            Some(g) => g.stream.record_event(None).map(|e| Fence(Some(e))).map_err(|e| Error::Cuda(format!("recording a fence: {e:?}"))),
            None => Ok(Fence(None)),
        }
    }
    /// Wait for every kernel queued on this device's stream (emulated launches are synchronous).
    pub fn synchronize(&self) -> Result<()> {
        match self.gpu() {
            Some(g) => g
                .stream
                .synchronize()
                .map_err(|e| Error::Cuda(format!("synchronize: {e:?}"))),
            None => Ok(()),
        }
    }
}

/// A point in a device's stream (see `CudaDevice::fence`).
pub struct Fence(Option<cudarc::driver::CudaEvent>);

impl Fence {
    /// Block until the device has run everything queued before the fence.
    pub fn wait(&self) -> Result<()> {
        match &self.0 {
            Some(e) => e.synchronize().map_err(|e| Error::Cuda(format!("waiting for a fence: {e:?}"))),
            None => Ok(()),
        }
    }
}

/// Device memory of one tensor: raw bytes plus the element dtype.
pub struct CudaStorage {
    pub(crate) buf: DeviceBuf,
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
    /// The address kernels see for the first byte (device address; host address when emulated).
    pub fn address(&self) -> u64 {
        match (&self.buf, self.device.gpu()) {
            (DeviceBuf::Gpu(b), Some(g)) => b.device_address(&g.stream),
            (DeviceBuf::Host(b), _) => b.address(),
            (DeviceBuf::Gpu(_), None) => unreachable!("GPU blocks belong to GPU devices"),
        }
    }
    /// Copy the buffer back to the host (waits for the kernels that write it).
    pub fn download(&self) -> Result<CpuStorage> {
        let bytes: Vec<u8> = match (&self.buf, self.device.gpu()) {
            (DeviceBuf::Gpu(b), Some(g)) => g
                .stream
                .clone_dtoh(&b.view())
                .map_err(|e| Error::Cuda(format!("copy to host: {e:?}")))?,
            (DeviceBuf::Host(b), _) => b.to_vec(),
            (DeviceBuf::Gpu(_), None) => unreachable!("GPU blocks belong to GPU devices"),
        };
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
    probe_ordinal(0)
}

/// The number of CUDA devices (0 with the reason when the driver library is missing). Never
/// panics: cudarc's `device_count` does when libcuda is absent, so that is checked first.
pub fn device_count() -> std::result::Result<usize, String> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    CudaContext::device_count()
        .map(|n| n.max(0) as usize)
        .map_err(|e| format!("cannot count CUDA devices: {e:?}"))
}

/// `probe` for device `ordinal` (data-parallel rank r trains on device r).
pub fn probe_ordinal(ordinal: usize) -> std::result::Result<CudaDevice, String> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("no NVRTC library (libnvrtc.so.13/.12) on the loader path".into());
    }
    // One handle per device for the whole process: every caller gets the same stream (the
    // shared caching allocator's reuse relies on one stream per device) and the same cuBLAS handle.
    static GPUS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<usize, Arc<Gpu>>>> = std::sync::OnceLock::new();
    let mut gpus = GPUS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(gpu) = gpus.get(&ordinal) {
        return Ok(CudaDevice { backend: Backend::Gpu(gpu.clone()) });
    }
    let ctx = CudaContext::new(ordinal)
        .map_err(|e| format!("no usable CUDA device {ordinal}: {e:?}"))?;
    // Every kernel, copy and cuBLAS call of the device runs on this one stream, in order, so
    // cudarc's per-buffer event tracking (for work spread over several streams) is not needed; it
    // is turned off before anything is allocated, as its events would also get into CUDA graph
    // captures. A created stream, not the legacy default one, because only such a stream can be
    // captured into a graph (`graph`).
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx
        .new_stream()
        .map_err(|e| format!("cannot create a stream on CUDA device {ordinal}: {e:?}"))?;
    let allocator = DeviceAllocator::for_ordinal(ctx.ordinal());
    let gpu = Arc::new(Gpu {
        blas: blas::BlasSlot::new(),
        ctx,
        stream,
        allocator,
    });
    gpus.insert(ordinal, gpu.clone());
    Ok(CudaDevice { backend: Backend::Gpu(gpu) })
}
