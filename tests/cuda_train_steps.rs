//! Whole training steps on a CUDA device against the same steps on the CPU: a transformer block,
//! the tiny preset's whole transformer (phase 1b) and its FDM (phase 2), each with clipping, an
//! Adam(W) step and the EMA; every parameter, gradient and Adam moment is compared. `emu::*` runs
//! on the emulated CUDA device, `cuda::*` on a GPU (SKIP without one, a failure with
//! FDM_REQUIRE_CUDA=1). Tolerance TOL_CUDA_F32: the kernels sum in other orders than the CPU.

mod common;

use common::device::{rand, same};

use fdm::autograd::{attention as aatt, losses as al, unary as au, Tape};
use fdm::cuda::CudaDevice;
use fdm::nn::layers::{Init, LayerNorm, Linear};
use fdm::nn::ParamStore;
use fdm::ops;
use fdm::optim::{clip_grad_norm, Adam, AdamConfig, Ema};
use fdm::params::losses::CROSS_ENTROPY_NO_IGNORE;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};
use fdm::{Device, Tensor};

device_tests!(
    one_transformer_training_step_equals_the_cpu_step,
    one_tiny_transformer_phase1b_step_equals_the_cpu_step,
    one_fdm_training_step_equals_the_cpu_step
);

/// Every parameter, gradient and Adam moment of two runs of the same step, side by side.
struct StepResult {
    loss: f32,
    params: Vec<(String, Tensor)>,
    grads: Vec<Tensor>,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

fn compare_steps(got: &StepResult, want: &StepResult, what: &str) {
    assert_close(
        &[got.loss],
        &[want.loss],
        TOL_CUDA_F32,
        &format!("{what}: loss"),
    );
    for ((name, a), (_, b)) in got.params.iter().zip(&want.params) {
        assert!(
            !a.device().is_cpu(),
            "{what}: {name} should stay on the device"
        );
        assert_close(
            &a.to_vec_f32().unwrap(),
            &b.to_vec_f32().unwrap(),
            TOL_CUDA_F32,
            &format!("{what}: updated {name}"),
        );
    }
    for (i, (a, b)) in got.grads.iter().zip(&want.grads).enumerate() {
        same(
            a,
            b,
            &format!("{what}: gradient {i} ({})", want.params[i].0),
        );
    }
    for (i, (a, b)) in got.moments.iter().zip(&want.moments).enumerate() {
        assert_close(&a.0, &b.0, TOL_CUDA_F32, &format!("{what}: exp_avg {i}"));
        assert_close(&a.1, &b.1, TOL_CUDA_F32, &format!("{what}: exp_avg_sq {i}"));
    }
}

/// Backward of `loss`, clipping, one Adam(W) step on every parameter of `store`, then the EMA.
fn finish_step(
    store: &mut ParamStore,
    tape: &Tape,
    bound: &fdm::nn::Bound,
    loss: &fdm::autograd::Var,
    adamw: bool,
) -> StepResult {
    let grads = tape.backward(loss).unwrap();
    let mut grads = store.grads_of(bound, &grads);
    clip_grad_norm(&mut grads, 1.0).unwrap();
    let cfg = if adamw {
        AdamConfig::adamw(1e-3, (0.9, 0.95))
    } else {
        AdamConfig::adam(1e-3, (0.9, 0.999))
    };
    let mut adam = Adam::new(cfg);
    let group = adam.add_group(if adamw { 0.01 } else { 0.0 });
    let mut params: Vec<Tensor> = store.iter().map(|(_, _, t)| t.clone()).collect();
    for p in &params {
        adam.add_param(group, p.shape()).unwrap();
    }
    let mut ema = Ema::new(0.999, &params);
    adam.step(&mut params, &grads).unwrap();
    ema.update(&params).unwrap();
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    for (id, p) in ids.into_iter().zip(params) {
        store.set(id, p).unwrap();
    }
    let moments = adam.export_state().unwrap().into_iter().map(|s| {
        let s = s.expect("every parameter has a gradient");
        (s.exp_avg, s.exp_avg_sq)
    });
    let mut params: Vec<(String, Tensor)> = store
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.clone()))
        .collect();
    params.extend(
        ema.averages()
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("ema {i}"), t.clone())),
    );
    StepResult {
        loss: loss.value().to_scalar().unwrap(),
        params,
        grads: grads
            .into_iter()
            .map(|g| g.expect("every parameter has a gradient"))
            .collect(),
        moments: moments.collect(),
    }
}

/// A transformer block at the tiny preset's widths (n_embd 64, 2 heads of 32, GELU2 MLP) on its
/// 1024 tokens with a 256-way head, trained one step with the weighted cross-entropy of spec §3.5
/// (ignore index, w = 1 at masked positions) and AdamW with decay.
fn transformer_step(device: &Device) -> StepResult {
    let (tokens, width, vocab) = (1024, 64, 256);
    let mut rng = Rng::new(80);
    let mut store = ParamStore::new();
    let ln1 = LayerNorm::new(&mut store, "ln1", width).unwrap();
    let [q, k, v, proj] = ["q", "k", "v", "proj"]
        .map(|n| Linear::new(&mut store, &mut rng, n, width, width, Init::Normal(0.02)).unwrap());
    let ln2 = LayerNorm::new(&mut store, "ln2", width).unwrap();
    let fc1 = Linear::new(
        &mut store,
        &mut rng,
        "fc1",
        width,
        4 * width,
        Init::Normal(0.02),
    )
    .unwrap();
    let fc2 = Linear::new(
        &mut store,
        &mut rng,
        "fc2",
        4 * width,
        width,
        Init::Normal(0.02),
    )
    .unwrap();
    let head = Linear::new(
        &mut store,
        &mut rng,
        "head",
        width,
        vocab,
        Init::Normal(0.02),
    )
    .unwrap();
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    for id in ids {
        let moved = store.get(id).to_device(device).unwrap();
        store.set(id, moved).unwrap();
    }
    let x = rand(81, &[1, tokens, width], -1.0, 1.0)
        .to_device(device)
        .unwrap();
    let mut trng = Rng::new(82);
    let targets: Vec<u32> = (0..tokens)
        .map(|i| {
            if i % 9 == 0 {
                3
            } else {
                trng.below(vocab as u64) as u32
            }
        })
        .collect();
    let targets = Tensor::from_u32(targets, &[1, tokens])
        .unwrap()
        .to_device(device)
        .unwrap();
    let weights: Vec<f32> = (0..tokens).map(|i| (i % 3 != 0) as u8 as f32).collect();
    let weights = Tensor::from_vec(weights, &[1, tokens])
        .unwrap()
        .to_device(device)
        .unwrap();

    let t = Tape::new();
    let p = store.bind(&t, |_| true);
    let x = t.constant(x);
    let h = ln1.forward(&t, &p, &x).unwrap();
    let (qh, kh, vh) = (
        q.forward(&t, &p, &h).unwrap(),
        k.forward(&t, &p, &h).unwrap(),
        v.forward(&t, &p, &h).unwrap(),
    );
    let a = proj
        .forward(&t, &p, &aatt::attention(&t, &qh, &kh, &vh, 2).unwrap())
        .unwrap();
    let x = fdm::autograd::binary::add(&t, &x, &a).unwrap();
    let h = ln2.forward(&t, &p, &x).unwrap();
    let h = fc2
        .forward(
            &t,
            &p,
            &au::gelu2(&t, &fc1.forward(&t, &p, &h).unwrap()).unwrap(),
        )
        .unwrap();
    let x = fdm::autograd::binary::add(&t, &x, &h).unwrap();
    let logits = head.forward(&t, &p, &x).unwrap();
    let loss = al::cross_entropy_weighted(&t, &logits, &targets, &weights, 3).unwrap();
    finish_step(&mut store, &t, &p, &loss, true)
}

fn one_transformer_training_step_equals_the_cpu_step(dev: CudaDevice) {
    let want = transformer_step(&Device::Cpu);
    let got = transformer_step(&Device::Cuda(dev));
    compare_steps(&got, &want, "transformer step");
}

/// The tiny preset's FDM module (e_dim 64, width 64, 2 residual blocks of 32) on its 32 x 32
/// feature map, one step of phase 2 (spec §4.2: `L1(pv, (f - fq) M)`) with Adam.
fn fdm_step(device: &Device) -> StepResult {
    use fdm::model::fdm::Fdm;
    use fdm::model::presets::ModelConfig;
    let cfg = ModelConfig::tiny();
    let e_dim = cfg.codec.e_dim;
    let (b, h, w) = (1, 32, 32);
    let mut rng = Rng::new(90);
    let mut store = ParamStore::new();
    let module = Fdm::new(&mut store, &mut rng, "fdm", e_dim, &cfg.fdm).unwrap();
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    for id in ids {
        let moved = store.get(id).to_device(device).unwrap();
        store.set(id, moved).unwrap();
    }
    let f = rand(91, &[b, e_dim, h, w], -1.0, 1.0);
    let fq = rand(92, &[b, e_dim, h, w], -1.0, 1.0);
    let m: Vec<f32> = random_vec(93, b * h * w, 0.0, 1.0)
        .iter()
        .map(|v| (*v > 0.5) as u8 as f32)
        .collect();
    let m = Tensor::from_vec(m, &[b, 1, h, w]).unwrap();
    let target = ops::binary::mul(&ops::binary::sub(&f, &fq).unwrap(), &m).unwrap();
    let [f, fq, m, target] = [f, fq, m, target].map(|t| t.to_device(device).unwrap());

    let t = Tape::new();
    let p = store.bind(&t, |_| true);
    let out = module
        .apply(&t, &p, &t.constant(fq), &t.constant(f), &t.constant(m))
        .unwrap();
    let l_qe = al::l1_mean(&t, &out.pv, &t.constant(target)).unwrap();
    let total = al::weighted_sum(&t, &[(&l_qe, 1.0)]).unwrap();
    finish_step(&mut store, &t, &p, &total, false)
}

fn one_fdm_training_step_equals_the_cpu_step(dev: CudaDevice) {
    let want = fdm_step(&Device::Cpu);
    let got = fdm_step(&Device::Cuda(dev));
    compare_steps(&got, &want, "FDM step");
}

/// The tiny preset's whole transformer (4 layers, n_embd 64, 2 heads of 32, 1024 tokens, 256
/// classes), one step of phase 1b (spec §3.5: weighted cross-entropy, w = 1 at masked positions,
/// nothing ignored) with AdamW and decay. `pos_emb` starts at zeros as in the model; it is set to
/// small random values here so that its update is not the same for every element.
fn tiny_transformer_step(device: &Device) -> StepResult {
    use fdm::model::presets::ModelConfig;
    use fdm::model::transformer::Transformer;
    let cfg = ModelConfig::tiny().transformer;
    let (l, vocab) = (cfg.seq_len, cfg.vocab);
    let mut rng = Rng::new(100);
    let mut store = ParamStore::new();
    let model = Transformer::new(&mut store, &mut rng, "transformer", &cfg).unwrap();
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    for (i, id) in ids.into_iter().enumerate() {
        let mut value = store.get(id).clone();
        if store.name(id).ends_with("pos_emb") {
            value = rand(101 + i as u64, value.shape(), -0.02, 0.02);
        }
        store.set(id, value.to_device(device).unwrap()).unwrap();
    }
    let features = rand(102, &[1, l, cfg.embed_dim], -1.0, 1.0);
    let mut trng = Rng::new(103);
    let targets: Vec<u32> = (0..l).map(|_| trng.below(vocab as u64) as u32).collect();
    let weights: Vec<f32> = random_vec(104, l, 0.0, 1.0)
        .iter()
        .map(|v| (*v < 0.4) as u8 as f32)
        .collect();
    let targets = Tensor::from_u32(targets, &[1, l]).unwrap();
    let weights = Tensor::from_vec(weights, &[1, l]).unwrap();
    let [features, targets, weights] =
        [features, targets, weights].map(|t| t.to_device(device).unwrap());
    let t = Tape::new();
    let p = store.bind(&t, |_| true);
    let logits = model.forward(&t, &p, &t.constant(features)).unwrap();
    let loss = al::cross_entropy_weighted(&t, &logits, &targets, &weights, CROSS_ENTROPY_NO_IGNORE)
        .unwrap();
    finish_step(&mut store, &t, &p, &loss, true)
}

fn one_tiny_transformer_phase1b_step_equals_the_cpu_step(dev: CudaDevice) {
    let want = tiny_transformer_step(&Device::Cpu);
    let got = tiny_transformer_step(&Device::Cuda(dev));
    compare_steps(&got, &want, "tiny transformer step");
}
