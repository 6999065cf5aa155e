//! Embedding lookup: literal lookup and scatter-add with repeated indices, fast vs ref on the
//! real shape (codebook 1024 x 256, 2 x 1024 token indices), backward vs finite differences,
//! out-of-range and dtype errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::{embedding as ag, Tape};
use fdm::cpu::ops::embedding::{
    embedding_bwd_fast, embedding_bwd_ref, embedding_fwd_fast, embedding_fwd_ref,
};
use fdm::ops::embedding::{embedding, embedding_backward};
use fdm::params::embedding::EmbeddingParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

#[test]
fn embedding_literal_cpu() -> Result<()> {
    let table = t(
        &[0., 1., 2., 10., 11., 12., 20., 21., 22., 30., 31., 32.],
        &[4, 3],
    );
    let idx = Tensor::from_u32(vec![1, 3, 1, 0], &[2, 2])?;
    let out = embedding(&table, &idx)?;
    assert_eq!(out.shape(), &[2, 2, 3]);
    assert_eq!(
        vals(&out),
        [10., 11., 12., 30., 31., 32., 10., 11., 12., 0., 1., 2.]
    );
    // Backward: row 1 is read twice, its gradients add; row 2 is never read.
    let g = t(
        &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
        &[2, 2, 3],
    );
    let dt = embedding_backward(&idx, &g, 4)?;
    assert_eq!(
        vals(&dt),
        [10., 11., 12., 8., 10., 12., 0., 0., 0., 4., 5., 6.]
    );
    Ok(())
}

#[test]
fn embedding_fast_matches_ref_cpu() {
    // Real shape: the dual codebook (2 x 512 entries of 256) looked up by 2 x 1024 token indices.
    let (n, vocab, d) = (2 * 1024, 1024, 256);
    let p = EmbeddingParams::new(n, vocab, d);
    let table = random_vec(1, vocab * d, -1.0, 1.0);
    let mut rng = Rng::new(2);
    // Indices drawn from a small range, so many repeat (the scatter must add them).
    let idx: Vec<u32> = (0..n).map(|_| rng.below(300) as u32).collect();
    let (mut a, mut b) = (vec![0f32; n * d], vec![0f32; n * d]);
    embedding_fwd_ref(&p, &table, &idx, &mut a);
    embedding_fwd_fast(&p, &table, &idx, &mut b);
    assert_eq!(a, b);
    let g = random_vec(3, n * d, -1.0, 1.0);
    let (mut dr, mut df) = (vec![0f32; vocab * d], vec![1f32; vocab * d]);
    embedding_bwd_ref(&p, &idx, &g, &mut dr);
    embedding_bwd_fast(&p, &idx, &g, &mut df);
    assert_close(&df, &dr, TOL_CPU_F32, "table gradient");
}

#[test]
fn embedding_backward_matches_finite_diff_cpu() {
    let idx = vec![2u32, 0, 2, 3, 2];
    let (vocab, d) = (4, 3);
    let idx_t = Tensor::from_u32(idx.clone(), &[5]).unwrap();
    check_grads(
        "embedding",
        &[(random_vec(4, vocab * d, -1.0, 1.0), vec![vocab, d])],
        move |tape: &Tape, v| ag::embedding(tape, &v[0], &idx_t),
        move |xs| {
            idx.iter()
                .flat_map(|&i| xs[0][i as usize * d..][..d].to_vec())
                .collect()
        },
    );
}

#[test]
fn embedding_rejects_bad_inputs_cpu() -> Result<()> {
    let table = rand(1, &[4, 3], 0.0, 1.0);
    let err = embedding(&table, &Tensor::from_u32(vec![0, 7, 1], &[3])?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("index 7") && err.contains("position 1") && err.contains("4 rows"),
        "{err}"
    );
    let err = embedding(&table, &t(&[0.0], &[1])).unwrap_err().to_string();
    assert!(err.contains("F32") && err.contains("embedding"), "{err}");
    let err = embedding(&rand(1, &[12], 0.0, 1.0), &Tensor::from_u32(vec![0], &[1])?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[vocab, dim]"), "{err}");
    let err = embedding_backward(
        &Tensor::from_u32(vec![0, 9], &[2])?,
        &rand(2, &[2, 3], 0.0, 1.0),
        4,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("index 9"), "{err}");
    Ok(())
}
