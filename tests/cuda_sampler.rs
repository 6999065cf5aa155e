//! The sampler with its fill state on the CUDA device (no per-pass read-back) against the
//! host-driven loop on the CPU: the bundled tiny model, two images whose holes differ in size
//! (one finishes a pass early), two tokens per pass and one Gibbs sweep after the fill. Tokens,
//! fill order and pass count must be identical and the final feature table bit-equal (it holds
//! encoder features and copied codebook rows only). `emu::*` runs on the emulated CUDA device,
//! `cuda::*` on a GPU (SKIP without one, a failure with FDM_REQUIRE_CUDA=1).

mod common;

use fdm::autograd::Tape;
use fdm::cuda::CudaDevice;
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::pipeline::sampler::{sample, Sampled, SamplerInput, SamplerOptions};
use fdm::rng::Rng;
use fdm::{Device, Tensor};

device_tests!(device_fill_matches_the_host_loop);

fn run(model: &InpaintingModel, table: &Tensor, visible: &[bool], opts: &SamplerOptions) -> Sampled {
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let table = table.to_device(&model.device()).unwrap();
    let tokens = vec![0u32; visible.len()];
    let input = SamplerInput { model, tape: &tape, params: &params, table, tokens, visible: visible.to_vec() };
    sample(input, opts, &mut Rng::new(11), &mut |_, _| {}).unwrap()
}

fn device_fill_matches_the_host_loop(dev: CudaDevice) {
    let mut model = InpaintingModel::load(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors"), None).unwrap();
    let (l, c) = (model.cfg.grid() * model.cfg.grid(), model.cfg.codec.e_dim);
    // Image 0: one masked position; image 1: three (two passes at two tokens per pass).
    let mut visible = vec![true; 2 * l];
    for pos in [37, l + 5, l + 300, l + 301] {
        visible[pos] = false;
    }
    let mut rng = Rng::new(3);
    let table = Tensor::from_vec((0..2 * l * c).map(|_| rng.normal()).collect(), &[2, l, c]).unwrap();
    let opts = SamplerOptions { tokens_per_pass: 2, gibbs_sweeps: 1, ..Default::default() };
    let cpu = run(&model, &table, &visible, &opts);
    model.to_device(&Device::Cuda(dev)).unwrap();
    let gpu = run(&model, &table, &visible, &opts);
    assert_eq!(cpu.passes, 4, "2 fill passes and a sweep of 2");
    assert_eq!(gpu.passes, cpu.passes, "passes");
    assert_eq!(gpu.tokens, cpu.tokens, "tokens");
    assert_eq!(gpu.fill_order, cpu.fill_order, "fill order");
    assert_eq!(gpu.fill_order[0], vec![37]);
    assert_eq!(gpu.table.to_vec_f32().unwrap(), cpu.table.to_vec_f32().unwrap(), "feature table");
}

/// On a GPU the caching allocator serves every pass after the first two from its pool: the
/// passes allocate nothing from the driver (the buffers of one pass are the next one's).
#[test]
fn gpu_passes_reuse_buffers_after_warm_up() {
    let Some(dev) = fdm::testing::cuda_device_or_skip("cuda_sampler::gpu_passes_reuse_buffers_after_warm_up") else {
        return;
    };
    let mut model = InpaintingModel::load(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors"), None).unwrap();
    model.to_device(&Device::Cuda(dev.clone())).unwrap();
    let (l, c) = (model.cfg.grid() * model.cfg.grid(), model.cfg.codec.e_dim);
    let mut visible = vec![true; l];
    visible[100..108].iter_mut().for_each(|v| *v = false);
    let table = Tensor::from_vec(vec![0.5; l * c], &[1, l, c]).unwrap().to_device(&model.device()).unwrap();
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let input = SamplerInput { model: &model, tape: &tape, params: &params, table, tokens: vec![0; l], visible };
    let allocator = dev.allocator().expect("a GPU has a caching allocator");
    let mut misses = Vec::new();
    let out = sample(input, &SamplerOptions::default(), &mut Rng::new(1), &mut |_, _| misses.push(allocator.stats().misses)).unwrap();
    assert_eq!(out.passes, 8);
    assert!(misses[2..].iter().all(|&m| m == misses[1]), "driver allocations after each pass: {misses:?}");
}

/// On a GPU the fill replays its transformer pass from a CUDA graph after two eager passes'
/// worth of set-up (pass 0 eager, pass 1 recorded): every pass from 1 on is a replay, and the
/// tokens, fill order and feature table are bit-equal to the eager fill's (`cuda_graph: false`),
/// for f32 and for bf16 transformer weights as `fdm inpaint` prepares them.
#[test]
fn gpu_graph_replays_give_the_eager_fill() {
    let Some(dev) = fdm::testing::cuda_device_or_skip("cuda_sampler::gpu_graph_replays_give_the_eager_fill") else {
        return;
    };
    for precision in [Precision::F32, Precision::Bf16] {
        let mut model = InpaintingModel::load(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors"), None).unwrap();
        model.to_device(&Device::Cuda(dev.clone())).unwrap();
        model.set_transformer_precision(precision).unwrap();
        model.prepare_for_inference().unwrap();
        let (l, c) = (model.cfg.grid() * model.cfg.grid(), model.cfg.codec.e_dim);
        // Two images, holes of 9 and 4 positions: 9 passes, the second image idle after 4.
        let mut visible = vec![true; 2 * l];
        visible[200..209].iter_mut().for_each(|v| *v = false);
        visible[l + 40..l + 44].iter_mut().for_each(|v| *v = false);
        let mut rng = Rng::new(5);
        let table = Tensor::from_vec((0..2 * l * c).map(|_| rng.normal()).collect(), &[2, l, c]).unwrap();
        let eager = run(&model, &table, &visible, &SamplerOptions { cuda_graph: false, ..Default::default() });
        let graphed = run(&model, &table, &visible, &SamplerOptions::default());
        let what = format!("{precision:?}");
        assert_eq!(graphed.graph_note, None, "{what}: the capture failed");
        assert_eq!((eager.passes, eager.graph_replays), (9, 0), "{what}");
        assert_eq!((graphed.passes, graphed.graph_replays), (9, 8), "{what}");
        assert_eq!(graphed.tokens, eager.tokens, "{what}: tokens");
        assert_eq!(graphed.fill_order, eager.fill_order, "{what}: fill order");
        assert_eq!(graphed.table.to_vec_f32().unwrap(), eager.table.to_vec_f32().unwrap(), "{what}: feature table");
    }
}
