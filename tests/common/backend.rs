//! One test body for the CPU emulator and for a real GPU (design.md §2). A test is a function
//! generic over `Backend`; `backend_tests!(name, ...)` emits `emu::name` (always runs) and
//! `cuda::name` (prints `SKIP (no CUDA device)` without a GPU, fails instead with
//! FDM_REQUIRE_CUDA=1). Both run the same `Launch` values built by the launchers in
//! `fdm::cuda::ops`, so the GPU sees exactly the grid and argument order the emulator checked.
#![allow(dead_code)]

use fdm::cuda::launch::{device_ptr, run_on_device, Launch};
use fdm::cuda::{emu, CudaDevice, CudaStorage};
use fdm::error::Result;
use fdm::storage::CpuStorage;

pub trait Backend {
    type Buf;
    fn f32s(&self, v: &[f32]) -> Self::Buf;
    fn u32s(&self, v: &[u32]) -> Self::Buf;
    /// The address a kernel argument takes (host on the emulator, device on a GPU).
    fn ptr(&self, b: &Self::Buf) -> u64;
    /// Run and wait; Err with the launch's error.
    fn try_run(&self, l: &Launch) -> Result<()>;
    fn get_f32(&self, b: &Self::Buf) -> Vec<f32>;
    fn get_u32(&self, b: &Self::Buf) -> Vec<u32>;
    /// Tolerance for f32 results that do not involve long sums: TOL_CPU_F32 on the emulator
    /// (the same libm as the reference loops), TOL_CUDA_F32 on a GPU (design.md §2).
    fn tol(&self) -> (f32, f32);

    fn run(&self, l: &Launch) {
        self.try_run(l).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A host buffer of 4-byte elements that kernels may write through its address: the allocation
/// is owned as a raw pointer (never behind a shared reference) and freed on drop. 256-byte
/// aligned like `cuMemAlloc` blocks, so kernels' vector loads see the alignment they get on a GPU.
pub struct HostBuf {
    ptr: *mut u32,
    len: usize,
}

const HOST_BUF_ALIGN: usize = 256;

impl HostBuf {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align((4 * len).max(4), HOST_BUF_ALIGN).expect("buffer size fits a Layout")
    }
    fn new(v: Vec<u32>) -> Self {
        let len = v.len();
        let ptr = unsafe { std::alloc::alloc_zeroed(Self::layout(len)) } as *mut u32;
        assert!(!ptr.is_null(), "host buffer of {len} words: out of memory");
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), ptr, len) };
        HostBuf { ptr, len }
    }
    fn words(&self) -> Vec<u32> {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        unsafe { std::alloc::dealloc(self.ptr as *mut u8, Self::layout(self.len)) };
    }
}

pub struct Emu;

impl Backend for Emu {
    type Buf = HostBuf;
    fn f32s(&self, v: &[f32]) -> HostBuf {
        HostBuf::new(v.iter().map(|x| x.to_bits()).collect())
    }
    fn u32s(&self, v: &[u32]) -> HostBuf {
        HostBuf::new(v.to_vec())
    }
    fn ptr(&self, b: &HostBuf) -> u64 {
        b.ptr as u64
    }
    fn try_run(&self, l: &Launch) -> Result<()> {
        // Every pointer in the tests' launches comes from a live HostBuf sized for the kernel.
        unsafe { emu::run(l) }
    }
    fn get_f32(&self, b: &HostBuf) -> Vec<f32> {
        b.words().into_iter().map(f32::from_bits).collect()
    }
    fn get_u32(&self, b: &HostBuf) -> Vec<u32> {
        b.words()
    }
    fn tol(&self) -> (f32, f32) {
        fdm::testing::TOL_CPU_F32
    }
}

pub struct Gpu(pub CudaDevice);

impl Backend for Gpu {
    type Buf = CudaStorage;
    fn f32s(&self, v: &[f32]) -> CudaStorage {
        self.0.upload(&CpuStorage::F32(v.to_vec())).expect("upload")
    }
    fn u32s(&self, v: &[u32]) -> CudaStorage {
        self.0.upload(&CpuStorage::U32(v.to_vec())).expect("upload")
    }
    fn ptr(&self, b: &CudaStorage) -> u64 {
        device_ptr(b, 0)
    }
    fn try_run(&self, l: &Launch) -> Result<()> {
        run_on_device(&self.0, l)?;
        self.0.synchronize()
    }
    fn get_f32(&self, b: &CudaStorage) -> Vec<f32> {
        b.download().expect("download").to_f32_vec()
    }
    fn get_u32(&self, b: &CudaStorage) -> Vec<u32> {
        match b.download().expect("download") {
            CpuStorage::U32(v) => v,
            other => panic!("expected a u32 buffer, got {:?}", other.dtype()),
        }
    }
    fn tol(&self) -> (f32, f32) {
        fdm::testing::TOL_CUDA_F32
    }
}

/// `backend_tests!(a, b)` for `fn a<B: Backend>(be: &B)`: tests `emu::a` and `cuda::a`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod emu {
            $(#[test]
            fn $name() {
                if fdm::testing::emulator_or_skip(concat!(module_path!(), "::", stringify!($name))) {
                    super::$name(&$crate::common::backend::Emu);
                }
            })*
        }
        mod cuda {
            $(#[test]
            fn $name() {
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(dev) = fdm::testing::cuda_device_or_skip(test) {
                    super::$name(&$crate::common::backend::Gpu(dev));
                }
            })*
        }
    };
}

/// `device_tests!(a, b)` for `fn a(dev: CudaDevice)`: `emu::a` runs on the emulated CUDA device
/// (the real dispatch and launchers, kernels on the CPU emulator), `cuda::a` on a GPU (SKIP without
/// one, a failure with FDM_REQUIRE_CUDA=1).
#[macro_export]
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        mod emu {
            $(#[test]
            fn $name() {
                if fdm::testing::emulator_or_skip(concat!(module_path!(), "::", stringify!($name))) {
                    super::$name(fdm::cuda::CudaDevice::emulated());
                }
            })*
        }
        mod cuda {
            $(#[test]
            fn $name() {
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(dev) = fdm::testing::cuda_device_or_skip(test) {
                    super::$name(dev);
                }
            })*
        }
    };
}
