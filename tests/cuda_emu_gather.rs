//! `kernels/gather.cu`, launched by `cuda::ops::gather`, against the CPU oracles of
//! cpu/ops/embedding.rs, index.rs and concat.rs, on the CPU emulator (`emu::*`) and a real GPU
//! (`cuda::*`, skipped without one). Shapes: the transformer's embeddings (vocab 1024 and 512,
//! dim 512, 2 x 1024 tokens), and odd ones (dim 1, dim above the 1024 columns one pass of the
//! backward covers, index counts that end mid-tile).
//! Copies (lookups, gathers, scatters, block copies) are compared bit for bit. The embedding
//! backward sums in position order like `embedding_bwd_fast`, so it is compared bit for bit with
//! that and within `be.tol()` with the f64 oracle (sums of at most a few thousand terms).

mod common;

use common::backend::Backend;
use fdm::cpu::ops::concat::copy_block_ref;
use fdm::cpu::ops::embedding::{embedding_bwd_fast, embedding_bwd_ref, embedding_fwd_ref};
use fdm::cpu::ops::index::{gather_rows_ref, scatter_rows_ref};
use fdm::cuda::ops::gather as ga;
use fdm::params::concat::BlockCopyParams;
use fdm::params::embedding::EmbeddingParams;
use fdm::params::index::RowsParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    embedding_lookup_copies_table_rows,
    embedding_backward_sums_in_position_order,
    gather_rows_matches_reference,
    scatter_rows_last_repeat_wins,
    copy_block_builds_concat_of_f32_and_u32,
    index_check_finds_first_bad_position,
);

fn indices(seed: u64, n: usize, limit: usize) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.below(limit as u64) as u32).collect()
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    if let Some(i) = bad {
        panic!("{what}: element {i}: got {}, expected {}", got[i], want[i]);
    }
}

/// (n, vocab, dim)
const EMB_SHAPES: [(usize, usize, usize); 5] = [
    (2048, 1024, 512),
    (1024, 512, 512),
    (300, 5, 1100),
    (50, 7, 33),
    (9, 3, 1),
];

fn embedding_lookup_copies_table_rows<B: Backend>(be: &B) {
    for (s, &(n, vocab, dim)) in EMB_SHAPES.iter().enumerate() {
        let table = random_vec(s as u64, vocab * dim, -1.0, 1.0);
        let idx = indices(100 + s as u64, n, vocab);
        let p = EmbeddingParams::new(n, vocab, dim);
        let mut want = vec![0.0; n * dim];
        embedding_fwd_ref(&p, &table, &idx, &mut want);
        let (tb, ib, out) = (
            be.f32s(&table),
            be.u32s(&idx),
            be.f32s(&vec![f32::NAN; n * dim]),
        );
        be.run(&ga::embedding_fwd_launch(
            be.ptr(&out),
            be.ptr(&tb),
            be.ptr(&ib),
            &p,
        ));
        assert_bits_eq(
            &be.get_f32(&out),
            &want,
            &format!("embedding {n}x{vocab}x{dim}"),
        );
    }
}

fn embedding_backward_sums_in_position_order<B: Backend>(be: &B) {
    for (s, &(n, vocab, dim)) in EMB_SHAPES.iter().enumerate() {
        let mut idx = indices(200 + s as u64, n, vocab);
        // Leave the last vocabulary row unused when there are several: it must come back 0.
        if vocab > 2 {
            idx.iter_mut().for_each(|i| *i = (*i).min(vocab as u32 - 2));
        }
        let g = random_vec(300 + s as u64, n * dim, -1.0, 1.0);
        let p = EmbeddingParams::new(n, vocab, dim);
        let (mut fast, mut oracle) = (vec![0.0; vocab * dim], vec![0.0; vocab * dim]);
        embedding_bwd_fast(&p, &idx, &g, &mut fast);
        embedding_bwd_ref(&p, &idx, &g, &mut oracle);
        let (ib, gb, dt) = (
            be.u32s(&idx),
            be.f32s(&g),
            be.f32s(&vec![f32::NAN; vocab * dim]),
        );
        be.run(&ga::embedding_bwd_launch(
            be.ptr(&dt),
            be.ptr(&ib),
            be.ptr(&gb),
            &p,
        ));
        let got = be.get_f32(&dt);
        let what = format!("embedding backward {n}x{vocab}x{dim}");
        assert_close(&got, &oracle, be.tol(), &what);
        assert_bits_eq(&got, &fast, &what);
        if vocab > 2 {
            assert!(got[(vocab - 1) * dim..].iter().all(|&v| v == 0.0));
        }
    }
}

fn gather_rows_matches_reference<B: Backend>(be: &B) {
    // The sampler reads the 512-logit rows of chosen positions of a 2 x 1024 token batch.
    for (s, &(rows, width, count)) in [(2048usize, 512usize, 37usize), (10, 3, 25), (4, 1, 4)]
        .iter()
        .enumerate()
    {
        let table = random_vec(400 + s as u64, rows * width, -5.0, 5.0);
        let idx = indices(500 + s as u64, count, rows);
        let p = RowsParams {
            rows: rows as u32,
            width: width as u32,
            count: count as u32,
        };
        let (tb, ib, out) = (
            be.f32s(&table),
            be.u32s(&idx),
            be.f32s(&vec![f32::NAN; count * width]),
        );
        be.run(&ga::gather_rows_launch(
            be.ptr(&out),
            be.ptr(&tb),
            be.ptr(&ib),
            p,
        ));
        assert_bits_eq(
            &be.get_f32(&out),
            &gather_rows_ref(&table, &idx, p),
            "gather_rows",
        );
    }
}

fn scatter_rows_last_repeat_wins<B: Backend>(be: &B) {
    for (s, &(rows, width, count)) in [(2048usize, 256usize, 300usize), (6, 5, 40), (3, 1, 1)]
        .iter()
        .enumerate()
    {
        let mut table = random_vec(600 + s as u64, rows * width, -1.0, 1.0);
        // Few distinct rows for many indices: repeats everywhere.
        let idx = indices(700 + s as u64, count, rows.min(count.div_ceil(3)));
        let values = random_vec(800 + s as u64, count * width, 2.0, 3.0);
        let p = RowsParams {
            rows: rows as u32,
            width: width as u32,
            count: count as u32,
        };
        let (tb, ib, vb) = (be.f32s(&table), be.u32s(&idx), be.f32s(&values));
        be.run(&ga::scatter_rows_launch(
            be.ptr(&tb),
            be.ptr(&ib),
            be.ptr(&vb),
            p,
        ));
        scatter_rows_ref(&mut table, &idx, &values, p);
        assert_bits_eq(
            &be.get_f32(&tb),
            &table,
            &format!("scatter_rows {rows}x{width}, {count}"),
        );
    }
}

fn copy_block_builds_concat_of_f32_and_u32<B: Backend>(be: &B) {
    // concat along dim 1 of [2, n_k, 5] parts, and along dim 1 of two [1, 256, 64, 64] maps.
    for (outer, rest, ns) in [
        (2usize, 5usize, vec![3usize, 1, 4]),
        (1, 64 * 64, vec![256, 256]),
    ] {
        let total: usize = ns.iter().sum::<usize>() * rest;
        let mut want = vec![f32::NAN; outer * total];
        let out = be.f32s(&want);
        let outu = be.u32s(&vec![u32::MAX; outer * total]);
        let mut offset = 0;
        for (k, &nk) in ns.iter().enumerate() {
            let src = random_vec(900 + k as u64, outer * nk * rest, -1.0, 1.0);
            let p = BlockCopyParams::new(outer, nk * rest, total, offset);
            copy_block_ref(&p, &src, &mut want);
            let sb = be.f32s(&src);
            be.run(&ga::copy_block_launch(be.ptr(&out), be.ptr(&sb), &p));
            let bits: Vec<u32> = src.iter().map(|v| v.to_bits()).collect();
            let su = be.u32s(&bits);
            be.run(&ga::copy_block_launch(be.ptr(&outu), be.ptr(&su), &p));
            offset += nk * rest;
        }
        assert_bits_eq(&be.get_f32(&out), &want, "concat f32");
        let want_u: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
        assert_eq!(be.get_u32(&outu), want_u, "concat u32");
    }
}

fn index_check_finds_first_bad_position<B: Backend>(be: &B) {
    let n = 5000;
    let mut idx = indices(1000, n, 1024);
    let check = |idx: &[u32]| {
        let (ib, bad) = (be.u32s(idx), be.u32s(&[u32::MAX]));
        be.run(&ga::index_check_launch(
            be.ptr(&bad),
            be.ptr(&ib),
            idx.len(),
            1024,
        ));
        be.get_u32(&bad)[0]
    };
    assert_eq!(check(&idx), u32::MAX, "all in range");
    idx[4321] = 1024;
    idx[1234] = 5000;
    idx[4999] = u32::MAX;
    assert_eq!(check(&idx), 1234);
}
