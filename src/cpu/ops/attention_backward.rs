//! Multi-head self-attention core, backward (spec §3.2), on flat slices.
//!
//! Layouts as in `attention.rs`: q, k, v, out, dout, dq, dk, dv are `[batch, seq_len,
//! heads * head_dim]`; `lse` is `[batch, heads, seq_len]` from `attention_fast`.
//! With `p_ij = softmax_j(scale * q_i . k_j)` and `delta_i = sum_j p_ij dp_ij = dout_i . out_i`:
//! `dp_ij = dout_i . v_j`, `ds_ij = p_ij (dp_ij - delta_i)`,
//! `dq_i = scale sum_j ds_ij k_j`, `dk_j = scale sum_i ds_ij q_i`, `dv_j = sum_i p_ij dout_i`.
//!
//! * `attention_backward_ref`: materialises P for one head at a time, f64: the oracle.
//! * `attention_backward_fast`: flash-attention style; `p_ij = exp(s_ij - lse_i)` is rebuilt
//!   tile by tile in two parallel passes, one over query blocks (writes dq) and one over key
//!   blocks (writes dk, dv), so no thread ever writes another's rows and no L x L matrix exists.

use super::attention::{
    pack_rows, pack_transposed, scatter_heads, score_tile, tile_times_panel, Dims, KEY_BLOCK,
    QUERY_BLOCK,
};
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

/// Flash-attention style backward from the forward's `out` and `lse`.
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
    let panels = Panels {
        qr: pack_rows(d, q),
        qt: pack_transposed(d, q),
        kr: pack_rows(d, k),
        kt: pack_transposed(d, k),
        vt: pack_transposed(d, v),
        vr: pack_rows(d, v),
        dor: pack_rows(d, dout),
        dot: pack_transposed(d, dout),
    };
    let mut dq_heads = vec![0f32; d.b * d.h * d.panel()];
    dq_heads
        .par_chunks_mut(d.panel())
        .enumerate()
        .for_each(|(bh, g)| {
            let hp = panels.head(d, bh);
            let (lse_h, delta_h) = (&lse[bh * d.l..][..d.l], &delta[bh * d.l..][..d.l]);
            g.par_chunks_mut(QUERY_BLOCK * d.dh)
                .enumerate()
                .for_each(|(blk, gq)| {
                    dq_query_block(d, p.scale, blk * QUERY_BLOCK, &hp, lse_h, delta_h, gq);
                });
        });
    let mut dk_heads = vec![0f32; d.b * d.h * d.panel()];
    let mut dv_heads = vec![0f32; d.b * d.h * d.panel()];
    dk_heads
        .par_chunks_mut(d.panel())
        .zip(dv_heads.par_chunks_mut(d.panel()))
        .enumerate()
        .for_each(|(bh, (gk, gv))| {
            let hp = panels.head(d, bh);
            let (lse_h, delta_h) = (&lse[bh * d.l..][..d.l], &delta[bh * d.l..][..d.l]);
            gk.par_chunks_mut(KEY_BLOCK * d.dh)
                .zip(gv.par_chunks_mut(KEY_BLOCK * d.dh))
                .enumerate()
                .for_each(|(blk, (gk, gv))| {
                    dkv_key_block(d, p.scale, blk * KEY_BLOCK, &hp, lse_h, delta_h, gk, gv)
                });
        });
    scatter_heads(d, &dq_heads, dq);
    scatter_heads(d, &dk_heads, dk);
    scatter_heads(d, &dv_heads, dv);
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

/// Every per-head panel the backward reads (rows `[L, dh]`, transposed `[dh, L]`).
struct Panels {
    qr: Vec<f32>,
    qt: Vec<f32>,
    kr: Vec<f32>,
    kt: Vec<f32>,
    vt: Vec<f32>,
    vr: Vec<f32>,
    dor: Vec<f32>,
    dot: Vec<f32>,
}

/// The panels of one (batch, head).
struct HeadPanels<'a> {
    qr: &'a [f32],
    qt: &'a [f32],
    kr: &'a [f32],
    kt: &'a [f32],
    vt: &'a [f32],
    vr: &'a [f32],
    dor: &'a [f32],
    dot: &'a [f32],
}

impl Panels {
    fn head<'a>(&'a self, d: Dims, bh: usize) -> HeadPanels<'a> {
        let n = d.panel();
        let s = |x: &'a [f32]| -> &'a [f32] { &x[bh * n..][..n] };
        HeadPanels {
            qr: s(&self.qr),
            qt: s(&self.qt),
            kr: s(&self.kr),
            kt: s(&self.kt),
            vt: s(&self.vt),
            vr: s(&self.vr),
            dor: s(&self.dor),
            dot: s(&self.dot),
        }
    }
}

/// dq for queries `i0 .. i0 + gq.len()/dh` of one head: loop over key tiles.
fn dq_query_block(
    d: Dims,
    scale: f32,
    i0: usize,
    hp: &HeadPanels,
    lse: &[f32],
    delta: &[f32],
    gq: &mut [f32],
) {
    let nq = gq.len() / d.dh;
    let (qs, dos) = (
        &hp.qr[i0 * d.dh..][..nq * d.dh],
        &hp.dor[i0 * d.dh..][..nq * d.dh],
    );
    let mut s = [0f32; QUERY_BLOCK * KEY_BLOCK];
    let mut dp = [0f32; QUERY_BLOCK * KEY_BLOCK];
    gq.fill(0.0);
    for j0 in (0..d.l).step_by(KEY_BLOCK) {
        let nk = KEY_BLOCK.min(d.l - j0);
        score_tile(d, qs, nq, scale, hp.kt, j0, nk, &mut s);
        score_tile(d, dos, nq, 1.0, hp.vt, j0, nk, &mut dp);
        for r in 0..nq {
            let (li, di) = (lse[i0 + r], delta[i0 + r]);
            for jj in 0..nk {
                let at = r * KEY_BLOCK + jj;
                let prob = (s[at] - li).exp();
                dp[at] = prob * (dp[at] - di); // ds
            }
        }
        tile_times_panel(d, &dp, nq, nk, &hp.kr[j0 * d.dh..][..nk * d.dh], gq);
    }
    gq.iter_mut().for_each(|x| *x *= scale);
}

/// dk, dv for keys `j0 .. j0 + gk.len()/dh` of one head: loop over query tiles, working on
/// transposed tiles (rows = keys, columns = queries).
#[allow(clippy::too_many_arguments)]
fn dkv_key_block(
    d: Dims,
    scale: f32,
    j0: usize,
    hp: &HeadPanels,
    lse: &[f32],
    delta: &[f32],
    gk: &mut [f32],
    gv: &mut [f32],
) {
    let nk = gk.len() / d.dh;
    let (ks, vs) = (
        &hp.kr[j0 * d.dh..][..nk * d.dh],
        &hp.vr[j0 * d.dh..][..nk * d.dh],
    );
    // score_tile writes rows KEY_BLOCK apart; here rows are keys and columns queries.
    let mut st = [0f32; KEY_BLOCK * KEY_BLOCK];
    let mut dpt = [0f32; KEY_BLOCK * KEY_BLOCK];
    gk.fill(0.0);
    gv.fill(0.0);
    for i0 in (0..d.l).step_by(KEY_BLOCK) {
        let nq = KEY_BLOCK.min(d.l - i0);
        score_tile(d, ks, nk, scale, hp.qt, i0, nq, &mut st);
        score_tile(d, vs, nk, 1.0, hp.dot, i0, nq, &mut dpt);
        for r in 0..nk {
            for ii in 0..nq {
                let (at, i) = (r * KEY_BLOCK + ii, i0 + ii);
                let prob = (st[at] - lse[i]).exp();
                st[at] = prob;
                dpt[at] = prob * (dpt[at] - delta[i]); // ds, transposed
            }
        }
        tile_times_panel(d, &st, nk, nq, &hp.dor[i0 * d.dh..][..nq * d.dh], gv);
        tile_times_panel(d, &dpt, nk, nq, &hp.qr[i0 * d.dh..][..nq * d.dh], gk);
    }
    gk.iter_mut().for_each(|x| *x *= scale);
}
