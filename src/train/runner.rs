//! The training loop around `Trainer::train_step`: background batches, progress (step, losses,
//! steps/s and ETA over training time, `progress`), a CSV row of every loss per step (`losses.csv`), sample grids,
//! periodic and final checkpoints, and the two ways a run stops early:
//! * a NaN / Inf loss: the step's error names the step; nothing of that step was applied and no
//!   checkpoint is written, so the last checkpoint on disk is the last good state;
//! * a stop request (Ctrl-C in the CLI sets the flag): a checkpoint of the completed steps is
//!   written before returning.
//!
//! On resume the CSV keeps its rows of the steps before the checkpoint and drops later ones (a
//! killed run may have logged steps that the checkpoint does not contain).
//!
//! Data-parallel runs (`dist`): every rank runs this loop on its shard; only rank 0 writes (the
//! CSV, sample grids from its shard, checkpoints, the final weights) and draws the progress bar.
//! A stop request on any rank stops every rank after the same step.

use super::checkpoint;
use super::config::Phase;
use super::data::{Batch, BatchSource, Loader};
use super::dist;
use super::progress::{timed, train_rate, Progress, Writing};
use super::trainer::{StepOutput, Trainer};
use crate::error::{Error, Result};
use crate::io::image as img_io;
use crate::ops;
use crate::pipeline::inpaint::{inpaint, InpaintOptions};
use crate::tensor::Tensor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct RunOptions {
    pub out_dir: PathBuf,
    /// Show progress on stderr: a bar on a terminal, else a plain line every `progress_every`.
    pub progress: bool,
    /// Time between the plain progress lines of a stderr that is not a terminal.
    pub progress_every: Duration,
    /// Set from outside (Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
pub struct RunSummary {
    /// Steps completed in total (the global step reached).
    pub step: u64,
    /// Steps run by this call.
    pub steps_run: u64,
    /// Wall time of the whole call, the writing of samples and checkpoints included.
    pub seconds: f64,
    /// Of `seconds`: writing sample grids, and writing checkpoints and the final weights. The
    /// rates leave them out: they measure training, not how often `--sample-every` asks for a
    /// grid.
    pub sample_seconds: f64,
    pub checkpoint_seconds: f64,
    /// Steps after the first one and the training seconds they took (the first step carries the
    /// start-up: kernel compilation, allocations); None when fewer than two steps ran.
    pub after_first: Option<(u64, f64)>,
    pub last_terms: Vec<(&'static str, f32)>,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
    /// The final weights (`<phase>.safetensors`) when the run reached its end.
    pub final_weights: Option<PathBuf>,
    pub stopped_early: bool,
}

impl RunSummary {
    /// Steps per second of training time (`seconds` less the writing, `train_rate`).
    pub fn steps_per_second(&self) -> f64 {
        train_rate(self.steps_run, self.seconds, self.sample_seconds + self.checkpoint_seconds)
    }

    /// Steps per second after the first step (the steady rate), where two or more ran.
    pub fn steady_steps_per_second(&self) -> Option<f64> {
        self.after_first.map(|(steps, secs)| steps as f64 / secs.max(1e-9))
    }
}

/// Train until the configured end (`Trainer::end_step`), or a stop request.
pub fn run(
    tr: &mut Trainer,
    source: Arc<BatchSource>,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let end = tr.end_step();
    let start = tr.step;
    let lead = tr.comm.rank() == 0;
    let mut csv = if lead {
        std::fs::create_dir_all(&opts.out_dir)
            .map_err(|e| Error::msg(format!("{}: {e}", opts.out_dir.display())))?;
        Some(CsvLog::open(&opts.out_dir.join("losses.csv"), &csv_columns(tr.phase()), start)?)
    } else {
        None
    };
    // indicatif draws nothing on a stderr that is not a terminal (a log file, a pipe): there the
    // progress goes as plain lines instead, or a long run says nothing until it ends.
    let terminal = std::io::stderr().is_terminal();
    let show = opts.progress && lead;
    let mut progress = Progress::new(show && terminal, (show && !terminal).then_some(opts.progress_every), start, end);
    let mut loader = Loader::start(source, start, end, tr.cfg.prefetch);
    let mut last_ckpt = checkpoint::list(&opts.out_dir).pop();
    let mut last_terms = Vec::new();
    let t0 = Instant::now();
    let mut writing = Writing::default();
    // When the first step ended and the writing time until then (for the steady rate).
    let mut first_done: Option<(Instant, Duration)> = None;
    let mut stopped_early = false;
    while tr.step < end {
        let asked = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));
        if dist::any(&*tr.comm, asked)? {
            stopped_early = true;
            break;
        }
        let batch = loader.next_batch()?;
        let step = tr.step;
        let (lr, lr_d) = (tr.gen.lr(), tr.dis.as_ref().map(|d| d.lr()));
        let out = step_on_pool(tr, &batch).map_err(|e| {
            let keep = last_ckpt
                .as_ref()
                .map(|p| format!("the last good checkpoint is {}", p.display()))
                .unwrap_or_else(|| "no checkpoint was written yet".into());
            Error::msg(format!("training failed at step {step}: {e}; {keep}"))
        })?;
        first_done.get_or_insert_with(|| (Instant::now(), writing.total()));
        if let Some(csv) = csv.as_mut() {
            csv.row(step, batch.epoch, lr, lr_d, &out.terms)?;
        }
        progress.update(tr.step, &out.terms, writing.total());
        if lead && tr.cfg.sample_every > 0 && tr.step.is_multiple_of(tr.cfg.sample_every) {
            let path = opts
                .out_dir
                .join("samples")
                .join(format!("step_{:08}.png", tr.step));
            timed(&mut writing.samples, || write_samples(tr, &batch, out.preview.as_ref(), &path))?;
        }
        last_terms = out.terms;
        if tr.cfg.checkpoint_every > 0
            && tr.step.is_multiple_of(tr.cfg.checkpoint_every)
            && tr.step < end
        {
            last_ckpt = Some(timed(&mut writing.checkpoints, || save_checkpoint(tr, &opts.out_dir, lead))?);
        }
    }
    let after_first = first_done
        .map(|(t, written)| (tr.step - start - 1, t.elapsed().saturating_sub(writing.total().saturating_sub(written)).as_secs_f64()))
        .filter(|&(steps, _)| steps > 0);
    drop(loader);
    progress.finish();
    if tr.step > start || last_ckpt.is_none() || stopped_early {
        last_ckpt = Some(timed(&mut writing.checkpoints, || save_checkpoint(tr, &opts.out_dir, lead))?);
    }
    let final_weights = if tr.step >= end && lead {
        let path = opts
            .out_dir
            .join(format!("{}.safetensors", tr.phase().name()));
        timed(&mut writing.checkpoints, || tr.model.save(&path))?;
        Some(path)
    } else {
        None
    };
    Ok(RunSummary {
        step: tr.step,
        steps_run: tr.step - start,
        seconds: t0.elapsed().as_secs_f64(),
        sample_seconds: writing.samples.as_secs_f64(),
        checkpoint_seconds: writing.checkpoints.as_secs_f64(),
        after_first,
        last_terms,
        checkpoint: last_ckpt,
        final_weights,
        stopped_early,
    })
}

/// Rank 0 writes the checkpoint; the other ranks note where it goes (for their error messages).
fn save_checkpoint(tr: &Trainer, out_dir: &Path, lead: bool) -> Result<PathBuf> {
    if lead {
        checkpoint::save(tr, out_dir)
    } else {
        Ok(checkpoint::dir_for(out_dir, tr.step))
    }
}

/// The columns of `losses.csv` before the phase's terms (docs/TRAINING.md describes them all).
pub const CSV_LEAD_COLUMNS: [&str; 4] = ["step", "epoch", "lr", "lr_discriminator"];

/// Every column of a phase's `losses.csv`, in order: `CSV_LEAD_COLUMNS`, then the phase's terms
/// (`Trainer::terms_of`).
pub fn csv_columns(phase: Phase) -> Vec<&'static str> {
    CSV_LEAD_COLUMNS.iter().copied().chain(Trainer::terms_of(phase)).collect()
}

/// `losses.csv`: step, epoch, lr of each optimiser, then the phase's terms.
struct CsvLog {
    file: std::fs::File,
}

impl CsvLog {
    fn open(path: &Path, columns: &[&str], resume_step: u64) -> Result<CsvLog> {
        let err = |e: std::io::Error| Error::msg(format!("{}: {e}", path.display()));
        let header = columns.join(",");
        let mut kept = vec![header.clone()];
        if resume_step > 0 {
            if let Ok(text) = std::fs::read_to_string(path) {
                let mut lines = text.lines();
                if lines.next() == Some(header.as_str()) {
                    kept.extend(
                        lines
                            .filter(|l| {
                                l.split(',')
                                    .next()
                                    .and_then(|s| s.parse::<u64>().ok())
                                    .is_some_and(|s| s < resume_step)
                            })
                            .map(String::from),
                    );
                }
            }
        }
        // The kept rows replace the file atomically (a crash here keeps the old log), then the
        // steps append to it.
        crate::io::atomic::write_atomic(path, format!("{}\n", kept.join("\n")).as_bytes()).map_err(|e| Error::msg(e.to_string()))?;
        let file = std::fs::OpenOptions::new().append(true).open(path).map_err(err)?;
        Ok(CsvLog { file })
    }

    fn row(
        &mut self,
        step: u64,
        epoch: u64,
        lr: f64,
        lr_d: Option<f64>,
        terms: &[(&str, f32)],
    ) -> Result<()> {
        let values: Vec<String> = terms.iter().map(|(_, v)| format!("{v}")).collect();
        let lr_d = lr_d.map(|l| format!("{l}")).unwrap_or_default();
        writeln!(self.file, "{step},{epoch},{lr},{lr_d},{}", values.join(","))
            .map_err(|e| Error::msg(format!("losses.csv: {e}")))
    }
}

/// One image of a batch as [3, S, S].
fn pick(t: &Tensor, i: usize) -> Result<Tensor> {
    let s = t.shape();
    t.narrow(0, i, 1)?.reshape(&s[1..])?.contiguous()
}

/// A contact sheet for the current batch: phase 1a rows = (encoder input, decoder reference,
/// reconstruction); other phases = (masked input, inpainting by the full pipeline, ground truth)
/// for the first image, plus the decoded training output in phase 3.
fn write_samples(tr: &Trainer, batch: &Batch, preview: Option<&Tensor>, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    }
    let masked = ops::binary::mul(&batch.images, &batch.masks)?;
    let mut cells = Vec::new();
    let columns = if tr.phase() == Phase::Phase1a {
        let rec = preview.ok_or_else(|| Error::msg("phase 1a produced no reconstruction"))?;
        for i in 0..batch.images.shape()[0] {
            cells.extend([pick(&batch.images, i)?, pick(&masked, i)?, pick(rec, i)?]);
        }
        3
    } else {
        let (image, mask) = (pick(&batch.images, 0)?, pick(&batch.masks, 0)?);
        let result = inpaint(
            &tr.model,
            &image,
            &mask,
            &InpaintOptions {
                seed: tr.cfg.seed,
                ..Default::default()
            },
            None,
            &mut |_, _| {},
        )?;
        cells.extend([pick(&masked, 0)?, result.images[0].clone()]);
        if let Some(p) = preview {
            cells.push(pick(p, 0)?);
        }
        cells.push(image);
        cells.len()
    };
    // The cells are written from host copies (the preview and the inpainting may live on the
    // training device).
    let cells = cells
        .iter()
        .map(|c| c.to_device(&crate::Device::Cpu))
        .collect::<Result<Vec<_>>>()?;
    img_io::save_contact_sheet(&cells, columns, path).map_err(|e| Error::msg(e.to_string()))
}

/// One training step, on a pool thread when this process is the only rank (`host_threads`; the
/// wait for the batch stays outside). With several ranks the step waits inside for the others'
/// gradients, and ranks that share a pool (threads of one process, as the tests run them) could
/// deadlock there: a pool thread waiting in a parallel op may take up another rank's step, which
/// then waits for the first. So a group's steps run where they are called.
fn step_on_pool(tr: &mut Trainer, batch: &Batch) -> Result<StepOutput> {
    if tr.comm.world() > 1 {
        tr.train_step(batch)
    } else {
        crate::host_threads::on_pool(|| tr.train_step(batch))
    }
}
