//! Device memory of a `CudaStorage`: a block from the caching allocator on a real GPU, or, on the
//! emulated device, a host block whose address the CPU emulator's kernels read and write exactly
//! as a GPU kernel would read and write device memory (design.md §3, tier 3 extended to dispatch).
//! Host blocks are 256-byte aligned (as `cuMemAlloc` blocks are, so vector loads of any width are
//! aligned) and zero-filled, so an emulated run never reads stale bytes from an earlier tensor.

use super::alloc::PooledBuf;
use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Alignment of emulated device blocks, in bytes.
const HOST_BLOCK_ALIGN: usize = 256;

pub enum DeviceBuf {
    Gpu(PooledBuf),
    Host(HostBlock),
}

impl DeviceBuf {
    /// Logical length in bytes.
    pub fn len(&self) -> usize {
        match self {
            DeviceBuf::Gpu(b) => b.len(),
            DeviceBuf::Host(b) => b.len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for DeviceBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceBuf::Gpu(b) => write!(f, "{b:?}"),
            DeviceBuf::Host(b) => write!(f, "HostBlock({} bytes)", b.len),
        }
    }
}

/// An owned, aligned, zero-filled host allocation addressed through a raw pointer only, so
/// kernels on the emulator may write it through its address while Rust holds no reference into it.
pub struct HostBlock {
    ptr: *mut u8,
    len: usize,
}

// The block is plain bytes owned by this value; the emulator's writes happen inside launches that
// the owning tensor's op performs before the tensor is shared.
unsafe impl Send for HostBlock {}
unsafe impl Sync for HostBlock {}

impl HostBlock {
    pub fn zeroed(len: usize) -> HostBlock {
        let ptr = unsafe { alloc_zeroed(Self::layout(len)) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(Self::layout(len));
        }
        HostBlock { ptr, len }
    }
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), HOST_BLOCK_ALIGN).expect("block size fits a Layout")
    }
    /// The address of the first byte (the emulated "device address").
    pub fn address(&self) -> u64 {
        self.ptr as u64
    }
    pub fn copy_from(&mut self, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.len, "host block copy of the wrong length");
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, self.len) };
    }
    pub fn to_vec(&self) -> Vec<u8> {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

impl Drop for HostBlock {
    fn drop(&mut self) {
        unsafe { dealloc(self.ptr, Self::layout(self.len)) };
    }
}
