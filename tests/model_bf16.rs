//! The transformer with bf16 Linear weights (`InpaintingModel::set_transformer_precision`,
//! `fdm inpaint --precision bf16`), on the bundled tiny model and a real photo:
//! * which parameters change dtype (the Linear weights only) and the memory they save;
//! * the logits with bf16 weights against f32 weights on the CPU (bound below);
//! * the same bf16 model on the emulated CUDA device (tensor-core kernel twin, activations rounded
//!   to bf16 too) against the CPU; and a whole inpainting on it;
//! * `fdm inpaint --precision bf16` end to end through the binary on the CPU.

mod common;

use fdm::autograd::Tape;
use fdm::cuda::CudaDevice;
use fdm::io::image::{load_image, save_mask_png};
use fdm::model::codec::feature_rows;
use fdm::model::inpainting::{InpaintingModel, Precision};
use fdm::ops;
use fdm::pipeline::inpaint::{inpaint, InpaintOptions};
use fdm::pipeline::sampler::SamplerOptions;
use fdm::{DType, Device, Tensor};
use std::process::Command;

device_tests!(
    bf16_transformer_on_the_device_matches_the_cpu,
    f32_inference_stacking_on_the_device,
    inference_set_up_follows_the_model_across_devices
);

fn asset(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> InpaintingModel {
    InpaintingModel::load(asset("assets/weights/fdm-tiny.safetensors"), None).unwrap()
}

/// 1 x 256 x 256 mask (1 = visible) with a 32 x 48 pixel hole.
fn mask() -> Tensor {
    let mut m = vec![1.0f32; 256 * 256];
    for y in 96..128 {
        m[y * 256 + 80..y * 256 + 128]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    Tensor::from_vec(m, &[1, 256, 256]).unwrap()
}

/// The transformer's token features of the photo under the mask: `[1, L, e_dim]` (CPU).
fn token_features(model: &InpaintingModel) -> Tensor {
    let loaded = load_image(asset("assets/photos/dev_005.jpg")).unwrap();
    let image = ops::resize::resize_bilinear(&loaded.tensor, (256, 256))
        .unwrap()
        .reshape(&[1, 3, 256, 256])
        .unwrap();
    let mask = mask().reshape(&[1, 1, 256, 256]).unwrap();
    let tape = Tape::no_grad();
    let p = model.store.bind(&tape, |_| false);
    let feats = model
        .codec
        .get_features(&tape, &p, &model.store, &image, Some(&mask))
        .unwrap();
    let (l, e) = (model.cfg.grid() * model.cfg.grid(), model.cfg.codec.e_dim);
    feature_rows(feats.feature.value())
        .unwrap()
        .reshape(&[1, l, e])
        .unwrap()
}

fn logits(model: &InpaintingModel, feat: &Tensor) -> Vec<f32> {
    let tape = Tape::no_grad();
    let p = model.store.bind(&tape, |_| false);
    let feat = feat.to_device(&model.device()).unwrap();
    model
        .transformer
        .forward(&tape, &p, &tape.constant(feat))
        .unwrap()
        .value()
        .to_vec_f32()
        .unwrap()
}

/// The logits of a model whose query/key/value projections are stacked against those of one
/// whose are separate: equal up to f32 rounding of a reordered sum (a different blocking of the
/// wider GEMM, or on a GPU another cuBLAS algorithm), far below 2^-12 of the largest logit.
fn assert_stacked_logits_match(stacked: &InpaintingModel, separate: &InpaintingModel, feat: &Tensor, what: &str) {
    let (a, b) = (logits(stacked, feat), logits(separate, feat));
    let diff = max_abs_diff(&a, &b);
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("tiny transformer logits, {what}, stacked vs separate q/k/v: max |diff| {diff:e}, max |logit| {scale}");
    assert!(diff <= 2f32.powi(-12) * scale, "{what}: max |diff| {diff} vs max |logit| {scale}");
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn bf16_precision_converts_only_the_linear_weights_cpu() {
    let mut model = tiny();
    let before: Vec<(String, DType, usize)> = model
        .store
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.dtype(), t.numel()))
        .collect();
    model.set_transformer_precision(Precision::Bf16).unwrap();
    let linear = model.transformer.linear_weights();
    // tiny: emb_proj, 4 blocks x (q, k, v, proj, fc, out), to_logits.
    assert_eq!(linear.len(), 2 + 6 * model.cfg.transformer.n_layer);
    let mut bf16_values = 0;
    for ((id, name, t), (name0, dtype0, _)) in model.store.iter().zip(&before) {
        assert_eq!((name, *dtype0), (name0.as_str(), DType::F32));
        let want = if linear.contains(&id) {
            DType::BF16
        } else {
            DType::F32
        };
        assert_eq!(t.dtype(), want, "{name}");
        if want == DType::BF16 {
            assert!(
                name.starts_with("generator.") && name.ends_with(".weight") && t.rank() == 2,
                "{name}"
            );
            bf16_values += t.numel();
        }
    }
    // Nearly all of the transformer's parameters are Linear weights (the rest: pos_emb, LNs, biases).
    let transformer = model.store.numel_with_prefix("generator.");
    assert!(
        bf16_values * 10 > transformer * 7,
        "{bf16_values} of {transformer}"
    );
    // Back to f32: the dtype returns (the rounding stays).
    model.set_transformer_precision(Precision::F32).unwrap();
    assert!(model.store.iter().all(|(_, _, t)| t.dtype() == DType::F32));
}

/// Under bf16 the query/key/value weights of each block run as one stacked projection
/// (`Transformer::restack`): the logits equal those of the three separate projections, which a
/// model whose weights were rounded without restacking runs.
#[test]
fn stacked_query_key_value_give_the_logits_of_the_separate_ones_cpu() {
    let mut stacked = tiny();
    let feat = token_features(&stacked);
    stacked.set_transformer_precision(Precision::Bf16).unwrap();
    let mut separate = tiny();
    for id in separate.transformer.linear_weights() {
        let rounded = separate.store.get(id).to_dtype(DType::BF16).unwrap();
        separate.store.set(id, rounded).unwrap();
    }
    assert_stacked_logits_match(&stacked, &separate, &feat, "bf16 on the CPU");
    // Back to f32 drops the stacks, and the separate path runs again with the same logits.
    stacked.set_transformer_precision(Precision::F32).unwrap();
    separate.set_transformer_precision(Precision::F32).unwrap();
    assert_eq!(logits(&stacked, &feat), logits(&separate, &feat));
}

/// The query/key/value projections stacked in f32 (`Transformer::set_inference`, what
/// `prepare_for_inference` does on CUDA): the same logits as the separate projections on the CPU.
#[test]
fn f32_inference_stacking_gives_the_logits_of_the_separate_projections_cpu() {
    let mut stacked = tiny();
    let separate = tiny();
    let feat = token_features(&separate);
    stacked.transformer.set_inference(&stacked.store, true).unwrap();
    assert_stacked_logits_match(&stacked, &separate, &feat, "f32 on the CPU");
}

/// A forward that needs gradients runs the separate projections even where an inference stack
/// is built (the stack carries none): the same gradients reach the query/key/value weights.
#[test]
fn an_inference_stack_steps_aside_when_gradients_are_needed_cpu() {
    let mut stacked = tiny();
    stacked.transformer.set_inference(&stacked.store, true).unwrap();
    let separate = tiny();
    let feat = token_features(&separate);
    let grads = |m: &InpaintingModel| -> Vec<Vec<f32>> {
        let t = Tape::new();
        let p = m.store.bind(&t, |n| n.starts_with("generator.blocks.0.attn."));
        let logits = m.transformer.forward(&t, &p, &t.constant(feat.clone())).unwrap();
        let loss = fdm::autograd::reduce::sum_all(&t, &logits).unwrap();
        let g = t.backward(&loss).unwrap();
        let all = m.store.grads_of(&p, &g);
        m.store
            .iter()
            .zip(all)
            .filter(|((_, name, _), _)| name.contains("blocks.0.attn.query") || name.contains("blocks.0.attn.value"))
            .map(|(_, g)| g.expect("a gradient for every bound projection parameter").to_vec_f32().unwrap())
            .collect()
    };
    let (a, b) = (grads(&stacked), grads(&separate));
    assert_eq!(a.len(), 4, "query and value weight and bias");
    assert_eq!(a, b);
}

/// The stacked f32 projection and the f32 attention reading q, k, v in place from it
/// (`attention_fwd_packed`) on the device, against the separate projections on the same device.
fn f32_inference_stacking_on_the_device(dev: CudaDevice) {
    let mut stacked = tiny();
    let mut separate = tiny();
    let feat = token_features(&separate);
    for m in [&mut stacked, &mut separate] {
        m.to_device(&Device::Cuda(dev.clone())).unwrap();
    }
    stacked.prepare_for_inference().unwrap();
    assert_stacked_logits_match(&stacked, &separate, &feat, "f32 on the device");
}

#[test]
fn bf16_logits_stay_close_to_f32_cpu() {
    let mut model = tiny();
    let feat = token_features(&model);
    let f32_logits = logits(&model, &feat);
    model.set_transformer_precision(Precision::Bf16).unwrap();
    let bf16_logits = logits(&model, &feat);
    let diff = max_abs_diff(&bf16_logits, &f32_logits);
    let scale = f32_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("tiny transformer logits, bf16 vs f32 weights (CPU): max |diff| {diff:e}, max |logit| {scale}");
    assert!(
        diff > 0.0,
        "the weights were rounded, so the logits must move"
    );
    // The bf16 numerics (weights and every Linear input rounded to bf16, f32 sums) are pinned
    // exactly by `linear_with_bf16_weight_is_the_f32_linear_of_the_rounded_operands_cpu`
    // (tests/cuda_dispatch_bf16.rs); here only their size on the whole bundled model, as a gross-error check: a wrong weight or a lost bias moves logits by their
    // own size, rounding by well under 2^-4 of the largest. Measured on the bundled model of
    // 2026-11-26: 0.148 with max |logit| 19.2 (0.12 of the bound). (Until the inputs were rounded
    // on the CPU too, the bound was 2^-8, from a random-walk estimate of weight rounding alone:
    // 0.045 here, 0.6 of it; with the inputs rounded the estimate no longer applies.)
    assert!(
        diff <= 2f32.powi(-4) * scale,
        "max |diff| {diff} vs max |logit| {scale}"
    );
}

fn bf16_transformer_on_the_device_matches_the_cpu(dev: CudaDevice) {
    let mut model = tiny();
    let feat = token_features(&model);
    let f32_cpu = logits(&model, &feat);
    model.set_transformer_precision(Precision::Bf16).unwrap();
    let cpu = logits(&model, &feat);
    model.to_device(&Device::Cuda(dev)).unwrap();
    let gpu = logits(&model, &feat);
    let diff = max_abs_diff(&gpu, &cpu);
    let rounding = max_abs_diff(&cpu, &f32_cpu);
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "tiny transformer logits with bf16 weights, device vs CPU: max |diff| {diff:e}; bf16 vs f32 on the CPU {rounding:e}; max |logit| {scale}"
    );
    // Same weights and the same roundings on both sides (bf16 weights, every Linear input and the
    // attention's q, k, v rounded to bf16); what differs is the order of the f32 sums, and where
    // that moves an activation across a bf16 rounding boundary the two sides round it one bf16
    // step apart. The device's tensor-core attention also rounds its probabilities to bf16 for the
    // P V product, which the CPU does not. So the two may differ by some of the roundings that
    // separate bf16 from f32, never by more than all of them: the bound is the CPU's own bf16 vs
    // f32 difference on the same model and input. A wrong weight, a lost bias or a wrong head
    // moves the logits by their own size, far beyond it.
    // Measured on the emulated device: the bundled model of 2026-11-26 (morning), 0.052 against
    // 0.148 (0.35 of the bound); the bundled model retrained with the new codebook, 0.058 against
    // 0.101 (0.57), and 0.045 with the device's attention swapped for the f32 one of the rounded
    // q, k, v (a one-off check). The discrepancy stayed the same size while the largest logit
    // halved (19.2 -> 10.4), so the earlier bound, 2^-8 of the largest logit, measured how sure
    // the model is rather than the rounding, and failed on the retrained model (1.42x).
    assert!(diff > 0.0 || rounding == 0.0, "bf16 on the device must round as the CPU does");
    assert!(
        diff <= rounding,
        "device vs CPU max |diff| {diff} exceeds bf16 rounding's own effect {rounding} (max |logit| {scale})"
    );

    // A whole inpainting with the bf16 transformer on the device: 24 masked patches, all filled in
    // one pass (keeps the emulated run near 30 s). The tokens need not be the CPU's (the rounded activations move the logits slightly,
    // which can change a top-K draw), so this checks that it runs through and keeps known pixels.
    let image = ops::resize::resize_bilinear(
        &load_image(asset("assets/photos/dev_005.jpg"))
            .unwrap()
            .tensor,
        (256, 256),
    )
    .unwrap();
    let opts = InpaintOptions {
        sampler: SamplerOptions {
            tokens_per_pass: 24,
            ..Default::default()
        },
        samples: 1,
        use_fdm: true,
        seed: 3,
    };
    let mask = mask();
    let out = inpaint(&model, &image, &mask, &opts, None, &mut |_, _| {}).unwrap();
    assert_eq!((out.masked_patches, out.passes), (24, 1));
    let vocab = model.cfg.transformer.vocab as u32;
    assert!(
        out.tokens[0]
            .iter()
            .zip(&out.visible)
            .all(|(&t, &vis)| vis || t < vocab),
        "sampled tokens in the unmasked half"
    );
    let (img, got, m) = (
        image.to_vec_f32().unwrap(),
        out.images[0].to_vec_f32().unwrap(),
        mask.to_vec_f32().unwrap(),
    );
    assert!(got
        .iter()
        .all(|v| v.is_finite() && (0.0..=255.0).contains(v)));
    for (i, &mv) in m.iter().enumerate() {
        for c in 0..3 {
            if mv == 1.0 {
                assert_eq!(
                    got[c * 65536 + i],
                    img[c * 65536 + i],
                    "known pixel ({c}, {i})"
                );
            }
        }
    }
}

/// `fdm inpaint --precision bf16` through the binary on the CPU: one sample of a real photo.
#[test]
fn inpaint_cli_with_bf16_precision_cpu() {
    let dir = std::env::temp_dir().join(format!("fdm-cli-bf16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mask_path = dir.join("mask.png");
    save_mask_png(&mask(), &mask_path).unwrap();
    let out = dir.join("out");
    let photo = asset("assets/photos/dev_005.jpg");
    let args = [
        "inpaint",
        &photo,
        "--mask",
        mask_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-n",
        "1",
        "--tokens-per-pass",
        "8",
        "--precision",
        "bf16",
        "--device",
        "cpu",
    ];
    let run = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(args)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("bf16 transformer weights")
            && log.contains("24 masked patches")
            && log.contains("3 passes"),
        "{log}"
    );
    for f in ["dev_005_0.png", "dev_005_sheet.png"] {
        assert!(out.join(f).exists(), "{f} missing; {log}");
    }
    // A bad value is a clear error naming the choices.
    let bad = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args([
            "inpaint",
            &photo,
            "--mask",
            mask_path.to_str().unwrap(),
            "--precision",
            "f16",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("f32") && err.contains("bf16"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `prepare_for_inference` stacks f32 q/k/v on CUDA only; a model prepared on one device and
/// moved keeps the set-up that suits where it now is.
fn inference_set_up_follows_the_model_across_devices(dev: CudaDevice) {
    let mut m = tiny();
    m.prepare_for_inference().unwrap();
    assert!(!m.transformer.is_stacked(), "f32 on the CPU: separate");
    m.to_device(&Device::Cuda(dev.clone())).unwrap();
    assert!(m.transformer.is_stacked(), "f32 on CUDA: stacked");
    m.to_device(&Device::Cpu).unwrap();
    assert!(!m.transformer.is_stacked(), "back on the CPU: separate");
    // A model never prepared (training) is never stacked in f32, wherever it goes.
    let mut trained = tiny();
    trained.to_device(&Device::Cuda(dev)).unwrap();
    assert!(!trained.transformer.is_stacked());
}
