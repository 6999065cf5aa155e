//! Single-precision GEMM on the CPU: `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C`,
//! row-major with leading dimensions and optional transposes (`params::gemm::GemmParams`), plus
//! a batched entry. The engine's linear layers, matmuls and convolutions land here (spec §2.4,
//! §3.2, §4.1 shapes); stride-1 convolution forwards use `gemm_rows.rs`, which reads B in place
//! with the same micro-kernel.
//!
//! `gemm_ref`: the triple loop with f64 accumulation (the oracle).
//! `gemm_fast`: the classic Goto/BLIS blocking:
//!   for each NC-wide column block of B
//!     for each group of KC-deep k slices (as many as PACK_BUDGET holds: all of k at 1024^3)
//!       for each row block of up to MO rows:
//!         pack op(A)[mo x group] into MR-tall panels and (first row block only) op(B)[group x nc]
//!         into NR-wide panels, one panel set per k slice, in one parallel phase
//!         in parallel over tasks of C (about MC rows x a run of NR-panels), per k slice:
//!           for each B micro-panel (L1), for each A micro-panel (L2): 6x16 micro-kernel.
//! The first k slice applies the caller's beta, later slices accumulate (beta = 1).
//! Packing makes every micro-kernel read unit-stride, aligned, zero-padded panels whatever the
//! transposes and leading dimensions are.

use super::gemm_kernel::{compute_tile, MicroKernel, MR, NR};
use super::gemm_pack::pack_rows_transposed;
use super::gemm_shallow;
use crate::params::gemm::GemmParams;
use rayon::prelude::*;
use std::cell::Cell;

/// Depth of one packed slice: a 16 x 256 B micro-panel is 16 KiB, half the L1.
pub(super) const KC: usize = 256;
/// Rows of C per task at most: a 144 x 256 packed A block is 144 KiB, a slice of the L2.
const MC: usize = 144;
/// Columns of B per packed block: 3072 x 256 floats = 3 MiB, well inside the L3.
const NC: usize = 3072;
/// Rows of A packed at once (bounds the packed-A buffer to MO x gk floats).
const MO: usize = 2304;
/// Floats of packed A and B held at once (12 MiB). The k slices of a group are packed in one
/// parallel phase and multiplied in one more: a 1024^3 product is one group, two phases where
/// packing and multiplying one slice at a time took twelve, each a wake-up and a wait for the
/// slowest thread.
const PACK_BUDGET: usize = 3 << 20;

/// The oracle: the triple loop, f64 accumulation; parallel over rows of C only for test speed.
pub fn gemm_ref(p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    p.check(a.len(), b.len(), c.len());
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let (ta, tb) = (p.is_trans_a(), p.is_trans_b());
    let (lda, ldb, ldc) = (p.lda as usize, p.ldb as usize, p.ldc as usize);
    for bi in 0..p.batch as usize {
        let a = &a[bi * p.stride_a as usize..];
        let b = &b[bi * p.stride_b as usize..];
        let c = &mut c[bi * p.stride_c as usize..];
        let rows: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let mut s = 0f64;
                        for q in 0..k {
                            let av = if ta { a[q * lda + i] } else { a[i * lda + q] };
                            let bv = if tb { b[j * ldb + q] } else { b[q * ldb + j] };
                            s += av as f64 * bv as f64;
                        }
                        let old = if p.beta == 0.0 { 0.0 } else { p.beta as f64 * c[i * ldc + j] as f64 };
                        (p.alpha as f64 * s + old) as f32
                    })
                    .collect()
            })
            .collect();
        for (i, row) in rows.iter().enumerate() {
            c[i * ldc..i * ldc + n].copy_from_slice(row);
        }
    }
}

/// The fast GEMM with the best micro-kernel for this CPU, multi-threaded (rayon).
pub fn gemm_fast(p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    gemm_with(MicroKernel::detect(), true, p, a, b, c);
}

/// The fast GEMM with an explicit micro-kernel and threading choice (tests use this to cover the
/// portable kernel on AVX2 machines). Panics if `kernel` is not available on this CPU.
pub fn gemm_with(kernel: MicroKernel, parallel: bool, p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(kernel.is_available(), "gemm: micro-kernel {kernel:?} not supported by this CPU");
    p.check(a.len(), b.len(), c.len());
    let batch = p.batch as usize;
    let (la, lb, lc) = p.matrix_lens();
    let (sa, sb, sc) = (p.stride_a as usize, p.stride_b as usize, p.stride_c as usize);
    let small = (p.m as f64) * (p.n as f64) * (p.k as f64) < (1u64 << 21) as f64;
    if parallel && batch > 1 && small && sc >= lc && lc > 0 {
        // Many small products: one per task, each single-threaded. C matrices are disjoint
        // because stride_c covers a whole matrix.
        c[..(batch - 1) * sc + lc].par_chunks_mut(sc).enumerate().for_each(|(i, ci)| {
            gemm_single(kernel, false, p, &a[i * sa..i * sa + la], &b[i * sb..i * sb + lb], ci);
        });
    } else {
        for i in 0..batch {
            gemm_single(kernel, parallel, p, &a[i * sa..i * sa + la], &b[i * sb..i * sb + lb], &mut c[i * sc..i * sc + lc]);
        }
    }
}

/// A raw pointer to C shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
pub(super) struct TilePtr(pub(super) *mut f32);
unsafe impl Send for TilePtr {}
unsafe impl Sync for TilePtr {}

/// One product (batch index already applied to the slices).
fn gemm_single(kernel: MicroKernel, parallel: bool, p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || p.alpha == 0.0 {
        scale_c(c, m, n, p.ldc as usize, p.beta);
        return;
    }
    if gemm_shallow::applies(p) {
        return gemm_shallow::gemm_shallow(kernel, parallel, p, a, b, c);
    }
    let mut a_buf = take_buf(&PACK_A);
    let mut b_buf = take_buf(&PACK_B);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        let (nc_pad, mo_pad) = (nc.div_ceil(NR) * NR, MO.min(m).div_ceil(MR) * MR);
        // Depth of a group of k slices packed together: as many KC-deep slices as fit the budget.
        let gk_max = (PACK_BUDGET / ((nc_pad + mo_pad) * KC)).max(1) * KC;
        for g0 in (0..k).step_by(gk_max) {
            let gk = gk_max.min(k - g0);
            let bp = b_buf.slice(nc_pad * gk);
            for ic in (0..m).step_by(MO) {
                let mo = MO.min(m - ic);
                let ap = a_buf.slice(mo.div_ceil(MR) * MR * gk);
                let pack_a_group = |ap: &mut [f32]| {
                    for_each_slice(parallel, ap, mo.div_ceil(MR) * MR, g0, |pc, kc, d| pack_a(parallel, p, a, pc, kc, ic, mo, d));
                };
                if ic == 0 {
                    // B and the first A block in one parallel phase.
                    let pack_b_group = |bp: &mut [f32]| for_each_slice(parallel, bp, nc_pad, g0, |pc, kc, d| pack_b(parallel, p, b, pc, kc, jc, nc, d));
                    if parallel {
                        rayon::join(|| pack_b_group(bp), || pack_a_group(ap));
                    } else {
                        pack_b_group(bp);
                        pack_a_group(ap);
                    }
                } else {
                    pack_a_group(ap);
                }
                let block = Block { kernel, g0, gk, ic, mo, jc, nc, alpha: p.alpha, beta: p.beta, ldc: p.ldc as usize };
                block.compute(parallel, ap, bp, c);
            }
        }
    }
    PACK_A.set(a_buf);
    PACK_B.set(b_buf);
}

/// Run `pack(pc, kc, dst)` for each KC-deep slice of a group starting at k index `g0`, where
/// `dst` (the group's buffer) holds the slices one after the other, `pad * kc` floats each.
fn for_each_slice(parallel: bool, dst: &mut [f32], pad: usize, g0: usize, pack: impl Fn(usize, usize, &mut [f32]) + Sync) {
    let each = |(s, d): (usize, &mut [f32])| pack(g0 + s * KC, d.len() / pad, d);
    if parallel {
        dst.par_chunks_mut(pad * KC).enumerate().for_each(each);
    } else {
        dst.chunks_mut(pad * KC).enumerate().for_each(each);
    }
}

/// C = beta * C on the m x n region (beta == 0 writes zeros without reading).
pub(super) fn scale_c(c: &mut [f32], m: usize, n: usize, ldc: usize, beta: f32) {
    for i in 0..m {
        let row = &mut c[i * ldc..i * ldc + n];
        if beta == 0.0 {
            row.fill(0.0);
        } else {
            row.iter_mut().for_each(|v| *v *= beta);
        }
    }
}

/// One packed (mo x gk) x (gk x nc) block product into C (a group of k slices starting at k
/// index g0), split into tiles for the threads.
struct Block {
    kernel: MicroKernel,
    g0: usize,
    gk: usize,
    ic: usize,
    mo: usize,
    jc: usize,
    nc: usize,
    alpha: f32,
    beta: f32,
    ldc: usize,
}

impl Block {
    fn compute(&self, parallel: bool, ap: &[f32], bp: &[f32], c: &mut [f32]) {
        let threads = if parallel { rayon::current_num_threads() } else { 1 };
        // Row blocks: about MC rows each, their count a multiple of the thread count so the
        // last wave of tasks is not half empty.
        let row_blocks = self.mo.div_ceil(MC).div_ceil(threads) * threads;
        let mc = self.mo.div_ceil(row_blocks).div_ceil(MR) * MR;
        let row_blocks = self.mo.div_ceil(mc);
        // Split columns too when there are too few row blocks to give every thread four tasks:
        // on a shared machine a thread can stall for a while, and smaller tasks let the others
        // take over its share.
        let panels = self.nc.div_ceil(NR);
        let col_splits = (4 * threads).div_ceil(row_blocks).min(panels).max(1);
        let panels_per_task = panels.div_ceil(col_splits);
        let col_tasks = panels.div_ceil(panels_per_task);
        let c_ptr = TilePtr(c.as_mut_ptr());
        let c_len = c.len();
        let task = |t: usize| {
            let (rb, cb) = (t / col_tasks, t % col_tasks);
            let rows = rb * mc..(rb * mc + mc).min(self.mo);
            let cols = cb * panels_per_task..((cb + 1) * panels_per_task).min(panels);
            self.tile_run(ap, bp, c_ptr, c_len, rows, cols);
        };
        if parallel && row_blocks * col_tasks > 1 {
            (0..row_blocks * col_tasks).into_par_iter().for_each(task);
        } else {
            (0..row_blocks * col_tasks).for_each(task);
        }
    }

    /// Rows `rows` of this block (relative to `ic`) times B panels `cols`, one k slice after the
    /// other; within a slice jr outer so one B micro-panel stays in L1 while the A panels stream
    /// from L2.
    fn tile_run(&self, ap: &[f32], bp: &[f32], c: TilePtr, c_len: usize, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
        let (mo_pad, nc_pad) = (self.mo.div_ceil(MR) * MR, self.nc.div_ceil(NR) * NR);
        for q0 in (0..self.gk).step_by(KC) {
            let kc = KC.min(self.gk - q0);
            let beta = if self.g0 + q0 == 0 { self.beta } else { 1.0 };
            let (ap, bp) = (&ap[mo_pad * q0..mo_pad * (q0 + kc)], &bp[nc_pad * q0..nc_pad * (q0 + kc)]);
            for jp in cols.clone() {
                let j = jp * NR;
                let nr = NR.min(self.nc - j);
                let b_panel = &bp[jp * NR * kc..(jp + 1) * NR * kc];
                for i in rows.clone().step_by(MR) {
                    let mr = MR.min(self.mo - i);
                    let a_panel = &ap[(i / MR) * MR * kc..(i / MR + 1) * MR * kc];
                    let offset = (self.ic + i) * self.ldc + self.jc + j;
                    debug_assert!(offset + (mr - 1) * self.ldc + nr <= c_len);
                    // SAFETY: panels hold kc*MR / kc*NR floats; the tile lies inside C (checked
                    // by GemmParams::check) and tiles of different tasks are disjoint.
                    unsafe {
                        compute_tile(self.kernel, kc, a_panel.as_ptr(), b_panel.as_ptr(), c.0.add(offset), self.ldc, mr, nr, self.alpha, beta);
                    }
                }
            }
        }
    }
}

/// Pack op(A)[ic..ic+mo, pc..pc+kc] into MR-tall panels (`dst[panel][q*MR + r]`), zero-padded.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_a(parallel: bool, p: &GemmParams, a: &[f32], pc: usize, kc: usize, ic: usize, mo: usize, dst: &mut [f32]) {
    let lda = p.lda as usize;
    let pack_panel = |(panel, d): (usize, &mut [f32])| {
        let i0 = ic + panel * MR;
        let mr = MR.min(ic + mo - i0);
        if p.is_trans_a() {
            // Stored A is [k, lda]: each k step holds mr consecutive rows of op(A).
            for (q, row) in d.chunks_exact_mut(MR).enumerate() {
                let src = &a[(pc + q) * lda + i0..];
                if mr == MR {
                    // Fixed length: an inlined vector copy instead of a memmove call.
                    row.copy_from_slice(&src[..MR]);
                } else {
                    row[..mr].copy_from_slice(&src[..mr]);
                    row[mr..].fill(0.0);
                }
            }
        } else if mr == MR {
            // Full panel: k outer so the writes are sequential and the MR rows stream in.
            let rows: [&[f32]; MR] = std::array::from_fn(|r| &a[(i0 + r) * lda + pc..][..kc]);
            for (q, dst) in d.chunks_exact_mut(MR).enumerate() {
                for (x, row) in dst.iter_mut().zip(&rows) {
                    *x = row[q];
                }
            }
        } else {
            for r in 0..MR {
                if r < mr {
                    let src = &a[(i0 + r) * lda + pc..][..kc];
                    for (q, &v) in src.iter().enumerate() {
                        d[q * MR + r] = v;
                    }
                } else {
                    (0..kc).for_each(|q| d[q * MR + r] = 0.0);
                }
            }
        }
    };
    if parallel && mo > 4 * MR {
        dst.par_chunks_mut(MR * kc).enumerate().for_each(pack_panel);
    } else {
        dst.chunks_mut(MR * kc).enumerate().for_each(pack_panel);
    }
}

/// Pack op(B)[pc..pc+kc, jc..jc+nc] into NR-wide panels (`dst[panel][q*NR + j]`), zero-padded.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_b(parallel: bool, p: &GemmParams, b: &[f32], pc: usize, kc: usize, jc: usize, nc: usize, dst: &mut [f32]) {
    let ldb = p.ldb as usize;
    let pack_panel = |(panel, d): (usize, &mut [f32])| {
        let j0 = jc + panel * NR;
        let nr = NR.min(jc + nc - j0);
        if p.is_trans_b() {
            // Stored B is [n, ldb]: column j of op(B) is row j of the stored matrix.
            pack_rows_transposed(&b[j0 * ldb + pc..], ldb, nr, kc, d);
        } else {
            for (q, row) in d.chunks_exact_mut(NR).enumerate() {
                let src = &b[(pc + q) * ldb + j0..];
                if nr == NR {
                    // Fixed length: an inlined vector copy instead of a memmove call.
                    row.copy_from_slice(&src[..NR]);
                } else {
                    row[..nr].copy_from_slice(&src[..nr]);
                    row[nr..].fill(0.0);
                }
            }
        }
    };
    if parallel && nc > 4 * NR {
        dst.par_chunks_mut(NR * kc).enumerate().for_each(pack_panel);
    } else {
        dst.chunks_mut(NR * kc).enumerate().for_each(pack_panel);
    }
}

/// 64-byte aligned storage for packed panels (aligned vector loads, no split cache lines).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; 16]);

#[derive(Default)]
pub(super) struct PackBuf(Vec<Line>);

impl PackBuf {
    /// A slice of `len` floats (grown on demand; contents are overwritten by packing).
    pub(super) fn slice(&mut self, len: usize) -> &mut [f32] {
        let lines = len.div_ceil(16);
        if self.0.len() < lines {
            self.0.resize(lines, Line([0.0; 16]));
        }
        // SAFETY: Line is repr(C) [f32; 16]; the vector holds at least `len` floats.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr() as *mut f32, len) }
    }
}

thread_local! {
    // Reused between calls to avoid page-faulting fresh megabytes on every GEMM. Taken out while
    // in use, so a nested call on the same thread (rayon work stealing) gets its own buffer.
    static PACK_A: Cell<PackBuf> = Cell::new(PackBuf::default());
    pub(super) static PACK_B: Cell<PackBuf> = Cell::new(PackBuf::default());
}

fn take_buf(key: &'static std::thread::LocalKey<Cell<PackBuf>>) -> PackBuf {
    key.take()
}
