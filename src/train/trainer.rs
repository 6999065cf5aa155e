//! The state of a training run shared by the four phases: the model, the discriminator (phases
//! 1a and 3), the optimisers, the global step, the step-level random generator and the optional
//! VGG hook; plus the pieces every phase uses (the discriminator step, the finite-loss guard).
//!
//! One `step` = one iteration of spec §6.0: the generator-side optimiser ("generator",
//! "transformer" or "fdm") first, then the discriminator, each skipped before its start
//! iteration. Everything a step reads is either in this struct (and checkpointed) or a pure
//! function of (seed, step) (the batch), so a resumed run repeats an uninterrupted one exactly.
//!
//! Device: the model's. Whatever a step computes lives there: the batch is moved once per step,
//! the discriminator and the VGG hook are moved when the trainer is built, and constants
//! (targets, weights, zero gradients) are created on it. Checkpoints are written from host
//! copies, so a run may resume on another device (`checkpoint`).
//!
//! Data parallelism (`dist`): `comm` is the group this trainer belongs to (a group of one unless
//! the run was launched with `--ranks` / `--gpus`). Every optimiser update goes through
//! `update_generator` / `discriminator_step`, which average the gradients over the ranks first;
//! the NaN guard and the logged terms use values averaged over the ranks.

use super::config::{Phase, TrainConfig};
use super::data::{Batch, DataOrigin};
use super::dist::{self, Communicator};
use super::fingerprint::DataFingerprint;
use super::losses::{discriminator_loss, Terms, VggHook};
use super::optimizer::OptimSlot;
use super::{phase1a, phase1b, phase2, phase3};
use crate::error::{Error, Result};
use crate::model::discriminator::Discriminator;
use crate::model::inpainting::InpaintingModel;
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::Device;
use std::sync::Arc;

/// Stream of the step-level generator (random_quantize), derived from the seed.
const STEP_STREAM: u64 = 0x57E9_0003;
/// Stream of the discriminator's initialisation.
const DISC_STREAM: u64 = 0xD15C_0004;

pub struct Trainer {
    pub cfg: TrainConfig,
    pub model: InpaintingModel,
    pub disc: Option<Discriminator>,
    /// The phase's main optimiser.
    pub gen: OptimSlot,
    pub dis: Option<OptimSlot>,
    /// Steps completed (= the global iteration the next step runs).
    pub step: u64,
    pub rng: Rng,
    pub vgg: Option<Box<dyn VggHook>>,
    pub iters_per_epoch: u64,
    /// Where the epochs of the data order start (`DataOrigin`; `set_data_origin`).
    pub data_origin: DataOrigin,
    /// Test hook: the loss of this global step is replaced by NaN (the run must stop cleanly).
    pub inject_nan_at: Option<u64>,
    /// The data-parallel group (`dist::single()` for one process). Set before the first step.
    pub comm: Arc<dyn Communicator>,
    /// The photos this run trains on, written into its checkpoints (`fingerprint`); set by the
    /// CLI after the data scan.
    pub data_fingerprint: Option<DataFingerprint>,
}

/// What one step reports.
pub struct StepOutput {
    /// Named, unweighted loss terms (the total first), in the phase's fixed column order.
    pub terms: Terms,
    /// The step's decoded images B x 3 x S x S in [0, 255] where the phase decodes (1a, 3).
    pub preview: Option<Tensor>,
}

impl Trainer {
    /// A run at step 0. `images` = dataset size (for iterations per epoch and the schedule).
    pub fn new(
        cfg: TrainConfig,
        model: InpaintingModel,
        images: usize,
        vgg: Option<Box<dyn VggHook>>,
    ) -> Result<Self> {
        cfg.validate()?;
        let device = model.device();
        let mut vgg = vgg;
        if let Some(v) = vgg.as_mut() {
            v.to_device(&device)?;
        }
        if cfg.crop_size != model.cfg.image_size {
            return Err(Error::msg(format!(
                "crop_size {} differs from the model's image size {}",
                cfg.crop_size, model.cfg.image_size
            )));
        }
        let iters_per_epoch = cfg.iterations_per_epoch(images);
        if iters_per_epoch == 0 {
            return Err(Error::msg(format!(
                "{images} photos are fewer than one batch of {}",
                cfg.batch_size
            )));
        }
        let t_max = cfg.epochs * iters_per_epoch;
        let phase = cfg.phase;
        let params = model
            .store
            .iter()
            .filter(|(_, n, _)| phase.trains(n))
            .map(|(id, _, _)| id)
            .collect();
        let gen = OptimSlot::new(phase.name(), &cfg.generator, &model.store, params, t_max)?;
        let (disc, dis) = match &cfg.discriminator {
            Some(dc) => {
                let seed = Rng::new(cfg.seed).fork(DISC_STREAM).next_u64();
                let mut d = Discriminator::new(&model.cfg, seed)?;
                d.to_device(&device)?;
                let slot = OptimSlot::new("discriminator", dc, &d.store, d.learnable(), t_max)?;
                (Some(d), Some(slot))
            }
            None => (None, None),
        };
        let rng = Rng::new(cfg.seed).fork(STEP_STREAM);
        Ok(Trainer {
            cfg,
            model,
            disc,
            gen,
            dis,
            step: 0,
            rng,
            vgg,
            iters_per_epoch,
            data_origin: DataOrigin::default(),
            inject_nan_at: None,
            comm: dist::single(),
            data_fingerprint: None,
        })
    }

    /// The device the model, and so every step, runs on.
    pub fn device(&self) -> Device {
        self.model.device()
    }

    pub fn phase(&self) -> Phase {
        self.cfg.phase
    }

    /// Total number of steps the nominal schedule spans: to the end of the nominal epochs.
    pub fn t_max(&self) -> u64 {
        self.data_origin.end(self.cfg.epochs, self.iters_per_epoch)
    }

    /// The global step at which the run ends: `max_steps` (`--steps`), else `t_max`.
    pub fn end_step(&self) -> u64 {
        self.cfg.max_steps.unwrap_or_else(|| self.t_max())
    }

    /// Epochs start at `origin` (a run resumed on photos that give another number of batches
    /// per epoch, `DataOrigin`): the nominal epochs, and so the schedules' cosine, end at
    /// another step.
    pub fn set_data_origin(&mut self, origin: DataOrigin) {
        self.data_origin = origin;
        let t_max = self.t_max();
        self.gen.set_t_max(t_max);
        if let Some(d) = self.dis.as_mut() {
            d.set_t_max(t_max);
        }
    }

    /// Run one training step on `batch` (which must be the batch of `self.step`).
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepOutput> {
        if batch.step != self.step {
            return Err(Error::msg(format!(
                "batch of step {} given at step {}",
                batch.step, self.step
            )));
        }
        let batch = &batch.to_device(&self.device())?;
        let mut out = match self.cfg.phase {
            Phase::Phase1a => phase1a::step(self, batch)?,
            Phase::Phase1b => phase1b::step(self, batch)?,
            Phase::Phase2 => phase2::step(self, batch)?,
            Phase::Phase3 => phase3::step(self, batch)?,
        };
        dist::reduce_terms(&*self.comm, &mut out.terms)?;
        self.step += 1;
        Ok(out)
    }

    /// Column names of `StepOutput::terms` for this phase.
    pub fn term_names(&self) -> Vec<&'static str> {
        Self::terms_of(self.cfg.phase)
    }

    /// Column names of `StepOutput::terms` in `phase`, in the order a step reports them.
    pub fn terms_of(phase: Phase) -> Vec<&'static str> {
        match phase {
            Phase::Phase1a => phase1a::TERMS.to_vec(),
            Phase::Phase1b => phase1b::TERMS.to_vec(),
            Phase::Phase2 => phase2::TERMS.to_vec(),
            Phase::Phase3 => phase3::TERMS.to_vec(),
        }
    }

    /// An error (and no update) when a loss is NaN or infinite, or at the injected step. The
    /// test is on the mean over the ranks, so every rank decides the same; returns that mean.
    pub fn guard(&self, what: &str, value: f32) -> Result<f32> {
        let value = if self.inject_nan_at == Some(self.step) {
            f32::NAN
        } else {
            value
        };
        let value = dist::mean_scalar(&*self.comm, value)?;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(Error::msg(format!("the {what} loss{} is {value} at step {}; training stopped before updating any weight", over_ranks(&*self.comm), self.step)))
        }
    }

    /// One update of the phase's main optimiser with these gradients (one per parameter of
    /// `gen`), averaged over the ranks first.
    pub fn update_generator(&mut self, mut grads: Vec<Option<Tensor>>) -> Result<()> {
        dist::reduce_grads(&*self.comm, &mut grads)?;
        self.gen.update(&mut self.model.store, &grads)
    }

    /// The discriminator step of phases 1a / 3 on ([0, 1] real, detached [0, 1] fake).
    /// Returns the loss (0 before `disc_start`, None while the optimiser has not started).
    pub fn discriminator_step(&mut self, real: &Tensor, fake: &Tensor) -> Result<Option<f32>> {
        let step = self.step;
        let (Some(disc), Some(opt)) = (self.disc.as_mut(), self.dis.as_mut()) else {
            return Ok(None);
        };
        if !opt.active(step) {
            return Ok(None);
        }
        if step < self.cfg.losses.disc_start {
            // The official D loss is multiplied by 0 here: the gradients are exactly zero and
            // Adam still counts the step. The forwards are skipped (their result is unused), so
            // the spectral-norm vectors do not iterate during this stretch.
            let zeros = opt.zero_grads(&disc.store)?;
            opt.update(&mut disc.store, &zeros)?;
            return Ok(Some(0.0));
        }
        let tape = crate::autograd::Tape::new();
        let (loss, bound) = discriminator_loss(&tape, disc, real, fake)?;
        let value = loss.value().to_scalar()?;
        let value = if self.inject_nan_at == Some(step) {
            f32::NAN
        } else {
            value
        };
        let value = dist::mean_scalar(&*self.comm, value)?;
        if !value.is_finite() {
            return Err(Error::msg(format!(
                "the discriminator loss{} is {value} at step {step}; training stopped",
                over_ranks(&*self.comm)
            )));
        }
        let grads = tape.backward(&loss)?;
        let all = disc.store.grads_of(&bound, &grads);
        let mut g = opt.select(&all);
        dist::reduce_grads(&*self.comm, &mut g)?;
        opt.update(&mut disc.store, &g)?;
        Ok(Some(value))
    }
}

/// " (mean over N ranks)" in a data-parallel run, else nothing.
fn over_ranks(comm: &dyn Communicator) -> String {
    match comm.world() {
        1 => String::new(),
        n => format!(" (mean over {n} ranks)"),
    }
}
