//! `fdm eval`: score generated images against ground truth (spec §7.2, §7.4).
//!
//! `fdm eval --real DIR --fake DIR [--masks DIR] [--lpips vgg|alex|none] [--out DIR]`
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
//! Output: a table on stdout, `metrics.json` (settings, summaries, diversity, per-sample rows) and
//! `metrics.md` (the table) in `--out` (default: the fake folder). Everything runs on the CPU.
//!
//! PNG inputs give exactly the reference numbers (checked at 256x256 against numpy / OpenCV /
//! scikit-image / the numpy LPIPS). JPEG files are decoded by the `image` crate, whose decoder
//! differs from libjpeg (PIL, OpenCV) by a grey level here and there: on 256x256 photos that
//! moved PSNR by ~0.006 dB, SSIM by ~6e-5 and LPIPS by ~1e-4 relative to the Python pipeline.

use super::folders::{match_folders, MatchedInput};
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
    /// Folder of generated images `<stem>.<ext>` or `<stem>_<k>.<ext>` (sample k).
    #[arg(long)]
    pub fake: PathBuf,
    /// Folder of masks `<stem>.<ext>` (white = hole): per-hole-ratio rows, `--composite`.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// LPIPS backbone: vgg (PUT's default), alex, or none. Default: vgg when its weights are
    /// present, else LPIPS is skipped with a note.
    #[arg(long)]
    pub lpips: Option<String>,
    /// LPIPS weights file (default: the bundled assets/weights/<net>_lpips.safetensors).
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
    }
}

fn summaries(rows: &[SampleScores]) -> Vec<Summary> {
    let mut sets = vec![("all", false)];
    if rows.iter().any(|r| !r.first) {
        sets.push(("first sample", true));
    }
    let mut buckets: Vec<String> = rows.iter().filter_map(|r| r.hole_ratio.map(ratio_bucket)).collect();
    buckets.sort();
    buckets.dedup();
    let mut out = Vec::new();
    for (name, first_only) in sets {
        let picked: Vec<&SampleScores> = rows.iter().filter(|r| r.first || !first_only).collect();
        out.push(summarise(name.to_string(), &picked));
        for b in &buckets {
            let in_bucket: Vec<&SampleScores> = picked
                .iter()
                .copied()
                .filter(|r| r.hole_ratio.map(ratio_bucket).as_ref() == Some(b))
                .collect();
            out.push(summarise(format!("{name}, holes {b}"), &in_bucket));
        }
    }
    out
}

/// Run the evaluation; `progress(done, total)` is called after each input.
pub fn evaluate(args: &EvalArgs, progress: &mut dyn FnMut(usize, usize)) -> Result<EvalReport> {
    if args.composite && args.masks.is_none() {
        return Err(Error::msg("--composite needs --masks"));
    }
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
        progress(i + 1, inputs.len());
    }
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
        summaries: summaries(&rows),
        diversity,
        diversity_pairs: args.diversity_pairs.clone(),
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
    let mut s =
        format!("| set | inputs | pairs | PSNR | SSIM | MAE | L1 | {lp} |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in &report.summaries {
        let lpips = m.lpips.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
        s += &format!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {lpips} |\n",
            m.label, m.inputs, m.pairs, m.psnr, m.ssim, m.mae, m.l1
        );
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

/// Write `metrics.json` and `metrics.md` into `dir` (created if needed); returns their paths.
pub fn write_report(report: &EvalReport, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("{}: {e}", dir.display())))?;
    let (json, md) = (dir.join("metrics.json"), dir.join("metrics.md"));
    let text = serde_json::to_string_pretty(report).map_err(|e| Error::msg(format!("metrics.json: {e}")))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::msg(format!("{}: {e}", json.display())))?;
    std::fs::write(&md, markdown(report)).map_err(|e| Error::msg(format!("{}: {e}", md.display())))?;
    Ok((json, md))
}

/// The body of `fdm eval`: evaluate, print the table, write the files.
pub fn run(args: &EvalArgs) -> Result<EvalReport> {
    let mut last = 0;
    let report = evaluate(args, &mut |done, total| {
        if done == total || done >= last + (total / 20).max(1) {
            eprint!("\rscored {done}/{total} inputs");
            last = done;
        }
    })?;
    eprintln!();
    print!("{}", markdown(&report));
    let (json, md) = write_report(&report, args.out.as_deref().unwrap_or(&args.fake))?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(report)
}
