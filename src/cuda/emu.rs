//! The CPU emulator of the CUDA execution model (design.md §3, tier 3): the same `kernels/*.cu`
//! sources compiled as host C++ by build.rs with the shim `emu/cuda_emu.h` (fibers for threads,
//! real barriers, warp shuffles and atomics). It runs a `Launch` built by the very launchers the
//! GPU path uses, with host pointers in place of device pointers, so kernel indexing, shared
//! memory, barriers and warp code are tested against plain reference loops on every machine.
//!
//! The emulator checks what a GPU would not: the argument list against the kernel's real C++
//! signature (count, kind and size of every parameter), the block size (at most 1024 threads),
//! dynamic shared memory (at most 48 KiB), and deadlocks at barriers.

use super::launch::Launch;
use crate::error::{Error, Result};
#[cfg_attr(not(fdm_emu), allow(unused_imports))]
use std::ffi::{c_char, c_void, CString};

/// Whether this build has the emulator: Linux builds do (build.rs says why others do not).
pub const BUILT: bool = cfg!(fdm_emu);

#[cfg(fdm_emu)]
extern "C" {
    fn fdm_emu_launch(
        module: *const c_char,
        kernel: *const c_char,
        grid: *const u32,
        block: *const u32,
        smem_bytes: u32,
        args: *const *const c_void,
        codes: *const c_char,
        sizes: *const u32,
        nargs: u32,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
}

/// The host address of a slice, for a `KArg::Ptr` of an emulated launch.
pub fn host_ptr<T>(v: &[T]) -> u64 {
    v.as_ptr() as u64
}

/// The host address of a mutable slice (an output buffer of an emulated launch).
pub fn host_ptr_mut<T>(v: &mut [T]) -> u64 {
    v.as_mut_ptr() as u64
}

/// Run a launch on the emulator and wait for it to finish. Blocks run in parallel on a few OS
/// threads (`EMU_THREADS`, default: the number of cores); each fiber stack is `EMU_STACK_KB`
/// (default 64) KiB.
///
/// # Safety
/// Every `KArg::Ptr` must be a host address (see `host_ptr`) valid for every access the kernel
/// makes for this configuration, exactly as device buffers must be for a real launch; outputs
/// must not alias inputs the kernel reads unless the kernel allows it.
pub unsafe fn run(launch: &Launch) -> Result<()> {
    if !BUILT {
        return Err(Error::Cuda(format!(
            "emulator: not built on {} (the CPU emulator of CUDA kernels is built on Linux only); cannot run {}",
            std::env::consts::OS,
            launch.kernel
        )));
    }
    launch_on_emulator(launch)
}

#[cfg(not(fdm_emu))]
unsafe fn launch_on_emulator(_: &Launch) -> Result<()> {
    unreachable!("run() checks BUILT first")
}

#[cfg(fdm_emu)]
unsafe fn launch_on_emulator(launch: &Launch) -> Result<()> {
    let module = CString::new(launch.module).expect("module names have no NUL");
    let kernel = CString::new(launch.kernel).expect("kernel names have no NUL");
    let grid = [launch.cfg.grid.0, launch.cfg.grid.1, launch.cfg.grid.2];
    let block = [launch.cfg.block.0, launch.cfg.block.1, launch.cfg.block.2];
    let ptrs: Vec<*const c_void> = launch.args.iter().map(|a| a.value_ptr()).collect();
    let codes: Vec<c_char> = launch.args.iter().map(|a| a.code() as c_char).collect();
    let sizes: Vec<u32> = launch.args.iter().map(|a| a.size()).collect();
    let mut err = vec![0 as c_char; 1024];
    let rc = fdm_emu_launch(
        module.as_ptr(),
        kernel.as_ptr(),
        grid.as_ptr(),
        block.as_ptr(),
        launch.cfg.smem_bytes,
        ptrs.as_ptr(),
        codes.as_ptr(),
        sizes.as_ptr(),
        ptrs.len() as u32,
        err.as_mut_ptr(),
        err.len(),
    );
    if rc == 0 {
        return Ok(());
    }
    let msg: Vec<u8> = err
        .iter()
        .take_while(|&&c| c != 0)
        // c_char is i8 on x86-64 and u8 on aarch64: a no-op there.
        .map(|&c| {
            #[allow(clippy::unnecessary_cast)]
            let byte = c as u8;
            byte
        })
        .collect();
    Err(Error::Cuda(format!(
        "emulator: {}",
        String::from_utf8_lossy(&msg)
    )))
}
