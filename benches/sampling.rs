//! Benchmarks of the inpainting loop (freshly initialised weights, `InpaintingModel::new(cfg, 7)`:
//! the cost does not depend on training), one sample unless named `_n4`, default options
//! (paper sampler: one token per pass, top-50, temperature 1; FDM on unless `_fdm_off`):
//! * `cpu_inpaint_tiny_30pct_{fdm_on,fdm_off}`: a whole `pipeline::inpaint::inpaint` of
//!   `assets/photos/dev_005.jpg` (256 x 256) under the fixed mask `common::mask_30pct`: 302 masked
//!   patches of 1024 (29.5 %), so 302 transformer passes, plus encoding, FDM and decoding.
//! * `cpu_inpaint_tiny_fdm_{on,off}`: the same with a 32 x 32 pixel hole (4 x 4 patches: 16
//!   passes), kept for comparison with the earlier numbers in BENCHMARKS.md.
//! * `cpu_sampling_pass_tiny`: one pass of `pipeline::sampler::sample` (transformer forward,
//!   position choice, top-K draw, codebook row written back) on a 1 x 1024 x 64 feature table
//!   with one unknown position.
//! * `cuda_inpaint_paper_30pct_{n1,n4}[_bf16]`: the paper preset (35 layers x 512) on the GPU,
//!   302 passes, one sample or four batched, with f32 or bf16 transformer weights. Passes 1 on
//!   replay a CUDA graph of the transformer pass (the default); `..._n1_bf16_eager` runs every
//!   pass eagerly (`cuda_graph: false`), for comparison.
//! * `cuda_sampling_pass_paper[_bf16]`: one sampler pass of the paper preset on the GPU
//!   (device-resident fill: upload, one pass, read back).
//!
//! There is no CPU inpainting bench of the paper preset: one pass of its transformer is ~150
//! GMACs, 2-3 s on two cores, so one inpainting under this mask is ~302 x 2.5 s = about 13 min
//! and criterion's 10 samples would take over two hours. `cpu_transformer_pass_paper` (bench
//! `models`) gives the per-pass cost; multiply by the pass count.
//! CUDA benches synchronise after each iteration and print `SKIP (no CUDA device)` without a GPU.
//!
//! Run: `cargo bench --bench sampling` (about 5-8 minutes on two cores: the two 302-pass tiny
//! inpaintings dominate), or by name, e.g. `cargo bench --bench sampling -- 30pct`.

mod common;

use common::{cuda, long, mask_16, mask_30pct, model, photo, short, MASKED_30PCT, SEED};
use criterion::{criterion_group, criterion_main, Criterion};
use fdm::autograd::Tape;
use fdm::cuda::CudaDevice;
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::pipeline::inpaint::{inpaint, InpaintOptions};
use fdm::pipeline::sampler::{sample, SamplerInput, SamplerOptions};
use fdm::rng::Rng;
use fdm::testing::random_vec;
use fdm::{Device, Tensor};
use std::hint::black_box;

/// Bench whole inpaintings of the photo under `mask` (`passes` transformer passes expected).
fn bench_inpaint(
    c: &mut Criterion,
    id: &str,
    model: &InpaintingModel,
    mask: &Tensor,
    passes: usize,
    opts: InpaintOptions,
    dev: Option<&CudaDevice>,
) {
    let image = photo();
    c.bench_function(id, |b| {
        b.iter(|| {
            let out = inpaint(model, &image, mask, &opts, None, &mut |_, _| {}).expect("inpaint");
            if let Some(d) = dev {
                d.synchronize().expect("synchronize");
            }
            assert_eq!(out.passes, passes, "one pass per masked patch");
            black_box(out)
        })
    });
}

fn options(use_fdm: bool, samples: usize) -> InpaintOptions {
    InpaintOptions {
        use_fdm,
        samples,
        seed: SEED,
        ..InpaintOptions::default()
    }
}

/// Bench one pass of the sampler: a 1 x L x e_dim table with one unknown position.
fn bench_sampling_pass(
    c: &mut Criterion,
    id: &str,
    model: &InpaintingModel,
    dev: Option<&CudaDevice>,
) {
    let cfg = &model.cfg.transformer;
    let (l, e) = (cfg.seq_len, cfg.embed_dim);
    let table = Tensor::from_vec(random_vec(1, l * e, -1.0, 1.0), &[1, l, e])
        .unwrap()
        .to_device(&model.device())
        .unwrap();
    let mut visible = vec![true; l];
    visible[l / 2] = false;
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let opts = SamplerOptions::default();
    let mut rng = Rng::new(SEED);
    c.bench_function(id, |b| {
        b.iter(|| {
            let input = SamplerInput {
                model,
                tape: &tape,
                params: &params,
                table: table.clone(),
                tokens: vec![0; l],
                visible: visible.clone(),
            };
            let out = sample(input, &opts, &mut rng, &mut |_, _| {}).expect("sample");
            if let Some(d) = dev {
                d.synchronize().expect("synchronize");
            }
            assert_eq!(out.passes, 1);
            black_box(out)
        })
    });
}

fn cpu_tiny_30pct(c: &mut Criterion) {
    let m = model("tiny", &Device::Cpu, Precision::F32);
    let mask = mask_30pct();
    for (name, use_fdm) in [
        ("cpu_inpaint_tiny_30pct_fdm_on", true),
        ("cpu_inpaint_tiny_30pct_fdm_off", false),
    ] {
        bench_inpaint(c, name, &m, &mask, MASKED_30PCT, options(use_fdm, 1), None);
    }
}

fn cpu_tiny_small_hole(c: &mut Criterion) {
    let m = model("tiny", &Device::Cpu, Precision::F32);
    let mask = mask_16();
    for (name, use_fdm) in [
        ("cpu_inpaint_tiny_fdm_on", true),
        ("cpu_inpaint_tiny_fdm_off", false),
    ] {
        bench_inpaint(c, name, &m, &mask, 16, options(use_fdm, 1), None);
    }
    bench_sampling_pass(c, "cpu_sampling_pass_tiny", &m, None);
}

fn cuda_paper(c: &mut Criterion) {
    let Some(dev) = cuda("cuda sampling benches") else {
        return;
    };
    let mask = mask_30pct();
    for (precision, suffix) in [(Precision::F32, ""), (Precision::Bf16, "_bf16")] {
        let m = model("paper", &Device::Cuda(dev.clone()), precision);
        bench_sampling_pass(
            c,
            &format!("cuda_sampling_pass_paper{suffix}"),
            &m,
            Some(&dev),
        );
        for n in [1, 4] {
            let id = format!("cuda_inpaint_paper_30pct_n{n}{suffix}");
            bench_inpaint(
                c,
                &id,
                &m,
                &mask,
                MASKED_30PCT,
                options(true, n),
                Some(&dev),
            );
        }
    }
    let m = model("paper", &Device::Cuda(dev.clone()), Precision::Bf16);
    let mut eager = options(true, 1);
    eager.sampler.cuda_graph = false;
    bench_inpaint(c, "cuda_inpaint_paper_30pct_n1_bf16_eager", &m, &mask, MASKED_30PCT, eager, Some(&dev));
}

criterion_group! { name = quick; config = short(); targets = cpu_tiny_small_hole }
criterion_group! { name = slow; config = long(); targets = cpu_tiny_30pct, cuda_paper }
criterion_main!(quick, slow);
