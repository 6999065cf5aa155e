//! `fdm train phase1a|phase1b|phase2|phase3 --data DIR --preset tiny|paper ...`: builds the
//! configuration, model, data and trainer, then runs the loop (`runner::run`).
//!
//! * `--config FILE`: a JSON `TrainConfig` instead of the preset (its phase must match);
//! * `--init WEIGHTS`: start from these model weights; phases 1b, 2 and 3 require it (each
//!   starts from the previous phase's `<phase>.safetensors`), phase 1a starts fresh without it;
//! * `--resume CKPT`: a checkpoint directory or a run folder (its newest checkpoint). The
//!   checkpoint's configuration is used; only `--steps`, `--sample-every` and
//!   `--checkpoint-every` may change (they do not alter the arithmetic), anything else is an
//!   error;
//! * `--steps N`: stop at global step N (the schedule still spans the nominal epochs);
//! * `--device auto|cpu|cuda|cuda-emu` (as `fdm inpaint`, `cli::device`): where the step runs;
//!   `auto` = a usable CUDA GPU, else the CPU. Checkpoints hold host copies and resume on any
//!   device (`--resume` may change `--device`);
//! * `--gpus N` with N > 1: an error; multi-GPU (data-parallel) training is not in this build;
//! * `--compare-sampler` (phase 2): time one phase-2 step against sampling the same batch with
//!   the transformer, print the ratio and exit without writing a checkpoint;
//! * `--inject-nan-at STEP` (hidden): a test hook that makes that step's loss NaN.

use super::checkpoint;
use super::config::{Phase, TrainConfig};
use super::data::{BatchSource, Dataset};
use super::losses::{VggHook, VggLoader};
use super::phase2::sampler_comparison;
use super::runner::{run as run_loop, RunOptions, RunSummary};
use super::trainer::Trainer;
use crate::cli::device::{pick_device, DeviceArg};
use crate::error::{Error, Result};
use crate::model::inpainting::InpaintingModel;
use crate::model::ModelConfig;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// phase1a | phase1b | phase2 | phase3
    pub phase: String,
    /// Folder of training photos (PNG/JPEG, searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Training and model preset: tiny or paper.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// JSON TrainConfig replacing the preset's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder (checkpoints, losses.csv, samples, final weights); default runs/<phase>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Model weights to start from (the previous phase's output).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue from a checkpoint directory or a run folder.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop at this global step.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Batch size.
    #[arg(long)]
    pub batch: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write a sample grid every N steps.
    #[arg(long)]
    pub sample_every: Option<u64>,
    /// Write a checkpoint every N steps.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Folder of mask PNGs (white = hole) used as the "provided" masks.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// VGG-19 weights for the perceptual and style losses.
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Where training runs: auto (a usable CUDA GPU, else the CPU), cpu, cuda, or cuda-emu (the
    /// CUDA kernels on a CPU emulator: for checking, very slow).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Number of GPUs (only 1 is supported in this build: no multi-GPU training).
    #[arg(long, default_value_t = 1)]
    pub gpus: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Phase 2: time one step against the sampler on the same batch and exit.
    #[arg(long)]
    pub compare_sampler: bool,
    /// Test hook: the loss of this step becomes NaN.
    #[arg(long, hide = true)]
    pub inject_nan_at: Option<u64>,
}

/// The VGG-19 backbone loader of this build, if any (`model::vgg` plugs in here).
pub fn vgg_loader() -> Option<VggLoader> {
    Some(super::vgg::load_hook)
}

fn configure(args: &TrainArgs, phase: Phase) -> Result<TrainConfig> {
    let mut cfg = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
            let c = TrainConfig::from_json(&text)?;
            if c.phase != phase {
                return Err(Error::msg(format!(
                    "{} is a {} config, not {}",
                    path.display(),
                    c.phase.name(),
                    phase.name()
                )));
            }
            c
        }
        None => TrainConfig::preset(phase, &args.preset)?,
    };
    if let Some(b) = args.batch {
        cfg.batch_size = b;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if args.masks.is_some() {
        cfg.masks.mask_dir = args.masks.clone();
    }
    if args.vgg.is_some() {
        cfg.vgg_weights = args.vgg.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Options that only steer the loop (allowed with `--resume`).
fn apply_loop_options(cfg: &mut TrainConfig, args: &TrainArgs) {
    if args.steps.is_some() {
        cfg.max_steps = args.steps;
    }
    if let Some(n) = args.sample_every {
        cfg.sample_every = n;
    }
    if let Some(n) = args.checkpoint_every {
        cfg.checkpoint_every = n;
    }
}

fn load_vgg(cfg: &TrainConfig) -> Result<Option<Box<dyn VggHook>>> {
    match (&cfg.vgg_weights, vgg_loader()) {
        (None, _) => {
            eprintln!("note: no VGG weights given: the perceptual and style losses are off (deviation from spec §6.5)");
            Ok(None)
        }
        (Some(path), Some(load)) => Ok(Some(load(path)?)),
        (Some(_), None) => Err(Error::msg("this build has no VGG-19 backbone for the perceptual/style losses; train without --vgg")),
    }
}

/// Build everything and train (or, with `--compare-sampler`, measure and return).
pub fn run(args: &TrainArgs, stop: Option<Arc<AtomicBool>>) -> Result<RunSummary> {
    let phase = Phase::parse(&args.phase)?;
    if args.gpus != 1 {
        return Err(Error::msg(format!(
            "--gpus {}: multi-GPU training is not supported in this build (one process, one device)",
            args.gpus
        )));
    }
    let resumed = match &args.resume {
        Some(path) => {
            if args.config.is_some()
                || args.batch.is_some()
                || args.seed.is_some()
                || args.init.is_some()
                || args.masks.is_some()
                || args.vgg.is_some()
            {
                return Err(Error::msg("--resume continues the checkpoint's configuration: --config, --batch, --seed, --init, --masks and --vgg cannot be changed"));
            }
            let dir = checkpoint::resolve(path)?;
            let state = checkpoint::read_state(&dir)?;
            if state.config.phase != phase {
                return Err(Error::msg(format!(
                    "{} is a {} checkpoint, not {}",
                    dir.display(),
                    state.config.phase.name(),
                    phase.name()
                )));
            }
            Some((dir, state))
        }
        None => None,
    };
    let mut cfg = match &resumed {
        Some((_, state)) => state.config.clone(),
        None => configure(args, phase)?,
    };
    apply_loop_options(&mut cfg, args);
    let model = match (&resumed, &args.init) {
        (Some((dir, state)), _) => checkpoint::load_model(dir, state)?,
        (None, Some(path)) => {
            InpaintingModel::load(path, Some(&ModelConfig::by_name(&cfg.model_preset)?))?
        }
        (None, None) if phase == Phase::Phase1a => {
            InpaintingModel::new(&ModelConfig::by_name(&cfg.model_preset)?, cfg.seed)?
        }
        (None, None) => {
            return Err(Error::msg(format!(
                "{} starts from the previous phase's weights: pass --init <weights>",
                phase.name()
            )))
        }
    };
    let device = pick_device(args.device)?;
    let mut model = model;
    model.to_device(&device)?;
    let dataset = Arc::new(Dataset::scan(&args.data, cfg.max_unreadable_fraction)?);
    if !dataset.skipped.is_empty() {
        eprintln!(
            "note: skipped {} unreadable file(s) under {}",
            dataset.skipped.len(),
            args.data.display()
        );
    }
    let images = dataset.len();
    let source = Arc::new(BatchSource::new(dataset, &cfg, model.cfg.codec.patch)?);
    let vgg = load_vgg(&cfg)?;
    let mut tr = Trainer::new(cfg, model, images, vgg)?;
    tr.inject_nan_at = args.inject_nan_at;
    if let Some((dir, state)) = &resumed {
        checkpoint::restore(&mut tr, dir, state)?;
    }
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(phase.name()));
    if args.compare_sampler {
        return compare(&mut tr, &source);
    }
    eprintln!(
        "{} on {}: {images} photos, {} steps per epoch, steps {}..{}, schedule over {} steps, output {}",
        phase.name(),
        tr.device().name(),
        tr.iters_per_epoch,
        tr.step,
        tr.cfg.total_steps(images),
        tr.t_max(),
        out_dir.display()
    );
    run_loop(
        &mut tr,
        source,
        images,
        &RunOptions {
            out_dir,
            progress: !args.no_progress,
            stop,
        },
    )
}

fn compare(tr: &mut Trainer, source: &BatchSource) -> Result<RunSummary> {
    if tr.phase() != Phase::Phase2 {
        return Err(Error::msg("--compare-sampler applies to phase2"));
    }
    let batch = source.batch(tr.step)?;
    let c = sampler_comparison(tr, &batch)?;
    println!(
        "phase-2 step: {:.3} s; sampler on the same batch: {:.3} s ({} transformer passes); the phase-2 step is {:.1}x faster",
        c.step_seconds,
        c.sampler_seconds,
        c.passes,
        c.ratio()
    );
    Ok(RunSummary {
        step: tr.step,
        steps_run: 1,
        seconds: c.step_seconds,
        last_terms: Vec::new(),
        checkpoint: None,
        final_weights: None,
        stopped_early: true,
    })
}

/// The binary's entry: installs a Ctrl-C handler (first press: checkpoint and stop after the
/// current step; second press: exit at once), runs, and prints the summary.
pub fn main(args: &TrainArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (a checkpoint will be written); press Ctrl-C again to quit at once");
    })
    .map_err(|e| Error::msg(format!("cannot install the Ctrl-C handler: {e}")))?;
    let s = run(args, Some(stop))?;
    if s.steps_run > 0 && !args.compare_sampler {
        let terms: Vec<String> = s
            .last_terms
            .iter()
            .map(|(n, v)| format!("{n}={v:.5}"))
            .collect();
        println!(
            "{} steps in {:.1} s ({:.3} steps/s), step {}; last: {}",
            s.steps_run,
            s.seconds,
            s.steps_per_second(),
            s.step,
            terms.join(" ")
        );
    }
    if let Some(c) = &s.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    if let Some(w) = &s.final_weights {
        println!("weights: {}", w.display());
    }
    if s.stopped_early && !args.compare_sampler {
        println!(
            "stopped early; continue with --resume {}",
            s.checkpoint
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}
