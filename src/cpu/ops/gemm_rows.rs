//! GEMM whose B is read in place: `C[m,n] = alpha * op(A)[m,k] * B[k,n] + beta * C (+ bias[m])`
//! (row-major C with `ldc`, A as `GemmParams` describes it, one product), where B's element
//! (r, q) is `b[rows[r] + (q / width) * stride + q % width]` (`BInPlace`): k rows at arbitrary
//! offsets, each a grid of `n / width` runs of `width` columns, `stride` apart. This is the
//! implicit im2col of stride-1 convolutions (`cpu/ops/conv2d.rs`): row (c, i, j) of the column
//! matrix is the zero-padded input plane c read from offset `i * Wp + j`, one run of `OW` columns
//! per output row, `Wp` apart, so B is never materialised (spec §2.4 decoder, §4.1 FDM).
//!
//! Why a driver of its own instead of `gemm.rs` with a B packer that follows the offsets: the
//! usual GEMM packs every B panel once and pays for it by reusing each packed element across all
//! m rows of A. A convolution with few output channels (the decoder's full-resolution 3x3 convs:
//! m = 64, k = 576, n = 65 536) reuses each B element only 64 times, and packing B then cost
//! about as much as the products (0.50x of the GEMM's GFLOP/s). Here B is never packed: the
//! micro-kernel loads each B row straight from the padded input (`gemm_kernel::OffsetB`), and A
//! (the weights, small) is packed once for all of k.
//!
//! Blocking:
//!   pack all of op(A): [k slice][MR-row panel][kc * MR];
//!   in parallel over tasks = (range of B micro-panels) x (row range, only when panels are few):
//!     for each k slice (kc <= KC):
//!       for each row block (A block <= A_BLOCK_FLOATS, stays in L2):
//!         for each NR-wide B micro-panel (its rows, read in place, stay in L1):
//!           for each MR-row A panel: the 6 x 16 micro-kernel accumulates into a local tile;
//!     then the local tile goes to C once: alpha * acc + beta * C + bias.
//! The local tile (at most C_CHUNK_FLOATS, rows padded to MR, panels to NR) stays in L2 across
//! the k slices and always takes full 6 x 16 tiles. Writing C directly instead would put the rows
//! of a tile `ldc` apart: for a convolution `ldc` is the output plane, 65 536 floats at 256 x 256,
//! a multiple of 4 KiB, so all 64 rows land in one L1 set and one L2 set and every k slice
//! re-read them from L3. The local tile's row length is an odd number of cache lines instead.
//! B micro-panels never straddle two runs: a run of `width` columns is `width / NR` full panels and
//! a partial one, whose kernel still loads full NR-wide rows (its extra lanes are never copied
//! to C). Those loads stay in place when they lie inside `b` (the convolution pads its buffer so
//! they always do); otherwise that panel is packed, zero-padded.

use super::gemm::{pack_a, scale_c, PackBuf, TilePtr};
use super::gemm_kernel::{compute_tile_from, BSource, MicroKernel, OffsetB, PackedB, MR, NR};
use crate::params::gemm::GemmParams;
use rayon::prelude::*;
use std::cell::Cell;
use std::ops::Range;

/// Depth of one k slice. The L1 holds one B micro-panel read in place: for a 3x3 conv the kc
/// rows come in runs of 3 shifted by one float (72 bytes, 2 or 3 cache lines per run), so 256
/// rows touch about 12 KiB, next to a 6 KiB A panel in the 32 KiB L1.
const KC: usize = 256;
/// Floats of packed A per row block: 256 KiB, half the per-core L2.
const A_BLOCK_FLOATS: usize = 64 * 1024;
/// Floats of C per task at most (128 KiB): stays in L2 from one k slice to the next.
const C_CHUNK_FLOATS: usize = 32 * 1024;

/// Where B [k, n] lies in `b`: element (r, q) at `b[rows[r] + (q / width) * stride + q % width]`.
/// A dense-rowed B at arbitrary row offsets is `width = n`.
#[derive(Clone, Copy, Debug)]
pub struct BInPlace<'a> {
    pub rows: &'a [usize],
    pub width: usize,
    pub stride: usize,
}

/// `C = alpha * op(A) * B + beta * C (+ bias[i] on row i)` with B read in place (`BInPlace`; B
/// not transposed, one product), multi-threaded with the best micro-kernel for this CPU.
pub fn gemm_b_in_place(p: &GemmParams, a: &[f32], b: &[f32], layout: BInPlace, bias: Option<&[f32]>, c: &mut [f32]) {
    gemm_b_in_place_with(MicroKernel::detect(), p, a, b, layout, bias, c);
}

/// `gemm_b_in_place` with an explicit micro-kernel (tests cover the portable one too).
/// Panics if `kernel` is not available on this CPU, `width` does not divide n, an element of B
/// lies past `b`, or `bias` holds fewer than m values.
#[allow(clippy::too_many_arguments)]
pub fn gemm_b_in_place_with(kernel: MicroKernel, p: &GemmParams, a: &[f32], b: &[f32], layout: BInPlace, bias: Option<&[f32]>, c: &mut [f32]) {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    assert!(kernel.is_available(), "gemm_b_in_place: micro-kernel {kernel:?} not supported by this CPU");
    assert!(p.batch == 1 && !p.is_trans_b(), "gemm_b_in_place: one product with a non-transposed B");
    assert_eq!(layout.rows.len(), k, "gemm_b_in_place: one row offset per k");
    assert!(bias.is_none_or(|b| b.len() >= m), "gemm_b_in_place: fewer bias values than rows");
    let runs = if n == 0 { 0 } else { n / layout.width.max(1) };
    assert!(n == 0 || (layout.width > 0 && n % layout.width == 0), "gemm_b_in_place: width {} does not divide n = {n}", layout.width);
    let row_span = if runs == 0 { 0 } else { (runs - 1) * layout.stride + layout.width };
    assert!(layout.rows.iter().all(|&o| o + row_span <= b.len()), "gemm_b_in_place: a row of B runs past its buffer");
    p.check(a.len(), usize::MAX, c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || p.alpha == 0.0 {
        // No product (A and B are not read, as in BLAS): C = beta * C + bias.
        scale_c(c, m, n, p.ldc as usize, p.beta);
        if let Some(bias) = bias {
            c.chunks_mut(p.ldc as usize).zip(bias).for_each(|(row, &v)| row[..n].iter_mut().for_each(|x| *x += v));
        }
        return;
    }
    let kc = k.div_ceil(k.div_ceil(KC));
    let m_pad = m.div_ceil(MR) * MR;
    let mut a_buf = PACKED_A.take();
    let ap = a_buf.slice(m_pad * k);
    // One parallel phase over the k slices (each packed by panels in parallel too when large).
    let big = m * k >= 1 << 18;
    ap.par_chunks_mut(m_pad * kc).enumerate().for_each(|(s, d)| pack_a(big, p, a, s * kc, d.len() / m_pad, 0, m, d));
    let ap = &*ap;
    let per_run = layout.width.div_ceil(NR);
    let plan = Plan::new(m, runs * per_run, kc);
    let max_row = layout.rows.iter().copied().max().unwrap_or(0);
    let run = Run { kernel, p, k, kc, m_pad, ap, b, layout, per_run, max_row, bias, c: TilePtr(c.as_mut_ptr()) };
    let tasks = plan.row_tasks * plan.col_tasks;
    (0..tasks).into_par_iter().for_each(|t| {
        let (rt, ct) = (t / plan.col_tasks, t % plan.col_tasks);
        let rows = rt * plan.rows_per_task..((rt + 1) * plan.rows_per_task).min(m);
        let panels = ct * plan.panels_per_task..((ct + 1) * plan.panels_per_task).min(runs * per_run);
        let mut acc = ACC.take();
        run.task(rows, panels, plan.block_rows, &mut acc);
        ACC.set(acc);
    });
    PACKED_A.set(a_buf);
}

thread_local! {
    // Each worker's local C tile, reused from task to task, and the caller's packed A, reused from
    // call to call (fresh allocations of 100 KiB and more are mapped and page-faulted every time).
    // Taken out while in use, so a nested call on the same thread gets its own.
    static ACC: Cell<PackBuf> = Cell::new(PackBuf::default());
    static PACKED_A: Cell<PackBuf> = Cell::new(PackBuf::default());
}

/// How C is split into tasks (ranges of MR-aligned rows and of NR-wide column panels).
struct Plan {
    col_tasks: usize,
    panels_per_task: usize,
    row_tasks: usize,
    rows_per_task: usize,
    /// Rows per A block inside a task (a multiple of MR).
    block_rows: usize,
}

impl Plan {
    fn new(m: usize, n_panels: usize, kc: usize) -> Plan {
        let threads = rayon::current_num_threads();
        let m_panels = m.div_ceil(MR);
        let max_panels = (C_CHUNK_FLOATS / (m_panels * MR * NR)).max(1);
        let panels_per_task = n_panels.div_ceil(n_panels.div_ceil(max_panels));
        let col_tasks = n_panels.div_ceil(panels_per_task);
        // Too few column ranges to keep every thread busy twice over: split the rows as well.
        let row_splits = if col_tasks < 2 * threads { (2 * threads).div_ceil(col_tasks).min(m_panels) } else { 1 };
        let rows_per_task = m_panels.div_ceil(row_splits) * MR;
        let row_tasks = m.div_ceil(rows_per_task);
        let block_rows = (A_BLOCK_FLOATS / kc / MR).max(1) * MR;
        Plan { col_tasks, panels_per_task, row_tasks, rows_per_task, block_rows }
    }
}

/// Everything a task needs, shared read-only across threads (C through a raw pointer: tasks
/// write disjoint tiles).
struct Run<'a> {
    kernel: MicroKernel,
    p: &'a GemmParams,
    k: usize,
    kc: usize,
    m_pad: usize,
    ap: &'a [f32],
    b: &'a [f32],
    layout: BInPlace<'a>,
    /// B micro-panels per run of `width` columns.
    per_run: usize,
    max_row: usize,
    bias: Option<&'a [f32]>,
    c: TilePtr,
}

impl Run<'_> {
    /// C[rows, panels] over all of k, one k slice at a time, accumulated in `acc` and then stored.
    fn task(&self, rows: Range<usize>, panels: Range<usize>, block_rows: usize, acc: &mut PackBuf) {
        // Local tile: rows padded to MR, each row `ld` floats, an odd number of 64-byte lines so
        // that the six rows of a micro-tile fall on different L1 sets.
        let (rows_pad, ld) = ((rows.len()).div_ceil(MR) * MR, (panels.len() | 1) * NR);
        let acc = acc.slice(rows_pad * ld);
        let mut packed = Vec::new();
        for pc in (0..self.k).step_by(self.kc) {
            let kcs = self.kc.min(self.k - pc);
            let slice = &self.ap[self.m_pad * pc..self.m_pad * (pc + kcs)];
            let rows_here = &self.layout.rows[pc..pc + kcs];
            let tiles = Tiles { kernel: self.kernel, kcs, slice, row0: rows.start, ld, beta: if pc == 0 { 0.0 } else { 1.0 } };
            for i0 in rows.clone().step_by(block_rows) {
                let block = i0..(i0 + block_rows).min(rows.end);
                for (t, jp) in panels.clone().enumerate() {
                    let off = self.b_offset(jp);
                    let tile = &mut acc[t * NR..];
                    if self.max_row + off + NR <= self.b.len() {
                        // In place: every row's NR loads lie inside b (checked just above).
                        tiles.run(OffsetB { base: self.b.as_ptr().wrapping_add(off), rows: rows_here.as_ptr() }, block.clone(), tile);
                    } else {
                        packed.resize(kcs * NR, 0.0);
                        self.pack_panel(rows_here, jp, &mut packed);
                        tiles.run(PackedB(packed.as_ptr()), block.clone(), tile);
                    }
                }
            }
        }
        self.store(rows, panels, acc, ld);
    }

    /// Where B micro-panel `jp` starts in each row of `b`, relative to the row's offset.
    fn b_offset(&self, jp: usize) -> usize {
        let (g, x0) = (jp / self.per_run, (jp % self.per_run) * NR);
        g * self.layout.stride + x0
    }

    /// The C column of B micro-panel `jp`'s first element, and how many of its NR columns are
    /// real (the rest run past the end of its run of `width` columns).
    fn c_columns(&self, jp: usize) -> (usize, usize) {
        let (g, x0) = (jp / self.per_run, (jp % self.per_run) * NR);
        (g * self.layout.width + x0, NR.min(self.layout.width - x0))
    }

    /// One B micro-panel (its valid columns of every row) packed, zero-padded to NR.
    fn pack_panel(&self, rows_here: &[usize], jp: usize, dst: &mut [f32]) {
        let (off, nr) = (self.b_offset(jp), self.c_columns(jp).1);
        for (d, &o) in dst.chunks_exact_mut(NR).zip(rows_here) {
            d[..nr].copy_from_slice(&self.b[o + off..][..nr]);
            d[nr..].fill(0.0);
        }
    }

    /// `C[i, j] = alpha * acc + beta * C[i, j] (+ bias[i])` for the task's rows and the valid
    /// columns of its panels, one contiguous stretch per run of B columns (the panels of one run
    /// are adjacent both in `acc` and in C).
    fn store(&self, rows: Range<usize>, panels: Range<usize>, acc: &[f32], ld: usize) {
        let (ldc, alpha, beta) = (self.p.ldc as usize, self.p.alpha, self.p.beta);
        let mut jp = panels.start;
        while jp < panels.end {
            let last = ((jp / self.per_run + 1) * self.per_run).min(panels.end) - 1;
            let (j, _) = self.c_columns(jp);
            let (j_last, nr_last) = self.c_columns(last);
            let (t, len) = ((jp - panels.start) * NR, j_last + nr_last - j);
            for (r, i) in rows.clone().enumerate() {
                let add = self.bias.map_or(0.0, |b| b[i]);
                let src = &acc[r * ld + t..][..len];
                // SAFETY: row i < m and columns j..j+len <= n lie inside C (GemmParams::check),
                // and only this task writes them.
                let dst = unsafe { std::slice::from_raw_parts_mut(self.c.0.add(i * ldc + j), len) };
                if beta == 0.0 {
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = alpha * s + add);
                } else {
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = alpha * s + beta * *d + add);
                }
            }
            jp = last + 1;
        }
    }
}

/// The micro-kernel over the MR-row panels of one row block for one B micro-panel, into the
/// local tile (every tile full: the local tile has padded rows and whole panels).
struct Tiles<'a> {
    kernel: MicroKernel,
    kcs: usize,
    slice: &'a [f32],
    row0: usize,
    ld: usize,
    beta: f32,
}

impl Tiles<'_> {
    fn run<B: BSource>(&self, src: B, rows: Range<usize>, tile: &mut [f32]) {
        for i in rows.step_by(MR) {
            let a_panel = &self.slice[(i / MR) * MR * self.kcs..][..MR * self.kcs];
            let c = &mut tile[(i - self.row0) * self.ld..];
            assert!(c.len() >= (MR - 1) * self.ld + NR);
            // SAFETY: the A panel holds kcs*MR floats; B rows are readable for NR floats (checked
            // by the caller or packed); the MR x NR tile lies inside `c` (asserted).
            unsafe {
                compute_tile_from(self.kernel, self.kcs, a_panel.as_ptr(), src, c.as_mut_ptr(), self.ld, MR, NR, 1.0, self.beta);
            }
        }
    }
}
