//! Host memory for the engine's buffers: a tuning of glibc's malloc (below) and a global
//! allocator that reuses large freed blocks ([`ReusingAlloc`], installed by the `fdm` binary).
//!
//! Every op returns a fresh output buffer, and at the shapes of the models many of them are large
//! (a paper-preset transformer block allocates about 36 MB per pass: 2 MB activations, 8 MB MLP
//! hidden states) and are freed a few ops later. With glibc's default, an allocation above the
//! (dynamic) mmap threshold gets fresh pages from the kernel, which are faulted in and zeroed on
//! first touch, and freed ones go back to the kernel: that page traffic cost 7-13 % of a
//! paper-preset transformer pass on two cores (2.82-2.96 s -> 2.58-2.65 s; BENCHMARKS.md).
//! Pinning the mmap threshold at its largest value (32 MiB on 64-bit glibc) makes those buffers
//! come from the heap and be reused there, and a larger trim threshold keeps freed memory in
//! the heap instead of returning it after every pass. The cost: the process keeps up to the
//! trim threshold of freed heap memory (256 MiB) instead of handing it back at once.
//!
//! Applied once per process, at the first tensor created; skipped when the user set either
//! threshold through glibc's own environment variables (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`), and a no-op on other C libraries.

use std::sync::Once;

/// glibc `mallopt` parameters (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    pub const M_TRIM_THRESHOLD: i32 = -1;
    pub const M_MMAP_THRESHOLD: i32 = -3;
    extern "C" {
        pub fn mallopt(param: i32, value: i32) -> i32;
    }
}

/// Largest mmap threshold glibc accepts on 64-bit targets (HEAP_MAX_SIZE / 2).
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Freed heap memory kept for reuse before glibc returns it to the kernel.
pub const TRIM_THRESHOLD: i32 = 256 << 20;

static TUNE: Once = Once::new();

/// Apply the tuning (once per process).
pub fn tune_once() {
    TUNE.call_once(apply);
}

fn user_chose() -> bool {
    ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"].iter().any(|v| std::env::var_os(v).is_some())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() {
    if user_chose() {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; glibc serialises it with allocations.
    unsafe {
        glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        glibc::mallopt(glibc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() {
    let _ = user_chose;
}

/// Blocks at least this large are kept for reuse by [`ReusingAlloc`].
pub const REUSE_MIN_BYTES: usize = 4 << 20;
/// Most freed bytes [`ReusingAlloc`] keeps at once.
pub const REUSE_MAX_BYTES: usize = 1 << 30;
/// Most freed blocks [`ReusingAlloc`] keeps at once.
const SLOTS: usize = 64;

/// A global allocator that keeps freed large blocks and hands them back for a request of the
/// same size and alignment; everything else goes to the system allocator.
///
/// Why: a block above glibc's mmap threshold (32 MiB at most; smaller blocks too on the threads
/// of rayon's pool, whose arenas grow by 64 MiB heaps) is mapped fresh by the kernel on every
/// allocation, faulted in and cleared page by page on first touch, and unmapped when freed. The
/// codec's activations at batch 4 are 64 MiB each, so every training step paid that for each of
/// them (10 % of a phase-1a step in page faults and page clearing). Training and sampling repeat
/// the same shapes, so the sizes repeat exactly and an exact-size cache serves them.
///
/// The cost: up to [`REUSE_MAX_BYTES`] of freed memory stays with the process. When a freed
/// block would exceed that or find every slot taken, the blocks kept longest go back to the
/// system first (the newest are the likeliest to be asked for again).
///
/// The `fdm` binary installs it with `#[global_allocator]`; a library user may do the same.
pub struct ReusingAlloc {
    cache: std::sync::Mutex<BlockCache>,
}

/// One kept block; `size == 0` marks an empty slot. `age` orders blocks by when they were kept.
#[derive(Clone, Copy)]
struct Block {
    addr: usize,
    size: usize,
    align: usize,
    age: u64,
}

const EMPTY: Block = Block { addr: 0, size: 0, align: 0, age: 0 };

struct BlockCache {
    blocks: [Block; SLOTS],
    bytes: usize,
    clock: u64,
}

impl Block {
    /// Return the block to the system.
    ///
    /// # Safety
    /// The block came from `System` with this size and alignment and is owned by the caller.
    unsafe fn free(self) {
        System.dealloc(self.addr as *mut u8, Layout::from_size_align_unchecked(self.size, self.align))
    }
}

impl ReusingAlloc {
    pub const fn new() -> ReusingAlloc {
        ReusingAlloc { cache: std::sync::Mutex::new(BlockCache { blocks: [EMPTY; SLOTS], bytes: 0, clock: 0 }) }
    }

    /// Freed bytes kept now.
    pub fn kept_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Give every kept block back to the system.
    pub fn release_kept(&self) {
        let blocks = {
            let mut cache = self.lock();
            cache.bytes = 0;
            std::mem::replace(&mut cache.blocks, [EMPTY; SLOTS])
        };
        for block in blocks.into_iter().filter(|b| b.size > 0) {
            // SAFETY: a kept block came from `System` with its layout (`keep`), and taking the
            // array out of the cache made this the only copy of its address.
            unsafe { block.free() }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BlockCache> {
        // Nothing panics while the lock is held, so poisoning cannot occur; take it regardless.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest kept block of exactly this layout, taken out of the cache.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut cache = self.lock();
        let (slot, _) = cache
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.size == layout.size() && b.align == layout.align())
            .max_by_key(|(_, b)| b.age)?;
        let block = std::mem::replace(&mut cache.blocks[slot], EMPTY);
        cache.bytes -= block.size;
        Some(block.addr as *mut u8)
    }

    /// Keep a freed block, first giving back the oldest kept blocks while it would not fit;
    /// false when it is larger than the whole cache (the caller frees it).
    fn keep(&self, ptr: *mut u8, layout: Layout) -> bool {
        if layout.size() > REUSE_MAX_BYTES {
            return false;
        }
        let mut evicted = [EMPTY; SLOTS];
        let kept = {
            let mut cache = self.lock();
            let mut n = 0;
            while cache.bytes + layout.size() > REUSE_MAX_BYTES || cache.blocks.iter().all(|b| b.size > 0) {
                let oldest = (0..SLOTS).filter(|&i| cache.blocks[i].size > 0).min_by_key(|&i| cache.blocks[i].age);
                let Some(oldest) = oldest else { break };
                evicted[n] = std::mem::replace(&mut cache.blocks[oldest], EMPTY);
                cache.bytes -= evicted[n].size;
                n += 1;
            }
            // The loop above leaves a slot empty; `if let` only to keep the allocator panic-free.
            let slot = cache.blocks.iter().position(|b| b.size == 0);
            if let Some(slot) = slot {
                cache.clock += 1;
                cache.blocks[slot] = Block { addr: ptr as usize, size: layout.size(), align: layout.align(), age: cache.clock };
                cache.bytes += layout.size();
            }
            slot.is_some()
        };
        // Freed outside the lock, so other threads' allocations do not wait on the unmapping.
        for block in evicted.into_iter().filter(|b| b.size > 0) {
            // SAFETY: taken out of the cache above, so owned here; kept blocks came from `System`.
            unsafe { block.free() }
        }
        kept
    }
}

impl Default for ReusingAlloc {
    fn default() -> Self {
        ReusingAlloc::new()
    }
}

use std::alloc::{GlobalAlloc, Layout, System};

// SAFETY: every block handed out is either fresh from `System` for this layout or a block
// `System` gave for exactly this size and alignment, freed by its owner and not handed out since
// (taken out of the cache under its lock). Blocks go back to `System` with their own layout.
unsafe impl GlobalAlloc for ReusingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= REUSE_MIN_BYTES {
            if let Some(ptr) = self.take(layout) {
                return ptr;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= REUSE_MIN_BYTES {
            if let Some(ptr) = self.take(layout) {
                ptr.write_bytes(0, layout.size());
                return ptr;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= REUSE_MIN_BYTES && self.keep(ptr, layout) {
            return;
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A kept block of the new size serves it; otherwise the system allocator resizes (for a
        // mapped block that is a remap, no copy).
        if new_size >= REUSE_MIN_BYTES {
            // SAFETY (of the layout): the caller guarantees `new_size` is valid with this alignment.
            if let Some(new) = self.take(Layout::from_size_align_unchecked(new_size, layout.align())) {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
                return new;
            }
        }
        System.realloc(ptr, layout, new_size)
    }
}
