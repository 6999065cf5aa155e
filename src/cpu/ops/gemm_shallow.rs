//! GEMMs one k slice deep with A stored row-major: `C = alpha A op(B) + beta C` where k <= KC
//! and A is not transposed. These are the transformer's Linears at the tiny preset's widths
//! (k = 64 or 256, m = 1024 tokens per image) and their input gradients.
//!
//! Why a path of their own: the blocked GEMM (`gemm.rs`) packs all of A into MR-row panels in
//! one parallel phase and multiplies in a second. At k = 64 every A panel meets only n / NR B
//! panels (4 at n = 64), so the pack costs about what the multiply does, and each phase is a
//! wake-up of the threads and a wait for the slowest. Here the calling thread packs B (n x k,
//! at most `MAX_B` floats: 16 KiB for a 64 x 64 weight), and one parallel phase runs tasks of
//! row panels; a task packs each MR-row panel of A into a buffer on its stack (L1) right before
//! the micro-kernel calls that read it. Reading the rows in place instead (`gemm_kernel::RowsA`,
//! six streams per k step) measured slower than the blocked path at k = 64.
//! The panels, the micro-kernel, its k order and the C writes are the blocked path's, so are the
//! bits. `examples/linear_timing.rs` times the transformer's Linear shapes.

use super::gemm::{pack_a, pack_b, TilePtr, KC, PACK_B};
use super::gemm_kernel::{compute_tile, MicroKernel, MR, NR};
use crate::params::gemm::GemmParams;
use rayon::prelude::*;

/// Largest packed B (floats) the calling thread packs alone: 256 KiB.
const MAX_B: usize = 1 << 16;
/// Rows of C per task at least: enough micro-kernel calls to pay for the task.
const MIN_TASK_ROWS: usize = 8 * MR;

/// Whether the product takes this path.
pub(super) fn applies(p: &GemmParams) -> bool {
    let (n, k) = (p.n as usize, p.k as usize);
    !p.is_trans_a() && k > 0 && k <= KC && n.div_ceil(NR) * NR * k <= MAX_B && p.alpha != 0.0
}

/// The product (one batch index; `applies(p)` must hold).
pub(super) fn gemm_shallow(kernel: MicroKernel, parallel: bool, p: &GemmParams, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    if m == 0 || n == 0 {
        return;
    }
    let mut b_buf = PACK_B.take();
    let bp = b_buf.slice(n.div_ceil(NR) * NR * k);
    pack_b(false, p, b, 0, k, 0, n, bp);
    let bp = &*bp;
    let panels = m.div_ceil(MR);
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    // About four tasks per thread (a stalled thread's share is taken over), none tiny.
    let per_task = panels.div_ceil(4 * threads).max(MIN_TASK_ROWS / MR);
    let ldc = p.ldc as usize;
    let (c_ptr, c_len) = (TilePtr(c.as_mut_ptr()), c.len());
    let task = |t: usize| {
        let c_base = c_ptr; // the whole wrapper, not its raw field, is captured (Sync)
        let mut a_panel = [0f32; MR * KC];
        let a_panel = &mut a_panel[..MR * k];
        for panel in t * per_task..((t + 1) * per_task).min(panels) {
            let i0 = panel * MR;
            let mr = MR.min(m - i0);
            pack_a(false, p, a, 0, k, i0, mr, a_panel);
            for (jp, b_panel) in bp.chunks_exact(NR * k).enumerate() {
                let (j, nr) = (jp * NR, NR.min(n - jp * NR));
                let offset = i0 * ldc + j;
                debug_assert!(offset + (mr - 1) * ldc + nr <= c_len);
                // SAFETY: the panels hold MR * k and NR * k floats; the tile lies inside C
                // (GemmParams::check) and tasks own disjoint rows of it.
                unsafe {
                    compute_tile(kernel, k, a_panel.as_ptr(), b_panel.as_ptr(), c_base.0.add(offset), ldc, mr, nr, p.alpha, p.beta);
                }
            }
        }
    };
    let tasks = panels.div_ceil(per_task);
    if parallel && tasks > 1 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
    PACK_B.set(b_buf);
}
