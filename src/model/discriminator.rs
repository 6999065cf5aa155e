//! The patch discriminator of phases 1a and 3 (spec §6.5, EdgeConnect's `Discriminator` with
//! `use_sigmoid = True`): five 4x4 convolutions **without bias**, zero padding 1, strides
//! 2, 2, 2, 1, 1, channels `base * [1, 2, 4, 8]` then 1, LeakyReLU(0.2) after conv1-4 and a
//! sigmoid at the end: 256 -> 128 -> 64 -> 32 -> 31 -> a 30x30 map of probabilities per image.
//! Layout: conv weight `[out, in, 4, 4]`; input B x 3 x 256 x 256 in [0, 1].
//!
//! Spectral norm on every conv, as `torch.nn.utils.spectral_norm` (one power iteration):
//! with `W` = `weight_orig` viewed as `[out, in*16]` and the persistent unit vectors `u` [out],
//! `v` [in*16], every *training* forward first updates
//! `v = normalize(W^T u)`, `u = normalize(W v)` (eps 1e-12, no gradient), then uses
//! `W_sn = W / sigma` with `sigma = u^T W v`. As in PyTorch, the gradient flows through sigma
//! with `u` and `v` held constant: `dL/dW = (G - <G, W>/sigma * u v^T) / sigma` for the gradient
//! `G` of `W_sn`. An evaluation forward (`power_iteration = false`) uses the stored vectors.
//!
//! Parameters live in their own `ParamStore` under the official keys of `ParamSpec::discriminator`
//! (`loss.discriminator.conv{k}.0.weight_orig`, `.weight_u`, `.weight_v`); the `features.0.*`
//! alias of conv1 in official checkpoints is not stored. Init: `weight_orig` ~ N(0, 0.02) (§6.5),
//! `u`, `v` normalised N(0, 1) draws (PyTorch's spectral-norm init).

use super::param_spec::ParamSpec;
use super::presets::{DiscriminatorConfig, ModelConfig};
use crate::autograd::{conv, unary, Tape, Var};
use crate::error::{Error, Result};
use crate::io::weight_store::WeightStore;
use crate::nn::{init, Bound, ParamId, ParamStore};
use crate::ops;
use crate::rng::Rng;
use crate::tensor::Tensor;

const SN_EPS: f64 = 1e-12;
const LEAKY_SLOPE: f32 = 0.2;

struct SnConv {
    weight: ParamId,
    u: ParamId,
    v: ParamId,
    stride: usize,
}

pub struct Discriminator {
    pub cfg: DiscriminatorConfig,
    pub store: ParamStore,
    convs: Vec<SnConv>,
    spec: ParamSpec,
}

/// `x / max(|x|, eps)`.
fn normalize(x: &Tensor) -> Result<Tensor> {
    let norm = ops::optim::sq_norm(x)?.sqrt().max(SN_EPS);
    ops::unary::mul_scalar(x, (1.0 / norm) as f32)
}

impl Discriminator {
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let mut store = ParamStore::new();
        let mut convs = Vec::new();
        for (k, (cin, cout, stride)) in cfg.discriminator.convs().into_iter().enumerate() {
            let p = format!("loss.discriminator.conv{}.0", k + 1);
            let weight = store.add(
                format!("{p}.weight_orig"),
                init::normal(&mut rng, &[cout, cin, 4, 4], 0.0, 0.02),
            )?;
            let u = normalize(&init::normal(&mut rng, &[cout], 0.0, 1.0))?;
            let v = normalize(&init::normal(&mut rng, &[cin * 16], 0.0, 1.0))?;
            let u = store.add(format!("{p}.weight_u"), u)?;
            let v = store.add(format!("{p}.weight_v"), v)?;
            convs.push(SnConv {
                weight,
                u,
                v,
                stride,
            });
        }
        Ok(Discriminator {
            cfg: cfg.discriminator.clone(),
            store,
            convs,
            spec: ParamSpec::discriminator(cfg),
        })
    }

    /// The learnable tensors (`weight_orig` of each conv), in order.
    pub fn learnable(&self) -> Vec<ParamId> {
        self.convs.iter().map(|c| c.weight).collect()
    }

    /// Bind the parameters on `tape`; `trainable` makes the weights tape variables.
    pub fn bind(&self, tape: &Tape, trainable: bool) -> Bound {
        self.store
            .bind(tape, |n| trainable && n.ends_with(".weight_orig"))
    }

    /// Probabilities B x 1 x 30 x 30 for images B x 3 x 256 x 256 in [0, 1]. With
    /// `power_iteration` (training mode) the spectral-norm vectors are updated in the store.
    pub fn forward(
        &mut self,
        tape: &Tape,
        p: &Bound,
        x: &Var,
        power_iteration: bool,
    ) -> Result<Var> {
        let mut h = x.clone();
        let n = self.convs.len();
        for i in 0..n {
            let w = self.normalised_weight(tape, p, i, power_iteration)?;
            h = conv::conv2d(tape, &h, &w, None, self.convs[i].stride, 1)?;
            h = if i + 1 < n {
                unary::leaky_relu(tape, &h, LEAKY_SLOPE)?
            } else {
                unary::sigmoid(tape, &h)?
            };
        }
        Ok(h)
    }

    /// `W / sigma` of conv `i` as a tape node, after one power iteration when training.
    fn normalised_weight(
        &mut self,
        tape: &Tape,
        p: &Bound,
        i: usize,
        power_iteration: bool,
    ) -> Result<Var> {
        let c = &self.convs[i];
        let w = p.var(c.weight).clone();
        let (mut u, mut v) = (self.store.get(c.u).clone(), self.store.get(c.v).clone());
        if power_iteration {
            (u, v) = power_iteration_step(w.value(), &u)?;
            let (uid, vid) = (c.u, c.v);
            self.store.set(uid, u.clone())?;
            self.store.set(vid, v.clone())?;
        }
        spectral_normalise(tape, &w, &u, &v)
            .map_err(|e| Error::msg(format!("discriminator conv{}: {e}", i + 1)))
    }

    /// `sigma = u^T W v` of conv `i` (0-based) with the stored vectors.
    pub fn sigma(&self, i: usize) -> Result<f32> {
        let c = &self.convs[i];
        sigma_of(
            self.store.get(c.weight),
            self.store.get(c.u),
            self.store.get(c.v),
        )
    }

    /// Move the weights and spectral-norm vectors to `device`.
    pub fn to_device(&mut self, device: &crate::Device) -> Result<()> {
        self.store.to_device(device)
    }

    /// Every tensor under its official key, in spec order.
    pub fn weights(&self) -> Result<WeightStore> {
        let mut w = WeightStore::new();
        for (_, name, t) in self.store.iter() {
            w.insert(name, t.to_device(&crate::Device::Cpu)?);
        }
        Ok(w.reordered_like(&self.spec))
    }

    /// Replace every tensor from `weights` (strict: the keys and shapes of the spec).
    pub fn set_weights(&mut self, weights: &WeightStore) -> Result<()> {
        weights
            .check_against(&self.spec, "discriminator")
            .map_err(|m| Error::msg(format!("{m}")))?;
        let ids: Vec<_> = self
            .store
            .iter()
            .map(|(id, n, _)| (id, n.to_string()))
            .collect();
        for (id, name) in ids {
            let t = weights
                .get(&name)
                .ok_or_else(|| Error::msg(format!("discriminator: missing {name}")))?;
            // The restored tensor goes where the current one lives (a CPU checkpoint into a
            // discriminator already moved to a CUDA device).
            let device = self.store.get(id).device();
            self.store.set(id, t.to_dtype(crate::DType::F32)?.to_device(&device)?)?;
        }
        Ok(())
    }

    pub fn spec(&self) -> &ParamSpec {
        &self.spec
    }
}

/// `W` viewed as `[out, in*kh*kw]`.
fn matrix(w: &Tensor) -> Result<Tensor> {
    let rows = w.shape()[0];
    w.reshape(&[rows, w.numel() / rows])
}

/// One power iteration (no gradient): `v = normalize(W^T u)`, `u = normalize(W v)`; returns
/// the new (u, v).
pub fn power_iteration_step(w: &Tensor, u: &Tensor) -> Result<(Tensor, Tensor)> {
    let w2 = matrix(w)?;
    let (rows, k) = (w2.shape()[0], w2.shape()[1]);
    let v = normalize(&ops::matmul::matmul(&u.reshape(&[1, rows])?, &w2)?.reshape(&[k])?)?;
    let u = normalize(&ops::matmul::linear(&v.reshape(&[1, k])?, &w2, None)?.reshape(&[rows])?)?;
    Ok((u, v))
}

/// `u^T W v`.
pub fn sigma_of(w: &Tensor, u: &Tensor, v: &Tensor) -> Result<f32> {
    let w2 = matrix(w)?;
    let (rows, k) = (w2.shape()[0], w2.shape()[1]);
    let wv = ops::matmul::linear(&v.reshape(&[1, k])?, &w2, None)?.reshape(&[rows])?;
    ops::reduce::sum_all(&ops::binary::mul(u, &wv)?)?.to_scalar()
}

/// `W / (u^T W v)` on the tape, with the gradient of PyTorch's spectral norm (u, v constant):
/// `dL/dW = (G - <G, W>/sigma * u v^T) / sigma`.
pub fn spectral_normalise(tape: &Tape, w: &Var, u: &Tensor, v: &Tensor) -> Result<Var> {
    let wt = w.value().clone();
    let sigma = sigma_of(&wt, u, v)?;
    if !(sigma.is_finite() && sigma != 0.0) {
        return Err(Error::msg(format!("spectral norm sigma is {sigma}")));
    }
    let (rows, k) = (u.numel(), v.numel());
    let out = ops::unary::mul_scalar(&wt, 1.0 / sigma)?;
    let uv =
        ops::matmul::matmul(&u.reshape(&[rows, 1])?, &v.reshape(&[1, k])?)?.reshape(wt.shape())?;
    Ok(tape.record(
        out,
        &[w],
        Box::new(move |g| {
            let inner = ops::reduce::sum_all(&ops::binary::mul(g, &wt)?)?.to_scalar()?;
            let corr = ops::unary::mul_scalar(&uv, inner / sigma)?;
            Ok(vec![Some(ops::unary::mul_scalar(
                &ops::binary::sub(g, &corr)?,
                1.0 / sigma,
            )?)])
        }),
    ))
}
