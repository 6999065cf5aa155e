//! `kernels/attention.cu` (one-pass multi-head attention forward, spec §3.2; both kernels: one
//! thread per query, and 4 threads per query over a quarter of the keys each, merged), launched
//! by its launcher, against an f64 reference per query row, on the CPU emulator (`emu::*`) and a real GPU
//! (`cuda::*`, skipped without one). Tolerance TOL_CUDA_F32: each output is a softmax-weighted sum
//! over up to 1024 keys in f32 with online rescaling.

mod common;

use common::backend::Backend;
use common::reference::{attention_row_ref, fuse_qkv_rows};
use fdm::cuda::ops::attention::{attention_fwd_kernel_launch, AttentionKernel, AttentionParams};
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    attention_matches_reference_with_partial_tiles,
    attention_at_the_model_shape,
    attention_head_dim_32_at_the_tiny_shape,
    attention_reads_q_k_v_from_one_fused_projection
);

const KERNELS: [AttentionKernel; 2] = [AttentionKernel::SplitKeys, AttentionKernel::PerQuery];

const HEAD_DIM: usize = 64;

/// Runs both kernels on dense [b, l, h*64] inputs and checks the query rows `rows` of every (b, h).
fn check<B: Backend>(be: &B, seed: u64, b: usize, l: usize, h: usize, spread: f32, rows: &[usize]) {
    check_dim(be, seed, (b, l, h, HEAD_DIM), spread, rows);
}

/// As `check` for a head dim `dh`.
fn check_dim<B: Backend>(be: &B, seed: u64, shape: (usize, usize, usize, usize), spread: f32, rows: &[usize]) {
    for kernel in KERNELS {
        check_kernel(be, kernel, seed, shape, spread, rows);
    }
}

fn check_kernel<B: Backend>(
    be: &B,
    kernel: AttentionKernel,
    seed: u64,
    (b, l, h, dh): (usize, usize, usize, usize),
    spread: f32,
    rows: &[usize],
) {
    let n = b * l * h * dh;
    let q = random_vec(seed, n, -spread, spread);
    let k = random_vec(seed + 1, n, -spread, spread);
    let v = random_vec(seed + 2, n, -1.0, 1.0);
    let (qb, kb, vb) = (be.f32s(&q), be.f32s(&k), be.f32s(&v));
    let (o, lse) = (
        be.f32s(&vec![f32::NAN; n]),
        be.f32s(&vec![f32::NAN; b * h * l]),
    );
    be.run(&attention_fwd_kernel_launch(
        kernel,
        dh,
        be.ptr(&o),
        be.ptr(&lse),
        be.ptr(&qb),
        be.ptr(&kb),
        be.ptr(&vb),
        &AttentionParams::dense_dim(b, l, h, dh),
    ));
    let (o, lse) = (be.get_f32(&o), be.get_f32(&lse));
    for bi in 0..b {
        for hi in 0..h {
            for &qi in rows {
                let (want, want_lse) = attention_row_ref(&q, &k, &v, l, h, dh, bi, hi, qi);
                let start = (bi * l + qi) * h * dh + hi * dh;
                let what = format!("{kernel:?}: b{bi} h{hi} query {qi} of {l} (head dim {dh})");
                assert_close(&o[start..start + dh], &want, TOL_CUDA_F32, &what);
                assert_close(
                    &[lse[(bi * h + hi) * l + qi]],
                    &[want_lse],
                    TOL_CUDA_F32,
                    &format!("{what} lse"),
                );
            }
        }
    }
}

fn attention_matches_reference_with_partial_tiles<B: Backend>(be: &B) {
    // 130 = two full 64-tiles + 2: partial query and key tiles. Large |q.k| (spread 3 -> scores up
    // to ~70) exercises the online max rescaling.
    let all: Vec<usize> = (0..130).collect();
    check(be, 1, 2, 130, 3, 3.0, &all);
    check(be, 4, 1, 1, 1, 1.0, &[0]);
}

fn attention_at_the_model_shape<B: Backend>(be: &B) {
    // 8 heads x 1024 tokens x 64 (design.md §2 real shapes); every query is computed, a spread of
    // rows covering all 16 query tiles is checked against the f64 reference.
    let rows: Vec<usize> = (0..1024).step_by(61).chain([1023]).collect();
    check(be, 7, 1, 1024, 8, 1.0, &rows);
}

fn attention_head_dim_32_at_the_tiny_shape<B: Backend>(be: &B) {
    // The tiny preset: 2 heads of 32 over 1024 tokens; a partial key tile too (1000 = 15 * 64 + 40).
    check_dim(be, 7, (1, 1024, 2, 32), 2.0, &[0, 1, 63, 64, 511, 1023]);
    check_dim(be, 8, (2, 1000, 2, 32), 3.0, &[0, 39, 999]);
}

/// Both kernels on q, k, v as the column blocks of one [b, l, 3 * h * dh] buffer
/// (`AttentionParams::packed_qkv`, o dense): the same o and log-sum-exp, bit for bit, as from dense
/// q, k, v.
fn attention_reads_q_k_v_from_one_fused_projection<B: Backend>(be: &B) {
    let (b, l, h, dh) = (2, 70, 2, 32);
    let (w, rows) = (h * dh, b * l);
    let [q, k, v] = [0, 1, 2].map(|i| random_vec(21 + i, rows * w, -2.0, 2.0));
    let (qb, kb, vb, fb) = (be.f32s(&q), be.f32s(&k), be.f32s(&v), be.f32s(&fuse_qkv_rows(&q, &k, &v, rows, w)));
    let base = be.ptr(&fb);
    for kernel in KERNELS {
        let run = |p: &AttentionParams, qkv: [u64; 3]| {
            let (o, lse) = (be.f32s(&vec![f32::NAN; rows * w]), be.f32s(&vec![f32::NAN; b * h * l]));
            be.run(&attention_fwd_kernel_launch(kernel, dh, be.ptr(&o), be.ptr(&lse), qkv[0], qkv[1], qkv[2], p));
            [be.get_f32(&o), be.get_f32(&lse)].map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        let dense = run(&AttentionParams::dense_dim(b, l, h, dh), [be.ptr(&qb), be.ptr(&kb), be.ptr(&vb)]);
        let packed = run(&AttentionParams::packed_qkv(b, l, h, dh), [base, base + 4 * w as u64, base + 8 * w as u64]);
        assert!(dense[0].iter().all(|&x| f32::from_bits(x).is_finite()), "{kernel:?}: dense o written everywhere");
        assert_eq!(packed, dense, "{kernel:?}: fused q, k, v");
    }
}
