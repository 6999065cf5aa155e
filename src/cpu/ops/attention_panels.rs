//! Packed panels and panel products for the attention fast paths (spec §3.2), on the GEMM
//! engine's micro-kernel (`gemm_kernel.rs`: one MR x NR = 6 x 16 tile of C from an MR-row A
//! panel and an NR-column B panel, `a[p*MR + i]`, `b[p*NR + j]`).
//!
//! Why not `gemm_with` on strided operands: attention chains two products per block of queries
//! and the second reads what the first wrote. The micro-kernel writes C with its 16 columns
//! contiguous, so a score block stored as `[L][16]` per group of 16 queries (keys down, queries
//! across: `S^T = K Q^T`) *is* a packed B panel of the next product `O^T = V^T P^T`, and the
//! softmax over keys runs down the columns with whole vectors. K and V are packed once per
//! (batch, head) and shared by every query block, instead of being repacked by each of the
//! block's GEMM calls (which made packing a third of the time).
//!
//! Layouts (x is q, k, v or dout: `[B, L, H*dh]`, head h at channels `h*dh..`):
//! * tokens as A (rows = tokens, k = channels): `[ceil(L/MR)][dh][MR]`, rows past L zero;
//! * channels as A (rows = channels, k = tokens): `[ceil(dh/MR)][L][MR]`, rows past dh zero;
//! * rows as B (k = channels, columns = a block of tokens): `[ceil(n/NR)][dh][NR]`, zero past n;
//! * a score panel: `[L][NR]` (row stride NR), one per 16 tokens of a block;
//! * panels as A (the backward's `P^T`, `dS^T` with rows = keys, k = the block's queries):
//!   `[ceil(L/MR)][n_pad][MR]`, keys past L zero;
//! * tokens as B (k = a block's tokens, columns = channels): `[ceil(dh/NR)][n_pad][NR]`,
//!   zero past dh and past the block's n tokens (so padded queries contribute nothing).
//!
//! `n_pad` is a block's token count rounded up to NR.

use super::attention::Dims;
use super::gemm_kernel::{compute_tile, MicroKernel, MR, NR};
use super::vmath::PANEL;

// The column softmax in vmath works on the micro-kernel's panel width.
const _: () = assert!(NR == PANEL);

/// Floats of a tokens-as-A pack of one head.
pub(crate) fn tokens_as_a_len(d: Dims) -> usize {
    d.l.div_ceil(MR) * MR * d.dh
}

/// Floats of a channels-as-A pack of one head.
pub(crate) fn channels_as_a_len(d: Dims) -> usize {
    d.dh.div_ceil(MR) * MR * d.l
}

/// Floats of a rows-as-B pack of `n` tokens.
pub(crate) fn rows_as_b_len(d: Dims, n: usize) -> usize {
    n.div_ceil(NR) * NR * d.dh
}

/// Floats of a panels-as-A pack of a block of `n_pad` queries.
pub(crate) fn panels_as_a_len(d: Dims, n_pad: usize) -> usize {
    d.l.div_ceil(MR) * MR * n_pad
}

/// Floats of a tokens-as-B pack of a block of `n_pad` tokens.
pub(crate) fn tokens_as_b_len(d: Dims, n_pad: usize) -> usize {
    d.dh.div_ceil(NR) * NR * n_pad
}

/// `dst[(ip*dh + c)*MR + i] = x[b, ip*MR + i, h*dh + c]` (zero past L).
pub(crate) fn pack_tokens_as_a(d: Dims, x: &[f32], b: usize, h: usize, dst: &mut [f32]) {
    for (ip, panel) in dst.chunks_exact_mut(d.dh * MR).enumerate() {
        let i0 = ip * MR;
        for i in 0..MR {
            if i0 + i < d.l {
                let src = &x[d.at(b, i0 + i, h)..][..d.dh];
                src.iter()
                    .enumerate()
                    .for_each(|(c, &v)| panel[c * MR + i] = v);
            } else {
                (0..d.dh).for_each(|c| panel[c * MR + i] = 0.0);
            }
        }
    }
}

/// `dst[(ic*L + t)*MR + i] = x[b, t, h*dh + ic*MR + i]` (zero past dh).
pub(crate) fn pack_channels_as_a(d: Dims, x: &[f32], b: usize, h: usize, dst: &mut [f32]) {
    for (ic, panel) in dst.chunks_exact_mut(d.l * MR).enumerate() {
        let (c0, mr) = (ic * MR, MR.min(d.dh - ic * MR));
        for (t, row) in panel.chunks_exact_mut(MR).enumerate() {
            let src = &x[d.at(b, t, h) + c0..];
            if mr == MR {
                row.copy_from_slice(&src[..MR]); // fixed length: inlined, no memmove call
            } else {
                row[..mr].copy_from_slice(&src[..mr]);
                row[mr..].fill(0.0);
            }
        }
    }
}

/// `dst[(jp*dh + c)*NR + j] = x[b, i0 + jp*NR + j, h*dh + c]` for `n` tokens (zero past n).
pub(crate) fn pack_rows_as_b(
    d: Dims,
    x: &[f32],
    b: usize,
    h: usize,
    i0: usize,
    n: usize,
    dst: &mut [f32],
) {
    for (jp, panel) in dst.chunks_exact_mut(d.dh * NR).enumerate() {
        for j in 0..NR {
            let t = jp * NR + j;
            if t < n {
                let src = &x[d.at(b, i0 + t, h)..][..d.dh];
                src.iter()
                    .enumerate()
                    .for_each(|(c, &v)| panel[c * NR + j] = v);
            } else {
                (0..d.dh).for_each(|c| panel[c * NR + j] = 0.0);
            }
        }
    }
}

/// One score panel: `out[t][j] = alpha * sum_c a[t][c] * bp[c][j]` for every token t < L,
/// with `a` a tokens-as-A pack and `bp` one `[dh][NR]` panel of a rows-as-B pack.
/// `out`: `[L][NR]`.
pub(crate) fn panel_scores(
    kernel: MicroKernel,
    d: Dims,
    a: &[f32],
    bp: &[f32],
    alpha: f32,
    out: &mut [f32],
) {
    assert!(a.len() >= tokens_as_a_len(d) && bp.len() >= d.dh * NR && out.len() >= d.l * NR);
    for ip in 0..d.l.div_ceil(MR) {
        let mr = MR.min(d.l - ip * MR);
        // SAFETY: the A panel holds dh*MR floats and the B panel dh*NR (asserted above); the
        // mr x NR tile at row ip*MR lies inside `out` ([L][NR]), which this call owns.
        unsafe {
            let (ap, cp) = (
                a.as_ptr().add(ip * d.dh * MR),
                out.as_mut_ptr().add(ip * MR * NR),
            );
            compute_tile(kernel, d.dh, ap, bp.as_ptr(), cp, NR, mr, NR, alpha, 0.0);
        }
    }
}

/// `out[c][j] = alpha * sum_t a[c][t] * panel[t][j] + beta * out[c][j]` for every channel
/// c < dh, with `a` a channels-as-A pack and `panel` a `[L][NR]` score panel. `out`: `[dh][NR]`.
pub(crate) fn panel_product(
    kernel: MicroKernel,
    d: Dims,
    a: &[f32],
    panel: &[f32],
    alpha: f32,
    beta: f32,
    out: &mut [f32],
) {
    assert!(a.len() >= channels_as_a_len(d) && panel.len() >= d.l * NR && out.len() >= d.dh * NR);
    for ic in 0..d.dh.div_ceil(MR) {
        let mr = MR.min(d.dh - ic * MR);
        // SAFETY: the A panel holds L*MR floats and the score panel L*NR (asserted above); the
        // mr x NR tile at row ic*MR lies inside `out` ([dh][NR]), which this call owns.
        unsafe {
            let (ap, cp) = (
                a.as_ptr().add(ic * d.l * MR),
                out.as_mut_ptr().add(ic * MR * NR),
            );
            compute_tile(kernel, d.l, ap, panel.as_ptr(), cp, NR, mr, NR, alpha, beta);
        }
    }
}

/// `rows[j][c] = scale[j] * t[c][j]` for the first `n` (<= NR) columns of a `[dh][NR]` panel:
/// a product's transposed result back into dense token rows `[n][dh]`.
pub(crate) fn store_transposed(d: Dims, t: &[f32], scale: &[f32], rows: &mut [f32]) {
    for (j, row) in rows.chunks_exact_mut(d.dh).enumerate() {
        row.iter_mut()
            .enumerate()
            .for_each(|(c, x)| *x = scale[j] * t[c * NR + j]);
    }
}

/// Score panels `[n_pad/NR][L][NR]` (keys down, queries across) repacked as A with rows =
/// keys and k = queries: `dst[(ip*n_pad + p)*MR + i] = panels[p/NR][ip*MR + i][p%NR]`.
pub(crate) fn pack_panels_as_a(d: Dims, panels: &[f32], n_pad: usize, dst: &mut [f32]) {
    for (ip, a) in dst.chunks_exact_mut(n_pad * MR).enumerate() {
        for i in 0..MR {
            let key = ip * MR + i;
            if key >= d.l {
                (0..n_pad).for_each(|p| a[p * MR + i] = 0.0);
                continue;
            }
            for (jp, panel) in panels.chunks_exact(d.l * NR).take(n_pad / NR).enumerate() {
                let row = &panel[key * NR..][..NR];
                row.iter()
                    .enumerate()
                    .for_each(|(j, &v)| a[(jp * NR + j) * MR + i] = v);
            }
        }
    }
}

/// `dst[(jc*n_pad + p)*NR + j] = x[b, i0 + p, h*dh + jc*NR + j]` for p < n (zero past n and
/// past dh).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_tokens_as_b(
    d: Dims,
    x: &[f32],
    b: usize,
    h: usize,
    i0: usize,
    n: usize,
    n_pad: usize,
    dst: &mut [f32],
) {
    for (jc, panel) in dst.chunks_exact_mut(n_pad * NR).enumerate() {
        let (c0, nr) = (jc * NR, NR.min(d.dh - jc * NR));
        for (p, row) in panel.chunks_exact_mut(NR).enumerate() {
            if p < n {
                row[..nr].copy_from_slice(&x[d.at(b, i0 + p, h) + c0..][..nr]);
                row[nr..].fill(0.0);
            } else {
                row.fill(0.0);
            }
        }
    }
}

/// `c[t][ch] = alpha * sum_p a[t][p] * bt[p][ch] + beta * c[t][ch]` for every key t < L and
/// channel ch < dh: `a` a panels-as-A pack, `bt` a tokens-as-B pack (both over `n_pad`
/// queries), `c` a dense `[L][dh]` accumulator.
#[allow(clippy::too_many_arguments)]
pub(crate) fn keys_product(
    kernel: MicroKernel,
    d: Dims,
    a: &[f32],
    bt: &[f32],
    n_pad: usize,
    alpha: f32,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= panels_as_a_len(d, n_pad)
            && bt.len() >= tokens_as_b_len(d, n_pad)
            && c.len() >= d.l * d.dh
    );
    for jc in 0..d.dh.div_ceil(NR) {
        let nr = NR.min(d.dh - jc * NR);
        let bp = bt[jc * n_pad * NR..].as_ptr();
        for ip in 0..d.l.div_ceil(MR) {
            let mr = MR.min(d.l - ip * MR);
            // SAFETY: A panels hold n_pad*MR floats, B panels n_pad*NR (asserted above); the
            // mr x nr tile at (ip*MR, jc*NR) lies inside `c` ([L][dh]), which this call owns.
            unsafe {
                let (ap, cp) = (
                    a.as_ptr().add(ip * n_pad * MR),
                    c.as_mut_ptr().add(ip * MR * d.dh + jc * NR),
                );
                compute_tile(kernel, n_pad, ap, bp, cp, d.dh, mr, nr, alpha, beta);
            }
        }
    }
}
