//! `fdm train phase1a|phase1b|phase2|phase3 --data DIR --preset tiny|paper ...`: builds the
//! configuration, model, data and trainer, then runs the loop (`runner::run`).
//!
//! * `--config FILE`: a JSON `TrainConfig` instead of the preset (its phase must match);
//! * `--init WEIGHTS`: start from these model weights; phases 1b, 2 and 3 require it (each
//!   starts from the previous phase's `<phase>.safetensors`), phase 1a starts fresh without it;
//! * `--resume CKPT`: a checkpoint directory or a run folder (its newest checkpoint). The
//!   checkpoint's configuration is used; only `--steps`, `--sample-every` and
//!   `--checkpoint-every` may change (they do not alter the arithmetic). `--config`, `--batch`,
//!   `--seed`, `--masks` and `--vgg` may repeat the checkpoint's values; a different value is an
//!   error naming it, as is `--init` and a `--steps` the run has already reached. A `--data`
//!   folder whose photos differ from the checkpoint's (`fingerprint`) is an error unless
//!   `--allow-data-change`, with which photos giving another number of batches per epoch start
//!   the next epoch from the beginning of their order (`checkpoint::resume_origin`);
//! * `--steps N`: stop at global step N (the schedule still spans the nominal epochs);
//! * `--device auto|cpu|cuda|cuda-emu` (as `fdm inpaint`, `cli::device`): where the step runs;
//!   `auto` = a usable CUDA GPU, else the CPU. Checkpoints hold host copies and resume on any
//!   device (`--resume` may change `--device`);
//! * `--gpus N` (N > 1): data-parallel training on N CUDA GPUs over NCCL, one process per GPU;
//!   `--ranks N`: N processes with the host (TCP) transport, each on `--device` (with `cuda`,
//!   rank r on GPU r). The command starts the N processes (`launch`), which find themselves by
//!   the hidden `--rank R --dist-addr ADDR`; `--batch` is the global batch, split over the ranks
//!   (`dist`); `--dist-timeout SECS` (1800) bounds every wait of a rank for the others;
//! * `--compare-sampler` (phase 2): time one phase-2 step against sampling the same batch with
//!   the transformer, print the ratio and exit without writing a checkpoint;
//! * `--inject-nan-at STEP` (hidden): a test hook that makes that step's loss NaN (only on rank
//!   `--inject-nan-rank R` when given).

use super::checkpoint::{self, CheckpointState};
use super::config::{Phase, TrainConfig};
use super::data::{BatchSource, DataOrigin, Dataset};
use super::dist::{self, Communicator};
use super::fingerprint;
use super::launch::{self, Transport};
use super::losses::{VggHook, VggLoader};
use super::phase2::sampler_comparison;
use super::progress::summary_line;
use super::runner::{run as run_loop, RunOptions, RunSummary};
use super::signals::{exit_if_stopped, handle_term_and_hangup, is_second_press, request_stop, SIGINT};
use super::trainer::Trainer;
use crate::cli::device::{pick_device, DeviceArg};
use crate::io::WeightsError;
use crate::error::{Error, Result};
use crate::model::inpainting::InpaintingModel;
use crate::model::ModelConfig;
use crate::Device;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `model_preset` value that takes the architecture from the `--init` file's own config instead
/// of a named preset: for weights of a custom shape, e.g. a transformer deepened by
/// `weights-tools/grow_depth.py`.
pub const MODEL_FROM_INIT: &str = "init";

/// A weights file of another architecture than the preset: say how to train it as it is.
fn with_init_hint(e: Error, preset: &str) -> Error {
    match &e {
        Error::Weights(w) if matches!(**w, WeightsError::ConfigMismatch { .. }) => Error::msg(format!(
            "{e}; to train weights of their own architecture instead of the `{preset}` preset, \
             set \"model_preset\": \"{MODEL_FROM_INIT}\" in the --config file"
        )),
        _ => e,
    }
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// phase1a | phase1b | phase2 | phase3 (phase1b, phase2 and phase3 need --init: the previous
    /// phase's final weights).
    pub phase: String,
    /// Folder of training photos (PNG, JPEG, WebP, BMP, TIFF, GIF; searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Training and model preset: tiny or paper.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    /// JSON TrainConfig replacing the preset's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output folder (checkpoints, losses.csv, samples, final weights); default runs/<phase>, or
    /// with --resume the resumed run's folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Model weights to start from: the previous phase's <phase>.safetensors (required by phase1b,
    /// phase2 and phase3; phase1a starts fresh without it).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue from a checkpoint directory or a run folder.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// With --resume: continue even though --data holds other photos than the checkpoint's run
    /// trained on (the resumed run then differs from an uninterrupted one; with another number of
    /// batches per epoch, the next epoch starts from the beginning of the new data order).
    #[arg(long, requires = "resume")]
    pub allow_data_change: bool,
    /// Stop at this global step; the schedule still spans the nominal epochs [default: the
    /// --config file's or the resumed checkpoint's max_steps if set, else the end of the nominal
    /// epochs].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Batch size (the global batch: with --gpus / --ranks it is split over the ranks)
    /// [default: the --config file's or the resumed checkpoint's batch_size, else the preset's:
    /// tiny 2, paper 10 (phase1b: 2)].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of the data order, the augmentation, the masks and fresh weights [default: the
    /// preset's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write a sample grid (samples/step_<N>.png) every N steps; 0: never [default: the --config
    /// file's or the resumed checkpoint's sample_every, else the preset's 0: no sample grids].
    #[arg(long)]
    pub sample_every: Option<u64>,
    /// Write a checkpoint every N steps, besides the one every run writes when it ends or is
    /// stopped; 0: only that one [default: the --config file's or the resumed checkpoint's
    /// checkpoint_every, else the preset's: tiny 200, paper 1000].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Folder of mask PNGs (white = hole) used as the "provided" masks.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// VGG-19 weights for the perceptual and style losses of phases 1a and 3 [default: the
    /// --config file's or the resumed checkpoint's vgg_weights, else none: both losses are off,
    /// a deviation from the paper].
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Where training runs: auto (a usable CUDA GPU, else the CPU), cpu, cuda, or cuda-emu (the
    /// CUDA kernels on a CPU emulator: for checking, very slow).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Train data-parallel on this many CUDA GPUs (one process per GPU, gradients averaged with
    /// NCCL; needs N usable GPUs and the NCCL library). The global --batch is split over them.
    #[arg(long, default_value_t = 1)]
    pub gpus: usize,
    /// Train data-parallel in this many processes with the host (TCP) transport, each on
    /// --device (cpu: all on the CPU; cuda: rank r on GPU r). The global --batch is split over
    /// them.
    #[arg(long)]
    pub ranks: Option<usize>,
    /// Seconds a data-parallel rank waits for the others (to connect, or to reach the next
    /// collective) before the run stops with an error [default: 1800].
    #[arg(long)]
    pub dist_timeout: Option<u64>,
    /// Set by the launcher: this process is rank R of the --ranks / --gpus group.
    #[arg(long, hide = true)]
    pub rank: Option<usize>,
    /// Set by the launcher: the address of the group's hub.
    #[arg(long, hide = true)]
    pub dist_addr: Option<String>,
    /// Start a fresh run in an --out folder that already holds one, deleting its checkpoints,
    /// final weights, loss log and sample grids first (without it that is an error, so a repeated command
    /// never destroys a run).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// No progress bar (nor progress lines).
    #[arg(long)]
    pub no_progress: bool,
    /// Seconds between progress lines when stderr is not a terminal (a log file, a pipe), where
    /// no bar is drawn [default: 30].
    #[arg(long, value_name = "SECS")]
    pub progress_every: Option<f64>,
    /// Phase 2: time one step against the sampler on the same batch and exit.
    #[arg(long)]
    pub compare_sampler: bool,
    /// Test hook: the loss of this step becomes NaN.
    #[arg(long, hide = true)]
    pub inject_nan_at: Option<u64>,
    /// Test hook: only this rank injects the NaN.
    #[arg(long, hide = true)]
    pub inject_nan_rank: Option<usize>,
}

/// The VGG-19 backbone loader of this build, if any (`model::vgg` plugs in here).
pub fn vgg_loader() -> Option<VggLoader> {
    Some(super::vgg::load_hook)
}

fn configure(args: &TrainArgs, phase: Phase) -> Result<TrainConfig> {
    let mut cfg = match &args.config {
        Some(path) => read_config(path, phase)?,
        None => TrainConfig::preset(phase, &args.preset)?,
    };
    apply_run_options(&mut cfg, args);
    cfg.validate()?;
    Ok(cfg)
}

/// The `--config` file, which must be a config of `phase`.
fn read_config(path: &Path, phase: Phase) -> Result<TrainConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::msg(format!("--config {}: {e}", path.display())))?;
    match TrainConfig::declared_phase(&text) {
        Some(found) if found != phase => Err(Error::msg(format!(
            "--config {} is a {} config, not {}",
            path.display(),
            found.name(),
            phase.name()
        ))),
        _ => TrainConfig::from_json(&text)
            .map_err(|e| Error::msg(format!("--config {}: {e}", path.display()))),
    }
}

/// `--batch`, `--seed`, `--masks` and `--vgg` over the preset's or the config file's values.
fn apply_run_options(cfg: &mut TrainConfig, args: &TrainArgs) {
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
}

/// Config fields that only steer the loop: `--steps`, `--sample-every` and `--checkpoint-every`
/// may change them on resume (`apply_loop_options`).
const LOOP_FIELDS: [&str; 3] = ["max_steps", "sample_every", "checkpoint_every"];

/// Every leaf of a JSON value with its dotted path (`generator.warmup_lr`).
fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&path, v, out);
            }
        }
        _ => out.push((prefix.to_string(), v.to_string())),
    }
}

/// The option of the command line that set a config field, if one did.
fn option_of(field: &str, args: &TrainArgs) -> Option<&'static str> {
    match field {
        "batch_size" if args.batch.is_some() => Some("--batch"),
        "seed" if args.seed.is_some() => Some("--seed"),
        "masks.mask_dir" if args.masks.is_some() => Some("--masks"),
        "vgg_weights" if args.vgg.is_some() => Some("--vgg"),
        _ => None,
    }
}

/// `--resume` continues the checkpoint's configuration. `--config`, `--batch`, `--seed`,
/// `--masks` and `--vgg` may repeat it (so the command line of the run, with `--resume` added,
/// works); a value that differs is an error naming the option and both values. Returns the
/// loop fields of a `--config` file, which apply like `--steps` and friends.
fn check_resume_options(args: &TrainArgs, phase: Phase, had: &TrainConfig) -> Result<TrainConfig> {
    if let Some(init) = &args.init {
        return Err(Error::msg(format!(
            "--init {}: a resumed run continues from its checkpoint's own weights; drop --init",
            init.display()
        )));
    }
    let mut given = match &args.config {
        Some(path) => read_config(path, phase)?,
        None => had.clone(),
    };
    apply_run_options(&mut given, args);
    let json = |c: &TrainConfig| serde_json::to_value(c).expect("a TrainConfig always serialises");
    let (mut want, mut have) = (Vec::new(), Vec::new());
    leaves("", &json(&given), &mut want);
    leaves("", &json(had), &mut have);
    let have: std::collections::BTreeMap<String, String> = have.into_iter().collect();
    let absent = "absent".to_string();
    let mut differ = Vec::new();
    let mut in_file = Vec::new();
    for (field, a) in &want {
        let b = have.get(field).unwrap_or(&absent);
        if a == b || LOOP_FIELDS.contains(&field.as_str()) {
            continue;
        }
        match option_of(field, args) {
            Some(opt) => differ.push(format!("{opt} {a} (the checkpoint's run has {b})")),
            None => in_file.push(format!("{field} {a} (the checkpoint's run has {b})")),
        }
    }
    if let (Some(path), false) = (&args.config, in_file.is_empty()) {
        differ.push(format!("--config {}: {}", path.display(), in_file.join(", ")));
    }
    if !differ.is_empty() {
        return Err(Error::msg(format!(
            "--resume continues the checkpoint's configuration, which these options change: {}",
            differ.join("; ")
        )));
    }
    Ok(given)
}

/// A resumed run must have steps left: `--steps` at or below the checkpoint's step would only
/// rewrite the checkpoint.
fn check_steps_left(cfg: &TrainConfig, state: &CheckpointState, dir: &Path) -> Result<()> {
    match cfg.max_steps {
        Some(n) if n <= state.step => Err(Error::msg(format!(
            "{} is already at step {} (--steps {n}): pass a larger --steps to continue it",
            dir.display(),
            state.step
        ))),
        _ => Ok(()),
    }
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

fn load_vgg(cfg: &TrainConfig, rank: usize) -> Result<Option<Box<dyn VggHook>>> {
    match (&cfg.vgg_weights, vgg_loader()) {
        (None, _) => {
            // Only phases 1a and 3 have image losses; a note about them in 1b or 2 is noise.
            let wanted = cfg.losses.perceptual != 0.0 || cfg.losses.style != 0.0;
            if rank == 0 && cfg.phase.has_discriminator() && wanted {
                eprintln!("note: no VGG weights given: the perceptual and style losses are off (deviation from spec §6.5)");
            }
            Ok(None)
        }
        (Some(path), Some(load)) => Ok(Some(load(path)?)),
        (Some(_), None) => Err(Error::msg("this build has no VGG-19 backbone for the perceptual/style losses; train without --vgg")),
    }
}

/// The configuration of the run (the checkpoint's when resuming, with its directory and state).
pub fn resolve_config(
    args: &TrainArgs,
    phase: Phase,
) -> Result<(TrainConfig, Option<(PathBuf, CheckpointState)>)> {
    let resumed = match &args.resume {
        Some(path) => {
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
        Some((_, state)) => {
            let given = check_resume_options(args, phase, &state.config)?;
            let mut cfg = state.config.clone();
            if args.config.is_some() {
                cfg.max_steps = given.max_steps;
                cfg.sample_every = given.sample_every;
                cfg.checkpoint_every = given.checkpoint_every;
            }
            cfg
        }
        None => configure(args, phase)?,
    };
    apply_loop_options(&mut cfg, args);
    if let Some((dir, state)) = &resumed {
        check_steps_left(&cfg, state, dir)?;
    }
    Ok((cfg, resumed))
}

/// The group this process trains in and its device: one process on `--device`, or rank
/// `--rank` of a `--ranks` / `--gpus` group (started by `launch::launch`).
fn join_group(args: &TrainArgs) -> Result<(Arc<dyn Communicator>, Device)> {
    let plan = launch::plan(args)?;
    match (plan, args.rank) {
        (None, None) => Ok((dist::single(), pick_device(args.device)?)),
        (None, Some(_)) => Err(Error::msg(
            "--rank is set by the launcher of a --ranks N / --gpus N run (N > 1)",
        )),
        (Some(plan), None) => {
            launch::preflight(args, &plan)?;
            Err(Error::msg(format!(
                "a data-parallel run of {} processes is started by the fdm binary (`fdm train ... --{} {}`); from code, call train::launch::launch with the path of the fdm executable",
                plan.world,
                if plan.transport == Transport::Nccl { "gpus" } else { "ranks" },
                plan.world
            )))
        }
        (Some(plan), Some(rank)) => {
            let addr = args.dist_addr.as_deref().ok_or_else(|| {
                Error::msg("--rank needs --dist-addr (both are set by the launcher)")
            })?;
            launch::join(&plan, rank, addr, launch::timeout(args), args.device)
        }
    }
}

/// `--out`, else the folder of the resumed run (the one holding its checkpoint, so a continued
/// run goes on where it was), else `runs/<phase>`.
pub(super) fn output_dir(args: &TrainArgs, phase: Phase, resumed_checkpoint: Option<&Path>) -> PathBuf {
    if let Some(out) = &args.out {
        return out.clone();
    }
    match resumed_checkpoint.and_then(Path::parent) {
        Some(run) if !run.as_os_str().is_empty() => run.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => PathBuf::from("runs").join(phase.name()),
    }
}

/// Build everything and train (or, with `--compare-sampler`, measure and return). A
/// `--ranks` / `--gpus` run must be started by `launch::launch`; this runs one of its ranks.
pub fn run(args: &TrainArgs, stop: Option<Arc<AtomicBool>>) -> Result<RunSummary> {
    let phase = Phase::parse(&args.phase)?;
    let progress_every = progress_interval(args)?;
    let (comm, device) = join_group(args)?;
    let (rank, world) = (comm.rank(), comm.world());
    let (cfg, resumed) = resolve_config(args, phase)?;
    let out_dir = output_dir(args, phase, resumed.as_ref().map(|(dir, _)| dir.as_path()));
    // Before the group's first collective, so no rank has written anything yet.
    if !args.compare_sampler {
        prepare_out_dir(&out_dir, args.out.is_some())?;
        if resumed.is_none() {
            clear_for_fresh_run(&out_dir, phase, args.overwrite, rank)?;
        }
    }
    let from_init = cfg.model_preset == MODEL_FROM_INIT;
    if let (None, Some(path)) = (&resumed, &args.init) {
        if !path.exists() {
            return Err(Error::msg(format!("--init {}: no such file (the weights to start from)", path.display())));
        }
    }
    let model = match (&resumed, &args.init) {
        (Some((dir, state)), _) => checkpoint::load_model(dir, state)?,
        (None, Some(path)) if from_init => InpaintingModel::load(path, None)?,
        (None, Some(path)) => InpaintingModel::load(path, Some(&ModelConfig::by_name(&cfg.model_preset)?))
            .map_err(|e| with_init_hint(e, &cfg.model_preset))?,
        (None, None) if from_init => {
            return Err(Error::msg(format!(
                "model_preset \"{MODEL_FROM_INIT}\" takes the architecture of the --init weights: pass --init <weights>"
            )))
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
    let mut model = model;
    model.to_device(&device)?;
    let dataset = Arc::new(Dataset::scan(&args.data, cfg.max_unreadable_fraction)?);
    if rank == 0 {
        note_data(&dataset, cfg.crop_size);
    }
    let fingerprint = fingerprint::of_dataset(&dataset)?;
    if let Some((_, state)) = &resumed {
        let note = fingerprint::check_resume(state.data.as_ref(), &fingerprint, &args.data, args.allow_data_change)?;
        if let (Some(note), 0) = (note, rank) {
            eprintln!("{note}");
        }
    }
    let images = dataset.len();
    let origin = match &resumed {
        Some((_, state)) => {
            let ipe = cfg.iterations_per_epoch(images);
            let (origin, note) = checkpoint::resume_origin(state, ipe, cfg.epochs, args.allow_data_change)?;
            if let (Some(note), 0) = (note, rank) {
                eprintln!("{note}");
            }
            origin
        }
        None => DataOrigin::default(),
    };
    let source = BatchSource::new(dataset, &cfg, model.cfg.codec.patch)?.with_origin(origin).shard(rank, world)?;
    let source = Arc::new(source);
    let vgg = load_vgg(&cfg, rank)?;
    let mut tr = Trainer::new(cfg, model, images, vgg)?;
    tr.set_data_origin(origin);
    tr.data_fingerprint = Some(fingerprint);
    if args.inject_nan_rank.is_none_or(|r| r == rank) {
        tr.inject_nan_at = args.inject_nan_at;
    }
    if let Some((dir, state)) = &resumed {
        checkpoint::restore(&mut tr, dir, state)?;
    }
    tr.comm = comm;
    dist::sync_start(&mut tr)?;
    if args.compare_sampler {
        return compare(&mut tr, &source);
    }
    if rank == 0 {
        let group = match world {
            1 => String::new(),
            n => format!(" x {n} ranks ({} samples each)", tr.cfg.batch_size / n),
        };
        eprintln!(
            "{} on {}{group}: {images} photos, {} steps per epoch, steps {}..{}, schedule over {} steps, output {}",
            phase.name(),
            tr.device().name(),
            tr.iters_per_epoch,
            tr.step,
            tr.end_step(),
            tr.t_max(),
            out_dir.display()
        );
    }
    run_loop(
        &mut tr,
        source,
        &RunOptions {
            out_dir,
            progress: !args.no_progress,
            progress_every,
            stop,
        },
    )
}

/// The output folder exists (created if need be) and is a folder: checked before anything is
/// built, so a bad `--out` is one clear error rather than an I/O error after the run's header.
fn prepare_out_dir(out_dir: &Path, from_option: bool) -> Result<()> {
    let name = if from_option { "--out" } else { "the output folder" };
    crate::io::atomic::check_output_folder(out_dir, name).map_err(|e| Error::msg(e.to_string()))
}

/// The sample grids a run wrote (`samples/step_<N>.png`), and nothing else in that folder.
fn sample_grids(out_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out_dir.join("samples")) else {
        return Vec::new();
    };
    let mut grids: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("step_") && name.ends_with(".png") && p.is_file()
        })
        .collect();
    grids.sort();
    grids
}

/// `--progress-every` (30 s unless given).
fn progress_interval(args: &TrainArgs) -> Result<Duration> {
    match args.progress_every {
        None => Ok(Duration::from_secs(30)),
        Some(s) if (0.0..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(Error::msg(format!("--progress-every {s}: must be a number of seconds >= 0"))),
    }
}

/// What the scan found that the run handles on its own: skipped files, and photos enlarged to
/// reach the crop (upscaled pixels train on blur, so a user should know how many there are).
fn note_data(dataset: &Dataset, crop: usize) {
    if let Some(note) = dataset.skipped_note() {
        eprintln!("{note}");
    }
    let small = dataset.smaller_than(crop);
    if small > 0 {
        eprintln!(
            "note: {small} of {} photos are smaller than the {crop} x {crop} crop and are enlarged to it",
            dataset.len()
        );
    }
}

/// What a previous run left in `out_dir`: its checkpoints, the phase's final weights, its loss log.
fn previous_run(out_dir: &Path, phase: Phase) -> Vec<PathBuf> {
    let mut found = checkpoint::list(out_dir);
    found.extend(
        [format!("{}.safetensors", phase.name()), "losses.csv".to_string()]
            .iter()
            .map(|f| out_dir.join(f))
            .filter(|p| p.exists()),
    );
    found
}

/// The phase of the run in `out_dir`: its newest checkpoint's, else that of the final weights
/// it holds (None: only a loss log, whose phase nothing records).
fn phase_found(out_dir: &Path) -> Option<Phase> {
    let newest = checkpoint::list(out_dir).pop();
    if let Some(state) = newest.and_then(|dir| checkpoint::read_state(&dir).ok()) {
        return Some(state.config.phase);
    }
    [Phase::Phase1a, Phase::Phase1b, Phase::Phase2, Phase::Phase3]
        .into_iter()
        .find(|p| out_dir.join(format!("{}.safetensors", p.name())).is_file())
}

/// The error for a fresh run into a folder holding `names` of another run.
fn occupied(out_dir: &Path, phase: Phase, names: &[String]) -> Error {
    let dir = out_dir.display();
    let what = names.join(", ");
    match phase_found(out_dir) {
        Some(found) if found != phase => Error::msg(format!(
            "{dir} already holds a {} run ({what}): train {} into another --out, or pass --overwrite to delete it and start again",
            found.name(),
            phase.name()
        )),
        found => Error::msg(format!(
            "{dir} already holds a {} run ({what}): continue it with --resume {dir}, train into another --out, or pass --overwrite to delete it and start again",
            found.unwrap_or(phase).name()
        )),
    }
}

/// A fresh run must not mix with (or overwrite) another run in its folder: an error naming what
/// is there, unless `overwrite`, which deletes it (rank 0 only). Every rank checks before the
/// group's first collective, so none sees what another has started to write.
fn clear_for_fresh_run(out_dir: &Path, phase: Phase, overwrite: bool, rank: usize) -> Result<()> {
    let found = previous_run(out_dir, phase);
    if found.is_empty() {
        return Ok(());
    }
    if !overwrite {
        let names: Vec<String> = found
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        return Err(occupied(out_dir, phase, &names));
    }
    if rank == 0 {
        // The old run's sample grids go too: kept, they would pass for the new run's.
        for p in found.iter().chain(&sample_grids(out_dir)) {
            let removed = if p.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) };
            removed.map_err(|e| Error::msg(format!("--overwrite: deleting {}: {e}", p.display())))?;
        }
    }
    Ok(())
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
        sample_seconds: 0.0,
        checkpoint_seconds: 0.0,
        after_first: None,
        last_terms: Vec::new(),
        checkpoint: None,
        final_weights: None,
        stopped_early: true,
    })
}

/// The binary's entry: installs a Ctrl-C handler (first press: checkpoint and stop after the
/// current step; second press: exit at once) and the SIGTERM and SIGHUP ones
/// (`signals::handle_term_and_hangup`), runs, and prints the summary. With `--ranks N` /
/// `--gpus N` (N > 1) it starts the N rank processes instead (`launch::main`), which forwards a
/// Ctrl-C, SIGTERM or SIGHUP to each of them; they stop together.
pub fn main(args: &TrainArgs) -> Result<()> {
    if args.rank.is_none() {
        if let Some(plan) = launch::plan(args)? {
            return launch::main(args, &plan);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut first_press: Option<Instant> = None;
    ctrlc::set_handler(move || match first_press {
        Some(at) if is_second_press(at.elapsed()) => std::process::exit(130),
        Some(_) => {} // the same interrupt delivered twice (see is_second_press)
        None => {
            first_press = Some(Instant::now());
            request_stop(SIGINT, &flag, "press Ctrl-C again to quit at once");
        }
    })
    .map_err(|e| Error::msg(format!("cannot install the Ctrl-C handler: {e}")))?;
    handle_term_and_hangup(stop.clone())?;
    let s = run(args, Some(stop))?;
    if args.rank.is_some_and(|r| r > 0) {
        return Ok(()); // rank 0 reports for the group
    }
    // Not println!, which panics when the write fails: after a hangup the terminal may be gone,
    // and the exit status must still say what happened (the checkpoint is already written).
    let say = |line: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    if s.steps_run > 0 && !args.compare_sampler {
        say(summary_line(&s));
    }
    if let Some(c) = &s.checkpoint {
        say(format!("checkpoint: {}", c.display()));
    }
    if let Some(w) = &s.final_weights {
        say(format!("weights: {}", w.display()));
    }
    if s.stopped_early && !args.compare_sampler {
        say(format!(
            "stopped early; continue with --resume {}",
            s.checkpoint
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
        if args.rank.is_none() {
            exit_if_stopped(); // a rank exits 0: its launcher reports the group's status
        }
    }
    Ok(())
}
