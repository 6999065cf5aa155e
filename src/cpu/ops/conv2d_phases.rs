//! Strided convolutions as stride-1 ones over phase planes (spec §2.4: the decoder's 4x4
//! stride-2 reference convs and, through their adjoints, its transposed up-steps; §6.5 the
//! discriminator).
//!
//! With stride s and a kernel k that s divides, write each tap as `i = s u + r` (r < s). Tap
//! (i, j) of output (a, b) reads the padded input at `(s a + i, s b + j) = (s (a + u) + r,
//! s (b + v) + t)`, which is element (a + u, b + v) of the phase plane
//! `P[c, r, t][Y, X] = xpad[c][s Y + r, s X + t]`. So
//!   `y[o, a, b] = sum over (c, r, t) and (u, v) of w[o, c, s u + r, s v + t] P[c, r, t][a + u, b + v]`:
//! a stride-1, unpadded convolution with `C s_h s_w` input channels (the phase planes,
//! `ceil((H + 2 ph) / s_h)` x `ceil((W + 2 pw) / s_w)`, zeros past the input) and a
//! `k_h / s_h` x `k_w / s_w` kernel, whose weights are the original ones reordered. The same
//! multiply-adds, and the stride-1 machinery reads its column matrix in place: no im2col copy and
//! no packing of the large operand, for the forward and the weight gradient.
//!
//! Not for the input gradient: there the adjoint of the phase convolution computes every phase
//! plane over one grid, `ceil((W + 2 pw) / s)` wide, of which each phase needs one column less
//! (measured at the decoder's up-steps, whose forward is this input gradient: 4.6 -> 6.4 ms,
//! 9.5 -> 11.1 ms, 14.4 -> 15.2 ms at batch 4, `examples/conv_backward_timing.rs`), so the im2col
//! path (a GEMM, then col2im) stays. Splitting it by the phase of the input position instead
//! (one stride-1 convolution of g per phase, exactly over that phase's positions: four GEMMs of
//! a quarter of the depth) was tried too: faster with 16 input channels (13.3 -> 11.0 ms), slower
//! with 32 and 64 (9.3 -> 11.3 ms, 4.5 -> 7.5 ms), and no change in a phase-1a step with the
//! discriminator (1.253 steps/s both), so it was not kept.

use super::gemm_kernel::MicroKernel;
use super::im2col::valid_outputs;
use super::strided::copy_strided;
use super::{conv2d, conv2d_weight_grad};
use crate::params::conv2d::Conv2dParams;
use rayon::prelude::*;

/// The stride-1 view of a strided convolution (`phase_view`).
#[derive(Clone, Copy, Debug)]
pub(super) struct PhaseView {
    /// The original convolution.
    pub p: Conv2dParams,
    /// The stride-1 convolution over the phase planes (same batch, output and bias).
    pub v: Conv2dParams,
}

/// The phase view of `p` when it has one: a stride above 1 that divides the kernel, and a
/// sub-kernel larger than 1 x 1 (with a 1 x 1 one the phase planes would be a strided copy of
/// the input, what im2col makes anyway; that case stays there).
pub(super) fn phase_view(p: &Conv2dParams) -> Option<PhaseView> {
    let (sh, sw) = (p.stride_h, p.stride_w);
    let strided = sh > 1 || sw > 1;
    if !strided || !p.kernel_h.is_multiple_of(sh) || !p.kernel_w.is_multiple_of(sw) || (p.kernel_h == sh && p.kernel_w == sw) {
        return None;
    }
    let v = Conv2dParams {
        in_channels: p.in_channels * sh * sw,
        in_h: (p.in_h + 2 * p.pad_h).div_ceil(sh),
        in_w: (p.in_w + 2 * p.pad_w).div_ceil(sw),
        kernel_h: p.kernel_h / sh,
        kernel_w: p.kernel_w / sw,
        stride_h: 1,
        stride_w: 1,
        pad_h: 0,
        pad_w: 0,
        ..*p
    };
    // The output stays the original's: every output position reads inside the phase planes
    // (out_h - 1 + kernel_h / sh <= in_h since kernel_h is a multiple of sh).
    debug_assert!(v.out_h + v.kernel_h - 1 <= v.in_h && v.out_w + v.kernel_w - 1 <= v.in_w);
    Some(PhaseView { p: *p, v })
}

impl PhaseView {
    fn strides(&self) -> (usize, usize) {
        (self.p.stride_h as usize, self.p.stride_w as usize)
    }

    /// Phase-plane weights `[O, C s_h s_w, k_h / s_h, k_w / s_w]` from `w [O, C, k_h, k_w]`.
    pub fn weights(&self, w: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.p.weight_len()];
        self.for_each_tap(|orig, phase| out[phase] = w[orig]);
        out
    }

    /// `dw [O, C, k_h, k_w]` from the phase-plane weight gradient.
    pub fn weights_back(&self, dw_phase: &[f32], dw: &mut [f32]) {
        self.for_each_tap(|orig, phase| dw[orig] = dw_phase[phase]);
    }

    /// `f(index in the original weights, index in the phase weights)` for every tap.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize)) {
        let (sh, sw) = self.strides();
        let (kh, kw) = (self.p.kernel_h as usize, self.p.kernel_w as usize);
        let (kh2, kw2) = (kh / sh, kw / sw);
        let channels = self.p.out_channels as usize * self.p.in_channels as usize;
        for oc_c in 0..channels {
            for i in 0..kh {
                for j in 0..kw {
                    let phase_channel = (oc_c * sh + i % sh) * sw + j % sw;
                    f((oc_c * kh + i) * kw + j, (phase_channel * kh2 + i / sh) * kw2 + j / sw);
                }
            }
        }
    }

    /// The phase planes of one image `x_img [C, H, W]` into `dst` (`[C s_h s_w, Hq, Wq]`, then
    /// zeros to its end): `P[c, r, t][y, x] = x_img[c, s_h y + r - ph, s_w x + t - pw]`, zero
    /// outside the image.
    pub fn fill(&self, x_img: &[f32], dst: &mut [f32]) {
        let (sh, sw) = self.strides();
        let (h, wd) = (self.p.in_h as usize, self.p.in_w as usize);
        let (ph, pw) = (self.p.pad_h as usize, self.p.pad_w as usize);
        let (hq, wq) = (self.v.in_h as usize, self.v.in_w as usize);
        let (planes, tail) = dst.split_at_mut(self.v.in_channels as usize * hq * wq);
        tail.fill(0.0);
        planes.par_chunks_mut(hq * wq).enumerate().for_each(|(pc, plane)| {
            let (c, r, t) = (pc / (sh * sw), (pc / sw) % sh, pc % sw);
            for (y, row) in plane.chunks_exact_mut(wq).enumerate() {
                let Some(iy) = (y * sh + r).checked_sub(ph).filter(|&iy| iy < h) else {
                    row.fill(0.0);
                    continue;
                };
                let src = &x_img[(c * h + iy) * wd..][..wd];
                // Columns lo..hi read src[x s_w + t - pw], inside the row; the rest are padding.
                let (lo, hi) = valid_outputs(t, pw, sw, wd, wq);
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if hi > lo {
                    copy_strided(&mut row[lo..hi], &src[lo * sw + t - pw..], sw);
                }
            }
        });
    }
}

/// Forward of a strided convolution through its phase view: `y = conv2d(x, w) + b`.
pub(super) fn forward(view: &PhaseView, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let (xl, yl) = (view.p.in_image_len(), view.p.out_image_len());
    let w_phase = view.weights(w);
    for n in 0..view.p.batch as usize {
        let x_img = &x[n * xl..(n + 1) * xl];
        conv2d::implicit_of_padded(&view.v, &|buf: &mut [f32]| view.fill(x_img, buf), &w_phase, b, 0.0, &mut y[n * yl..(n + 1) * yl]);
    }
}

/// Weight gradient of a strided convolution (overwrites dw): that of the phase convolution,
/// its columns read in place from the phase planes, reordered back.
pub(super) fn backward_weight(view: &PhaseView, x: &[f32], g: &[f32], dw: &mut [f32]) {
    let xl = view.p.in_image_len();
    let mut dw_phase = vec![0f32; view.p.weight_len()];
    let fill = |n: usize, buf: &mut [f32]| view.fill(&x[n * xl..(n + 1) * xl], buf);
    conv2d_weight_grad::weight_grad_of_padded(MicroKernel::detect(), &view.v, &fill, g, &mut dw_phase);
    view.weights_back(&dw_phase, dw);
}
