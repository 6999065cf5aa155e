//! `Transformer::forward_at` (logits at chosen positions only, the sampler's pass) against the
//! full `forward` gathered at the same positions, and the attention op it runs on the pruned
//! last block (`ops::attention::attention_queries`) against the f64 oracle and the full op.
//! On the CPU the pruned block must give the same bits as the full pass: the sampler's tokens
//! then do not depend on which of the two ran.
use fdm::autograd::Tape;
use fdm::cpu::ops::attention::{attention_queries_fast, attention_queries_ref, attention_ref};
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::model::presets::ModelConfig;
use fdm::ops::attention::{attention, attention_queries};
use fdm::params::attention::AttentionParams;
use fdm::testing::random_vec;
use fdm::{Result, Tensor};

const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");

fn features(m: &InpaintingModel, b: usize, seed: u64) -> Tensor {
    let c = m.cfg.codec.e_dim;
    Tensor::from_vec(random_vec(seed, b * 1024 * c, -1.0, 1.0), &[b, 1024, c]).unwrap()
}

/// Rows `rows` (u per sequence) of the full logits, as forward_at lays them out.
fn gathered(full: &[f32], rows: &[u32], u: usize, l: usize, v: usize) -> Vec<f32> {
    rows.iter().enumerate().flat_map(|(i, &r)| full[((i / u) * l + r as usize) * v..][..v].to_vec()).collect()
}

/// forward_at equals the gathered forward bit for bit, for several row sets.
fn check_rows_match(m: &InpaintingModel, b: usize) -> Result<()> {
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let x = t.constant(features(m, b, 21));
    let full = m.transformer.forward(&t, &p, &x)?.value().to_vec_f32()?;
    let (l, v) = (1024, m.cfg.transformer.vocab);
    let sets: Vec<(usize, Vec<u32>)> = vec![
        (1, (0..b as u32).map(|i| 17 * i + 3).collect()),
        // Unsorted, with a repeat (the sampler pads a short sequence with repeats).
        (5, (0..b).flat_map(|i| [1023, 0, 511, 511, 40 + i as u32]).collect()),
        // 117 positions, the README's rectangle hole, over two 16-query panels' edges.
        (117, (0..b).flat_map(|i| (0..117).map(move |r| (r * 8 + i as u32) % 1024)).collect()),
        (1024, (0..b).flat_map(|_| 0..1024).collect()),
    ];
    for (u, rows) in sets {
        let got = m.transformer.forward_at(&t, &p, &x, &rows, u)?;
        assert_eq!(got.shape(), &[b, u, v]);
        let got = got.value().to_vec_f32()?;
        let want = gathered(&full, &rows, u, l, v);
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "u = {u}: {differ} of {} logits differ from the full pass", want.len());
    }
    assert_eq!(t.num_nodes(), 0, "inference records nothing");
    Ok(())
}

#[test]
fn forward_at_gives_the_full_pass_bits_bundled_tiny_cpu() -> Result<()> {
    let mut m = InpaintingModel::load(BUNDLED, None)?;
    m.prepare_for_inference()?;
    check_rows_match(&m, 2)
}

#[test]
fn forward_at_gives_the_full_pass_bits_random_tiny_cpu() -> Result<()> {
    check_rows_match(&InpaintingModel::new(&ModelConfig::tiny(), 5)?, 3)
}

/// With bf16 weights the last block is not pruned: forward_at is the full pass and a gather.
/// Where weights need a gradient it is an error (inference only).
#[test]
fn forward_at_without_pruning_is_the_gathered_full_pass_cpu() -> Result<()> {
    let mut m = InpaintingModel::new(&ModelConfig::tiny(), 6)?;
    let rows: Vec<u32> = vec![5, 900, 33, 0];
    {
        let t = Tape::new();
        let p = m.store.bind(&t, |_| true);
        let x = t.constant(features(&m, 2, 4));
        let err = m.transformer.forward_at(&t, &p, &x, &rows, 2).unwrap_err().to_string();
        assert!(err.contains("inference only"), "{err}");
    }
    m.set_transformer_precision(Precision::Bf16)?;
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let x = t.constant(features(&m, 2, 4));
    let full = m.transformer.forward(&t, &p, &x)?.value().to_vec_f32()?;
    let got = m.transformer.forward_at(&t, &p, &x, &rows, 2)?.value().to_vec_f32()?;
    assert_eq!(got, gathered(&full, &rows, 2, 1024, m.cfg.transformer.vocab));
    Ok(())
}

#[test]
fn forward_at_rejects_bad_rows_cpu() -> Result<()> {
    let m = InpaintingModel::new(&ModelConfig::tiny(), 5)?;
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let x = t.constant(features(&m, 2, 1));
    let err = m.transformer.forward_at(&t, &p, &x, &[1, 2, 3], 2).unwrap_err().to_string();
    assert!(err.contains("3 rows for 2 sequences of 2"), "{err}");
    let err = m.transformer.forward_at(&t, &p, &x, &[1, 1024], 1).unwrap_err().to_string();
    assert!(err.contains("position 1024 outside the sequence of 1024"), "{err}");
    Ok(())
}

/// The CPU kernel with queries of their own: against the f64 oracle on ragged sizes, and its
/// rows against a full call's (same bits) when the queries are rows of the full q.
#[test]
fn attention_queries_matches_ref_and_full_rows_cpu() -> Result<()> {
    for &(b, l, h, dh, lq) in &[(2, 1024, 2, 32, 117), (1, 70, 3, 20, 1), (2, 33, 1, 16, 40), (1, 130, 8, 64, 17)] {
        let p = AttentionParams::new(b, l, h, dh);
        let w = h * dh;
        let (k, v) = (random_vec(1, b * l * w, -1.0, 1.0), random_vec(2, b * l * w, -1.0, 1.0));
        let q = random_vec(3, b * lq * w, -1.0, 1.0);
        let (mut want, mut got, mut lse) = (vec![0f32; b * lq * w], vec![0f32; b * lq * w], vec![0f32; b * h * lq]);
        attention_queries_ref(&p, lq, &q, &k, &v, &mut want);
        attention_queries_fast(&p, lq, &q, &k, &v, &mut got, &mut lse);
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "b {b} l {l} h {h} dh {dh} lq {lq}: max error {worst}");
        // Queries taken from a full q: the full op's rows, bit for bit.
        let full_q = random_vec(4, b * l * w, -1.0, 1.0);
        let picks: Vec<usize> = (0..lq).map(|r| (r * 7 + 3) % l).collect();
        let sub: Vec<f32> = (0..b).flat_map(|bi| picks.iter().flat_map(|&r| full_q[(bi * l + r) * w..][..w].to_vec()).collect::<Vec<_>>()).collect();
        let tensor = |x: &[f32], n: usize| Tensor::from_vec(x.to_vec(), &[b, n, w]).unwrap();
        let full = attention(&tensor(&full_q, l), &tensor(&k, l), &tensor(&v, l), h)?.to_vec_f32()?;
        let part = attention_queries(&tensor(&sub, lq), &tensor(&k, l), &tensor(&v, l), h)?.to_vec_f32()?;
        for bi in 0..b {
            for (r, &pos) in picks.iter().enumerate() {
                let (a, f) = (&part[(bi * lq + r) * w..][..w], &full[(bi * l + pos) * w..][..w]);
                assert!(a.iter().zip(f).all(|(x, y)| x.to_bits() == y.to_bits()), "b {b} l {l} lq {lq}: row {pos} differs");
            }
        }
        // With lq = l the oracle is attention_ref's.
        let mut full_ref = vec![0f32; b * l * w];
        attention_ref(&p, &full_q, &k, &v, &mut full_ref);
        let mut same = vec![0f32; b * l * w];
        attention_queries_ref(&p, l, &full_q, &k, &v, &mut same);
        assert_eq!(full_ref, same);
    }
    Ok(())
}

#[test]
fn attention_queries_rejects_bad_shapes_cpu() {
    let t = |s: &[usize]| Tensor::zeros(s);
    let err = attention_queries(&t(&[1, 4, 8]), &t(&[2, 9, 8]), &t(&[2, 9, 8]), 2).unwrap_err().to_string();
    assert!(err.contains("differ in batch or width"), "{err}");
    let err = attention_queries(&t(&[1, 4, 8]), &t(&[1, 9, 8]), &t(&[1, 8, 8]), 2).unwrap_err().to_string();
    assert!(err.contains("k") && err.contains("v"), "{err}");
    let err = attention_queries(&t(&[1, 4, 8]), &t(&[1, 9, 8]), &t(&[1, 9, 8]), 3).unwrap_err().to_string();
    assert!(err.contains("not a multiple of heads"), "{err}");
}
