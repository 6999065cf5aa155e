//! Host-memory tuning of glibc's malloc for the engine's buffers.
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
