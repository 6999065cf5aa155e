//! `fdm inpaint`: photos + masks in, `<out>/<stem>_<k>.png` samples and a contact sheet
//! `<out>/<stem>_sheet.png` out. Two ways to name the inputs: images with one `--mask` for all,
//! or `--image-dir` with a paired `--mask-dir` (same file stem; the official `inference.py`
//! layout), which skips samples whose output already exists, so an interrupted run resumes.

use crate::device::Device;
use crate::io::image::{hole_fraction, load_image, load_mask, require_hole, save_contact_sheet, save_png, save_png16, thumbnail};
use crate::metrics::folders::{list_images, SHEET_SUFFIX};
use crate::model::inpainting::{InpaintingModel, Precision};
use crate::pipeline::inpaint::{check_replay_tokens, InpaintOptions};
use crate::pipeline::photo::{inpaint_photo_batched, visible_patches, PhotoResult};
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--precision f32|bf16`: how the transformer's Linear weights are stored for inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// f32 weights (the paper's numerics).
    #[default]
    F32,
    /// bf16 weights: half the transformer's weight memory; each Linear's input and the
    /// attention's q, k, v rounded to bf16, f32 sums (tensor cores on CUDA; nearly the same
    /// numerics on the CPU, no speed-up there).
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

/// One image to inpaint and the mask that goes with it.
pub struct Job {
    pub image: PathBuf,
    pub mask: PathBuf,
}

pub struct InpaintRun {
    pub jobs: Vec<Job>,
    pub out: PathBuf,
    pub opts: InpaintOptions,
    /// Samples per batched forward; more samples run in several batches (`inpaint_photo_batched`).
    pub batch_size: usize,
    pub invert_mask: bool,
    pub save_tokens: bool,
    /// Token files to replay, one per sample (only with a single image).
    pub replay: Vec<PathBuf>,
    /// Skip samples whose output file exists (folder mode).
    pub resume: bool,
    /// Resize a mask of another size than its image (with a note) instead of refusing it.
    pub resize_mask: bool,
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into())
}

/// Outputs are named by the photo's file stem: two photos with one stem (`a/x.jpg b/x.jpg`,
/// `x.png x.jpg`) would overwrite each other's samples, so that is an error before any work.
fn check_distinct_names(jobs: &[Job]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &Path> = std::collections::HashMap::new();
    for job in jobs {
        if let Some(prev) = seen.insert(stem(&job.image), &job.image) {
            bail!(
                "{} and {} would write the same outputs ({}_<k>.png): rename one or run them into different --out folders",
                prev.display(),
                job.image.display(),
                stem(&job.image)
            );
        }
    }
    Ok(())
}

/// Pair `<image-dir>/<stem>.*` with `<mask-dir>/<stem>.*` (any readable format); unpaired images are an error.
pub fn paired_jobs(image_dir: &Path, mask_dir: &Path) -> Result<Vec<Job>> {
    let images = list_images(image_dir, "image")?;
    let masks: std::collections::BTreeMap<String, PathBuf> = list_images(mask_dir, "mask")?.into_iter().collect();
    let missing: Vec<&str> = images.iter().filter(|(s, _)| !masks.contains_key(s)).map(|(s, _)| s.as_str()).collect();
    if !missing.is_empty() {
        bail!("no mask in {} for: {}", mask_dir.display(), missing.join(", "));
    }
    Ok(images.into_iter().map(|(s, image)| Job { mask: masks[&s].clone(), image }).collect())
}

/// Read a token file of spec §5.6 (whitespace-separated integers).
pub fn read_tokens(path: &Path, expected: usize) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading token file {}", path.display()))?;
    let tokens: Vec<u32> = text
        .split_whitespace()
        .map(|w| w.parse::<u32>().with_context(|| format!("{}: `{w}` is not a token index", path.display())))
        .collect::<Result<_>>()?;
    if tokens.len() != expected {
        bail!("{}: {} tokens, expected {expected}", path.display(), tokens.len());
    }
    Ok(tokens)
}

/// Check each replayed token file against the image's hole before anything is drawn: the
/// pipeline makes the same check per batch, but knows no file names, and with several token
/// files the error must say which one holds the bad token.
fn check_token_files(model: &InpaintingModel, paths: &[PathBuf], tokens: &[Vec<u32>], mask: &Tensor) -> Result<()> {
    let visible = visible_patches(model, mask)?;
    let vocab = model.cfg.transformer.vocab as u32;
    for (path, t) in paths.iter().zip(tokens) {
        check_replay_tokens(t, &visible, vocab, vocab).with_context(|| format!("token file {}", path.display()))?;
    }
    Ok(())
}

/// Write tokens in the official format: space-separated, a trailing space, a newline.
pub fn write_tokens(path: &Path, tokens: &[u32]) -> Result<()> {
    let mut s: String = tokens.iter().map(|t| format!("{t} ")).collect();
    s.push('\n');
    Ok(crate::io::atomic::write_atomic(path, s.as_bytes())?)
}

/// The input with holes painted white, for the contact sheet.
fn holes_shown(image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (img, m) = (image.host_f32()?, mask.host_f32()?);
    let mut v = img.into_owned();
    // One mask plane per channel plane.
    v.par_chunks_mut(m.len().max(1)).for_each(|plane| {
        plane.iter_mut().zip(m.iter()).filter(|(_, &m)| m < 0.5).for_each(|(x, _)| *x = 255.0);
    });
    Ok(Tensor::from_vec(v, image.shape())?)
}

/// Samples shown on a contact sheet (all samples are written as files), and its columns: up to
/// six samples stay on one row with the input and the mask, as before batching existed.
const SHEET_SAMPLES: usize = 16;
const SHEET_COLUMNS: usize = 8;
/// Longest side of a sheet's pictures: a sheet of a 12-megapixel photo stays a preview.
const SHEET_TILE: usize = 1024;

/// Write one batch's samples (`<stem>_<k>.png`, with --save-tokens `<stem>_<k>.txt`), `first`
/// being the index of its first sample. A photo of more than 8 bits per channel (`deep`) gets
/// 16-bit PNGs, so that its known pixels keep their values.
/// The samples are encoded in parallel: a PNG encoder runs on one thread, and a 12-megapixel
/// sample takes it about 0.2 s.
fn save_batch(run: &InpaintRun, name: &str, outputs: &[PathBuf], first: usize, batch: &PhotoResult, deep: bool) -> Result<()> {
    batch.images.par_iter().enumerate().try_for_each(|(i, img)| {
        let k = first + i;
        if deep {
            save_png16(img, &outputs[k])?;
        } else {
            save_png(img, &outputs[k])?;
        }
        if run.save_tokens {
            write_tokens(&run.out.join(format!("{name}_{k}.txt")), &batch.tokens[i])?;
        }
        Ok(())
    })
}

/// An error of this command as the pipeline's error type (its message chain kept).
fn fdm_error(e: &anyhow::Error) -> crate::error::Error {
    crate::error::Error::msg(format!("{e:#}"))
}

/// The mask as an RGB picture in the file convention (hole white).
fn mask_picture(mask: &Tensor) -> Result<Tensor> {
    let v: Vec<f32> = mask.host_f32()?.iter().map(|&m| if m < 0.5 { 255.0 } else { 0.0 }).collect();
    let n = v.len();
    let (h, w) = (mask.shape()[1], mask.shape()[2]);
    Ok(Tensor::from_vec(v.iter().cycle().take(3 * n).copied().collect(), &[3, h, w])?)
}

/// The job's mask at its image's size. A mask of another size is an error unless
/// `run.resize_mask`, which resizes it by nearest neighbour (PyTorch's rule, as `fdm reproduce`
/// resizes mask files; the mask stays binary) with a note:
/// a silently stretched mask could hide a mask paired with the wrong photo.
fn job_mask(run: &InpaintRun, job: &Job, image: &Tensor) -> Result<Tensor> {
    let mut mask = load_mask(&job.mask, run.invert_mask).with_context(|| format!("loading mask {}", job.mask.display()))?;
    let (ih, iw) = (image.shape()[1], image.shape()[2]);
    let (mh, mw) = (mask.shape()[1], mask.shape()[2]);
    if (mh, mw) != (ih, iw) {
        if !run.resize_mask {
            bail!(
                "mask {} is {mw}x{mh} but image {} is {iw}x{ih} (pass --resize-mask to resize the mask to the image)",
                job.mask.display(),
                job.image.display()
            );
        }
        eprintln!("note: mask {} resized from {mw}x{mh} to {iw}x{ih} (nearest neighbour) for {}", job.mask.display(), job.image.display());
        mask = crate::ops::resize::resize_nearest(&mask.reshape(&[1, 1, mh, mw])?, (ih, iw))?.reshape(&[1, ih, iw])?;
    }
    require_hole(&mask).with_context(|| format!("mask {}", job.mask.display()))?;
    // Allowed, but then the result owes nothing to the photo: say so, in case the mask is wrong.
    if hole_fraction(&mask)? >= 1.0 {
        eprintln!("note: mask {} marks every pixel as a hole: the whole image is generated and nothing of {} is kept", job.mask.display(), job.image.display());
    }
    Ok(mask)
}

/// Create the output folder and write (then remove) a small file in it: a folder that cannot be
/// written to is an error before the model is loaded, not after every sample is drawn.
pub fn check_output_folder(out: &Path) -> Result<()> {
    Ok(crate::io::atomic::check_output_folder(out, "the output folder")?)
}

pub fn run(model: &InpaintingModel, run: &InpaintRun, device: &Device) -> Result<()> {
    check_output_folder(&run.out)?;
    let l = model.cfg.grid() * model.cfg.grid();
    let replay: Option<Vec<Vec<u32>>> = if run.replay.is_empty() {
        None
    } else {
        if run.jobs.len() != 1 || run.replay.len() != run.opts.samples {
            bail!("--tokens replays one image: give one token file per sample (-n {})", run.opts.samples);
        }
        Some(run.replay.iter().map(|p| read_tokens(p, l)).collect::<Result<_>>()?)
    };
    check_distinct_names(&run.jobs)?;
    let started = Instant::now();
    let mut done = 0usize;
    let mut skipped = Vec::new();
    for job in &run.jobs {
        let name = stem(&job.image);
        let outputs: Vec<PathBuf> = (0..run.opts.samples).map(|k| run.out.join(format!("{name}_{k}.png"))).collect();
        let sheet_path = run.out.join(format!("{name}{SHEET_SUFFIX}.png"));
        // The sheet is written last, so an image interrupted after its samples is redone.
        if run.resume && outputs.iter().chain([&sheet_path]).all(|p| p.exists()) {
            println!("{name}: outputs exist, skipped");
            continue;
        }
        let inputs = load_image(&job.image)
            .with_context(|| format!("loading image {}", job.image.display()))
            .and_then(|loaded| job_mask(run, job, &loaded.tensor).map(|mask| (loaded, mask)));
        let (loaded, mask) = match inputs {
            Ok(inputs) => inputs,
            // With several images, one unreadable photo or unusable mask should not cost the
            // others their run: it is reported, skipped, and counted in the final error.
            Err(e) if run.jobs.len() > 1 => {
                eprintln!("error: {}; skipped", super::one_line(&e));
                skipped.push(job.image.display().to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(tokens) = &replay {
            check_token_files(model, &run.replay, tokens, &mask)?;
        }
        for note in &loaded.notes {
            println!("{name}: note: {note}");
        }
        if loaded.deep {
            println!("{name}: note: more than 8 bits per channel: samples written as 16-bit PNG");
        }
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} passes {per_sec} {elapsed}").expect("valid template").progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        let t0 = Instant::now();
        // The sheet: the input with its holes, the mask, then the first SHEET_SAMPLES samples,
        // each at most SHEET_TILE pixels on its longer side (the samples keep the photo's size).
        let tile = |t: &Tensor| thumbnail(t, SHEET_TILE);
        let mut sheet = vec![tile(&holes_shown(&loaded.tensor, &mask)?)?, tile(&mask_picture(&mask)?)?];
        let res = inpaint_photo_batched(
            model,
            &loaded.tensor,
            &mask,
            &run.opts,
            run.batch_size,
            replay.as_deref(),
            &mut |p, total| {
                bar.set_length(total as u64);
                bar.set_position(p as u64);
            },
            &mut |first, batch| {
                save_batch(run, &name, &outputs, first, &batch, loaded.deep).map_err(|e| fdm_error(&e))?;
                let room = SHEET_SAMPLES.saturating_sub(sheet.len() - 2);
                let tiles = batch.images[..room.min(batch.images.len())].par_iter().map(tile).collect::<Result<Vec<_>, _>>()?;
                sheet.extend(tiles);
                Ok(())
            },
        )
        .with_context(|| format!("inpainting {}", job.image.display()))?;
        bar.finish_and_clear();
        save_contact_sheet(&sheet, SHEET_COLUMNS, &sheet_path)?;
        if run.opts.samples > SHEET_SAMPLES {
            println!("{name}: the sheet shows the first {SHEET_SAMPLES} of {} samples", run.opts.samples);
        }
        if let Some(why) = &res.graph_note {
            eprintln!("note: {name}: the passes ran without a CUDA graph: {why}");
        }
        let replayed = if res.graph_replays > 0 { format!(" ({} replayed from a CUDA graph)", res.graph_replays) } else { String::new() };
        let batches = if res.batches > 1 { format!(" in {} batches", res.batches) } else { String::new() };
        println!(
            "{name}: {} sample(s), {} masked patches, {} passes{batches}{replayed} in {:.2} s -> {}",
            run.opts.samples,
            res.masked_patches,
            res.passes,
            t0.elapsed().as_secs_f64(),
            sheet_path.display()
        );
        done += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("done: {done} image(s) on {} in {secs:.2} s ({:.2} s per image)", device.name(), secs / done.max(1) as f64);
    if !skipped.is_empty() {
        bail!("{} of {} image(s) skipped because their image or mask could not be used (above): {}", skipped.len(), run.jobs.len(), skipped.join(", "));
    }
    Ok(())
}
