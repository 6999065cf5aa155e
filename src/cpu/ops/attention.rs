//! Multi-head self-attention core, forward (spec §3.2), on flat slices.
//!
//! q, k, v, out: `[batch, seq_len, heads * head_dim]` row-major (B x L x C); head `h` owns
//! channels `h*head_dim .. (h+1)*head_dim`. For every (b, h, query i):
//! `s_ij = scale * q_i . k_j`, `p_ij = softmax_j(s_ij)`, `out_i = sum_j p_ij v_j`. No mask.
//! The q/k/v/proj Linear layers are not part of this op.
//!
//! * `attention_ref`: materialises each score row, f64 accumulation: the oracle.
//! * `attention_fast`: in parallel over (batch, head, block of QUERY_BLOCK queries), the two
//!   products on the GEMM engine's AVX2/FMA micro-kernel with an exact softmax between them,
//!   16 queries (one register-tile width) at a time: `S^T = scale K Q^T` (`[L][16]`, keys
//!   down, in a per-thread scratch buffer reused across tasks), softmax down each column
//!   (max, `exp(s - max)` vectorised in `vmath.rs`, sum), `O^T = V^T P^T`, divided by the sums
//!   and stored transposed. K and V are packed once per (batch, head) into the micro-kernel's
//!   panel layouts and shared by every block (`attention_panels.rs` explains why this beats
//!   calling `gemm_with` on the strided operands); only a block's score panels exist, never an
//!   L x L matrix. Each task writes its rows of a head-major `[B, H, L, Dh]` buffer (so tasks
//!   own disjoint slices), scattered back to `[B, L, H*Dh]` at the end. It also writes the
//!   log-sum-exp of every score row, `lse = m + ln(sum_j exp(s_ij - m))`
//!   (`[batch, heads, seq_len]`), which the backward uses to rebuild `p_ij` block by block.
//!   Summation order differs from the f64 oracle (f32 FMA chains of L terms); the existing
//!   1e-5 tolerance holds on the model shapes (`tests/attention*.rs`).
//! * `attention_queries_ref` / `attention_queries_fast`: the same with queries at `lq` positions
//!   of their own (q and out `[batch, lq, heads * head_dim]`) against the `seq_len` keys and
//!   values of `p`. Each query's column goes through the same products and softmax as in the
//!   full call, so a query row gets the bits the full call gives it; the sampler uses this to
//!   compute the last block only where logits are read (`model/transformer.rs`).

use super::attention_panels as panels;
use super::gemm_kernel::{MicroKernel, NR};
use super::vmath;
use crate::params::attention::AttentionParams;
use rayon::prelude::*;
use std::cell::Cell;

/// Query rows handled by one work item: a multiple of the 16-query panel, small enough that
/// the 1 x 2 x 1024 x (2 x 32) tiny-preset call still makes 32 tasks for the threads.
pub(crate) const QUERY_BLOCK: usize = 64;

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
    /// The same heads over `lq` tokens: the queries' sizes where they are not the keys'.
    pub fn with_queries(self, lq: usize) -> Dims {
        Dims { l: lq, ..self }
    }
}

/// The obvious loop nest in f64: one score row at a time.
pub fn attention_ref(p: &AttentionParams, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    attention_queries_ref(p, p.seq_len as usize, q, k, v, out)
}

/// `attention_ref` with `lq` queries per batch item (q and out `[batch, lq, heads*head_dim]`).
pub fn attention_queries_ref(p: &AttentionParams, lq: usize, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let d = Dims::of(p);
    let dq = d.with_queries(lq);
    let scale = p.scale as f64;
    let mut scores = vec![0f64; d.l];
    for b in 0..d.b {
        for h in 0..d.h {
            for i in 0..dq.l {
                let qi = &q[dq.at(b, i, h)..][..d.dh];
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
                    out[dq.at(b, i, h) + c] = (a / total) as f32;
                }
            }
        }
    }
}

/// GEMM forward with an exact softmax. `lse` receives `[batch, heads, seq_len]`.
pub fn attention_fast(
    p: &AttentionParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    attention_queries_fast(p, p.seq_len as usize, q, k, v, out, lse)
}

/// `attention_fast` with `lq` queries per batch item: q and out `[batch, lq, heads*head_dim]`,
/// `lse` `[batch, heads, lq]`; k and v as `p` says.
pub fn attention_queries_fast(
    p: &AttentionParams,
    lq: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    let d = Dims::of(p);
    let dq = d.with_queries(lq);
    if d.b * d.h * d.l * d.dh * dq.l == 0 {
        return;
    }
    let kernel = MicroKernel::detect();
    // K as tokens-as-A and V as channels-as-A, once per (batch, head), then the head-major
    // output; both fully overwritten, so they live in the calling thread's reused buffer.
    let ka_len = panels::tokens_as_a_len(d);
    let pack_len = ka_len + panels::channels_as_a_len(d);
    let packs_len = d.b * d.h * pack_len;
    with_call_buffer(packs_len + d.b * d.h * dq.panel(), |buf| {
        let (packs, out_heads) = buf.split_at_mut(packs_len);
        packs
            .par_chunks_mut(pack_len)
            .enumerate()
            .for_each(|(bh, pk)| {
                let (ka, va) = pk.split_at_mut(ka_len);
                panels::pack_tokens_as_a(d, k, bh / d.h, bh % d.h, ka);
                panels::pack_channels_as_a(d, v, bh / d.h, bh % d.h, va);
            });
        let packs = &*packs;
        out_heads
            .par_chunks_mut(dq.panel())
            .zip(lse.par_chunks_mut(dq.l))
            .enumerate()
            .for_each(|(bh, (oh, lse_bh))| {
                let kv = packs[bh * pack_len..][..pack_len].split_at(ka_len);
                oh.par_chunks_mut(QUERY_BLOCK * d.dh)
                    .zip(lse_bh.par_chunks_mut(QUERY_BLOCK))
                    .enumerate()
                    .for_each(|(blk, (o, ls))| {
                        let rows = Rows::new(d, bh, blk * QUERY_BLOCK, ls.len());
                        let len = panels::rows_as_b_len(d, rows.n) + (d.l + d.dh) * NR;
                        with_scratch(len, |buf| {
                            forward_query_block(kernel, (d, dq), p.scale, rows, q, kv, buf, o, ls)
                        });
                    });
            });
        scatter_heads(dq, 1, out_heads, out);
    });
}

/// One block of queries against every key, 16 queries (one panel) at a time:
/// `S^T = scale K Q^T` (`[L][16]`), softmax down the columns, `O^T = V^T P^T` (`[dh][16]`),
/// stored transposed and divided by the column sums. `(d, dq)`: the keys' and the queries'
/// sizes; `(ka, va)`: the head's K and V packs; `buf`: scratch; `o`: the block's rows of the
/// head-major output `[n, dh]`; `lse`: its `n` log-sum-exps.
#[allow(clippy::too_many_arguments)]
fn forward_query_block(
    kernel: MicroKernel,
    (d, dq): (Dims, Dims),
    scale: f32,
    rows: Rows,
    q: &[f32],
    (ka, va): (&[f32], &[f32]),
    buf: &mut [f32],
    o: &mut [f32],
    lse: &mut [f32],
) {
    let (qb, rest) = buf.split_at_mut(panels::rows_as_b_len(d, rows.n));
    let (st, ot) = rest.split_at_mut(d.l * NR);
    panels::pack_rows_as_b(dq, q, rows.b, rows.h, rows.i0, rows.n, qb);
    for (jp, qp) in qb.chunks_exact(d.dh * NR).enumerate() {
        panels::panel_scores(kernel, d, ka, qp, scale, st);
        let max = vmath::column_max(st);
        let sum = vmath::exp_columns(st, &max);
        panels::panel_product(kernel, d, va, st, 1.0, 0.0, ot);
        // Padded columns (past the block's last query) hold finite junk and are skipped.
        let n = NR.min(rows.n - jp * NR);
        let inv_sum: [f32; NR] = std::array::from_fn(|j| 1.0 / sum[j]);
        for j in 0..n {
            lse[jp * NR + j] = max[j] + sum[j].ln();
        }
        panels::store_transposed(d, ot, &inv_sum, &mut o[jp * NR * d.dh..][..n * d.dh]);
    }
}

/// A block of query rows of one (batch, head): rows `i0 .. i0 + n`.
#[derive(Clone, Copy)]
pub(crate) struct Rows {
    pub b: usize,
    pub h: usize,
    pub i0: usize,
    pub n: usize,
}

impl Rows {
    /// `bh` is the flat (batch, head) index `b * heads + h`.
    pub fn new(d: Dims, bh: usize, i0: usize, n: usize) -> Rows {
        Rows {
            b: bh / d.h,
            h: bh % d.h,
            i0,
            n,
        }
    }
}

thread_local! {
    // Score-block scratch reused by every task a thread runs (no allocation per block). Taken
    // out while in use, so a nested use on the same thread would get a fresh buffer.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    // Whole-call buffers (head packs, head-major output) of the thread that calls the forward:
    // the sampler runs hundreds of passes, and fresh megabytes per call cost page faults.
    static CALL_BUFFER: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Largest call buffer kept between calls (16 MiB); bigger calls allocate and free as usual.
const CALL_BUFFER_KEEP: usize = 1 << 22;

/// Runs `f` on this thread's scratch buffer, grown to at least `len` floats. Its contents on
/// entry are whatever the last user left: callers overwrite before reading.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&SCRATCH, usize::MAX, len, f)
}

/// `with_scratch` for whole-call buffers, kept only up to CALL_BUFFER_KEEP floats.
fn with_call_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&CALL_BUFFER, CALL_BUFFER_KEEP, len, f)
}

fn with_buffer<R>(
    key: &'static std::thread::LocalKey<Cell<Vec<f32>>>,
    keep: usize,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut buf = key.take();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    if buf.len() <= keep {
        key.set(buf);
    }
    r
}

/// `out[b, i, h*dh + c] = sum_g parts[((b*H + h)*groups + g)][i][c]`: head-major per-group
/// panels `[B, H, groups, L, dh]` summed over the groups and put back into `[B, L, H*dh]`.
pub(crate) fn scatter_heads(d: Dims, groups: usize, parts: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(d.width())
        .enumerate()
        .for_each(|(bi, token)| {
            let (b, i) = (bi / d.l, bi % d.l);
            for h in 0..d.h {
                let dst = &mut token[h * d.dh..][..d.dh];
                let panel =
                    |g: usize| &parts[(((b * d.h + h) * groups + g) * d.l + i) * d.dh..][..d.dh];
                dst.copy_from_slice(panel(0));
                for g in 1..groups {
                    dst.iter_mut().zip(panel(g)).for_each(|(x, &y)| *x += y);
                }
            }
        });
}
