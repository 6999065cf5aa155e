//! What the model and sampling benches share: the fixed photo, the two fixed masks, freshly
//! initialised models of either preset (the cost of a pass does not depend on the weights), the
//! CUDA probe that turns every `cuda_*` bench into a `SKIP` line without a GPU, and the criterion
//! settings (criterion's minimum of 10 samples; short warm-ups for the multi-second benches), and
//! the `fdm` binary's global allocator.
#![allow(dead_code)] // each bench binary uses part of this

use criterion::Criterion;
use fdm::cuda::CudaDevice;
use fdm::io::image::load_image;
use fdm::io::mask_draw::MaskCanvas;
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::model::presets::ModelConfig;
use fdm::{Device, Tensor};
use std::time::Duration;

/// The `fdm` binary's allocator, so that the benches time what the command line runs.
#[global_allocator]
static ALLOCATOR: fdm::host_alloc::ReusingAlloc = fdm::host_alloc::ReusingAlloc::new();

pub const SEED: u64 = 7;

/// Masked patches (token type != 1) of `mask_30pct`: 302 of the 1024 = 29.5 %.
pub const MASKED_30PCT: usize = 302;

/// A freshly initialised model of `preset` ("tiny" or "paper") on `device`, with the
/// transformer's Linear weights stored in `precision`, set up for inference as the CLI sets it
/// (`prepare_for_inference`).
pub fn model(preset: &str, device: &Device, precision: Precision) -> InpaintingModel {
    let cfg = ModelConfig::by_name(preset).expect("preset");
    let mut m = InpaintingModel::new(&cfg, SEED).expect("model");
    m.set_transformer_precision(precision).expect("precision");
    m.to_device(device).expect("model to device");
    m.prepare_for_inference().expect("inference set-up");
    m
}

/// The bundled photo `assets/photos/dev_005.jpg`, `[3, 256, 256]` in [0, 255].
pub fn photo() -> Tensor {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");
    load_image(path).expect("bundled photo").tensor
}

/// `[1, 256, 256]` mask (1 = visible) with a 32 x 32 pixel hole = 4 x 4 patches (pixels
/// 96..128 in both directions, on the 8-pixel patch grid): 16 masked patches.
pub fn mask_16() -> Tensor {
    MaskCanvas::new(256, 256)
        .fill_rect(96, 96, 128, 128)
        .to_engine_mask()
        .expect("mask")
}

/// `[1, 256, 256]` mask with two overlapping boxes whose edges sit mid-patch (so partially
/// hidden patches occur, spec §1.2): pixels x 36..160, y 44..140 (16 x 13 patches) and
/// x 148..220, y 124..196 (10 x 10 patches), overlapping on 2 x 3 patches: 208 + 100 - 6 =
/// 302 masked patches of 1024 (29.5 %; 25.8 % of the pixels). One sample is 302 passes.
pub fn mask_30pct() -> Tensor {
    MaskCanvas::new(256, 256)
        .fill_rect(36, 44, 160, 140)
        .fill_rect(148, 124, 220, 196)
        .to_engine_mask()
        .expect("mask")
}

/// The CUDA device, or None after printing the `SKIP` line for `what`.
pub fn cuda(what: &str) -> Option<CudaDevice> {
    match fdm::cuda::probe() {
        Ok(d) => Some(d),
        Err(why) => {
            println!("{what}: SKIP (no CUDA device): {why}");
            None
        }
    }
}

/// Settings for benches of up to a second or so per iteration.
pub fn short() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
}

/// Settings for benches of several seconds per iteration (paper-preset passes on the CPU, whole
/// inpaintings): 10 samples, a 1 s warm-up (at least one iteration); criterion then samples one
/// iteration per sample (its flat mode) and warns that the 5 s target is exceeded, which is fine.
pub fn long() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}
