//! `CosineAnnealingLRWithWarmup`, the learning-rate schedule of every training phase
//! (spec §6.0), with the official code's exact semantics:
//! * the counter `last_epoch` starts at -1; each `step()` (called once per iteration, after the
//!   optimiser step) increments it to `e`;
//! * while `e <= warmup`: `lr += max(0, (warmup_lr - base_lr) / warmup)` — with base lr 0 that
//!   is `warmup + 1` increments of `warmup_lr / warmup`, ending at
//!   `warmup_lr * (warmup + 1) / warmup`; `max_lr = max(max_lr, lr)` (max_lr starts at min_lr);
//! * afterwards: `lr = max(max_lr * max(0, 0.5 (1 + cos(pi * progress))), min_lr)` with
//!   `progress = (e - warmup) / max(1, T_max - warmup)`; past T_max the cosine rises again
//!   (as in the official code; training normally stops at T_max).
//!
//! The first optimiser step therefore runs at `base_lr` (0 in the configs).
//! All arithmetic is f64, as the Python original. On resume, the state (`last_epoch`, `lr`,
//! `max_lr`) is restored and the warmup increment is kept from construction.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLRWithWarmup {
    t_max: i64,
    warmup: i64,
    min_lr: f64,
    warmup_increment: f64,
    last_epoch: i64,
    lr: f64,
    max_lr: f64,
}

/// The mutable part of the schedule, for checkpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleState {
    pub last_epoch: i64,
    pub lr: f64,
    pub max_lr: f64,
}

impl CosineAnnealingLRWithWarmup {
    /// `base_lr`: the optimiser's lr before the first step (0 in every official config);
    /// `t_max = max_epochs * iterations_per_epoch`; `warmup` >= 1 iterations.
    pub fn new(base_lr: f64, t_max: u64, warmup: u64, warmup_lr: f64, min_lr: f64) -> Result<Self> {
        if warmup == 0 {
            return Err(Error::msg("CosineAnnealingLRWithWarmup: warmup must be at least 1 (the increment divides by it)"));
        }
        Ok(CosineAnnealingLRWithWarmup {
            t_max: t_max as i64,
            warmup: warmup as i64,
            min_lr,
            warmup_increment: ((warmup_lr - base_lr) / warmup as f64).max(0.0),
            last_epoch: -1,
            lr: base_lr,
            max_lr: min_lr,
        })
    }

    /// The learning rate the next optimiser step should use.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    pub fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// Advance one iteration; returns the new learning rate.
    pub fn step(&mut self) -> f64 {
        let e = self.last_epoch + 1;
        self.last_epoch = e;
        if e <= self.warmup {
            self.lr += self.warmup_increment;
            self.max_lr = self.max_lr.max(self.lr);
        } else {
            let progress = (e - self.warmup) as f64 / (self.t_max - self.warmup).max(1) as f64;
            let factor = (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0);
            self.lr = (self.max_lr * factor).max(self.min_lr);
        }
        self.lr
    }

    pub fn state(&self) -> ScheduleState {
        ScheduleState {
            last_epoch: self.last_epoch,
            lr: self.lr,
            max_lr: self.max_lr,
        }
    }

    /// Where the cosine ends: a resumed run whose data changed ends its nominal epochs at another
    /// step (`train::data::DataOrigin`).
    pub fn set_t_max(&mut self, t_max: u64) {
        self.t_max = t_max as i64;
    }

    pub fn set_state(&mut self, s: ScheduleState) {
        self.last_epoch = s.last_epoch;
        self.lr = s.lr;
        self.max_lr = s.max_lr;
    }
}
