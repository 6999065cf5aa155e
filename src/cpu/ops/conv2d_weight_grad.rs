//! Weight gradient of a stride-1 convolution with no column matrix (spec §2.4 decoder, §4.1
//! FDM, §6 training): `dw[o, r] = sum_n sum_q g[n, o, q] col_n[r, q]`, where row r = (c, i, j)
//! of the column matrix is the zero-padded input plane c read from offset `i * Wp + j`, one run
//! of `OW` columns per output row, `Wp` apart (as in `conv2d_stride1_implicit`).
//!
//! The usual route (`dw += g col^T` through `gemm_fast`) materialises col and then packs its
//! transpose: two passes over a matrix `kh * kw` times the input, for a product whose other
//! side has only 16-64 output channels, so the copies cost more than the multiply-adds. Here the
//! product is turned round, `dw^T [r, o] = sum_q col[r, q] g^T[q, o]`: its A operand is col, whose
//! rows the AVX2 micro-kernel reads where they lie in the padded input (`gemm_kernel::RowsA`: six
//! row pointers stepping along one output row), and its B operand is g^T, packed once per image
//! (`oc` rows instead of `c * kh * kw`).
//!
//! Layout of the work, per image:
//!   pad x into `xpad [C, Hp, Wp]`; pack g^T into NR-wide panels over the output channels, every
//!   position in order (`gpack[panel][q * NR + j] = g[panel * NR + j, q]`);
//!   in parallel over ranges of MR-row panels of `dw^T` (disjoint rows, so no reduction):
//!     for each output row, in pieces of at most KC positions:
//!       for each B panel (16 KiB, stays in L1), for each A panel of the range: one 6 x 16 tile,
//!       accumulated into `dw^T` (beta = 1).
//! Finally `dw = (dw^T)^T`.

use super::gemm::PackBuf;
use super::gemm_kernel::{compute_tile_ab, MicroKernel, PackedB, RowsA, MAX_ROWS_KC, MR, NR};
use super::gemm_pack::pack_rows_transposed;
use super::im2col::with_col_buffer;
use crate::params::conv2d::Conv2dParams;
use rayon::prelude::*;
use std::cell::Cell;

/// Positions per micro-kernel call at most (one output row or a piece of it).
const KC: usize = MAX_ROWS_KC;
/// Positions of g^T packed per task.
const PACK_CHUNK: usize = 4096;

thread_local! {
    // The caller's packed g^T, reused from call to call.
    static G_PACK: Cell<PackBuf> = Cell::new(PackBuf::default());
}

/// Whether `conv2d_weight_grad_stride1` handles this convolution (stride 1, any kernel and
/// padding).
pub fn handles(p: &Conv2dParams) -> bool {
    p.stride_h == 1 && p.stride_w == 1
}

/// `dw [out, in, kh, kw] = sum over images of g * col^T` (overwrites dw) for a stride-1
/// convolution (`handles`).
pub fn conv2d_weight_grad_stride1(kernel: MicroKernel, p: &Conv2dParams, x: &[f32], g: &[f32], dw: &mut [f32]) {
    assert!(handles(p) && kernel.is_available(), "conv2d_weight_grad_stride1: {p:?} with {kernel:?}");
    let xl = p.in_image_len();
    assert!(x.len() >= p.batch as usize * xl, "conv2d_weight_grad_stride1: x too short for {p:?}");
    let fill = |n: usize, xpad: &mut [f32]| super::conv2d::pad_image(p, &x[n * xl..(n + 1) * xl], xpad);
    weight_grad_of_padded(kernel, p, &fill, g, dw);
}

/// The weight gradient of the stride-1 convolution `p` whose zero-padded input of image n,
/// `[C, H + 2 ph, W + 2 pw]`, `fill(n, buffer)` writes (every element): a padded photo, or the
/// phase planes of a strided convolution (`conv2d_phases`). Overwrites `dw [out, C, kh, kw]`.
pub(super) fn weight_grad_of_padded(kernel: MicroKernel, p: &Conv2dParams, fill: &(dyn Fn(usize, &mut [f32]) + Sync), g: &[f32], dw: &mut [f32]) {
    let (oc, k, gl) = (p.out_channels as usize, p.col_rows(), p.out_image_len());
    assert!(g.len() >= p.batch as usize * gl && dw.len() >= oc * k, "conv2d weight gradient: buffers too short for {p:?}");
    let mut dw_t = vec![0f32; k * oc];
    if oc > 0 && k > 0 && p.out_plane() > 0 {
        for n in 0..p.batch as usize {
            accumulate_image(kernel, p, &|xpad: &mut [f32]| fill(n, xpad), &g[n * gl..(n + 1) * gl], &mut dw_t);
        }
    }
    for (o, row) in dw[..oc * k].chunks_exact_mut(k).enumerate() {
        row.iter_mut().zip(dw_t.iter().skip(o).step_by(oc)).for_each(|(d, &v)| *d = v);
    }
}

/// `dw_t [k, oc] += col(x_img) g_img^T` for one image, whose padded input `fill` writes.
fn accumulate_image(kernel: MicroKernel, p: &Conv2dParams, fill: &dyn Fn(&mut [f32]), g_img: &[f32], dw_t: &mut [f32]) {
    let (c_n, h, wd) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize);
    let (ph, pw) = (p.pad_h as usize, p.pad_w as usize);
    let (oc, k, plane) = (p.out_channels as usize, p.col_rows(), p.out_plane());
    let (wp, ps) = (wd + 2 * pw, (h + 2 * ph) * (wd + 2 * pw));
    let panels = oc.div_ceil(NR);
    let mut g_buf = G_PACK.take();
    let gpack = g_buf.slice(panels * plane * NR);
    pack_g_transposed(g_img, oc, plane, gpack);
    with_col_buffer(c_n * ps, |xpad| {
        fill(xpad);
        let rows = super::conv2d::padded_row_offsets(p);
        let work = Work { kernel, p, xpad, rows: &rows, gpack, oc, wp };
        let a_panels = k.div_ceil(MR);
        let tasks = (4 * rayon::current_num_threads()).min(a_panels).max(1);
        let per_task = a_panels.div_ceil(tasks);
        dw_t.par_chunks_mut(per_task * MR * oc).enumerate().for_each(|(t, out)| work.rows_range(t * per_task * MR, out));
    });
    G_PACK.set(g_buf);
}

/// `gpack[panel][q * NR + j] = g[panel * NR + j, q]` (zeros past the last channel), in parallel
/// over panels and chunks of positions.
fn pack_g_transposed(g_img: &[f32], oc: usize, plane: usize, gpack: &mut [f32]) {
    gpack.par_chunks_mut(plane * NR).enumerate().for_each(|(panel, panel_dst)| {
        let o0 = panel * NR;
        panel_dst.par_chunks_mut(PACK_CHUNK * NR).enumerate().for_each(|(t, dst)| {
            let q0 = t * PACK_CHUNK;
            pack_rows_transposed(&g_img[o0 * plane + q0..], plane, NR.min(oc - o0), dst.len() / NR, dst);
        });
    });
}

/// What every task reads.
struct Work<'a> {
    kernel: MicroKernel,
    p: &'a Conv2dParams,
    xpad: &'a [f32],
    rows: &'a [usize],
    gpack: &'a [f32],
    oc: usize,
    wp: usize,
}

impl Work<'_> {
    /// Rows `r0..` of `dw_t` held in `out` (whole rows of `oc` values).
    fn rows_range(&self, r0: usize, out: &mut [f32]) {
        let (oh_n, ow_n, plane) = (self.p.out_h as usize, self.p.out_w as usize, self.p.out_plane());
        let m = out.len() / self.oc;
        for oh in 0..oh_n {
            for ow0 in (0..ow_n).step_by(KC) {
                let len = KC.min(ow_n - ow0);
                let (q0, shift) = (oh * ow_n + ow0, oh * self.wp + ow0);
                for (panel, b) in self.gpack.chunks_exact(plane * NR).enumerate() {
                    let (o0, nr) = (panel * NR, NR.min(self.oc - panel * NR));
                    let b = PackedB(b[q0 * NR..].as_ptr());
                    for i in (0..m).step_by(MR) {
                        let mr = MR.min(m - i);
                        // Rows past the last one repeat it: computed, never written back.
                        let a = RowsA(std::array::from_fn(|t| self.xpad[self.rows[r0 + i + t.min(mr - 1)] + shift..].as_ptr()));
                        debug_assert!((0..mr).all(|t| self.rows[r0 + i + t] + shift + len <= self.xpad.len()));
                        // SAFETY: each row pointer has `len` floats ahead inside xpad (the last
                        // position of a run reads column ow0 + len - 1 + j < Wp of a padded row);
                        // the B panel holds `len` rows of NR from q0 (q0 + len <= plane); the tile
                        // lies in `out` (rows i..i+mr of m, columns o0..o0+nr of oc).
                        unsafe { compute_tile_ab(self.kernel, len, a, b, out.as_mut_ptr().add(i * self.oc + o0), self.oc, mr, nr, 1.0, 1.0) };
                    }
                }
            }
        }
    }
}
