//! Multi-head self-attention core, forward (spec §3.2), on flat slices.
//!
//! q, k, v, out: `[batch, seq_len, heads * head_dim]` row-major (B x L x C); head `h` owns
//! channels `h*head_dim .. (h+1)*head_dim`. For every (b, h, query i):
//! `s_ij = scale * q_i . k_j`, `p_ij = softmax_j(s_ij)`, `out_i = sum_j p_ij v_j`. No mask.
//! The q/k/v/proj Linear layers are not part of this op.
//!
//! * `attention_ref`: materialises each score row, f64 accumulation: the oracle.
//! * `attention_fast`: per (batch, head, block of queries) in parallel, keys visited in blocks
//!   with an online (running max / running sum) softmax, so no L x L matrix is ever stored. It
//!   also writes the log-sum-exp of every score row, `lse = m + ln(sum_j exp(s_ij - m))`
//!   (`[batch, heads, seq_len]`), which the backward uses to rebuild `p_ij` block by block.
//!
//! Heads are first packed into per-head contiguous panels (rows `[L, Dh]` or transposed
//! `[Dh, L]`) so the two tile kernels (`score_tile`: Q K^T, `tile_times_panel`: P V) read
//! unit-stride rows and keep a 4 x 8 block of results in registers.

use crate::params::attention::AttentionParams;
use rayon::prelude::*;

/// Query rows handled by one work item.
pub(crate) const QUERY_BLOCK: usize = 32;
/// Key columns scored at once (the width of one score tile).
pub(crate) const KEY_BLOCK: usize = 64;
/// Rows x columns of the register block of the tile kernels.
const MR: usize = 4;
const NR: usize = 8;

/// Sizes of one attention call as usize.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub b: usize,
    pub l: usize,
    pub h: usize,
    pub dh: usize,
}

impl Dims {
    pub fn of(p: &AttentionParams) -> Dims {
        Dims {
            b: p.batch as usize,
            l: p.seq_len as usize,
            h: p.heads as usize,
            dh: p.head_dim as usize,
        }
    }
    pub fn width(&self) -> usize {
        self.h * self.dh
    }
    /// Flat index of channel 0 of head `h` of token (b, i).
    pub fn at(&self, b: usize, i: usize, h: usize) -> usize {
        (b * self.l + i) * self.width() + h * self.dh
    }
    /// Elements of one head panel (L x Dh).
    pub fn panel(&self) -> usize {
        self.l * self.dh
    }
}

/// The obvious loop nest in f64: one score row at a time.
pub fn attention_ref(p: &AttentionParams, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let d = Dims::of(p);
    let scale = p.scale as f64;
    let mut scores = vec![0f64; d.l];
    for b in 0..d.b {
        for h in 0..d.h {
            for i in 0..d.l {
                let qi = &q[d.at(b, i, h)..][..d.dh];
                for (j, s) in scores.iter_mut().enumerate() {
                    let kj = &k[d.at(b, j, h)..][..d.dh];
                    *s = scale
                        * qi.iter()
                            .zip(kj)
                            .map(|(&x, &y)| x as f64 * y as f64)
                            .sum::<f64>();
                }
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                scores.iter_mut().for_each(|s| *s = (*s - m).exp());
                let total: f64 = scores.iter().sum();
                let mut acc = vec![0f64; d.dh];
                for (j, &s) in scores.iter().enumerate() {
                    let vj = &v[d.at(b, j, h)..][..d.dh];
                    acc.iter_mut()
                        .zip(vj)
                        .for_each(|(a, &x)| *a += s * x as f64);
                }
                for (c, a) in acc.iter().enumerate() {
                    out[d.at(b, i, h) + c] = (a / total) as f32;
                }
            }
        }
    }
}

/// Blocked online-softmax forward. `lse` receives `[batch, heads, seq_len]`.
pub fn attention_fast(
    p: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    let d = Dims::of(p);
    if d.b * d.h * d.l * d.dh == 0 {
        return;
    }
    let (qr, kt, vr) = (pack_rows(d, q), pack_transposed(d, k), pack_rows(d, v));
    let mut out_heads = vec![0f32; d.b * d.h * d.panel()];
    out_heads
        .par_chunks_mut(d.panel())
        .zip(lse.par_chunks_mut(d.l))
        .enumerate()
        .for_each(|(bh, (oh, lse_bh))| {
            let (qh, kth, vh) = (
                &qr[bh * d.panel()..],
                &kt[bh * d.panel()..],
                &vr[bh * d.panel()..],
            );
            oh.par_chunks_mut(QUERY_BLOCK * d.dh)
                .zip(lse_bh.par_chunks_mut(QUERY_BLOCK))
                .enumerate()
                .for_each(|(blk, (o, ls))| {
                    let qs = &qh[blk * QUERY_BLOCK * d.dh..][..ls.len() * d.dh];
                    forward_query_block(d, p.scale, qs, kth, vh, o, ls);
                });
        });
    scatter_heads(d, &out_heads, out);
}

/// One block of queries against every key, online softmax. `qs`: rows `[nq, dh]`; `kt`: the
/// head's keys transposed `[dh, L]`; `vr`: its values `[L, dh]`; `o`: rows `[nq, dh]`.
fn forward_query_block(
    d: Dims,
    scale: f32,
    qs: &[f32],
    kt: &[f32],
    vr: &[f32],
    o: &mut [f32],
    lse: &mut [f32],
) {
    let nq = lse.len();
    let mut run_max = [f32::NEG_INFINITY; QUERY_BLOCK];
    let mut run_sum = [0f32; QUERY_BLOCK];
    let mut s = [0f32; QUERY_BLOCK * KEY_BLOCK];
    o.fill(0.0);
    for j0 in (0..d.l).step_by(KEY_BLOCK) {
        let nk = KEY_BLOCK.min(d.l - j0);
        score_tile(d, qs, nq, scale, kt, j0, nk, &mut s);
        for r in 0..nq {
            let srow = &mut s[r * KEY_BLOCK..][..nk];
            let block_max = srow.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let new_max = run_max[r].max(block_max);
            let orow = &mut o[r * d.dh..][..d.dh];
            if run_max[r] != new_max {
                // Rescale what was summed under the old maximum (exp(-inf) = 0 on the first block).
                let corr = (run_max[r] - new_max).exp();
                run_sum[r] *= corr;
                orow.iter_mut().for_each(|x| *x *= corr);
                run_max[r] = new_max;
            }
            for x in srow.iter_mut() {
                *x = (*x - new_max).exp();
                run_sum[r] += *x;
            }
        }
        tile_times_panel(d, &s, nq, nk, &vr[j0 * d.dh..][..nk * d.dh], o);
    }
    for r in 0..nq {
        let inv = 1.0 / run_sum[r];
        o[r * d.dh..][..d.dh].iter_mut().for_each(|x| *x *= inv);
        lse[r] = run_max[r] + run_sum[r].ln();
    }
}

/// `s[r][jj] = scale * sum_c a[r][c] * bt[c][j0 + jj]` for r < na, jj < nk; rows of `s` are
/// KEY_BLOCK apart. `a`: rows `[na, dh]`; `bt`: a transposed panel `[dh, L]`.
/// Register-blocked: a 4 x 8 block of `s` stays in registers over the whole `c` loop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_tile(
    d: Dims,
    a: &[f32],
    na: usize,
    scale: f32,
    bt: &[f32],
    j0: usize,
    nk: usize,
    s: &mut [f32],
) {
    for r0 in (0..na).step_by(MR) {
        let mr = MR.min(na - r0);
        for c0 in (0..nk).step_by(NR) {
            let nr = NR.min(nk - c0);
            let mut acc = [[0f32; NR]; MR];
            if mr == MR && nr == NR {
                for c in 0..d.dh {
                    let b: &[f32; NR] = bt[c * d.l + j0 + c0..][..NR]
                        .try_into()
                        .expect("NR columns");
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = a[(r0 + r) * d.dh + c] * scale;
                        acc_r.iter_mut().zip(b).for_each(|(x, &bv)| *x += av * bv);
                    }
                }
            } else {
                for c in 0..d.dh {
                    let b = &bt[c * d.l + j0 + c0..][..nr];
                    for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
                        let av = a[(r0 + r) * d.dh + c] * scale;
                        acc_r.iter_mut().zip(b).for_each(|(x, &bv)| *x += av * bv);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(mr) {
                s[(r0 + r) * KEY_BLOCK + c0..][..nr].copy_from_slice(&acc_r[..nr]);
            }
        }
    }
}

/// `out[r][c] += sum_t tile[r][t] * panel[t][c]` for r < rows, t < inner, c < dh: a tile
/// (rows KEY_BLOCK apart) times a row panel (`[inner, dh]`), accumulated into row-major
/// `out` `[rows, dh]`. Register-blocked like `score_tile`.
pub(crate) fn tile_times_panel(
    d: Dims,
    tile: &[f32],
    rows: usize,
    inner: usize,
    panel: &[f32],
    out: &mut [f32],
) {
    for r0 in (0..rows).step_by(MR) {
        let mr = MR.min(rows - r0);
        for c0 in (0..d.dh).step_by(NR) {
            let nr = NR.min(d.dh - c0);
            let mut acc = [[0f32; NR]; MR];
            for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
                acc_r[..nr].copy_from_slice(&out[(r0 + r) * d.dh + c0..][..nr]);
            }
            if mr == MR && nr == NR {
                for t in 0..inner {
                    let b: &[f32; NR] =
                        panel[t * d.dh + c0..][..NR].try_into().expect("NR columns");
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = tile[(r0 + r) * KEY_BLOCK + t];
                        acc_r.iter_mut().zip(b).for_each(|(x, &bv)| *x += av * bv);
                    }
                }
            } else {
                for t in 0..inner {
                    let b = &panel[t * d.dh + c0..][..nr];
                    for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
                        let av = tile[(r0 + r) * KEY_BLOCK + t];
                        acc_r.iter_mut().zip(b).for_each(|(x, &bv)| *x += av * bv);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(mr) {
                out[(r0 + r) * d.dh + c0..][..nr].copy_from_slice(&acc_r[..nr]);
            }
        }
    }
}

/// Per-head row panels: `out[(b*H + h)][i][c] = x[b, i, h*dh + c]`.
pub(crate) fn pack_rows(d: Dims, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; d.b * d.h * d.panel()];
    out.par_chunks_mut(d.panel())
        .enumerate()
        .for_each(|(bh, panel)| {
            let (b, h) = (bh / d.h, bh % d.h);
            for (i, row) in panel.chunks_mut(d.dh).enumerate() {
                row.copy_from_slice(&x[d.at(b, i, h)..][..d.dh]);
            }
        });
    out
}

/// Per-head transposed panels: `out[(b*H + h)][c][i] = x[b, i, h*dh + c]`.
pub(crate) fn pack_transposed(d: Dims, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; d.b * d.h * d.panel()];
    out.par_chunks_mut(d.panel())
        .enumerate()
        .for_each(|(bh, panel)| {
            let (b, h) = (bh / d.h, bh % d.h);
            for i in 0..d.l {
                let src = &x[d.at(b, i, h)..][..d.dh];
                for (c, &val) in src.iter().enumerate() {
                    panel[c * d.l + i] = val;
                }
            }
        });
    out
}

/// Inverse of `pack_rows`: per-head row panels back into `[B, L, H*dh]`.
pub(crate) fn scatter_heads(d: Dims, heads: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(d.width())
        .enumerate()
        .for_each(|(bi, token)| {
            let (b, i) = (bi / d.l, bi % d.l);
            for h in 0..d.h {
                let src = &heads[((b * d.h + h) * d.l + i) * d.dh..][..d.dh];
                token[h * d.dh..][..d.dh].copy_from_slice(src);
            }
        });
}
