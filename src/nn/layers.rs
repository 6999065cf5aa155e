//! The layer types the models are made of. Each holds handles (`ParamId`) into the model's
//! `ParamStore`, registered under the official state-dict key (spec §8.2), and runs on a tape
//! with the parameters bound for this forward.
//! Layouts: Linear weight `[out, in]`; Conv2d `[out, in, kh, kw]`; ConvTranspose2d
//! `[in, out, kh, kw]` (PyTorch's, so converted checkpoints load without reshuffling).

use super::init;
use super::params::{Bound, ParamId, ParamStore};
use crate::autograd::{self as ag, Tape, Var};
use crate::error::Result;
use crate::profile;
use crate::rng::Rng;

/// How a layer's weights start when no checkpoint is loaded (spec §0, §3.4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default: U(+-1/sqrt(fan_in)) for weight and bias.
    TorchDefault,
    /// N(0, std) weights, zero bias (transformer, discriminator).
    Normal(f32),
}

fn init_weight_and_bias(
    store: &mut ParamStore,
    rng: &mut Rng,
    name: &str,
    wshape: &[usize],
    bias_len: Option<usize>,
    how: Init,
) -> Result<(ParamId, Option<ParamId>)> {
    let fan = init::fan_in(wshape);
    let w = match how {
        Init::TorchDefault => init::torch_default(rng, wshape, fan),
        Init::Normal(std) => init::normal(rng, wshape, 0.0, std),
    };
    let w = store.add(format!("{name}.weight"), w)?;
    let b = match bias_len {
        None => None,
        Some(n) => {
            let t = match how {
                Init::TorchDefault => init::torch_default(rng, &[n], fan),
                Init::Normal(_) => crate::Tensor::zeros(&[n]),
            };
            Some(store.add(format!("{name}.bias"), t)?)
        }
    };
    Ok((w, b))
}

pub struct Linear {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
}

impl Linear {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, d_in: usize, d_out: usize, how: Init) -> Result<Self> {
        let (weight, bias) = init_weight_and_bias(store, rng, name, &[d_out, d_in], Some(d_out), how)?;
        Ok(Linear { weight, bias })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let w = p.var(self.weight);
        let k = w.shape()[1] as u64;
        profile::op("linear", || ag::linear::linear(t, x, w, self.bias.map(|b| p.var(b))), |y| macs(y, k))
    }

    /// Whether a gradient must reach this layer's weight or bias in the forward bound as `p`.
    pub fn needs_grad(&self, p: &Bound) -> bool {
        any_needs_grad(&[Some(p.var(self.weight)), self.bias.map(|b| p.var(b))])
    }

    /// `forward(gelu2(x))`, the MLP's second Linear. Where nothing needs a gradient, one op that
    /// can run the activation inside the input's bf16 cast on CUDA (`ops::linear_after_gelu2`);
    /// otherwise GELU2 and this Linear on the tape.
    pub fn forward_after_gelu2(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let (w, b) = (p.var(self.weight), self.bias.map(|b| p.var(b)));
        if any_needs_grad(&[Some(x), Some(w), b]) {
            let a = profile::op("gelu2", || ag::unary::gelu2(t, x), |_| 0)?;
            return self.forward(t, p, &a);
        }
        let k = w.shape()[1] as u64;
        let y = profile::op("linear_after_gelu2", || crate::ops::matmul::linear_after_gelu2(x.value(), w.value(), b.map(|b| b.value())), |y| y.as_ref().map_or(0, |y| y.numel() as u64 * k))?;
        Ok(t.constant(y))
    }
}

/// Several Linears over the same input run as one: their weights stacked along the output dim,
/// their biases concatenated, in the weights' stored dtype. A fixed tensor copied from the
/// parameters for inference (nothing of it is trained or saved): build it again after the
/// parameters change.
pub struct StackedLinear {
    weight: crate::Tensor,
    bias: Option<crate::Tensor>,
}

impl StackedLinear {
    /// Stacks `parts` (all with biases or none, the same input width) from `store`.
    pub fn stack(store: &ParamStore, parts: &[&Linear]) -> Result<Self> {
        let dtype = parts.first().map_or(crate::DType::F32, |l| store.get(l.weight).dtype());
        let widen = |ids: Vec<ParamId>| ids.iter().map(|&id| store.get(id).to_dtype(crate::DType::F32)).collect::<Result<Vec<_>>>();
        let weights = widen(parts.iter().map(|l| l.weight).collect())?;
        let weight = crate::ops::concat::concat(&weights.iter().collect::<Vec<_>>(), 0)?.to_dtype(dtype)?;
        let bias = match parts.iter().map(|l| l.bias).collect::<Option<Vec<_>>>() {
            Some(ids) if !ids.is_empty() => Some(crate::ops::concat::concat(&widen(ids)?.iter().collect::<Vec<_>>(), 0)?),
            _ if parts.iter().all(|l| l.bias.is_none()) => None,
            _ => return Err(crate::error::Error::msg("StackedLinear: some of the stacked Linears have a bias and some not")),
        };
        Ok(StackedLinear { weight, bias })
    }

    /// The stored dtype and device of the stacked weight (to tell a stale stack).
    pub fn matches(&self, like: &crate::Tensor) -> bool {
        let on_cpu = |t: &crate::Tensor| matches!(t.device(), crate::Device::Cpu);
        self.weight.dtype() == like.dtype() && on_cpu(&self.weight) == on_cpu(like)
    }

    /// The stacked outputs, [.., sum of the parts' widths]; no gradient flows to the parts.
    pub fn forward(&self, t: &Tape, x: &Var) -> Result<Var> {
        let (w, b) = (t.constant(self.weight.clone()), self.bias.clone().map(|b| t.constant(b)));
        let k = self.weight.shape()[1] as u64;
        profile::op("linear", || ag::linear::linear(t, x, &w, b.as_ref()), |y| macs(y, k))
    }
}

pub struct Conv2d {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        rng: &mut Rng,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        how: Init,
    ) -> Result<Self> {
        let (weight, bias) = init_weight_and_bias(store, rng, name, &[c_out, c_in, k, k], bias.then_some(c_out), how)?;
        Ok(Conv2d { weight, bias, stride, padding })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let w = p.var(self.weight);
        let k = (w.shape()[1] * w.shape()[2] * w.shape()[3]) as u64; // MACs per output element
        profile::op("conv2d", || ag::conv::conv2d(t, x, w, self.bias.map(|b| p.var(b)), self.stride, self.padding), |y| macs(y, k))
    }
}

pub struct ConvTranspose2d {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
    pub stride: usize,
    pub padding: usize,
}

impl ConvTranspose2d {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: &mut ParamStore,
        rng: &mut Rng,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (weight, bias) = init_weight_and_bias(store, rng, name, &[c_in, c_out, k, k], Some(c_out), Init::TorchDefault)?;
        Ok(ConvTranspose2d { weight, bias, stride, padding })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        let w = p.var(self.weight);
        // Each input element meets out * kh * kw weights.
        let per_input = (w.shape()[1] * w.shape()[2] * w.shape()[3]) as u64;
        let n_in = x.value().numel() as u64;
        profile::op("conv_transpose2d", || ag::conv::conv_transpose2d(t, x, w, self.bias.map(|b| p.var(b)), self.stride, self.padding), |_| n_in * per_input)
    }
}

pub struct LayerNorm {
    pub weight: ParamId,
    pub bias: ParamId,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, name: &str, dim: usize) -> Result<Self> {
        let weight = store.add(format!("{name}.weight"), crate::Tensor::full(1.0, &[dim]))?;
        let bias = store.add(format!("{name}.bias"), crate::Tensor::zeros(&[dim]))?;
        Ok(LayerNorm { weight, bias, eps: 1e-5 })
    }
    pub fn forward(&self, t: &Tape, p: &Bound, x: &Var) -> Result<Var> {
        profile::op("layer_norm", || ag::layernorm::layer_norm(t, x, p.var(self.weight), p.var(self.bias), self.eps), |_| 0)
    }

    /// The residual add before this LayerNorm and the LayerNorm itself: `(x + a, LN(x + a))`.
    /// Where nothing needs a gradient (inference) one fused op (one kernel on CUDA, the same
    /// numbers); otherwise the add and the LayerNorm on the tape.
    pub fn add_forward(&self, t: &Tape, p: &Bound, x: &Var, a: &Var) -> Result<(Var, Var)> {
        self.add_forward_to(t, p, x, a, crate::DType::F32)
    }

    /// `add_forward` whose fused inference op writes the LayerNorm's output in `y_dtype`: bf16
    /// where its only readers are Linears with bf16 weights, which round their input to bf16
    /// anyway (the same numbers, and the GPU Linear skips its cast). On the tape (where a
    /// gradient is needed) the output stays f32.
    pub fn add_forward_to(&self, t: &Tape, p: &Bound, x: &Var, a: &Var, y_dtype: crate::DType) -> Result<(Var, Var)> {
        let (w, b) = (p.var(self.weight), p.var(self.bias));
        if any_needs_grad(&[Some(x), Some(a), Some(w), Some(b)]) {
            let s = profile::op("add", || ag::binary::add(t, x, a), |_| 0)?;
            let y = self.forward(t, p, &s)?;
            return Ok((s, y));
        }
        let (s, y) = profile::op("add_layer_norm", || crate::ops::layernorm::add_layer_norm_to(x.value(), a.value(), w.value(), b.value(), self.eps, y_dtype), |_| 0)?;
        Ok((t.constant(s), t.constant(y)))
    }
}

/// Whether any of a fused inference op's inputs (absent ones skipped) needs a gradient: then the
/// layer records the unfused ops on the tape instead.
fn any_needs_grad(inputs: &[Option<&Var>]) -> bool {
    inputs.iter().flatten().any(|v| v.requires_grad())
}

/// Multiply-accumulates of a layer whose every output element costs `per_output` of them.
fn macs(y: &Result<Var>, per_output: u64) -> u64 {
    y.as_ref().map(|v| v.value().numel() as u64 * per_output).unwrap_or(0)
}
