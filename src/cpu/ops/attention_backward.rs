//! Multi-head self-attention core, backward (spec §3.2), on flat slices.
//!
//! Layouts as in `attention.rs`: q, k, v, out, dout, dq, dk, dv are `[batch, seq_len,
//! heads * head_dim]`; `lse` is `[batch, heads, seq_len]` from `attention_fast`.
//! With `p_ij = softmax_j(scale * q_i . k_j)` and `delta_i = sum_j p_ij dp_ij = dout_i . out_i`:
//! `dp_ij = dout_i . v_j`, `ds_ij = p_ij (dp_ij - delta_i)`,
//! `dq_i = scale sum_j ds_ij k_j`, `dk_j = scale sum_i ds_ij q_i`, `dv_j = sum_i p_ij dout_i`.
//!
//! * `attention_backward_ref`: materialises P for one head at a time, f64: the oracle.
//! * `attention_backward_fast`: per block of QUERY_BLOCK queries, five products on the GEMM
//!   micro-kernel through the panels of `attention_panels.rs` (K, V packed once per head),
//!   with `p_ij = exp(s_ij - lse_i)` rebuilt from the forward's log-sum-exp (no L x L matrix,
//!   only a block's `P^T` and `dS^T` in per-thread scratch). Per 16 queries:
//!   `S^T = scale K Q^T`, `P^T = exp(S^T - lse)`, `dP^T = V dO^T`, `dS^T = P^T (dP^T - delta)`,
//!   `dQ^T = scale K^T dS^T`; then per block, with P and dS repacked with the queries as the
//!   inner dimension: `dV += P^T dO_blk`, `dK += scale dS^T Q_blk`.
//!   dK and dV sum over every query, so the query blocks of a head are split into a few
//!   contiguous groups, one rayon task each, each summing into its own `[L, dh]` partials;
//!   the groups are added at the end. The group count depends only on the shape and the
//!   thread count (enough tasks to keep every thread busy), so results are reproducible on a
//!   given machine.

use super::attention::{scatter_heads, with_scratch, Dims, Rows, QUERY_BLOCK};
use super::attention_panels as panels;
use super::gemm_kernel::{MicroKernel, NR};
use super::vmath;
use crate::params::attention::AttentionParams;
use rayon::prelude::*;

/// f64 oracle: P for one (batch, head) at a time.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_ref(
    p: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let d = Dims::of(p);
    let scale = p.scale as f64;
    let dot = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x as f64 * y as f64)
            .sum::<f64>()
    };
    let (mut prob, mut ds) = (vec![0f64; d.l * d.l], vec![0f64; d.l * d.l]);
    for b in 0..d.b {
        for h in 0..d.h {
            let row = |x: &[f32], i: usize| -> Vec<f32> { x[d.at(b, i, h)..][..d.dh].to_vec() };
            let (qs, ks, vs, dos): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = (
                (0..d.l).map(|i| row(q, i)).collect(),
                (0..d.l).map(|i| row(k, i)).collect(),
                (0..d.l).map(|i| row(v, i)).collect(),
                (0..d.l).map(|i| row(dout, i)).collect(),
            );
            for i in 0..d.l {
                let pr = &mut prob[i * d.l..][..d.l];
                for j in 0..d.l {
                    pr[j] = scale * dot(&qs[i], &ks[j]);
                }
                let m = pr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                pr.iter_mut().for_each(|x| *x = (*x - m).exp());
                let total: f64 = pr.iter().sum();
                pr.iter_mut().for_each(|x| *x /= total);
                let dp: Vec<f64> = (0..d.l).map(|j| dot(&dos[i], &vs[j])).collect();
                let delta: f64 = (0..d.l).map(|j| pr[j] * dp[j]).sum();
                for j in 0..d.l {
                    ds[i * d.l + j] = pr[j] * (dp[j] - delta);
                }
            }
            let (mut gq, mut gk, mut gv) = (
                vec![0f64; d.panel()],
                vec![0f64; d.panel()],
                vec![0f64; d.panel()],
            );
            for i in 0..d.l {
                for j in 0..d.l {
                    let (dsij, pij) = (ds[i * d.l + j], prob[i * d.l + j]);
                    for c in 0..d.dh {
                        gq[i * d.dh + c] += dsij * ks[j][c] as f64;
                        gk[j * d.dh + c] += dsij * qs[i][c] as f64;
                        gv[j * d.dh + c] += pij * dos[i][c] as f64;
                    }
                }
            }
            for i in 0..d.l {
                for c in 0..d.dh {
                    dq[d.at(b, i, h) + c] = (scale * gq[i * d.dh + c]) as f32;
                    dk[d.at(b, i, h) + c] = (scale * gk[i * d.dh + c]) as f32;
                    dv[d.at(b, i, h) + c] = gv[i * d.dh + c] as f32;
                }
            }
        }
    }
}

/// Panel backward from the forward's `out` and `lse`.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_fast(
    p: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let d = Dims::of(p);
    if d.b * d.h * d.l * d.dh == 0 {
        return;
    }
    let delta = row_dots(d, dout, out);
    let packs = HeadPacks::new(d, k, v);
    let blocks = d.l.div_ceil(QUERY_BLOCK);
    let per_group = blocks.div_ceil(groups_per_head(d, blocks));
    let groups = blocks.div_ceil(per_group);
    let group_rows = per_group * QUERY_BLOCK;
    let ctx = Context {
        kernel: MicroKernel::detect(),
        d,
        scale: p.scale,
        q,
        dout,
        lse,
        delta: &delta,
        packs: &packs,
    };
    let mut dq_heads = vec![0f32; d.b * d.h * d.panel()];
    let mut dk_parts = vec![0f32; d.b * d.h * groups * d.panel()];
    let mut dv_parts = vec![0f32; d.b * d.h * groups * d.panel()];
    dq_heads
        .par_chunks_mut(d.panel())
        .zip(dk_parts.par_chunks_mut(groups * d.panel()))
        .zip(dv_parts.par_chunks_mut(groups * d.panel()))
        .enumerate()
        .for_each(|(bh, ((gq, gk), gv))| {
            gq.par_chunks_mut(group_rows * d.dh)
                .zip(gk.par_chunks_mut(d.panel()))
                .zip(gv.par_chunks_mut(d.panel()))
                .enumerate()
                .for_each(|(g, ((gq, gk), gv))| ctx.group(bh, g * group_rows, gq, gk, gv));
        });
    scatter_heads(d, 1, &dq_heads, dq);
    scatter_heads(d, groups, &dk_parts, dk);
    scatter_heads(d, groups, &dv_parts, dv);
}

/// Groups of query blocks per (batch, head): about two tasks per thread in all, at least one
/// block per group.
fn groups_per_head(d: Dims, blocks: usize) -> usize {
    (2 * rayon::current_num_threads())
        .div_ceil(d.b * d.h)
        .clamp(1, blocks)
}

/// Per (batch, head): K and V as tokens-as-A (for `S^T`, `dP^T`), K as channels-as-A (for
/// `dQ^T`), in one buffer.
struct HeadPacks {
    data: Vec<f32>,
    tokens_len: usize,
    per_head: usize,
}

impl HeadPacks {
    fn new(d: Dims, k: &[f32], v: &[f32]) -> HeadPacks {
        let tokens_len = panels::tokens_as_a_len(d);
        let per_head = 2 * tokens_len + panels::channels_as_a_len(d);
        let mut data = vec![0f32; d.b * d.h * per_head];
        data.par_chunks_mut(per_head)
            .enumerate()
            .for_each(|(bh, pk)| {
                let (b, h) = (bh / d.h, bh % d.h);
                let (ka, rest) = pk.split_at_mut(tokens_len);
                let (va, kc) = rest.split_at_mut(tokens_len);
                panels::pack_tokens_as_a(d, k, b, h, ka);
                panels::pack_tokens_as_a(d, v, b, h, va);
                panels::pack_channels_as_a(d, k, b, h, kc);
            });
        HeadPacks {
            data,
            tokens_len,
            per_head,
        }
    }

    /// (K tokens-as-A, V tokens-as-A, K channels-as-A) of head `bh`.
    fn head(&self, bh: usize) -> (&[f32], &[f32], &[f32]) {
        let pk = &self.data[bh * self.per_head..][..self.per_head];
        let (ka, rest) = pk.split_at(self.tokens_len);
        let (va, kc) = rest.split_at(self.tokens_len);
        (ka, va, kc)
    }
}

/// Everything a group task reads.
struct Context<'a> {
    kernel: MicroKernel,
    d: Dims,
    scale: f32,
    q: &'a [f32],
    dout: &'a [f32],
    lse: &'a [f32],
    delta: &'a [f32],
    packs: &'a HeadPacks,
}

/// Scratch of one query block (`n_pad` queries), carved from the thread's buffer.
struct BlockBufs<'a> {
    /// Q_blk and dO_blk as rows-as-B (for `S^T`, `dP^T`).
    qb: &'a mut [f32],
    dob: &'a mut [f32],
    /// `P^T` and `dP^T` -> `dS^T` score panels, `[n_pad/NR][L][NR]`.
    pt: &'a mut [f32],
    dst: &'a mut [f32],
    /// One `dQ^T` panel `[dh][NR]`.
    t: &'a mut [f32],
    /// `P^T`, `dS^T` as panels-as-A (for dV, dK).
    pa: &'a mut [f32],
    dsa: &'a mut [f32],
    /// Q_blk and dO_blk as tokens-as-B (for dK, dV).
    qt: &'a mut [f32],
    dot: &'a mut [f32],
}

impl<'a> BlockBufs<'a> {
    fn lens(d: Dims, n_pad: usize) -> [usize; 9] {
        let (rows_b, score, a) = (
            panels::rows_as_b_len(d, n_pad),
            n_pad * d.l,
            panels::panels_as_a_len(d, n_pad),
        );
        let tok_b = panels::tokens_as_b_len(d, n_pad);
        [rows_b, rows_b, score, score, d.dh * NR, a, a, tok_b, tok_b]
    }

    fn carve(d: Dims, n_pad: usize, buf: &'a mut [f32]) -> BlockBufs<'a> {
        let [qb, dob, pt, dst, t, pa, dsa, qt, dot] = split_parts(buf, Self::lens(d, n_pad));
        BlockBufs {
            qb,
            dob,
            pt,
            dst,
            t,
            pa,
            dsa,
            qt,
            dot,
        }
    }
}

/// Splits `buf` into consecutive parts of the given lengths.
fn split_parts<const N: usize>(mut buf: &mut [f32], lens: [usize; N]) -> [&mut [f32]; N] {
    lens.map(|len| {
        let (head, tail) = std::mem::take(&mut buf).split_at_mut(len);
        buf = tail;
        head
    })
}

impl Context<'_> {
    /// Query rows `i0 .. i0 + gq.len()/dh` of head `bh`: writes their dq (head-major rows
    /// `gq`) and this group's dk, dv partials (`gk`, `gv`: `[L, dh]`).
    fn group(&self, bh: usize, i0: usize, gq: &mut [f32], gk: &mut [f32], gv: &mut [f32]) {
        let d = self.d;
        for (blk, gq_blk) in gq.chunks_mut(QUERY_BLOCK * d.dh).enumerate() {
            let rows = Rows::new(d, bh, i0 + blk * QUERY_BLOCK, gq_blk.len() / d.dh);
            let n_pad = rows.n.div_ceil(NR) * NR;
            // The first block overwrites the partials, later ones add to them.
            let beta = if blk == 0 { 0.0 } else { 1.0 };
            let len = BlockBufs::lens(d, n_pad).iter().sum();
            with_scratch(len, |buf| {
                let bufs = BlockBufs::carve(d, n_pad, buf);
                self.block(bh, rows, n_pad, beta, bufs, gq_blk, gk, gv);
            });
        }
    }

    /// One block: dq rows into `gq`, dk/dv partials accumulated (`beta`) into `gk`, `gv`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        bh: usize,
        rows: Rows,
        n_pad: usize,
        beta: f32,
        s: BlockBufs,
        gq: &mut [f32],
        gk: &mut [f32],
        gv: &mut [f32],
    ) {
        let (d, kern) = (self.d, self.kernel);
        let (ka, va, kc) = self.packs.head(bh);
        let (b, h, i0, n) = (rows.b, rows.h, rows.i0, rows.n);
        panels::pack_rows_as_b(d, self.q, b, h, i0, n, s.qb);
        panels::pack_rows_as_b(d, self.dout, b, h, i0, n, s.dob);
        let at = bh * d.l + i0;
        let per_panel = d.l * NR;
        for jp in 0..n_pad / NR {
            let (pt, dst) = (
                &mut s.pt[jp * per_panel..][..per_panel],
                &mut s.dst[jp * per_panel..][..per_panel],
            );
            panels::panel_scores(kern, d, ka, &s.qb[jp * d.dh * NR..], self.scale, pt);
            panels::panel_scores(kern, d, va, &s.dob[jp * d.dh * NR..], 1.0, dst);
            // Padded columns (past the block's n queries): shift 0 keeps them finite; their
            // dO and Q are zero in the packs below, so they add nothing to dk, dv.
            let valid = NR.min(n - jp * NR);
            let (mut lse, mut delta) = ([0f32; NR], [0f32; NR]);
            lse[..valid].copy_from_slice(&self.lse[at + jp * NR..][..valid]);
            delta[..valid].copy_from_slice(&self.delta[at + jp * NR..][..valid]);
            vmath::exp_columns(pt, &lse);
            for (dr, pr) in dst.chunks_exact_mut(NR).zip(pt.chunks_exact(NR)) {
                for ((x, &pv), &dl) in dr.iter_mut().zip(pr).zip(&delta) {
                    *x = pv * (*x - dl);
                }
            }
            panels::panel_product(kern, d, kc, dst, self.scale, 0.0, s.t);
            panels::store_transposed(
                d,
                s.t,
                &[1.0; NR],
                &mut gq[jp * NR * d.dh..][..valid * d.dh],
            );
        }
        panels::pack_panels_as_a(d, s.pt, n_pad, s.pa);
        panels::pack_panels_as_a(d, s.dst, n_pad, s.dsa);
        panels::pack_tokens_as_b(d, self.dout, b, h, i0, n, n_pad, s.dot);
        panels::pack_tokens_as_b(d, self.q, b, h, i0, n, n_pad, s.qt);
        panels::keys_product(kern, d, s.pa, s.dot, n_pad, 1.0, beta, gv);
        panels::keys_product(kern, d, s.dsa, s.qt, n_pad, self.scale, beta, gk);
    }
}

/// `delta[(b*H + h)*L + i] = dout_i . out_i` restricted to head h.
fn row_dots(d: Dims, dout: &[f32], out: &[f32]) -> Vec<f32> {
    let mut delta = vec![0f32; d.b * d.h * d.l];
    delta.par_chunks_mut(d.l).enumerate().for_each(|(bh, dl)| {
        let (b, h) = (bh / d.h, bh % d.h);
        for (i, x) in dl.iter_mut().enumerate() {
            let at = d.at(b, i, h);
            *x = dout[at..at + d.dh]
                .iter()
                .zip(&out[at..at + d.dh])
                .map(|(a, b)| a * b)
                .sum();
        }
    });
    delta
}
