//! One optimiser of spec §6.0 as the trainer drives it: Adam / AdamW over a fixed list of
//! parameters of a `ParamStore`, its `CosineAnnealingLRWithWarmup` schedule and its start
//! iteration. Per iteration (when active): the optimiser step runs at the schedule's current
//! learning rate, then the schedule steps; so the first update uses lr 0 (spec §6.0, §9.14).
//!
//! AdamW groups (phase 1b, spec §6.1): weights of Linear layers (the rank-2 `.weight` tensors)
//! decay, everything else (biases, LayerNorm weights, `pos_emb`) does not. Adam phases have one
//! group without decay.

use super::config::OptimConfig;
use crate::error::{Error, Result};
use crate::nn::{ParamId, ParamStore};
use crate::optim::{Adam, AdamConfig, AdamParamState, CosineAnnealingLRWithWarmup, ScheduleState};
use crate::tensor::Tensor;

pub struct OptimSlot {
    pub name: &'static str,
    pub cfg: OptimConfig,
    pub adam: Adam,
    pub sched: CosineAnnealingLRWithWarmup,
    /// The parameters this optimiser updates, in registration order.
    pub params: Vec<ParamId>,
}

/// Whether a parameter is in AdamW's "decay" group (Linear / Conv weights, spec §6.1).
pub fn decays(name: &str, t: &Tensor) -> bool {
    name.ends_with(".weight") && t.rank() >= 2
}

impl OptimSlot {
    /// `t_max = epochs * iterations_per_epoch` (the cosine spans the nominal run).
    pub fn new(
        name: &'static str,
        cfg: &OptimConfig,
        store: &ParamStore,
        params: Vec<ParamId>,
        t_max: u64,
    ) -> Result<Self> {
        let base = if cfg.adamw {
            AdamConfig::adamw(0.0, cfg.betas)
        } else {
            AdamConfig::adam(0.0, cfg.betas)
        };
        let mut adam = Adam::new(base);
        let (decay, no_decay) = if cfg.weight_decay != 0.0 {
            (adam.add_group(cfg.weight_decay), adam.add_group(0.0))
        } else {
            (adam.add_group(0.0), 0)
        };
        for &id in &params {
            let t = store.get(id);
            let group = if cfg.weight_decay != 0.0 && !decays(store.name(id), t) {
                no_decay
            } else {
                decay
            };
            adam.add_param(group, t.shape())?;
        }
        let sched =
            CosineAnnealingLRWithWarmup::new(0.0, t_max, cfg.warmup, cfg.warmup_lr, cfg.min_lr)?;
        Ok(OptimSlot {
            name,
            cfg: cfg.clone(),
            adam,
            sched,
            params,
        })
    }

    /// The step at which the cosine of the schedule ends (`Trainer::set_data_origin`).
    pub fn set_t_max(&mut self, t_max: u64) {
        self.sched.set_t_max(t_max);
    }

    /// The optimiser runs at global iteration `step` (spec §6.0: skipped before `start_iter`).
    pub fn active(&self, step: u64) -> bool {
        step >= self.cfg.start_iter
    }

    /// The learning rate the next update uses.
    pub fn lr(&self) -> f64 {
        self.sched.lr()
    }

    /// Picks this optimiser's gradients out of a store-wide list (indexed by `ParamId`).
    pub fn select(&self, all: &[Option<Tensor>]) -> Vec<Option<Tensor>> {
        self.params.iter().map(|id| all[id.0].clone()).collect()
    }

    /// Zero gradients for every parameter (a loss multiplied by 0 before its start step), each
    /// on its parameter's device.
    pub fn zero_grads(&self, store: &ParamStore) -> Result<Vec<Option<Tensor>>> {
        self.params
            .iter()
            .map(|&id| {
                let p = store.get(id);
                Ok(Some(Tensor::zeros(p.shape()).to_device(&p.device())?))
            })
            .collect()
    }

    /// One update with `grads` (one per parameter of this slot), then one schedule step.
    pub fn update(&mut self, store: &mut ParamStore, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::msg(format!(
                "{}: {} gradients for {} parameters",
                self.name,
                grads.len(),
                self.params.len()
            )));
        }
        let mut values: Vec<Tensor> = self
            .params
            .iter()
            .map(|&id| store.get(id).clone())
            .collect();
        self.adam.set_lr(self.sched.lr());
        self.adam.step(&mut values, grads)?;
        for (&id, v) in self.params.iter().zip(values) {
            store.set(id, v)?;
        }
        self.sched.step();
        Ok(())
    }

    pub fn export(&self) -> Result<(ScheduleState, Vec<Option<AdamParamState>>)> {
        Ok((self.sched.state(), self.adam.export_state()?))
    }

    pub fn import(
        &mut self,
        sched: ScheduleState,
        adam: Vec<Option<AdamParamState>>,
    ) -> Result<()> {
        self.sched.set_state(sched);
        self.adam.import_state(adam)
    }
}
