//! The training data pipeline (spec §6.6, §6.7): a folder of photos, per-epoch seeded shuffling,
//! resize + random crop + horizontal flip, the phase's masks, and background decoding.
//!
//! * `Dataset::scan` lists every readable image (`io::image::READABLE_EXTENSIONS`) under a folder
//!   (recursively, sorted by path) and reads each file's header (and checks that a JPEG is not
//!   cut off: `io::jpeg`); unreadable files are skipped and counted, and more than
//!   `max_unreadable_fraction` of them (10 % by default) is an error, as is an empty folder.
//! * Order: epoch `e` visits the images in the permutation drawn by
//!   `Rng::new(seed).fork(ORDER).fork(e)`; with `drop_last` an epoch has floor(N / B) batches
//!   (spec §6.0). Every random choice of a sample (crop, flip, masks) comes from
//!   `Rng::new(seed).fork(SAMPLE).fork(e).fork(position in epoch)`. So batch `s` is a pure
//!   function of (seed, s): prefetching, threads and resuming cannot change what is trained on.
//!   Epoch `e` starts at step `e * batches per epoch`, unless a resume moved the start of the
//!   epochs (`DataOrigin`: `--allow-data-change` with another number of batches per epoch);
//!   then batch `s` is a pure function of (seed, s, origin).
//! * Augmentation (albumentations `SmallestMaxSize` + `RandomCrop` + `HorizontalFlip`): the shorter
//!   side is resized to `load_size` with the `image` crate's bilinear (Triangle) filter (skipped
//!   when it already has that size; `load_size` 0 keeps every photo's size and only enlarges one
//!   whose shorter side is below the crop), a `crop_size` square is cut at a random offset, and
//!   the crop is mirrored with p = 0.5. Masks are drawn independently of the augmentation.
//! * Masks (spec §6.7 table, engine polarity 1 = visible): see `MaskSampler`.
//! * Background decoding: `Loader` runs on its own thread, decodes the samples of a batch in
//!   parallel with rayon and keeps `prefetch` batches ready while the model trains.
//!
//! A file that passes the header check but fails to decode later is replaced by the next file of
//! the sorted list (deterministically) and counted; the run stops when such failures exceed the
//! same fraction of the dataset.

use super::config::{MaskConfig, Phase, TrainConfig};
use crate::data::masks as gen;
use crate::error::{Error, Result};
use crate::io::image as img_io;
use crate::rng::Rng;
use crate::tensor::Tensor;
use ::image::imageops::FilterType;
use ::image::DynamicImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

const ORDER_STREAM: u64 = 0x0D0E_0001;
const SAMPLE_STREAM: u64 = 0x5A3B_0002;

/// The photos of a training run.
#[derive(Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
    /// Files skipped at scan time, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// (width, height) of each of `files`, from the scan's header check.
    pub sizes: Vec<(u32, u32)>,
}

/// Skipped files named in a note; the rest are counted.
const NAMED_SKIPS: usize = 5;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::msg(format!("cannot read data folder {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?
            .path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if crate::io::image::has_readable_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads the file (to check that a JPEG is whole) and its header: format and dimensions.
fn probe(path: &Path) -> std::result::Result<(u32, u32), String> {
    let reader = open_checked(path)?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    if w == 0 || h == 0 {
        return Err("zero-sized image".into());
    }
    Ok((w, h))
}

impl Dataset {
    /// Every readable image under `root` (module docs).
    pub fn scan(root: &Path, max_unreadable_fraction: f32) -> Result<Dataset> {
        if !root.is_dir() {
            return Err(Error::msg(format!(
                "data folder {} does not exist or is not a folder",
                root.display()
            )));
        }
        let mut found = Vec::new();
        walk(root, &mut found)?;
        found.sort();
        if found.is_empty() {
            return Err(Error::msg(format!(
                "no training photos (.png, .jpg, .jpeg) found under {}",
                root.display()
            )));
        }
        let checks: Vec<_> = found.par_iter().map(|p| probe(p)).collect();
        let (mut files, mut sizes, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for (p, c) in found.into_iter().zip(checks) {
            match c {
                Ok(size) => {
                    files.push(p);
                    sizes.push(size);
                }
                Err(why) => skipped.push((p, why)),
            }
        }
        let total = files.len() + skipped.len();
        let frac = skipped.len() as f32 / total as f32;
        if files.is_empty() || frac > max_unreadable_fraction {
            let first = skipped
                .first()
                .map(|(p, w)| format!("; first: {}: {w}", p.display()))
                .unwrap_or_default();
            return Err(Error::msg(format!(
                "{} of {total} photos under {} are unreadable ({:.0} %, the limit is {:.0} %){first}",
                skipped.len(),
                root.display(),
                100.0 * frac,
                100.0 * max_unreadable_fraction
            )));
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            files,
            skipped,
            sizes,
        })
    }

    /// The note about skipped files, naming the first few with their reasons (None: none skipped).
    pub fn skipped_note(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .skipped
            .iter()
            .take(NAMED_SKIPS)
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        let more = match self.skipped.len().saturating_sub(NAMED_SKIPS) {
            0 => String::new(),
            n => format!(" ... and {n} more"),
        };
        Some(format!(
            "note: skipped {} unreadable file(s) under {}: {}{more}",
            self.skipped.len(),
            self.root.display(),
            named.join(", ")
        ))
    }

    /// Photos whose shorter side is below `side`: `augment` enlarges them to reach the crop.
    pub fn smaller_than(&self, side: usize) -> usize {
        self.sizes.iter().filter(|(w, h)| (*w.min(h) as usize) < side).count()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The visiting order of epoch `epoch`: a seeded permutation of 0..n.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed)
        .fork(ORDER_STREAM)
        .fork(epoch)
        .shuffle(&mut order);
    order
}

/// Where the epochs of the data order start: from global step `step` on, epoch `epoch` begins
/// with the first batch of its order, and every epoch after it follows with the run's number of
/// batches per epoch. The default (0, 0) is a run's own start. A run resumed with
/// `--allow-data-change` on photos that give another number of batches per epoch starts the
/// epoch after its checkpoint's at the checkpoint's step (`next_epoch_at`), since its position
/// in the old order means nothing in the new one; its checkpoints record the origin
/// (`state.json`, `data_origin`), so it resumes bit for bit in turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataOrigin {
    pub step: u64,
    pub epoch: u64,
}

impl DataOrigin {
    /// (epoch, batch in that epoch) of global step `step` (at or after `self.step`).
    pub fn position(&self, step: u64, iters_per_epoch: u64) -> (u64, u64) {
        let since = step.saturating_sub(self.step);
        (self.epoch + since / iters_per_epoch, since % iters_per_epoch)
    }

    /// The global step at which `epochs` epochs end (the nominal end of the run).
    pub fn end(&self, epochs: u64, iters_per_epoch: u64) -> u64 {
        self.step + epochs.saturating_sub(self.epoch) * iters_per_epoch
    }

    /// The origin that starts, at global step `step`, the epoch after the one `step` is in with
    /// this origin and `iters_per_epoch` (the epoch `step` begins, when it begins one).
    pub fn next_epoch_at(&self, step: u64, iters_per_epoch: u64) -> DataOrigin {
        let (epoch, batch) = self.position(step, iters_per_epoch);
        DataOrigin { step, epoch: epoch + u64::from(batch > 0) }
    }
}

/// Draws the masks of a phase (spec §6.7), in the engine's polarity (1 = visible), size x size.
pub struct MaskSampler {
    cfg: MaskConfig,
    size: usize,
    patch: usize,
    /// Mask files (white = hole) standing for the PConv masks, when a folder was given.
    files: Vec<PathBuf>,
}

impl MaskSampler {
    pub fn new(cfg: &MaskConfig, size: usize, patch: usize) -> Result<Self> {
        let mut files = Vec::new();
        if let Some(dir) = &cfg.mask_dir {
            walk(dir, &mut files)?;
            files.retain(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
            files.sort();
            if files.is_empty() {
                return Err(Error::msg(format!(
                    "no mask PNGs found under {}",
                    dir.display()
                )));
            }
        }
        Ok(MaskSampler {
            cfg: cfg.clone(),
            size,
            patch,
            files,
        })
    }

    /// A "provided" mask: a random file, or a generated mask whose hole ratio lies in a bucket
    /// of `ratio_range` (0.1 wide, drawn uniformly, as the 2,000-mask PConv buckets are).
    fn provided(&self, rng: &mut Rng) -> Result<Vec<f32>> {
        if !self.files.is_empty() {
            let path = &self.files[rng.below(self.files.len() as u64) as usize];
            let m = img_io::load_mask(path, false).map_err(|e| Error::msg(e.to_string()))?;
            let (h, w) = (m.shape()[1], m.shape()[2]);
            let v = m.to_vec_f32()?;
            let s = self.size;
            // Nearest resize, source index floor(i * in / out) (spec §1.5, OpenCV INTER_NEAREST).
            return Ok((0..s * s)
                .map(|i| v[(i / s * h / s) * w + (i % s) * w / s])
                .collect());
        }
        let (lo, hi) = self.cfg.ratio_range;
        let buckets = (((hi - lo) / 0.1).round() as u64).max(1);
        let b = rng.below(buckets) as f32;
        let (blo, bhi) = (
            lo + b * (hi - lo) / buckets as f32,
            lo + (b + 1.0) * (hi - lo) / buckets as f32,
        );
        Ok(match gen::bucketed_mask(rng, self.size, blo, bhi, 64) {
            Some(m) => m,
            None => centred_rect(self.size, 0.5 * (blo + bhi)),
        })
    }

    /// Provided with probability `provided_p`, else a free-form stroke mask.
    fn mixed(&self, rng: &mut Rng) -> Result<Vec<f32>> {
        if rng.bernoulli(self.cfg.provided_p) {
            self.provided(rng)
        } else {
            Ok(gen::stroke_mask(
                rng,
                self.size,
                &gen::StrokeConfig::default(),
            ))
        }
    }

    /// (mask, erase mask) of one sample; the erase mask is all ones unless erasing was drawn.
    pub fn draw(&self, rng: &mut Rng) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut mask = self.mixed(rng)?;
        if rng.bernoulli(self.cfg.low_to_high_p) {
            mask = gen::low_to_high(&mask, self.size, self.patch);
        }
        if rng.bernoulli(self.cfg.zero_mask_p) {
            mask.iter_mut().for_each(|v| *v = 0.0);
        }
        let erase = if rng.bernoulli(self.cfg.erase_p) {
            self.mixed(rng)?
        } else {
            vec![1.0; self.size * self.size]
        };
        Ok((mask, erase))
    }
}

/// A square hole of the given area ratio in the middle (fallback when rejection sampling misses).
fn centred_rect(size: usize, ratio: f32) -> Vec<f32> {
    let side = ((ratio.clamp(0.0, 1.0) * (size * size) as f32)
        .sqrt()
        .round() as usize)
        .clamp(1, size);
    let o = (size - side) / 2;
    (0..size * size)
        .map(|i| {
            if (o..o + side).contains(&(i / size)) && (o..o + side).contains(&(i % size)) {
                0.0
            } else {
                1.0
            }
        })
        .collect()
}

/// One training batch (all CPU tensors; the trainer moves it to its device, `Batch::to_device`).
pub struct Batch {
    /// Global step this batch belongs to.
    pub step: u64,
    pub epoch: u64,
    /// B x 3 x S x S in [0, 255]; in phase 1a already erased (`image * erase_mask`).
    pub images: Tensor,
    /// B x 1 x S x S, 1 = visible.
    pub masks: Tensor,
    /// B x 1 x S x S, 1 = kept (all ones unless the sample was erased).
    pub erase_masks: Tensor,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
}

impl Batch {
    /// The same batch with its tensors on `device` (the trainer's device; no copy when there).
    pub fn to_device(&self, device: &crate::Device) -> Result<Batch> {
        Ok(Batch {
            step: self.step,
            epoch: self.epoch,
            images: self.images.to_device(device)?,
            masks: self.masks.to_device(device)?,
            erase_masks: self.erase_masks.to_device(device)?,
            indices: self.indices.clone(),
        })
    }
}

/// Turns (seed, step) into a batch (module docs).
pub struct BatchSource {
    dataset: Arc<Dataset>,
    masks: MaskSampler,
    seed: u64,
    batch: usize,
    load_size: usize,
    crop: usize,
    erase: bool,
    iters_per_epoch: u64,
    /// Where the epochs start (`with_origin`).
    origin: DataOrigin,
    max_failures: usize,
    failures: AtomicUsize,
    /// Items `[lo, hi)` of each global batch this source builds (all of it unless sharded).
    shard: (usize, usize),
}

struct Sample {
    image: Vec<f32>,
    mask: Vec<f32>,
    erase: Vec<f32>,
}

impl BatchSource {
    pub fn new(dataset: Arc<Dataset>, cfg: &TrainConfig, patch: usize) -> Result<Self> {
        let iters_per_epoch = cfg.iterations_per_epoch(dataset.len());
        if iters_per_epoch == 0 {
            return Err(Error::msg(format!(
                "{} photos are fewer than one batch of {}",
                dataset.len(),
                cfg.batch_size
            )));
        }
        Ok(BatchSource {
            masks: MaskSampler::new(&cfg.masks, cfg.crop_size, patch)?,
            max_failures: (cfg.max_unreadable_fraction * dataset.len() as f32) as usize,
            dataset,
            seed: cfg.seed,
            batch: cfg.batch_size,
            load_size: cfg.load_size,
            crop: cfg.crop_size,
            erase: cfg.phase == Phase::Phase1a,
            iters_per_epoch,
            origin: DataOrigin::default(),
            failures: AtomicUsize::new(0),
            shard: (0, cfg.batch_size),
        })
    }

    /// Epochs start at `origin` instead of step 0 (`DataOrigin`); the batches of steps before
    /// `origin.step` are not defined then (a resumed run never asks for them).
    pub fn with_origin(mut self, origin: DataOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// Only rank `rank`'s items of each batch, `dist::shard_range` (data-parallel training):
    /// the samples are exactly those the single-process batch holds at those positions (same
    /// photos, crops, flips and masks), so the ranks together train on the same global batch.
    pub fn shard(mut self, rank: usize, world: usize) -> Result<Self> {
        self.shard = super::dist::shard_range(self.batch, rank, world)?;
        Ok(self)
    }

    pub fn iters_per_epoch(&self) -> u64 {
        self.iters_per_epoch
    }

    /// Decode failures seen so far (files that passed the header check).
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    /// The batch of global step `step` (this source's shard of it).
    pub fn batch(&self, step: u64) -> Result<Batch> {
        let (epoch, pos) = self.origin.position(step, self.iters_per_epoch);
        let pos = pos as usize;
        let order = epoch_order(self.seed, epoch, self.dataset.len());
        let (lo, hi) = (pos * self.batch + self.shard.0, pos * self.batch + self.shard.1);
        let indices: Vec<usize> = order[lo..hi].to_vec();
        let samples: Vec<Result<Sample>> = indices
            .par_iter()
            .enumerate()
            .map(|(k, &idx)| {
                let mut rng = Rng::new(self.seed)
                    .fork(SAMPLE_STREAM)
                    .fork(epoch)
                    .fork((lo + k) as u64);
                self.sample(idx, &mut rng)
            })
            .collect();
        let s = self.crop;
        let (b, n) = (indices.len(), s * s);
        let (mut images, mut masks, mut erases) = (
            Vec::with_capacity(b * 3 * n),
            Vec::with_capacity(b * n),
            Vec::with_capacity(b * n),
        );
        for sample in samples {
            let Sample { image, mask, erase } = sample?;
            images.extend(
                image
                    .chunks(n)
                    .flat_map(|ch| ch.iter().zip(&erase).map(|(p, e)| p * e)),
            );
            masks.extend(mask);
            erases.extend(erase);
        }
        Ok(Batch {
            step,
            epoch,
            images: Tensor::from_vec(images, &[b, 3, s, s])?,
            masks: Tensor::from_vec(masks, &[b, 1, s, s])?,
            erase_masks: Tensor::from_vec(erases, &[b, 1, s, s])?,
            indices,
        })
    }

    fn sample(&self, idx: usize, rng: &mut Rng) -> Result<Sample> {
        let n = self.dataset.len();
        let mut last_err = String::new();
        for attempt in 0..n {
            let path = &self.dataset.files[(idx + attempt) % n];
            match decode(path) {
                Ok(img) => {
                    let image = augment(&img, self.load_size, self.crop, rng)?;
                    let (mask, erase) = self.masks.draw(rng)?;
                    let erase = if self.erase {
                        erase
                    } else {
                        vec![1.0; mask.len()]
                    };
                    return Ok(Sample { image, mask, erase });
                }
                Err(e) => {
                    last_err = format!("{}: {e}", path.display());
                    let seen = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if seen > self.max_failures {
                        return Err(Error::msg(format!("{seen} photos failed to decode during training (limit {}); last: {last_err}", self.max_failures)));
                    }
                }
            }
        }
        Err(Error::msg(format!(
            "no photo could be decoded; last: {last_err}"
        )))
    }
}

fn decode(path: &Path) -> std::result::Result<DynamicImage, String> {
    open_checked(path)?.decode().map_err(|e| e.to_string())
}

/// A reader of the whole file, which must not be a truncated JPEG (`io::jpeg`): the decoder
/// would fill its missing rows with grey and train on them. The scan reads each file once for
/// this; a header alone cannot tell.
fn open_checked(path: &Path) -> std::result::Result<::image::ImageReader<std::io::Cursor<Vec<u8>>>, String> {
    let bytes = img_io::read_image_bytes(path).map_err(|e| e.to_string())?;
    ::image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())
}

/// SmallestMaxSize(load) + RandomCrop(crop) + HorizontalFlip(0.5) -> planar 3 x crop x crop.
fn augment(img: &DynamicImage, load: usize, crop: usize, rng: &mut Rng) -> Result<Vec<f32>> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let short = w.min(h);
    // load 0: keep the photo's own scale unless it is too small to crop.
    let load = if load == 0 { short.max(crop) } else { load };
    let resized;
    let img = if short == load {
        img
    } else {
        let (nw, nh) = if w <= h {
            (load, (h * load + short / 2) / short)
        } else {
            ((w * load + short / 2) / short, load)
        };
        resized = img.resize_exact(nw as u32, nh as u32, FilterType::Triangle);
        &resized
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let y0 = rng.below((h - crop + 1) as u64) as u32;
    let x0 = rng.below((w - crop + 1) as u64) as u32;
    let mut cropped = img.crop_imm(x0, y0, crop as u32, crop as u32);
    if rng.bernoulli(0.5) {
        cropped = cropped.fliph();
    }
    let (t, _) = img_io::image_to_tensor(&cropped).map_err(|e| Error::msg(e.to_string()))?;
    t.to_vec_f32()
}

/// Background batch producer: batches `first..end` in order, `prefetch` ahead of the consumer.
pub struct Loader {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Loader {
    pub fn start(source: Arc<BatchSource>, first: u64, end: u64, prefetch: usize) -> Loader {
        let (tx, rx) = sync_channel(prefetch.max(1));
        let handle = std::thread::spawn(move || {
            for step in first..end {
                if tx.send(source.batch(step)).is_err() {
                    break; // the trainer stopped
                }
            }
        });
        Loader {
            rx: Some(rx),
            handle: Some(handle),
        }
    }

    /// The next batch, in step order.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let rx = self.rx.as_ref().expect("receiver lives until drop");
        rx.recv()
            .map_err(|_| Error::msg("the data loader stopped early"))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receiver makes the producer's next send fail, so it ends after the batch
        // it is decoding.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
