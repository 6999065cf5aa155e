//! Training configuration (spec §6.0, §6.1, §6.5-§6.7): which phase, the optimisers with their
//! warmup-cosine schedules and start iterations, the loss weights and start steps, the mask mix
//! and the data pipeline. Serialised as JSON into every checkpoint (and accepted with
//! `fdm train --config FILE`), so a run always says how it was trained.
//!
//! Two presets per phase:
//! * `paper`: the official Paris StreetView values of the spec §6.1 table (column P): batch
//!   10 (1a, 2, 3) / 2 (1b) per GPU, epochs 100 / 300, warmups 150 / 300 / 2000 iterations,
//!   peak lr 2e-4 (codec, FDM), 3e-4 (transformer), 2e-5 (discriminator), min lr 1e-6 / 1e-5,
//!   discriminator from iteration 300, adversarial term from 300, gradient / perceptual /
//!   style terms from 150.
//! * `tiny`: the same optimisers, betas, peak and minimum learning rates and loss weights, with
//!   everything that scales with the run's length shrunk for two CPU cores and ~100 photos:
//!   batch 2, warmups 50 (generator, FDM) / 100 (discriminator) / 200 (transformer), the
//!   discriminator and the adversarial term from iteration 100, gradient / perceptual / style
//!   terms from 50, and 20 epochs (1a, 2, 3) / 30 (1b).
//!
//! Deviation: the perceptual and style terms need an ImageNet VGG-19 (spec §6.5). Without a VGG
//! weights file (`vgg_weights = None`) both are left out (their effective weight is 0) and the
//! trainer says so when it starts.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The four training phases (spec §6.2-§6.4, paper §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Codec (encoder, quant convs, decoder; codebook by EMA) with a discriminator.
    Phase1a,
    /// UQ-Transformer on the frozen codec.
    Phase1b,
    /// FDM alone, from ideal features (the "no sampler" trick).
    Phase2,
    /// FDM + decoder + post_quant_conv jointly, with a fresh discriminator.
    Phase3,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Phase1a => "phase1a",
            Phase::Phase1b => "phase1b",
            Phase::Phase2 => "phase2",
            Phase::Phase3 => "phase3",
        }
    }
    pub fn parse(s: &str) -> Result<Phase> {
        match s {
            "phase1a" => Ok(Phase::Phase1a),
            "phase1b" => Ok(Phase::Phase1b),
            "phase2" => Ok(Phase::Phase2),
            "phase3" => Ok(Phase::Phase3),
            _ => Err(Error::msg(format!(
                "unknown phase `{s}` (phase1a, phase1b, phase2, phase3)"
            ))),
        }
    }
    /// Phases that train a discriminator beside the generator.
    pub fn has_discriminator(self) -> bool {
        matches!(self, Phase::Phase1a | Phase::Phase3)
    }
    /// Whether a state-dict key is trained by gradients in this phase (spec §6.1 "trained
    /// params"; the codebook buffers are updated by EMA in 1a, never by the optimiser).
    pub fn trains(self, key: &str) -> bool {
        match self {
            Phase::Phase1a => {
                key.starts_with("content_codec.") && !key.starts_with("content_codec.quantize.")
            }
            Phase::Phase1b => key.starts_with("generator."),
            Phase::Phase2 => key.starts_with("fdm."),
            Phase::Phase3 => {
                key.starts_with("fdm.")
                    || key.starts_with("content_codec.decoder.")
                    || key.starts_with("content_codec.post_quant_conv.")
            }
        }
    }
}

/// One optimiser of spec §6.0 with its `CosineAnnealingLRWithWarmup` schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// true: AdamW (decoupled decay, phase 1b); false: Adam.
    pub adamw: bool,
    pub betas: (f64, f64),
    /// Weight decay of the "decay" group (Linear weights in 1b); 0 elsewhere.
    pub weight_decay: f64,
    /// Peak learning rate reached by the warmup (`warmup_lr`).
    pub warmup_lr: f64,
    /// Warmup iterations (>= 1).
    pub warmup: u64,
    pub min_lr: f64,
    /// The optimiser (and its schedule) runs from this global iteration on.
    pub start_iter: u64,
}

impl OptimConfig {
    fn adam(warmup_lr: f64, warmup: u64, min_lr: f64, start_iter: u64) -> Self {
        OptimConfig {
            adamw: false,
            betas: (0.0, 0.9),
            weight_decay: 0.0,
            warmup_lr,
            warmup,
            min_lr,
            start_iter,
        }
    }
}

/// Loss weights and start iterations (spec §6.2, §6.4, §6.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// L1n, hole-normalised L1 (from step 0).
    pub l1: f32,
    /// L_G, image-gradient loss.
    pub gradient: f32,
    /// L_A, generator adversarial term (nsgan BCE).
    pub adversarial: f32,
    /// L_P, VGG perceptual (needs `vgg_weights`).
    pub perceptual: f32,
    /// L_S, VGG style on hole-masked images (needs `vgg_weights`).
    pub style: f32,
    /// Quantizer commitment loss (phase 1a).
    pub quantize: f32,
    /// L_qe, FDM feature loss (phases 2, 3).
    pub feature: f32,
    /// Global iteration from which L_A and the discriminator loss count (`disc_start`).
    pub disc_start: u64,
    /// Global iteration from which L_G, L_P and L_S count.
    pub feature_losses_start: u64,
}

/// Mask mix per phase (spec §6.7 table). "Provided" masks are the PConv masks of the hole-ratio
/// buckets 0.2-0.6; without a mask folder they are drawn by `data::masks::bucketed_mask`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Probability of a provided (bucketed) mask; otherwise a free-form stroke mask.
    pub provided_p: f32,
    /// Hole-ratio range of the provided masks, split into 0.1-wide buckets drawn uniformly.
    pub ratio_range: (f32, f32),
    /// Probability that the mask hides the whole image (`zero_mask`, phase 1a).
    pub zero_mask_p: f32,
    /// Probability of patch-aligning the mask (`mask_low_to_high`, phase 1b).
    pub low_to_high_p: f32,
    /// Probability of erasing the image with an extra mask (phase 1a).
    pub erase_p: f32,
    /// Optional folder of PConv-style mask PNGs (white = hole) used as the provided masks.
    #[serde(default)]
    pub mask_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub phase: Phase,
    /// Training preset name ("paper", "tiny" or a custom label).
    pub preset: String,
    /// Model preset the weights must match ("paper" or "tiny"), or "init": the architecture of
    /// the `--init` weights, whatever it is (`cli::MODEL_FROM_INIT`).
    pub model_preset: String,
    pub seed: u64,
    pub batch_size: usize,
    /// Nominal epochs: the cosine runs over `epochs * iterations_per_epoch` (spec §6.0).
    pub epochs: u64,
    /// Stop at this global step (None: at the end of the nominal epochs). Does not change the
    /// schedule.
    pub max_steps: Option<u64>,
    /// Shorter image side after resizing (256 Paris, 288 NaturalScene) before the random crop.
    /// 0 keeps each photo's own size (only a photo smaller than the crop is enlarged to it): for
    /// folders of photos stored at several scales, so crops land anywhere in the whole photo.
    pub load_size: usize,
    /// Side of the random crop (the model's image size, 256).
    pub crop_size: usize,
    pub generator: OptimConfig,
    pub discriminator: Option<OptimConfig>,
    pub losses: LossConfig,
    pub masks: MaskConfig,
    /// Phase 1b: probability that a fully visible position gets its quantised feature (§3.5).
    pub random_quantize: f32,
    /// Phase 1a EMA codebook decay and Laplace epsilon (§2.3).
    pub codebook_decay: f32,
    pub codebook_eps: f32,
    /// Phase 1a: start the codebook from the first batch's features (deviation, see
    /// `phase1a::init_codebook_from_features`); false = the official N(0, 1) start. A codebook
    /// that has been updated before (weights given with `--init`) is kept either way.
    #[serde(default)]
    pub codebook_data_init: bool,
    /// Phase 1a: restart the codebook's dead codes every this many steps (0: never, the
    /// official rule; see `codebook_restart`).
    #[serde(default)]
    pub codebook_restart_every: u64,
    /// Phase 1a: a code whose EMA `cluster_size` is below this is dead.
    #[serde(default)]
    pub codebook_restart_below: f32,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Checkpoint directories kept (older ones are deleted).
    pub keep_checkpoints: usize,
    /// Write a sample grid every this many steps (0: never).
    pub sample_every: u64,
    /// VGG-19 weights for the perceptual / style terms (None: both off, see module docs).
    #[serde(default)]
    pub vgg_weights: Option<PathBuf>,
    /// The run stops with an error when more than this fraction of the photos is unreadable.
    pub max_unreadable_fraction: f32,
    /// Batches decoded ahead of the training step.
    pub prefetch: usize,
}

fn paper_losses() -> LossConfig {
    LossConfig {
        l1: 1.0,
        gradient: 5.0,
        adversarial: 0.1,
        perceptual: 0.1,
        style: 250.0,
        quantize: 1.0,
        feature: 1.0,
        disc_start: 300,
        feature_losses_start: 150,
    }
}

fn masks_for(phase: Phase) -> MaskConfig {
    let (provided_p, zero_mask_p, low_to_high_p, erase_p) = match phase {
        Phase::Phase1a => (0.7, 0.3, 0.0, 0.2),
        Phase::Phase1b => (0.8, 0.0, 0.05, 0.0),
        Phase::Phase2 | Phase::Phase3 => (1.0, 0.0, 0.0, 0.0),
    };
    MaskConfig {
        provided_p,
        ratio_range: (0.2, 0.6),
        zero_mask_p,
        low_to_high_p,
        erase_p,
        mask_dir: None,
    }
}

impl TrainConfig {
    /// The official Paris values of spec §6.1 for one phase.
    pub fn paper(phase: Phase) -> Self {
        let (generator, discriminator, batch_size, epochs) = match phase {
            Phase::Phase1a | Phase::Phase3 => (
                OptimConfig::adam(2e-4, 150, 1e-6, 0),
                Some(OptimConfig::adam(2e-5, 300, 1e-6, 300)),
                10,
                100,
            ),
            Phase::Phase1b => (
                OptimConfig {
                    adamw: true,
                    betas: (0.9, 0.95),
                    weight_decay: 0.01,
                    warmup_lr: 3e-4,
                    warmup: 2000,
                    min_lr: 1e-5,
                    start_iter: 0,
                },
                None,
                2,
                300,
            ),
            Phase::Phase2 => (OptimConfig::adam(2e-4, 300, 1e-6, 0), None, 10, 100),
        };
        let mut losses = paper_losses();
        if phase == Phase::Phase2 {
            // Spec §6.3: only L_qe; every image term is off.
            for w in [
                &mut losses.l1,
                &mut losses.gradient,
                &mut losses.adversarial,
                &mut losses.perceptual,
                &mut losses.style,
            ] {
                *w = 0.0;
            }
        }
        TrainConfig {
            phase,
            preset: "paper".into(),
            model_preset: "paper".into(),
            seed: 0,
            batch_size,
            epochs,
            max_steps: None,
            load_size: 256,
            crop_size: 256,
            generator,
            discriminator,
            losses,
            masks: masks_for(phase),
            random_quantize: 0.3,
            codebook_decay: 0.99,
            codebook_eps: 1e-5,
            codebook_data_init: false,
            codebook_restart_every: 0,
            codebook_restart_below: 0.0,
            checkpoint_every: 1000,
            keep_checkpoints: 2,
            sample_every: 0,
            vgg_weights: None,
            max_unreadable_fraction: 0.1,
            prefetch: 2,
        }
    }

    /// The `tiny` preset: the paper's optimisers and weights, shorter everything (module docs).
    pub fn tiny(phase: Phase) -> Self {
        let mut c = TrainConfig::paper(phase);
        c.preset = "tiny".into();
        c.model_preset = "tiny".into();
        c.batch_size = 2;
        c.epochs = if phase == Phase::Phase1b { 30 } else { 20 };
        c.generator.warmup = if phase == Phase::Phase1b { 200 } else { 50 };
        if let Some(d) = c.discriminator.as_mut() {
            d.warmup = 100;
            d.start_iter = 100;
        }
        c.losses.disc_start = 100;
        c.losses.feature_losses_start = 50;
        c.checkpoint_every = 200;
        c.codebook_data_init = true;
        c.codebook_restart_every = 25;
        c.codebook_restart_below = 0.5;
        c
    }

    pub fn preset(phase: Phase, name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper(phase)),
            "tiny" => Ok(Self::tiny(phase)),
            _ => Err(Error::msg(format!(
                "unknown training preset `{name}` (paper, tiny)"
            ))),
        }
    }

    /// Every relation the trainer relies on; one error listing all violations.
    pub fn validate(&self) -> Result<()> {
        let mut bad = Vec::new();
        if self.batch_size == 0 {
            bad.push("batch_size must be at least 1".to_string());
        }
        if self.epochs == 0 {
            bad.push("epochs must be at least 1".to_string());
        }
        if self.crop_size == 0 {
            bad.push("crop_size must be at least 1".to_string());
        } else if self.load_size != 0 && self.load_size < self.crop_size {
            bad.push(format!(
                "load_size {} must be 0 (keep each photo's size) or at least crop_size {}",
                self.load_size, self.crop_size
            ));
        }
        if self.codebook_restart_every > 0 && !(self.codebook_restart_below > 0.0 && self.codebook_restart_below.is_finite()) {
            bad.push(format!(
                "codebook_restart_below {} must be a finite number > 0 when codebook_restart_every is set",
                self.codebook_restart_below
            ));
        }
        let mut optims = vec![("generator", &self.generator)];
        if let Some(d) = &self.discriminator {
            optims.push(("discriminator", d));
        }
        for (name, o) in optims {
            if o.warmup == 0 {
                bad.push(format!("{name}.warmup must be at least 1"));
            }
            if !(o.warmup_lr >= 0.0 && o.min_lr >= 0.0) {
                bad.push(format!("{name}: learning rates must be non-negative"));
            }
        }
        if self.phase.has_discriminator() != self.discriminator.is_some() {
            bad.push(format!(
                "{} {} a discriminator",
                self.phase.name(),
                if self.phase.has_discriminator() {
                    "needs"
                } else {
                    "has no"
                }
            ));
        }
        let m = &self.masks;
        for (name, p) in [
            ("provided_p", m.provided_p),
            ("zero_mask_p", m.zero_mask_p),
            ("low_to_high_p", m.low_to_high_p),
            ("erase_p", m.erase_p),
            ("random_quantize", self.random_quantize),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bad.push(format!("{name} = {p} is not a probability"));
            }
        }
        if !(0.0 <= m.ratio_range.0 && m.ratio_range.0 < m.ratio_range.1 && m.ratio_range.1 <= 1.0)
        {
            bad.push(format!(
                "masks.ratio_range {:?} must satisfy 0 <= lo < hi <= 1",
                m.ratio_range
            ));
        }
        if !(0.0..1.0).contains(&self.max_unreadable_fraction) {
            bad.push("max_unreadable_fraction must be in [0, 1)".to_string());
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "invalid training config: {}",
                bad.join("; ")
            )))
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a TrainConfig always serialises")
    }

    pub fn from_json(s: &str) -> Result<Self> {
        let c: TrainConfig = serde_json::from_str(s)
            .map_err(|e| Error::msg(format!("training config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// The `"phase"` a config JSON declares, if it declares a known one: read before the full
    /// parse, so a config of another phase is reported as such rather than by whatever of its
    /// fields the other phase rejects.
    pub fn declared_phase(s: &str) -> Option<Phase> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        Phase::parse(v.get("phase")?.as_str()?).ok()
    }

    /// Iterations per epoch with `drop_last` (spec §6.0): floor(images / batch).
    pub fn iterations_per_epoch(&self, images: usize) -> u64 {
        (images / self.batch_size.max(1)) as u64
    }
}
