//! GEMM micro-kernels: one MR x NR = 6 x 16 tile of C from packed panels of A and B
//! (`cpu/ops/gemm.rs` does the packing, blocking and threading).
//!
//! Packed layouts (both zero-padded to full panels, so kernels never test bounds in the k loop):
//! * A panel: `a[p*MR + i]` = op(A)[row0 + i, k0 + p] for p < kc, i < MR;
//! * B panel: `b[p*NR + j]` = op(B)[k0 + p, col0 + j] for p < kc, j < NR.
//!
//! The tile is `acc[i][j] = sum_p a[p*MR+i] * b[p*NR+j]`, written back as
//! `C[i*ldc + j] = alpha*acc + beta*C` (with beta == 0 C is not read) for the valid
//! `mr x nr` corner (edge tiles of C are smaller than the register tile).
//!
//! B need not be packed: the kernel reads row p of its B micro-panel through a `BSource`, either
//! a packed panel (`PackedB`, rows NR apart) or rows at arbitrary offsets into one buffer
//! (`OffsetB`: an implicit im2col, where row (c, i, j) of a stride-1 convolution's column matrix
//! is the padded input shifted by i rows and j columns; `cpu/ops/gemm_rows.rs`). The source is a
//! type parameter, so each variant compiles to its own straight-line kernel.
//!
//! 6 x 16 fills 12 of the 16 AVX2 registers with accumulators (two 8-wide vectors per row) and
//! leaves room for the two B vectors and one A broadcast: 12 independent FMAs per k step cover
//! the FMA latency (4 cycles) times two FMA pipes on Zen/Intel cores.

pub const MR: usize = 6;
pub const NR: usize = 16;

/// Which micro-kernel runs. `detect()` picks the fastest the CPU supports; tests run both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicroKernel {
    /// Portable Rust loops (any CPU).
    Scalar,
    /// `std::arch::x86_64` AVX2 + FMA intrinsics.
    Avx2Fma,
    /// `std::arch::aarch64` NEON intrinsics (`gemm_neon.rs`): the AVX2 kernel's bits on ARM.
    Neon,
}

impl MicroKernel {
    /// The best kernel this CPU can run (checked at run time, so one binary serves all CPUs).
    pub fn detect() -> MicroKernel {
        [MicroKernel::Avx2Fma, MicroKernel::Neon].into_iter().find(|k| k.is_available()).unwrap_or(MicroKernel::Scalar)
    }
    pub fn is_available(self) -> bool {
        match self {
            MicroKernel::Scalar => true,
            MicroKernel::Avx2Fma => avx2_fma_available(),
            MicroKernel::Neon => neon_available(),
        }
    }
    /// Every kernel, available here or not (tests run the available ones).
    pub const ALL: [MicroKernel; 3] = [MicroKernel::Scalar, MicroKernel::Avx2Fma, MicroKernel::Neon];
    /// Whether the kernel sums with one fused multiply-add per k step (all but `Scalar`), so
    /// that every such kernel gives the same bits.
    pub fn is_fused(self) -> bool {
        self != MicroKernel::Scalar
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}
#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_available() -> bool {
    false
}
#[cfg(target_arch = "aarch64")]
fn neon_available() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}
#[cfg(not(target_arch = "aarch64"))]
fn neon_available() -> bool {
    false
}

/// Where row `p` (NR consecutive floats) of a B micro-panel lies.
pub trait BSource: Copy {
    /// Address of row `p`.
    ///
    /// # Safety
    /// `p` must be below the panel's depth (kc).
    unsafe fn row(self, p: usize) -> *const f32;
    /// A prefetch hint for the data `ahead` steps past row `p`; a no-op where that row's address
    /// is unknown or already cached.
    #[inline(always)]
    fn prefetch_ahead(self, _p: usize) {}
}

/// A packed panel: row p at `ptr + p * NR` (`b[p*NR + j]` above).
#[derive(Clone, Copy)]
pub struct PackedB(pub *const f32);

impl BSource for PackedB {
    #[inline(always)]
    unsafe fn row(self, p: usize) -> *const f32 {
        self.0.add(p * NR)
    }
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn prefetch_ahead(self, p: usize) {
        // 8 steps ahead; wrapping_add: the address may run past the panel, which a prefetch
        // tolerates but `add` would not.
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.0.wrapping_add((p + 8) * NR) as *const i8)
        }
    }
}

/// Rows read in place: row p at `base + rows[p]` (`rows` holds at least kc offsets).
#[derive(Clone, Copy)]
pub struct OffsetB {
    pub base: *const f32,
    pub rows: *const usize,
}

impl BSource for OffsetB {
    #[inline(always)]
    unsafe fn row(self, p: usize) -> *const f32 {
        self.base.wrapping_add(*self.rows.add(p))
    }
}

/// Where element i (< MR) of k step p of an A micro-panel lies: a packed panel, or MR rows read
/// in place. The AVX2 kernel reads A through this; the others get a packed copy
/// (`compute_tile_ab`).
pub trait ASource: Copy {
    /// Address of element `i` of the current k step.
    ///
    /// # Safety
    /// `i < MR`, and the current step lies below the panel's depth.
    unsafe fn elem(&self, i: usize) -> *const f32;
    /// Move to the next k step.
    ///
    /// # Safety
    /// Called at most kc times per tile (the pointers stay inside or one past their rows).
    unsafe fn step(&mut self);
}

/// A packed A panel: element i of step p at `ptr + p * MR + i`.
#[derive(Clone, Copy)]
pub struct PackedA(pub *const f32);

impl ASource for PackedA {
    #[inline(always)]
    unsafe fn elem(&self, i: usize) -> *const f32 {
        self.0.add(i)
    }
    #[inline(always)]
    unsafe fn step(&mut self) {
        self.0 = self.0.add(MR);
    }
}

/// MR rows of A where they lie: element i of step p at `rows[i] + p` (a row may repeat another
/// on an edge tile; its results are not written back).
#[derive(Clone, Copy)]
pub struct RowsA(pub [*const f32; MR]);

impl ASource for RowsA {
    #[inline(always)]
    unsafe fn elem(&self, i: usize) -> *const f32 {
        self.0[i]
    }
    #[inline(always)]
    unsafe fn step(&mut self) {
        for r in &mut self.0 {
            *r = r.add(1);
        }
    }
}

/// Compute one tile from a packed A panel and a packed B panel and write its valid `mr x nr`
/// corner into C.
///
/// # Safety
/// `a` must hold `kc*MR` floats and `b` `kc*NR` floats; `c` must be valid for reads (when
/// beta != 0) and writes of rows `0..mr` (`mr <= MR`), columns `0..nr` (`nr <= NR`) with row
/// stride `ldc`, and no other thread may touch that region meanwhile. `kernel` must be
/// available on this CPU (`is_available`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn compute_tile(
    kernel: MicroKernel,
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    compute_tile_from(kernel, kc, a, PackedB(b), c, ldc, mr, nr, alpha, beta)
}

/// `compute_tile` with B rows taken from any `BSource`.
///
/// # Safety
/// As `compute_tile`, where every row `b.row(p)`, p < kc, must be readable for NR floats (even
/// on an edge tile with `nr < NR`: the kernel always loads full rows).
#[allow(clippy::too_many_arguments)]
pub unsafe fn compute_tile_from<B: BSource>(
    kernel: MicroKernel,
    kc: usize,
    a: *const f32,
    b: B,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    match kernel {
        #[cfg(target_arch = "x86_64")]
        MicroKernel::Avx2Fma => avx2_tile(kc, PackedA(a), b, c, ldc, mr, nr, alpha, beta),
        #[cfg(target_arch = "aarch64")]
        MicroKernel::Neon if mr == MR && nr == NR => super::gemm_neon::tile_6x16(kc, a, b, c, ldc, alpha, beta),
        #[cfg(target_arch = "aarch64")]
        MicroKernel::Neon => {
            let mut tmp = [0f32; MR * NR];
            super::gemm_neon::tile_6x16(kc, a, b, tmp.as_mut_ptr(), NR, 1.0, 0.0);
            write_back(&tmp, c, ldc, mr, nr, alpha, beta);
        }
        _ => {
            let a = std::slice::from_raw_parts(a, kc * MR);
            let mut acc = [0f32; MR * NR];
            tile_scalar(kc, a, b, &mut acc);
            write_back(&acc, c, ldc, mr, nr, alpha, beta);
        }
    }
}

/// The AVX2 kernel on any tile: full tiles straight into C, edge tiles through a local buffer.
///
/// # Safety
/// As `compute_tile_ab`, with AVX2 and FMA available.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn avx2_tile<A: ASource, B: BSource>(kc: usize, a: A, b: B, c: *mut f32, ldc: usize, mr: usize, nr: usize, alpha: f32, beta: f32) {
    if mr == MR && nr == NR {
        avx2::tile_6x16(kc, a, b, c, ldc, alpha, beta)
    } else {
        // Edge tile: full tile into a local buffer, then copy the valid corner.
        let mut tmp = [0f32; MR * NR];
        avx2::tile_6x16(kc, a, b, tmp.as_mut_ptr(), NR, 1.0, 0.0);
        write_back(&tmp, c, ldc, mr, nr, alpha, beta);
    }
}

/// Deepest A panel `compute_tile_ab` copies for the kernels that read A packed only.
pub const MAX_ROWS_KC: usize = 256;

/// `compute_tile_from` with A from any `ASource`. The AVX2 kernel reads it where it lies; the
/// others read a packed copy (the same values, so the same sums).
///
/// # Safety
/// As `compute_tile_from`, where `a.elem(i)` is readable for every i < MR at each of the kc
/// steps, and `kc <= MAX_ROWS_KC` unless the AVX2 kernel runs.
#[allow(clippy::too_many_arguments)]
pub unsafe fn compute_tile_ab<A: ASource, B: BSource>(
    kernel: MicroKernel,
    kc: usize,
    a: A,
    b: B,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if kernel == MicroKernel::Avx2Fma {
        return avx2_tile(kc, a, b, c, ldc, mr, nr, alpha, beta);
    }
    assert!(kc <= MAX_ROWS_KC, "compute_tile_ab: depth {kc} above {MAX_ROWS_KC}");
    let mut panel = [0f32; MAX_ROWS_KC * MR];
    let mut a = a;
    for step in panel.chunks_exact_mut(MR).take(kc) {
        for (i, v) in step.iter_mut().enumerate() {
            *v = *a.elem(i);
        }
        a.step();
    }
    compute_tile_from(kernel, kc, panel.as_ptr(), b, c, ldc, mr, nr, alpha, beta)
}

/// The portable kernel: the same sum, as plain loops the compiler may vectorise.
///
/// # Safety
/// Every row `b.row(p)`, p < kc, must be readable for NR floats.
unsafe fn tile_scalar<B: BSource>(kc: usize, a: &[f32], b: B, acc: &mut [f32; MR * NR]) {
    for p in 0..kc {
        let ap = &a[p * MR..p * MR + MR];
        let bp = std::slice::from_raw_parts(b.row(p), NR);
        for (i, &ai) in ap.iter().enumerate() {
            let row = &mut acc[i * NR..i * NR + NR];
            for (r, &bj) in row.iter_mut().zip(bp) {
                *r += ai * bj;
            }
        }
    }
}

/// `C = alpha*acc + beta*C` on the valid corner of a tile held in `acc` (row stride NR).
unsafe fn write_back(acc: &[f32; MR * NR], c: *mut f32, ldc: usize, mr: usize, nr: usize, alpha: f32, beta: f32) {
    for i in 0..mr {
        for j in 0..nr {
            let dst = c.add(i * ldc + j);
            let v = alpha * acc[i * NR + j];
            *dst = if beta == 0.0 { v } else { v + beta * *dst };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ASource, BSource, MR, NR};
    use std::arch::x86_64::*;

    /// 6 x 16 tile with AVX2 + FMA. Accumulators are named locals (not an array) so they stay in
    /// registers; the k loop is unrolled by 4 to cut loop overhead.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_6x16<A: ASource, B: BSource>(kc: usize, a: A, b: B, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        let mut pa = a;
        macro_rules! step {
            ($p:expr) => {{
                let pb = b.row($p);
                let b0 = _mm256_loadu_ps(pb);
                let b1 = _mm256_loadu_ps(pb.add(8));
                let a0 = _mm256_broadcast_ss(&*pa.elem(0));
                c00 = _mm256_fmadd_ps(a0, b0, c00);
                c01 = _mm256_fmadd_ps(a0, b1, c01);
                let a1 = _mm256_broadcast_ss(&*pa.elem(1));
                c10 = _mm256_fmadd_ps(a1, b0, c10);
                c11 = _mm256_fmadd_ps(a1, b1, c11);
                let a2 = _mm256_broadcast_ss(&*pa.elem(2));
                c20 = _mm256_fmadd_ps(a2, b0, c20);
                c21 = _mm256_fmadd_ps(a2, b1, c21);
                let a3 = _mm256_broadcast_ss(&*pa.elem(3));
                c30 = _mm256_fmadd_ps(a3, b0, c30);
                c31 = _mm256_fmadd_ps(a3, b1, c31);
                let a4 = _mm256_broadcast_ss(&*pa.elem(4));
                c40 = _mm256_fmadd_ps(a4, b0, c40);
                c41 = _mm256_fmadd_ps(a4, b1, c41);
                let a5 = _mm256_broadcast_ss(&*pa.elem(5));
                c50 = _mm256_fmadd_ps(a5, b0, c50);
                c51 = _mm256_fmadd_ps(a5, b1, c51);
                pa.step();
            }};
        }
        // Fetch the C tile while the k loop runs: its rows are ldc apart (4 KiB for a 1024-wide
        // C, so all six share one L1 set) and were last touched a whole k slice ago, so without
        // this the final loads of C stall on L3 or memory (measured: about 10% of a 1024^3 GEMM
        // on one core). A row may span two lines; wrapping_add because prefetches never fault.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + NR - 1) as *const i8);
        }
        let mut p = 0;
        for _ in 0..kc / 4 {
            b.prefetch_ahead(p);
            step!(p);
            step!(p + 1);
            b.prefetch_ahead(p + 2);
            step!(p + 2);
            step!(p + 3);
            p += 4;
        }
        for _ in 0..kc % 4 {
            step!(p);
            p += 1;
        }
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        // A macro, not a closure: closures need not inherit this function's target features.
        macro_rules! store {
            ($row:expr, $lo:expr, $hi:expr) => {{
                let p = c.add($row * ldc);
                let (mut lo, mut hi) = (_mm256_mul_ps(va, $lo), _mm256_mul_ps(va, $hi));
                if beta != 0.0 {
                    lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), lo);
                    hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p.add(8)), hi);
                }
                _mm256_storeu_ps(p, lo);
                _mm256_storeu_ps(p.add(8), hi);
            }};
        }
        store!(0, c00, c01);
        store!(1, c10, c11);
        store!(2, c20, c21);
        store!(3, c30, c31);
        store!(4, c40, c41);
        store!(5, c50, c51);
    }
}
