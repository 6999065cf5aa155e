//! `fdm eval`: score generated images against ground truth (spec §7.2, §7.4).
//!
//! `fdm eval --real DIR --fake DIR [--masks DIR] [--lpips vgg|alex|none] [--out DIR]
//! [--no-fid] [--inception-weights FILE] [--fid-resize pytorch|tf]`
//! matches files by name (`folders.rs`), then for every (input, sample) pair computes PSNR,
//! SSIM, relative MAE and L1 (`pixel.rs`, `ssim.rs`) and, when LPIPS weights are available,
//! LPIPS (spatial mean, PUT's setting; `lpips.rs`). Inputs with two or more samples also give the
//! diversity score (mean LPIPS of sample pairs of one input; `--diversity-pairs`, default 5
//! random pairs per input as PUT and the paper, seeded by `--seed`).
//!
//! Summaries are means over all (input, sample) pairs; with several samples per input, a second
//! row uses only the first sample of each input (the paper scores one sample per input). With
//! `--masks` (white = hole), every summary is also split by hole ratio in buckets of 0.1
//! (`[0.2, 0.3)` etc., the paper's mask-ratio columns), and `--composite` pastes the known pixels
//! of the real image into each sample before scoring (the official `inference.py` saves the raw
//! decoder output; spec §7.4 notes the paper does not say which it scored).
//!
//! FID and KID (`fid.rs`, `kid.rs`; spec §7.3) are added to every summary row when the
//! Inception weights are found (`--inception-weights`, else `$FDM_INCEPTION_WEIGHTS` or the
//! converted file in the CI cache / `assets/weights/`; without them a note says how to build
//! them, and `--no-fid` turns them off): the real images of the row's inputs against the row's
//! samples (the "first sample" row is the paper's setting: one sample per input), each needing at
//! least 2 images (else `-`). KID uses `--kid-subsets` subsets of `min(--kid-subset-size, n)`
//! images, seeded by `--seed`.
//!
//! Output: a table on stdout, `metrics.json` (settings, summaries, diversity, per-sample rows) and
//! `metrics.md` (the table) in `--out` (default: the fake folder). Everything runs on the CPU.
//!
//! PNG inputs give exactly the reference numbers (checked at 256x256 against numpy / OpenCV /
//! scikit-image / the numpy LPIPS). JPEG files are decoded by the `image` crate, whose decoder
//! differs from libjpeg (PIL, OpenCV) by a grey level here and there: on 256x256 photos that
//! moved PSNR by ~0.006 dB, SSIM by ~6e-5 and LPIPS by ~1e-4 relative to the Python pipeline.

use super::fid::{self, FeatureSet, FidModel, FidResize};
use super::folders::{match_folders, MatchedInput};
use super::kid::{kid, Kid, DEFAULT_SUBSETS, DEFAULT_SUBSET_SIZE};
use super::lpips::{default_weights_path, diversity, Diversity, DiversityPairs, Lpips, LpipsNet};
use super::{l1, mae, psnr, ssim};
use crate::error::{Error, Result};
use crate::io::image::{hole_fraction, load_image, load_mask};
use crate::tensor::Tensor;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Command-line arguments of `fdm eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// Folder of ground-truth images `<stem>.<ext>`.
    #[arg(long)]
    pub real: PathBuf,
    /// Folder of generated images `<stem>.<ext>` or `<stem>_<k>.<ext>` (sample k), such as
    /// `fdm inpaint`'s output folder (its `<stem>_sheet.png` contact sheets are skipped).
    #[arg(long)]
    pub fake: PathBuf,
    /// Folder of masks `<stem>.<ext>` (white = hole): per-hole-ratio rows, `--composite`.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// LPIPS backbone: vgg (PUT's default), alex, or none. Default: vgg when its weights are
    /// present, else LPIPS is skipped with a note.
    #[arg(long)]
    pub lpips: Option<String>,
    /// LPIPS weights file (default: the bundled assets/weights/vgg16_lpips.safetensors, or
    /// alexnet_lpips.safetensors with --lpips alex).
    #[arg(long)]
    pub lpips_weights: Option<PathBuf>,
    /// Diversity pairs per input: a number (random distinct pairs) or `all`.
    #[arg(long, default_value = "5")]
    pub diversity_pairs: String,
    /// Seed of the diversity pair draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Paste the real image's known pixels into each sample before scoring (needs --masks).
    #[arg(long)]
    pub composite: bool,
    /// Where metrics.json and metrics.md go (default: the fake folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip FID and KID even when the Inception weights are available.
    #[arg(long)]
    pub no_fid: bool,
    /// Converted Inception weights (weights-tools/convert_inception.py). Default:
    /// $FDM_INCEPTION_WEIGHTS, else ~/.cache/fdm-ci/inception/ or assets/weights/
    /// inception_fid.safetensors when present.
    #[arg(long)]
    pub inception_weights: Option<PathBuf>,
    /// FID preprocessing: pytorch (pytorch-fid, the FDM repo's tool) or tf (TF legacy bilinear).
    #[arg(long, default_value = "pytorch")]
    pub fid_resize: String,
    /// Images per Inception batch (1 or more).
    #[arg(long, default_value_t = 8, value_parser = positive_count)]
    pub fid_batch: usize,
    /// KID: number of random subsets (1 or more).
    #[arg(long, default_value_t = DEFAULT_SUBSETS, value_parser = positive_count)]
    pub kid_subsets: usize,
    /// KID: subset size, 2 or more (capped by the number of images).
    #[arg(long, default_value_t = DEFAULT_SUBSET_SIZE, value_parser = kid_subset_size)]
    pub kid_subset_size: usize,
}

/// A whole number of at least `least`, read from the command line (clap's message names the flag).
fn count_at_least(s: &str, least: usize) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= least => Ok(n),
        _ => Err(format!("must be a whole number of at least {least}, got `{s}`")),
    }
}

fn positive_count(s: &str) -> std::result::Result<usize, String> {
    count_at_least(s, 1)
}

/// KID's unbiased estimate divides by m (m - 1): a subset needs 2 images.
fn kid_subset_size(s: &str) -> std::result::Result<usize, String> {
    count_at_least(s, 2)
}

/// The numeric settings' bounds, checked again here for callers that build `EvalArgs` without
/// the command line: a bad value must fail before the scoring, not after it.
fn check_settings(args: &EvalArgs) -> Result<()> {
    let bounds = [("--fid-batch", args.fid_batch, 1), ("--kid-subsets", args.kid_subsets, 1), ("--kid-subset-size", args.kid_subset_size, 2)];
    for (name, value, least) in bounds {
        if value < least {
            return Err(Error::msg(format!("{name} must be at least {least}, got {value}")));
        }
    }
    Ok(())
}

/// Scores of one (input, sample) pair.
#[derive(Clone, Debug, Serialize)]
pub struct SampleScores {
    pub stem: String,
    pub sample: Option<u64>,
    pub file: String,
    pub hole_ratio: Option<f64>,
    pub psnr: f64,
    pub ssim: f64,
    pub mae: f64,
    pub l1: f64,
    pub lpips: Option<f64>,
    /// True for the first sample of its input.
    pub first: bool,
}

/// Means over a set of pairs.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub label: String,
    pub inputs: usize,
    pub pairs: usize,
    pub psnr: f64,
    pub ssim: f64,
    pub mae: f64,
    pub l1: f64,
    pub lpips: Option<f64>,
    /// FID of the real images of these inputs against these samples (None: off, or < 2 images).
    pub fid: Option<f64>,
    pub kid: Option<Kid>,
}

/// The FID/KID settings of a report.
#[derive(Clone, Debug, Serialize)]
pub struct FidSettings {
    pub inception_weights: String,
    pub resize: String,
    pub kid_subsets: usize,
    pub kid_subset_size: usize,
    pub seed: u64,
}

/// Evaluation stages reported to the progress callback of `evaluate_staged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Pixel metrics + LPIPS, per input.
    Score,
    /// Inception features of the real images, per image.
    RealFeatures,
    /// Inception features of the samples, per image.
    FakeFeatures,
}

/// Everything `fdm eval` reports.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub real: String,
    pub fake: String,
    pub masks: Option<String>,
    pub composite: bool,
    pub lpips_net: Option<String>,
    pub lpips_weights: Option<String>,
    pub summaries: Vec<Summary>,
    pub diversity: Option<Diversity>,
    pub diversity_pairs: String,
    /// None when FID/KID were not computed.
    pub fid: Option<FidSettings>,
    /// Set when FID/KID were computed from too few images to mean much (`small_sample_warning`).
    pub small_sample_warning: Option<String>,
    pub samples: Vec<SampleScores>,
}

/// `all` or a positive number of random pairs.
pub fn parse_pairs(s: &str, seed: u64) -> Result<DiversityPairs> {
    if s == "all" {
        return Ok(DiversityPairs::All);
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(DiversityPairs::Random { per_input: n, seed }),
        _ => Err(Error::msg(format!(
            "--diversity-pairs must be `all` or a positive number, got `{s}`"
        ))),
    }
}

fn load_rgb(path: &Path) -> Result<Tensor> {
    Ok(load_image(path)?.tensor)
}

fn size_of(t: &Tensor) -> (usize, usize) {
    (t.shape()[2], t.shape()[1])
}

/// `real * visible + fake * hole` for a `[1, H, W]` engine mask (1 = visible).
fn composite(real: &Tensor, fake: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (r, f, m) = (real.to_vec_f32()?, fake.to_vec_f32()?, mask.to_vec_f32()?);
    let plane = m.len();
    let v = (0..r.len())
        .map(|i| if m[i % plane] >= 0.5 { r[i] } else { f[i] })
        .collect();
    Tensor::from_vec(v, real.shape())
}

/// Score every sample of one input; the samples' tensors are returned for the diversity step.
fn score_input(
    input: &MatchedInput,
    lpips: Option<&Lpips>,
    do_composite: bool,
) -> Result<(Vec<SampleScores>, Vec<Tensor>)> {
    let real = load_rgb(&input.real)?;
    let mask = match &input.mask {
        Some(p) => {
            let m = load_mask(p, false)?;
            let (mh, mw) = (m.shape()[1], m.shape()[2]);
            if (mw, mh) != size_of(&real) {
                let (w, h) = size_of(&real);
                return Err(Error::msg(format!(
                    "mask {} is {mw}x{mh} but the real image {} is {w}x{h}",
                    p.display(),
                    input.real.display()
                )));
            }
            Some(m)
        }
        None => None,
    };
    let hole_ratio = mask.as_ref().map(|m| hole_fraction(m).map(f64::from)).transpose()?;
    let (mut rows, mut tensors) = (Vec::new(), Vec::new());
    for (k, s) in input.samples.iter().enumerate() {
        let mut fake = load_rgb(&s.path)?;
        if size_of(&fake) != size_of(&real) {
            let ((fw, fh), (rw, rh)) = (size_of(&fake), size_of(&real));
            return Err(Error::msg(format!(
                "{} is {fw}x{fh} but the real image {} is {rw}x{rh}",
                s.path.display(),
                input.real.display()
            )));
        }
        if let (true, Some(m)) = (do_composite, &mask) {
            fake = composite(&real, &fake, m)?;
        }
        let ctx = |e: Error| Error::msg(format!("{} vs {}: {e}", s.path.display(), input.real.display()));
        rows.push(SampleScores {
            stem: input.stem.clone(),
            sample: s.index,
            file: s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            hole_ratio,
            psnr: psnr(&fake, &real).map_err(ctx)?,
            ssim: ssim(&fake, &real).map_err(ctx)?,
            mae: mae(&fake, &real).map_err(ctx)?,
            l1: l1(&fake, &real).map_err(ctx)?,
            lpips: lpips
                .map(|m| m.distance_images(&fake, &real))
                .transpose()
                .map_err(ctx)?,
            first: k == 0,
        });
        tensors.push(fake);
    }
    Ok((rows, tensors))
}

/// Hole-ratio bucket label, buckets of 0.1 (`0.2-0.3`), the last one `0.9-1.0` closed.
pub fn ratio_bucket(r: f64) -> String {
    let b = ((r * 10.0).floor() as i64).clamp(0, 9);
    format!("{:.1}-{:.1}", b as f64 / 10.0, (b + 1) as f64 / 10.0)
}

/// Inception features of the real images (one row per input) and of the samples (one row per
/// `SampleScores` row, same order), with the settings behind them.
struct FidFeatures {
    real: FeatureSet,
    fake: FeatureSet,
    settings: FidSettings,
}

/// A warning when FID/KID come from fewer images than the Inception feature width: the
/// covariance of n feature vectors has rank below n, so FID is then dominated by the small-sample
/// bias, and KID's unbiased estimate can come out negative.
fn small_sample_warning(f: &FidFeatures) -> Option<String> {
    let (real, fake, dim) = (f.real.n, f.fake.n, f.real.dim);
    (real.min(fake) < dim).then(|| {
        format!(
            "FID/KID from {real} real and {fake} generated image(s), fewer than the {dim} Inception features: they are dominated by the small-sample bias (KID can come out negative) and are not comparable to published values"
        )
    })
}

/// FID and KID of the inputs of `idx` (indices into the sample rows) against those samples.
fn fid_kid(f: &FidFeatures, rows: &[SampleScores], idx: &[usize], stems: &[String]) -> Result<(Option<f64>, Option<Kid>)> {
    let mut real_idx: Vec<usize> = idx
        .iter()
        .map(|&i| stems.iter().position(|s| *s == rows[i].stem).expect("every row's stem is an input"))
        .collect();
    real_idx.sort_unstable();
    real_idx.dedup();
    if real_idx.len() < 2 || idx.len() < 2 {
        return Ok((None, None));
    }
    let (real, fake) = (f.real.select(&real_idx), f.fake.select(idx));
    let s = &f.settings;
    Ok((Some(fid::fid(&real, &fake)?), Some(kid(&real, &fake, s.kid_subsets, s.kid_subset_size, s.seed)?)))
}

fn summarise(label: String, rows: &[&SampleScores]) -> Summary {
    let mean = |f: &dyn Fn(&SampleScores) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / rows.len() as f64;
    let mut stems: Vec<&str> = rows.iter().map(|r| r.stem.as_str()).collect();
    stems.dedup();
    Summary {
        label,
        inputs: stems.len(),
        pairs: rows.len(),
        psnr: mean(&|r| r.psnr),
        ssim: mean(&|r| r.ssim),
        mae: mean(&|r| r.mae),
        l1: mean(&|r| r.l1),
        lpips: rows
            .iter()
            .all(|r| r.lpips.is_some())
            .then(|| mean(&|r| r.lpips.unwrap_or(0.0))),
        fid: None,
        kid: None,
    }
}

fn summaries(rows: &[SampleScores], feats: Option<&FidFeatures>, stems: &[String]) -> Result<Vec<Summary>> {
    let mut sets = vec![("all", false)];
    if rows.iter().any(|r| !r.first) {
        sets.push(("first sample", true));
    }
    let mut buckets: Vec<String> = rows.iter().filter_map(|r| r.hole_ratio.map(ratio_bucket)).collect();
    buckets.sort();
    buckets.dedup();
    let mut row_sets: Vec<(String, Vec<usize>)> = Vec::new();
    for (name, first_only) in sets {
        let picked: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].first || !first_only).collect();
        row_sets.push((name.to_string(), picked.clone()));
        for b in &buckets {
            let in_bucket = picked
                .iter()
                .copied()
                .filter(|&i| rows[i].hole_ratio.map(ratio_bucket).as_ref() == Some(b))
                .collect();
            row_sets.push((format!("{name}, holes {b}"), in_bucket));
        }
    }
    let mut out = Vec::new();
    for (label, idx) in row_sets {
        let mut s = summarise(label, &idx.iter().map(|&i| &rows[i]).collect::<Vec<_>>());
        if let Some(f) = feats {
            (s.fid, s.kid) = fid_kid(f, rows, &idx, stems)?;
        }
        out.push(s);
    }
    Ok(out)
}

/// The Inception model `args` ask for: None with a note when FID is off or no weights are found.
fn fid_model(args: &EvalArgs) -> Result<Option<(FidModel, FidSettings)>> {
    let resize = FidResize::parse(&args.fid_resize)?;
    if args.no_fid {
        return Ok(None);
    }
    let path = match args.inception_weights.clone().or_else(fid::default_weights_path) {
        Some(p) => p,
        None => {
            eprintln!("note: FID/KID skipped. {}", fid::weights_help());
            return Ok(None);
        }
    };
    if !path.exists() {
        return Err(Error::msg(format!("Inception weights {} not found. {}", path.display(), fid::weights_help())));
    }
    let settings = FidSettings {
        inception_weights: path.display().to_string(),
        resize: resize.name().to_string(),
        kid_subsets: args.kid_subsets,
        kid_subset_size: args.kid_subset_size,
        seed: args.seed,
    };
    Ok(Some((FidModel::load(&path, resize)?, settings)))
}

/// Run the evaluation; `progress(done, total)` is called after each scored input.
pub fn evaluate(args: &EvalArgs, progress: &mut dyn FnMut(usize, usize)) -> Result<EvalReport> {
    evaluate_staged(args, &mut |stage, done, total| {
        if stage == Stage::Score {
            progress(done, total)
        }
    })
}

/// Run the evaluation; `progress(stage, done, total)` is called after each input / batch.
pub fn evaluate_staged(args: &EvalArgs, progress: &mut dyn FnMut(Stage, usize, usize)) -> Result<EvalReport> {
    if args.composite && args.masks.is_none() {
        return Err(Error::msg("--composite needs --masks"));
    }
    check_settings(args)?;
    let pairs = parse_pairs(&args.diversity_pairs, args.seed)?;
    let net = match args.lpips.as_deref() {
        Some("none") => None,
        Some(s) => Some(LpipsNet::parse(s)?),
        None if args.lpips_weights.is_some() || default_weights_path(LpipsNet::Vgg).exists() => Some(LpipsNet::Vgg),
        None => {
            eprintln!(
                "note: no LPIPS weights at {}; LPIPS skipped",
                default_weights_path(LpipsNet::Vgg).display()
            );
            None
        }
    };
    let inputs = match_folders(&args.real, &args.fake, args.masks.as_deref())?;
    let fid_model = fid_model(args)?;
    let (lpips, weights) = match net {
        None => (None, None),
        Some(n) => {
            let path = args.lpips_weights.clone().unwrap_or_else(|| default_weights_path(n));
            (Some(Lpips::load(&path, n)?), Some(path.display().to_string()))
        }
    };
    let (mut rows, mut groups) = (Vec::new(), Vec::new());
    for (i, input) in inputs.iter().enumerate() {
        let (r, t) = score_input(input, lpips.as_ref(), args.composite)?;
        rows.extend(r);
        groups.push(t);
        progress(Stage::Score, i + 1, inputs.len());
    }
    let feats = match fid_model {
        None => None,
        Some((model, settings)) => {
            let batch = args.fid_batch;
            let reals: Vec<PathBuf> = inputs.iter().map(|i| i.real.clone()).collect();
            let real = model.features_of_files(&reals, batch, &mut |d, t| progress(Stage::RealFeatures, d, t))?;
            // Composited samples are scored as composited, like the other metrics.
            let all: Vec<&Tensor> = groups.iter().flatten().collect();
            let mut rows_out = Vec::with_capacity(all.len() * real.dim);
            for (k, chunk) in all.chunks(batch).enumerate() {
                rows_out.extend(model.features(chunk)?.rows);
                progress(Stage::FakeFeatures, (k * batch + chunk.len()).min(all.len()), all.len());
            }
            let fake = FeatureSet::new(all.len(), real.dim, rows_out)?;
            Some(FidFeatures { real, fake, settings })
        }
    };
    let stems: Vec<String> = inputs.iter().map(|i| i.stem.clone()).collect();
    let diversity = match &lpips {
        Some(m) if groups.iter().any(|g| g.len() >= 2) => Some(diversity(m, &groups, pairs)?),
        _ => None,
    };
    Ok(EvalReport {
        real: args.real.display().to_string(),
        fake: args.fake.display().to_string(),
        masks: args.masks.as_ref().map(|m| m.display().to_string()),
        composite: args.composite,
        lpips_net: net.map(|n| n.name().to_string()),
        lpips_weights: weights,
        summaries: summaries(&rows, feats.as_ref(), &stems)?,
        diversity,
        diversity_pairs: args.diversity_pairs.clone(),
        small_sample_warning: feats.as_ref().and_then(small_sample_warning),
        fid: feats.map(|f| f.settings),
        samples: rows,
    })
}

/// The summary table in Markdown.
pub fn markdown(report: &EvalReport) -> String {
    let lp = report
        .lpips_net
        .as_deref()
        .map(|n| format!("LPIPS ({n})"))
        .unwrap_or_else(|| "LPIPS".into());
    let with_fid = report.fid.is_some();
    let mut s = format!("| set | inputs | pairs | PSNR | SSIM | MAE | L1 | {lp} |");
    s += if with_fid { " FID | KID (x1e3) |\n" } else { "\n" };
    s += "|---|---:|---:|---:|---:|---:|---:|---:|";
    s += if with_fid { "---:|---:|\n" } else { "\n" };
    for m in &report.summaries {
        let lpips = m.lpips.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
        s += &format!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {lpips} |",
            m.label, m.inputs, m.pairs, m.psnr, m.ssim, m.mae, m.l1
        );
        if with_fid {
            // A FID of 0 up to rounding (identical sets) can come out as -1e-13: print 0.
            let fid = m.fid.map(|v| format!("{:.3}", if v.abs() < 1e-9 { 0.0 } else { v })).unwrap_or_else(|| "-".into());
            let kid = m
                .kid
                .as_ref()
                .map(|k| format!("{:.3} ± {:.3}", k.mean * 1e3, k.std * 1e3))
                .unwrap_or_else(|| "-".into());
            s += &format!(" {fid} | {kid} |");
        }
        s += "\n";
    }
    if let Some(d) = &report.diversity {
        s += &format!(
            "\nDiversity (mean LPIPS between samples of one input, pairs per input: {}): {:.4} (std {:.4}, {} pairs",
            report.diversity_pairs, d.mean, d.std, d.pairs
        );
        s += &if d.skipped_inputs > 0 {
            format!(", {} inputs with one sample skipped)\n", d.skipped_inputs)
        } else {
            ")\n".to_string()
        };
    }
    if let Some(f) = &report.fid {
        s += &format!(
            "\nFID/KID: real images of each row's inputs vs its samples; Inception {} ({} resize); \
             KID {} subsets of up to {} images, seed {}\n",
            f.inception_weights, f.resize, f.kid_subsets, f.kid_subset_size, f.seed
        );
    }
    if let Some(w) = &report.small_sample_warning {
        s += &format!("\nWarning: {w}.\n");
    }
    s += &format!("\nreal: {}; fake: {}", report.real, report.fake);
    if let Some(m) = &report.masks {
        s += &format!(
            "; masks: {m}{}",
            if report.composite {
                " (known pixels composited)"
            } else {
                ""
            }
        );
    }
    s += "\n";
    s
}

/// The report files `write_report` writes into `dir`.
const REPORT_FILES: [&str; 2] = ["metrics.json", "metrics.md"];

/// Check that the report can be written into `dir` (created here if missing): `run` calls it
/// before any scoring, so a `--out` that is a file, cannot be created or written, or holds a
/// folder named like a report file fails at once, not after all the work (or after writing one
/// of the two files).
pub fn check_report_targets(dir: &Path) -> Result<()> {
    crate::io::atomic::check_output_folder(dir, "--out").map_err(|e| Error::msg(e.to_string()))?;
    for name in REPORT_FILES {
        let target = dir.join(name);
        if target.is_dir() {
            return Err(Error::msg(format!("cannot write {}: a folder of that name is in the way", target.display())));
        }
    }
    Ok(())
}

/// Write `metrics.json` and `metrics.md` into `dir` (created if needed); returns their paths.
/// Both targets are checked before either is written, so a failure leaves no half report.
pub fn write_report(report: &EvalReport, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    check_report_targets(dir)?;
    let (json, md) = (dir.join(REPORT_FILES[0]), dir.join(REPORT_FILES[1]));
    let text = serde_json::to_string_pretty(report).map_err(|e| Error::msg(format!("metrics.json: {e}")))?;
    crate::io::atomic::write_atomic(&json, (text + "\n").as_bytes()).map_err(|e| Error::msg(e.to_string()))?;
    crate::io::atomic::write_atomic(&md, markdown(report).as_bytes()).map_err(|e| Error::msg(e.to_string()))?;
    Ok((json, md))
}

/// The body of `fdm eval`: evaluate, print the table, write the files.
pub fn run(args: &EvalArgs) -> Result<EvalReport> {
    use indicatif::{ProgressBar, ProgressStyle};
    let style = ProgressStyle::with_template("{prefix:34} [{bar:30}] {pos}/{len} {elapsed}")
        .expect("valid template")
        .progress_chars("=> ");
    let out = args.out.as_deref().unwrap_or(&args.fake);
    // The default, the fake folder, is not created here: a mistyped --fake is reported by the
    // folder matching as missing, not turned into an empty folder.
    if args.out.is_some() || args.fake.is_dir() {
        check_report_targets(out)?;
    }
    let mut bar: Option<(Stage, ProgressBar)> = None;
    let report = evaluate_staged(args, &mut |stage, done, total| {
        if bar.as_ref().map(|b| b.0) != Some(stage) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(total as u64).with_style(style.clone());
            b.set_prefix(match stage {
                Stage::Score => "scoring inputs",
                Stage::RealFeatures => "Inception features, real images",
                Stage::FakeFeatures => "Inception features, samples",
            });
            bar = Some((stage, b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    print!("{}", markdown(&report));
    let (json, md) = write_report(&report, out)?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(report)
}
