//! CPU benchmarks of the inpainting loop on the tiny preset (freshly initialised weights: the
//! cost does not depend on training), so FDM's share of an inpainting is visible:
//! * `cpu_transformer_pass_tiny`: one transformer pass, 1 x 1024 tokens x 64 features;
//! * `cpu_inpaint_tiny_fdm_on` / `_off`: a whole `pipeline::inpaint::inpaint` of
//!   `assets/photos/dev_005.jpg` (256 x 256) with a 32 x 32 pixel hole = 4 x 4 patches (16
//!   masked tokens, one per pass: 16 transformer passes), one sample, with and without FDM;
//! * `cpu_fdm_tiny`: `Fdm::apply` alone on that image's features and masked-patch map.
//!
//! Run: `cargo bench --bench sampling` (one to two minutes on two cores). Sample sizes are
//! criterion's minimum (10) to keep it short; see BENCHMARKS.md for measured numbers.

use criterion::{criterion_group, criterion_main, Criterion};
use fdm::autograd::Tape;
use fdm::io::image::load_image;
use fdm::io::mask_draw::MaskCanvas;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::masks::masked_patch_indicator;
use fdm::model::presets::ModelConfig;
use fdm::pipeline::inpaint::{inpaint, InpaintOptions};
use fdm::testing::random_vec;
use fdm::Tensor;
use std::hint::black_box;
use std::time::Duration;

const SEED: u64 = 7;

fn tiny_model() -> InpaintingModel {
    InpaintingModel::new(&ModelConfig::tiny(), SEED).expect("tiny model")
}

/// The bundled photo `[3, 256, 256]` and a mask `[1, 256, 256]` with a 4 x 4 patch hole
/// (pixels 96..128 in both directions, on the 8-pixel patch grid).
fn photo_and_mask() -> (Tensor, Tensor) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");
    let image = load_image(path).expect("bundled photo").tensor;
    let mask = MaskCanvas::new(256, 256)
        .fill_rect(96, 96, 128, 128)
        .to_engine_mask()
        .expect("mask");
    (image, mask)
}

fn transformer_pass(c: &mut Criterion) {
    let model = tiny_model();
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let x = Tensor::from_vec(random_vec(1, 1024 * 64, -1.0, 1.0), &[1, 1024, 64]).expect("x");
    let x = tape.constant(x);
    c.bench_function("cpu_transformer_pass_tiny", |b| {
        b.iter(|| black_box(model.transformer.forward(&tape, &params, &x).expect("pass")))
    });
}

fn inpaint_tiny(c: &mut Criterion) {
    let model = tiny_model();
    let (image, mask) = photo_and_mask();
    for (name, use_fdm) in [("cpu_inpaint_tiny_fdm_on", true), ("cpu_inpaint_tiny_fdm_off", false)] {
        let opts = InpaintOptions { use_fdm, seed: SEED, ..InpaintOptions::default() };
        c.bench_function(name, |b| {
            b.iter(|| {
                let out = inpaint(&model, &image, &mask, &opts, None, &mut |_, _| {}).expect("inpaint");
                assert_eq!(out.passes, 16, "one pass per masked patch");
                black_box(out)
            })
        });
    }
}

fn fdm_alone(c: &mut Criterion) {
    let model = tiny_model();
    let (image, mask) = photo_and_mask();
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let (image, mask) = (image.reshape(&[1, 3, 256, 256]).expect("image"), mask.reshape(&[1, 1, 256, 256]).expect("mask"));
    let feats = model.codec.get_features(&tape, &params, &model.store, &image, Some(&mask)).expect("features");
    let m = tape.constant(masked_patch_indicator(&mask, model.cfg.codec.patch).expect("patch mask"));
    // FDM's cost does not depend on the values: the encoder features stand in for the
    // sampled codebook rows.
    let quantized = tape.constant(feats.feature.value().clone());
    c.bench_function("cpu_fdm_tiny", |b| {
        b.iter(|| black_box(model.fdm.apply(&tape, &params, &quantized, &feats.feature, &m).expect("fdm").v))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
}

criterion_group! {
    name = sampling;
    config = config();
    targets = transformer_pass, inpaint_tiny, fdm_alone
}
criterion_main!(sampling);
