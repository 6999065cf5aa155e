//! Gradient utilities of the training loop (spec §6.0 names none as configured, the design
//! offers them): clipping by global L2 norm (`torch.nn.utils.clip_grad_norm_` semantics), the
//! weight EMA `ema = decay * ema + (1 - decay) * param`, and gradient accumulation over
//! micro-batches (sum, then scale).

use crate::error::{Error, Result};
use crate::ops::optim as ops;
use crate::tensor::Tensor;

/// Scales every gradient by `min(1, max_norm / (total_norm + 1e-6))` where `total_norm` is the
/// L2 norm of all gradients together; returns `total_norm` (as PyTorch does; a NaN or infinite
/// norm is returned as is so the caller can stop the run).
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f32) -> Result<f32> {
    let present: Vec<&Tensor> = grads.iter().flatten().collect();
    let total: f64 = ops::sq_norms(&present)?.iter().sum();
    let total_norm = total.sqrt() as f32;
    let coef = (max_norm / (total_norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        for g in grads.iter_mut().flatten() {
            *g = ops::scale(g, coef)?;
        }
    }
    Ok(total_norm)
}

/// Exponential moving average of parameters.
pub struct Ema {
    decay: f32,
    shadow: Vec<Tensor>,
}

impl Ema {
    /// Starts from a copy of the current parameters.
    pub fn new(decay: f32, params: &[Tensor]) -> Self {
        Ema {
            decay,
            shadow: params.to_vec(),
        }
    }
    /// `ema = decay * ema + (1 - decay) * param` for every parameter.
    pub fn update(&mut self, params: &[Tensor]) -> Result<()> {
        if params.len() != self.shadow.len() {
            return Err(Error::msg(format!(
                "ema: {} params for {} averages",
                params.len(),
                self.shadow.len()
            )));
        }
        for (e, p) in self.shadow.iter_mut().zip(params) {
            *e = ops::ema_update(e, p, self.decay)?;
        }
        Ok(())
    }
    pub fn averages(&self) -> &[Tensor] {
        &self.shadow
    }
    /// The averages as plain vectors, for checkpoints.
    pub fn export(&self) -> Result<Vec<Vec<f32>>> {
        self.shadow.iter().map(|t| t.to_vec_f32()).collect()
    }
    /// Restores exported averages (same count and sizes).
    pub fn import(&mut self, values: Vec<Vec<f32>>) -> Result<()> {
        if values.len() != self.shadow.len() {
            return Err(Error::msg(format!(
                "ema: {} saved averages for {}",
                values.len(),
                self.shadow.len()
            )));
        }
        for (e, v) in self.shadow.iter_mut().zip(values) {
            *e = Tensor::from_vec(v, e.shape())?.to_device(&e.device())?;
        }
        Ok(())
    }
}

/// Sums gradients over micro-batches; `finish` returns their mean (sum / micro-batches), the
/// gradient of the full batch when each micro-batch loss is a mean over equal-sized parts.
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
    micro_batches: usize,
}

impl GradAccumulator {
    pub fn new(num_params: usize) -> Self {
        GradAccumulator {
            sums: vec![None; num_params],
            micro_batches: 0,
        }
    }
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }
    /// Adds one micro-batch's gradients (None: the parameter got no gradient this time).
    pub fn add(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.sums.len() {
            return Err(Error::msg(format!(
                "grad accumulation: {} grads for {} params",
                grads.len(),
                self.sums.len()
            )));
        }
        for (s, g) in self.sums.iter_mut().zip(grads) {
            if let Some(g) = g {
                *s = Some(match s.take() {
                    Some(acc) => ops::accumulate(&acc, g)?,
                    None => g.clone(),
                });
            }
        }
        self.micro_batches += 1;
        Ok(())
    }
    /// The sums scaled by `scale`.
    pub fn finish_scaled(self, scale: f32) -> Result<Vec<Option<Tensor>>> {
        self.sums
            .into_iter()
            .map(|s| s.map(|t| ops::scale(&t, scale)).transpose())
            .collect()
    }
    /// The mean over micro-batches.
    pub fn finish(self) -> Result<Vec<Option<Tensor>>> {
        if self.micro_batches == 0 {
            return Err(Error::msg("grad accumulation: no micro-batch was added"));
        }
        let scale = 1.0 / self.micro_batches as f32;
        self.finish_scaled(scale)
    }
}
