//! A kernel launch as plain data: which kernel, the grid/block/shared-memory configuration and the
//! argument list in the kernel's parameter order. Launchers in `cuda/ops/*.rs` build a `Launch`
//! from pointers and sizes; the same value then runs on a real GPU (`run_on_device`, through
//! cudarc) or on the CPU emulator (`cuda::emu::run`, with host pointers), so the grid choice and
//! the argument order that the GPU will see are exercised by every emulator test.

use super::{module, CudaDevice, CudaStorage};
use crate::error::{Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use std::ffi::c_void;

/// One kernel argument, as the kernel's parameter list sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum KArg {
    /// A pointer: a device address on the GPU, a host address on the emulator.
    Ptr(u64),
    I32(i32),
    U32(u32),
    F32(f32),
    /// A `#[repr(C)]` struct passed by value (its bytes).
    Struct(Vec<u8>),
}

impl KArg {
    /// A struct argument from a plain-old-data value whose layout matches the kernel's struct.
    pub fn pod<T: bytemuck::Pod>(v: &T) -> KArg {
        KArg::Struct(bytemuck::bytes_of(v).to_vec())
    }
    /// The type letter the emulator checks against the kernel's real signature.
    pub fn code(&self) -> u8 {
        match self {
            KArg::Ptr(_) => b'p',
            KArg::I32(_) => b'i',
            KArg::U32(_) => b'u',
            KArg::F32(_) => b'f',
            KArg::Struct(_) => b's',
        }
    }
    pub fn size(&self) -> u32 {
        match self {
            KArg::Ptr(_) => 8,
            KArg::I32(_) | KArg::U32(_) | KArg::F32(_) => 4,
            KArg::Struct(b) => b.len() as u32,
        }
    }
    /// Address of the argument's value, as `cuLaunchKernel`'s `kernelParams[i]` wants it.
    pub fn value_ptr(&self) -> *const c_void {
        match self {
            KArg::Ptr(p) => p as *const u64 as *const c_void,
            KArg::I32(v) => v as *const i32 as *const c_void,
            KArg::U32(v) => v as *const u32 as *const c_void,
            KArg::F32(v) => v as *const f32 as *const c_void,
            KArg::Struct(b) => b.as_ptr() as *const c_void,
        }
    }
}

/// Grid (blocks), block (threads) and dynamic shared memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCfg {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub smem_bytes: u32,
}

impl LaunchCfg {
    /// A 1-D grid of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32, smem_bytes: u32) -> Self {
        LaunchCfg {
            grid: (blocks, 1, 1),
            block: (threads, 1, 1),
            smem_bytes,
        }
    }
    /// Enough 1-D blocks of `threads` threads to give each of `n` elements a thread, capped at
    /// `max_blocks` (the kernels loop grid-stride over what is left).
    pub fn for_elements(n: usize, threads: u32, max_blocks: u32) -> Self {
        let blocks = n.div_ceil(threads as usize).clamp(1, max_blocks as usize) as u32;
        LaunchCfg::linear(blocks, threads, 0)
    }
}

/// Threads per block for the one-block-per-row kernels (softmax, layernorm): about four elements
/// per thread, a multiple of 32 between 32 and 256 (rows supply the parallelism).
pub fn row_block_threads(cols: usize) -> u32 {
    (cols.div_ceil(4).div_ceil(32) * 32).clamp(32, 256) as u32
}

/// Blocks for a one-block-per-row kernel: one per row up to a cap, then the kernel loops.
pub fn row_blocks(rows: usize) -> u32 {
    rows.clamp(1, 1 << 20) as u32
}

/// A kernel-argument count that must fit the kernels' 32-bit sizes.
pub fn u32_arg(what: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n)
        .map_err(|_| Error::shape(what, format!("{n} does not fit the kernel's 32-bit size")))
}

/// Checks before a launcher reads `n` f32 elements of a device buffer.
pub fn check_f32(op: &'static str, s: &CudaStorage, n: usize) -> Result<()> {
    check_dtype_len(op, s, crate::dtype::DType::F32, n)
}

/// Checks before a launcher reads `n` elements of `dtype` from a device buffer.
pub fn check_dtype_len(op: &'static str, s: &CudaStorage, dtype: crate::dtype::DType, n: usize) -> Result<()> {
    if s.dtype() != dtype {
        return Err(Error::DType {
            op,
            dtype: s.dtype(),
        });
    }
    if s.len() < n {
        return Err(Error::shape(
            op,
            format!("buffer of {} elements, {n} needed", s.len()),
        ));
    }
    Ok(())
}

/// Everything needed to launch one kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The kernel file, `kernels/<module>.cu`.
    pub module: &'static str,
    /// The `extern "C" __global__` entry point.
    pub kernel: &'static str,
    pub cfg: LaunchCfg,
    pub args: Vec<KArg>,
}

/// The device address of a tensor's buffer (plus an element offset), for a kernel argument.
/// The kernels of this crate all run on the device's one stream, in order, so the read/write
/// events cudarc records for multi-stream use are not needed here.
pub fn device_ptr(s: &CudaStorage, elem_offset: usize) -> u64 {
    s.address() + (elem_offset * s.dtype.size_in_bytes()) as u64
}

/// Launch on the device: on a GPU's stream (asynchronously, like every CUDA launch), or on the
/// CPU emulator for the emulated device (synchronously).
pub fn run_on_device(dev: &CudaDevice, launch: &Launch) -> Result<()> {
    queue_on_device(dev, launch.module, launch.kernel, || run_untimed(dev, launch))
}

/// Run `queue`, which queues work on the device's stream (a kernel launch, or a library call
/// such as a cuBLAS GEMM), reported to the profiler as `module`/`kernel` while it records: CUDA
/// events around it on a GPU, whose reading waits until recording finishes; host time on the
/// emulated device, whose launches are synchronous.
pub fn queue_on_device(
    dev: &CudaDevice,
    module: &'static str,
    kernel: &'static str,
    queue: impl FnOnce() -> Result<()>,
) -> Result<()> {
    if !crate::profile::is_recording() {
        return queue();
    }
    let queued = std::time::Instant::now();
    if dev.is_emulated() {
        let res = queue();
        crate::profile::kernel_on_host(module, kernel, queued, queued.elapsed());
        return res;
    }
    let stream = dev.stream()?;
    let record = || {
        // Timing must be enabled explicitly: cudarc's default event flags disable it.
        stream
            .record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::Cuda(format!("recording a timing event for {kernel}: {e:?}")))
    };
    let start = record()?;
    queue()?;
    let end = record()?;
    crate::profile::kernel_on_device(module, kernel, queued, Box::new(EventSpan { start, end }));
    Ok(())
}

/// A launch's start and end events on the device's stream.
struct EventSpan {
    start: cudarc::driver::CudaEvent,
    end: cudarc::driver::CudaEvent,
}

impl crate::profile::DeviceSpan for EventSpan {
    fn resolve(&self, origin: &dyn crate::profile::DeviceSpan) -> Option<(f64, f64)> {
        let origin = origin.as_any().downcast_ref::<EventSpan>()?;
        let from_origin = origin.start.elapsed_ms(&self.start).ok()?;
        let dur = self.start.elapsed_ms(&self.end).ok()?;
        Some((1e3 * from_origin as f64, 1e3 * dur as f64))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn run_untimed(dev: &CudaDevice, launch: &Launch) -> Result<()> {
    if dev.is_emulated() {
        // Every pointer argument of a launcher's `Launch` comes from `device_ptr` of a live
        // `CudaStorage` of this (emulated) device, checked for length by the launcher, so it is a
        // host address valid for the accesses the kernel makes.
        return unsafe { super::emu::run(launch) };
    }
    let func = module::function(dev, launch.module, launch.kernel)?;
    let stream = dev.stream()?;
    let mut builder = stream.launch_builder(&func);
    for arg in &launch.args {
        match arg {
            KArg::Ptr(p) => builder.arg(p),
            KArg::I32(v) => builder.arg(v),
            KArg::U32(v) => builder.arg(v),
            KArg::F32(v) => builder.arg(v),
            // The driver copies as many bytes as the kernel's parameter has from this address.
            KArg::Struct(bytes) => builder.arg(&bytes[0]),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: launch.cfg.grid,
        block_dim: launch.cfg.block,
        shared_mem_bytes: launch.cfg.smem_bytes,
    };
    unsafe { builder.launch(cfg) }.map(|_| ()).map_err(|e| {
        Error::Cuda(format!(
            "launching {} ({}.cu) with {:?}: {e:?}",
            launch.kernel, launch.module, launch.cfg
        ))
    })
}
