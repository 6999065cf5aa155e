//! The sampler and inpainting on the tiny preset (random weights): pass counts, token range,
//! exact known pixels, seeding, Gibbs sweeps, batched samples and token replay (spec §5).
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::pipeline::inpaint::{inpaint, InpaintOptions, Inpainted};
use fdm::pipeline::photo::{batch_seed, inpaint_photo_batched, PhotoResult};
use fdm::pipeline::sampler::SamplerOptions;
use fdm::rng::Rng;
use fdm::{Result, Tensor};
use std::sync::OnceLock;

fn model() -> &'static InpaintingModel {
    static M: OnceLock<InpaintingModel> = OnceLock::new();
    M.get_or_init(|| InpaintingModel::new(&ModelConfig::tiny(), 11).unwrap())
}

fn image() -> Tensor {
    let mut r = Rng::new(21);
    Tensor::from_vec((0..3 * 256 * 256).map(|_| (r.uniform() * 255.0).floor()).collect(), &[3, 256, 256]).unwrap()
}

/// Hole pixels [y0, y1) x [x0, x1), visible elsewhere.
fn mask(y0: usize, y1: usize, x0: usize, x1: usize) -> Tensor {
    let mut m = vec![1.0; 256 * 256];
    for y in y0..y1 {
        m[y * 256 + x0..y * 256 + x1].iter_mut().for_each(|v| *v = 0.0);
    }
    Tensor::from_vec(m, &[1, 256, 256]).unwrap()
}

fn run(opts: &InpaintOptions, m: &Tensor) -> Result<Inpainted> {
    inpaint(model(), &image(), m, opts, None, &mut |_, _| {})
}

#[test]
fn one_token_per_pass_and_exact_known_pixels_cpu() -> Result<()> {
    // Hole rows 40..70, cols 100..121: patches rows 5..8 (4) x cols 12..15 (4) = 16 masked.
    let m = mask(40, 70, 100, 121);
    let mut calls = 0;
    let out = inpaint(model(), &image(), &m, &InpaintOptions { seed: 1, ..Default::default() }, None, &mut |done, total| {
        calls += 1;
        assert_eq!(total, 16);
        assert_eq!(done, calls);
    })?;
    assert_eq!(out.masked_patches, 16);
    assert_eq!(out.passes, 16);
    assert_eq!(calls, 16);
    let vocab = model().cfg.transformer.vocab as u32;
    assert!(out.tokens[0].iter().all(|&t| t < vocab), "sampled and visible tokens in the unmasked half");
    let (img, res, mv) = (image().to_vec_f32()?, out.images[0].to_vec_f32()?, m.to_vec_f32()?);
    for i in 0..3 * 256 * 256 {
        if mv[i % (256 * 256)] == 1.0 {
            assert_eq!(res[i], img[i], "known pixel {i} changed");
        }
    }
    assert!(res.iter().all(|v| (0.0..=255.0).contains(v)));
    Ok(())
}

#[test]
fn same_seed_same_output_other_seed_differs_cpu() -> Result<()> {
    let m = mask(0, 24, 0, 24); // 3 x 3 patches
    let a = run(&InpaintOptions { seed: 5, ..Default::default() }, &m)?;
    let b = run(&InpaintOptions { seed: 5, ..Default::default() }, &m)?;
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.images[0].to_vec_f32()?, b.images[0].to_vec_f32()?);
    let c = run(&InpaintOptions { seed: 6, sampler: SamplerOptions { top_k: 200, ..Default::default() }, ..Default::default() }, &m)?;
    let d = run(&InpaintOptions { seed: 7, sampler: SamplerOptions { top_k: 200, ..Default::default() }, ..Default::default() }, &m)?;
    assert_ne!(c.tokens, d.tokens, "different seeds draw different tokens");
    Ok(())
}

#[test]
fn tokens_per_pass_and_gibbs_sweeps_set_pass_count_cpu() -> Result<()> {
    let m = mask(40, 70, 100, 121); // 16 masked patches
    let o = InpaintOptions { sampler: SamplerOptions { tokens_per_pass: 5, ..Default::default() }, ..Default::default() };
    assert_eq!(run(&o, &m)?.passes, 4); // ceil(16 / 5)
    let o = InpaintOptions { sampler: SamplerOptions { tokens_per_pass: 8, gibbs_sweeps: 2, ..Default::default() }, ..Default::default() };
    assert_eq!(run(&o, &m)?.passes, 2 + 2 * 2);
    Ok(())
}

#[test]
fn batched_samples_differ_and_replay_reproduces_cpu() -> Result<()> {
    let m = mask(96, 136, 96, 136); // patches 12..17 x 12..17: 5 x 5
    let opts = InpaintOptions { samples: 3, seed: 9, sampler: SamplerOptions { top_k: 100, ..Default::default() }, ..Default::default() };
    let out = run(&opts, &m)?;
    assert_eq!(out.images.len(), 3);
    assert_eq!(out.passes, 25, "the batch runs as one loop");
    assert!(out.tokens[0] != out.tokens[1] || out.tokens[1] != out.tokens[2], "samples should differ");
    // Replaying the sampled tokens decodes the same pictures, with and without FDM.
    let replayed = inpaint(model(), &image(), &m, &opts, Some(&out.tokens), &mut |_, _| {})?;
    assert_eq!(replayed.passes, 0);
    for k in 0..3 {
        assert_eq!(replayed.images[k].to_vec_f32()?, out.images[k].to_vec_f32()?);
    }
    let no_fdm = inpaint(model(), &image(), &m, &InpaintOptions { use_fdm: false, ..opts.clone() }, Some(&out.tokens), &mut |_, _| {})?;
    assert_ne!(no_fdm.images[0].to_vec_f32()?, out.images[0].to_vec_f32()?, "FDM changes the decoded hole");
    Ok(())
}

/// Per batch of a batched run: the index of its first sample and its result.
type Batches = Vec<(usize, PhotoResult)>;

/// `inpaint_photo_batched` of `opts` in batches of `batch`: the batches and the (pass, total)
/// reports.
fn run_batched(opts: &InpaintOptions, batch: usize, m: &Tensor, tokens: Option<&[Vec<u32>]>) -> Result<(Batches, Vec<(usize, usize)>)> {
    let (mut batches, mut passes) = (Vec::new(), Vec::new());
    let summary = inpaint_photo_batched(model(), &image(), m, opts, batch, tokens, &mut |p, t| passes.push((p, t)), &mut |first, res| {
        batches.push((first, res));
        Ok(())
    })?;
    assert_eq!(summary.batches, batches.len());
    assert_eq!(summary.passes, batches.iter().map(|(_, r)| r.passes).sum::<usize>());
    Ok((batches, passes))
}

#[test]
fn samples_beyond_one_batch_run_in_seeded_batches_cpu() -> Result<()> {
    let m = mask(0, 24, 0, 24); // 3 x 3 patches
    let opts = InpaintOptions { samples: 5, seed: 4, sampler: SamplerOptions { top_k: 200, ..Default::default() }, ..Default::default() };
    let (batches, passes) = run_batched(&opts, 2, &m, None)?;
    let shape: Vec<(usize, usize)> = batches.iter().map(|(first, r)| (*first, r.images.len())).collect();
    assert_eq!(shape, [(0, 2), (2, 2), (4, 1)], "batches of 2, 2 and 1 samples, in order");
    assert_eq!(passes.len(), 27);
    assert!(passes.iter().enumerate().all(|(i, &(p, t))| p == i + 1 && t == 27), "passes counted over the batches: {passes:?}");
    // Batch b draws what one batch of its size draws with batch_seed(seed, b); the first batch
    // draws with the run's own seed.
    assert_eq!(batch_seed(4, 0), 4);
    for (b, (_, res)) in batches.iter().enumerate() {
        let alone = run(&InpaintOptions { samples: res.images.len(), seed: batch_seed(4, b), ..opts.clone() }, &m)?;
        assert_eq!(alone.tokens, res.tokens, "batch {b}");
        assert_eq!(alone.images[0].to_vec_f32()?, res.images[0].to_vec_f32()?, "batch {b}");
    }
    let tokens: Vec<Vec<u32>> = batches.iter().flat_map(|(_, r)| r.tokens.clone()).collect();
    assert!(tokens.windows(2).any(|w| w[0] != w[1]), "the batches draw different samples");
    // Same seed and batch size: the same samples; replaying them through batches decodes them.
    let (again, _) = run_batched(&opts, 2, &m, None)?;
    assert!(again.iter().zip(&batches).all(|((_, a), (_, b))| a.tokens == b.tokens));
    let (replayed, replay_passes) = run_batched(&opts, 3, &m, Some(&tokens))?;
    assert!(replay_passes.is_empty());
    let images = |bs: &[(usize, PhotoResult)]| -> Vec<Vec<f32>> { bs.iter().flat_map(|(_, r)| r.images.iter().map(|t| t.to_vec_f32().unwrap())).collect() };
    assert_eq!(images(&replayed), images(&batches));
    // Bad arguments are errors, before any batch runs.
    let e = run_batched(&opts, 0, &m, None).err().unwrap().to_string();
    assert!(e.contains("batch size must be at least 1"), "{e}");
    let e = run_batched(&opts, 2, &m, Some(&tokens[..4])).err().unwrap().to_string();
    assert!(e.contains("one token vector per sample (5)"), "{e}");
    Ok(())
}

#[test]
fn inpaint_rejects_bad_input_cpu() {
    let full = Tensor::full(1.0, &[1, 256, 256]);
    let e = run(&InpaintOptions::default(), &full).err().unwrap().to_string();
    assert!(e.contains("no hole"), "{e}");
    let small = Tensor::zeros(&[1, 64, 64]);
    assert!(run(&InpaintOptions::default(), &small).is_err());
    let bad = InpaintOptions { sampler: SamplerOptions { top_k: 0, ..Default::default() }, ..Default::default() };
    let e = run(&bad, &mask(0, 8, 0, 8)).err().unwrap().to_string();
    assert!(e.contains("top-k"), "{e}");
}
