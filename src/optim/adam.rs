//! Adam and AdamW as `torch.optim.Adam` / `torch.optim.AdamW` compute them (spec §6.0-§6.1):
//! bias-corrected moments, eps 1e-8 added after the square root of the bias-corrected second
//! moment, AdamW's decoupled decay `param *= 1 - lr*wd` before the update, Adam's L2 decay
//! `g += wd*param`. State per parameter (step, exp_avg m, exp_avg_sq v) is created at the
//! parameter's first update, as PyTorch does, and exports to plain `Vec<f32>` for checkpoints.
//!
//! Parameters are registered once, in a fixed order, each in a group that carries its weight
//! decay (spec §6.1, phase 1b: Linear weights decay 0.01, biases / LayerNorm / pos_emb 0).
//! All groups share the learning rate, which the schedule sets before each step.
//!
//! ```text
//! let mut opt = Adam::new(AdamConfig::adamw(0.0, (0.9, 0.95)));
//! let decay = opt.add_group(0.01);
//! let no_decay = opt.add_group(0.0);
//! opt.add_param(decay, w.shape())?;
//! opt.add_param(no_decay, b.shape())?;
//! opt.set_lr(sched.lr());
//! opt.step(&mut [w, b], &[grads.get(&wv).cloned(), grads.get(&bv).cloned()])?;
//! ```

use crate::error::{Error, Result};
use crate::ops::optim as ops;
use crate::params::optim::AdamParams;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Initial learning rate (the official runs start at 0; the schedule raises it).
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    /// true: AdamW (decoupled weight decay); false: Adam (L2 added to the gradient).
    pub decoupled: bool,
}

impl AdamConfig {
    /// `torch.optim.Adam(lr, betas)`, eps 1e-8.
    pub fn adam(lr: f64, betas: (f64, f64)) -> Self {
        AdamConfig {
            lr,
            betas,
            eps: 1e-8,
            decoupled: false,
        }
    }
    /// `torch.optim.AdamW(lr, betas)`, eps 1e-8.
    pub fn adamw(lr: f64, betas: (f64, f64)) -> Self {
        AdamConfig {
            lr,
            betas,
            eps: 1e-8,
            decoupled: true,
        }
    }
}

/// The state of one parameter as plain vectors, for checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamParamState {
    /// Updates applied so far.
    pub step: u64,
    pub exp_avg: Vec<f32>,
    pub exp_avg_sq: Vec<f32>,
}

struct Moments {
    step: u64,
    m: Tensor,
    v: Tensor,
}

struct Slot {
    group: usize,
    shape: Vec<usize>,
    state: Option<Moments>,
}

pub struct Adam {
    config: AdamConfig,
    lr: f64,
    group_decay: Vec<f64>,
    slots: Vec<Slot>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Adam {
            config,
            lr: config.lr,
            group_decay: Vec::new(),
            slots: Vec::new(),
        }
    }
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
    /// A parameter group with its weight decay; returns the group's index.
    pub fn add_group(&mut self, weight_decay: f64) -> usize {
        self.group_decay.push(weight_decay);
        self.group_decay.len() - 1
    }
    /// Registers the next parameter (by shape) in `group`; returns its index in `step`'s slices.
    pub fn add_param(&mut self, group: usize, shape: &[usize]) -> Result<usize> {
        if group >= self.group_decay.len() {
            return Err(Error::msg(format!(
                "adam: group {group} does not exist ({} groups)",
                self.group_decay.len()
            )));
        }
        self.slots.push(Slot {
            group,
            shape: shape.to_vec(),
            state: None,
        });
        Ok(self.slots.len() - 1)
    }
    pub fn num_params(&self) -> usize {
        self.slots.len()
    }
    pub fn lr(&self) -> f64 {
        self.lr
    }
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update of every parameter that has a gradient (`None`: skipped, its step count
    /// unchanged, as PyTorch skips parameters whose `.grad` is None).
    pub fn step(&mut self, params: &mut [Tensor], grads: &[Option<Tensor>]) -> Result<()> {
        if params.len() != self.slots.len() || grads.len() != self.slots.len() {
            return Err(Error::msg(format!(
                "adam: {} params and {} grads for {} registered parameters",
                params.len(),
                grads.len(),
                self.slots.len()
            )));
        }
        for (i, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            let Some(grad) = grad else { continue };
            self.step_one(i, param, grad)?;
        }
        Ok(())
    }

    fn step_one(&mut self, i: usize, param: &mut Tensor, grad: &Tensor) -> Result<()> {
        let (lr, cfg) = (self.lr, self.config);
        let slot = &mut self.slots[i];
        if param.shape() != slot.shape.as_slice() || grad.shape() != slot.shape.as_slice() {
            return Err(Error::shape(
                "adam",
                format!(
                    "parameter {i} registered as {:?}, got param {:?} grad {:?}",
                    slot.shape,
                    param.shape(),
                    grad.shape()
                ),
            ));
        }
        let device = param.device();
        let state = match slot.state.take() {
            Some(s) => s,
            None => {
                let zeros = Tensor::zeros(&slot.shape).to_device(&device)?;
                Moments {
                    step: 0,
                    m: zeros.clone(),
                    v: zeros,
                }
            }
        };
        let step = state.step + 1;
        let wd = self.group_decay[slot.group];
        let p = AdamParams::new(
            param.numel(),
            lr,
            cfg.betas,
            cfg.eps,
            wd,
            cfg.decoupled,
            step,
        );
        let (m, v) = (state.m.to_device(&device)?, state.v.to_device(&device)?);
        let (new_param, m, v) = ops::adam_step(param, grad, &m, &v, &p)?;
        *param = new_param;
        slot.state = Some(Moments { step, m, v });
        Ok(())
    }

    /// Per-parameter state in registration order (None: never updated yet).
    pub fn export_state(&self) -> Result<Vec<Option<AdamParamState>>> {
        self.slots
            .iter()
            .map(|s| {
                s.state
                    .as_ref()
                    .map(|st| {
                        Ok(AdamParamState {
                            step: st.step,
                            exp_avg: st.m.to_vec_f32()?,
                            exp_avg_sq: st.v.to_vec_f32()?,
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    /// Restores state exported by `export_state` (same registration order and shapes). The
    /// moments live on the CPU until the next step moves them to the parameter's device.
    pub fn import_state(&mut self, state: Vec<Option<AdamParamState>>) -> Result<()> {
        if state.len() != self.slots.len() {
            return Err(Error::msg(format!(
                "adam: state for {} parameters, {} registered",
                state.len(),
                self.slots.len()
            )));
        }
        for (i, (slot, st)) in self.slots.iter_mut().zip(state).enumerate() {
            slot.state = match st {
                None => None,
                Some(st) => {
                    let n: usize = slot.shape.iter().product();
                    if st.exp_avg.len() != n || st.exp_avg_sq.len() != n {
                        return Err(Error::shape(
                            "adam import",
                            format!("parameter {i} has {n} elements, state {}", st.exp_avg.len()),
                        ));
                    }
                    let m = Tensor::from_vec(st.exp_avg, &slot.shape)?;
                    let v = Tensor::from_vec(st.exp_avg_sq, &slot.shape)?;
                    Some(Moments {
                        step: st.step,
                        m,
                        v,
                    })
                }
            };
        }
        Ok(())
    }
}
