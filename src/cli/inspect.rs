//! `fdm inspect`: one image and mask through the deterministic path of `pipeline::inspect`, its
//! intermediate tensors written as `.npy` files (spec §10 verification hooks; `docs/INSPECT.md`
//! defines every file), plus `inspect.json`. `fdm inspect --random-init --preset P --seed S
//! --weights W` writes a seeded, freshly initialised weights file instead (for tests).
//! This module only loads, calls the pipeline and writes; errors are one line each.

use super::device::{pick_device, DeviceArg};
use crate::io::image::{check_mask_matches, load_image, load_mask};
use crate::io::npy::{self, NpyArray, NpyData};
use crate::model::inpainting::InpaintingModel;
use crate::model::presets::ModelConfig;
use crate::pipeline::inspect::{check_tokens, inspect, Inspection, TokenSource};
use crate::pipeline::photo::model_inputs;
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};

/// The bundled tiny model (absolute path fixed at build time, so any working directory works).
pub const BUNDLED_WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");

/// The files written to `--out`, in the order of the deterministic path.
pub const OUTPUT_FILES: [&str; 7] = ["feat.npy", "tokens.npy", "feat_q.npy", "logits.npy", "fdm.npy", "decoded.npy", "inspect.json"];

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Weights file to load (default: the bundled tiny model); with --random-init, the file to write.
    #[arg(long, value_name = "W")]
    pub weights: Option<PathBuf>,
    /// Photo (PNG, JPEG, WebP, BMP, TIFF or GIF); resized to the model's 256 x 256 when it has another size.
    #[arg(long, value_name = "I")]
    pub image: Option<PathBuf>,
    /// Mask of the same size as the image: white = hole, black = keep (grey thresholded at 128).
    /// A mask with no hole is allowed: it gives the features and tokens of the whole image.
    #[arg(long, value_name = "M")]
    pub mask: Option<PathBuf>,
    /// Output folder (created if needed) for the .npy files and inspect.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Tokens to decode instead of the quantised input's: a token file (one id per patch,
    /// whitespace-separated, as `fdm inpaint --save-tokens` writes) or an integer .npy such as
    /// tokens.npy. Each id must be a codebook row; only ids at masked patches are used.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Where to run the model.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// The mask uses black = hole instead.
    #[arg(long)]
    pub invert_mask: bool,
    /// Overwrite existing output files (or, with --random-init, an existing weights file).
    #[arg(long)]
    pub force: bool,
    /// Write a freshly initialised weights file of --preset, seeded by --seed, to --weights
    /// (no image needed).
    #[arg(long)]
    pub random_init: bool,
    /// Preset of --random-init [default: tiny].
    #[arg(long, value_parser = ["tiny", "paper"])]
    pub preset: Option<String>,
    /// Seed of --random-init [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn run(a: &InspectArgs) -> Result<()> {
    if a.random_init {
        return write_random_init(a);
    }
    if a.preset.is_some() || a.seed.is_some() {
        bail!("--preset and --seed only apply with --random-init");
    }
    let image_path = a.image.as_ref().ok_or_else(|| anyhow!("--image is required (or --random-init to write a weights file)"))?;
    let mask_path = a.mask.as_ref().ok_or_else(|| anyhow!("--mask is required (white = hole; a mask with no hole is allowed)"))?;
    let out = a.out.as_ref().ok_or_else(|| anyhow!("--out DIR is required"))?;
    refuse_existing_outputs(out, a.force)?;
    let weights = a.weights.clone().unwrap_or_else(|| PathBuf::from(BUNDLED_WEIGHTS));
    if !weights.exists() {
        bail!("weights file {} not found (pass --weights FILE)", weights.display());
    }
    let loaded = load_image(image_path).map_err(|e| anyhow!("loading image: {e}"))?;
    for note in &loaded.notes {
        println!("note: {note}");
    }
    let mask = load_mask(mask_path, a.invert_mask).map_err(|e| anyhow!("loading mask: {e}"))?;
    check_mask_matches(&loaded.tensor, &mask).map_err(|e| anyhow!("{} vs {}: {e}", mask_path.display(), image_path.display()))?;
    let device = pick_device(a.device)?;
    let mut model = InpaintingModel::load(&weights, None).map_err(|e| anyhow!("loading weights {}: {e}", weights.display()))?;
    let given = match &a.tokens {
        Some(p) => {
            let t = read_token_input(p)?;
            check_tokens(&model, &t).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            Some(t)
        }
        None => None,
    };
    model.to_device(&device)?;
    let (image, mask) = model_inputs(&model, &loaded.tensor, &mask)?;
    let ins = inspect(&model, &image, &mask, given.as_deref())?;
    std::fs::create_dir_all(out).map_err(|e| anyhow!("creating {}: {e}", out.display()))?;
    let mut files = serde_json::Map::new();
    for (name, array) in arrays(&ins)? {
        let path = out.join(name);
        npy::write(&path, &array)?;
        println!("wrote {} ({} {:?})", path.display(), array.data.descr(), array.shape);
        files.insert(name.into(), serde_json::json!({ "descr": array.data.descr(), "shape": array.shape }));
    }
    let summary = serde_json::json!({
        "weights": weights.display().to_string(),
        "preset": model.cfg.preset,
        "device": device.name(),
        "image": image_path.display().to_string(),
        "mask": mask_path.display().to_string(),
        "invert_mask": a.invert_mask,
        "image_size": [loaded.tensor.shape()[1], loaded.tensor.shape()[2]],
        "model_size": model.cfg.image_size,
        "resized": loaded.tensor.shape()[1..] != [model.cfg.image_size, model.cfg.image_size],
        "patches": ins.visible.len(),
        "masked_patches": ins.masked_patches,
        "vocab": model.cfg.transformer.vocab,
        "codebook_rows": model.cfg.codec.n_e,
        "tokens_decoded": match ins.source {
            TokenSource::Quantized => "quantized input (tokens.npy)".to_string(),
            TokenSource::Given => format!("file {}", a.tokens.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        },
        "masked_half_tokens_decoded": ins.masked_half_decoded,
        "files": files,
    });
    let json_path = out.join("inspect.json");
    npy::write_atomic(&json_path, format!("{}\n", serde_json::to_string_pretty(&summary)?).as_bytes())?;
    println!("wrote {} ({} masked patches of {}; decoded tokens: {})", json_path.display(), ins.masked_patches, ins.visible.len(), summary["tokens_decoded"].as_str().unwrap_or(""));
    Ok(())
}

/// The six arrays of `OUTPUT_FILES` (tokens as int64, shape B x L).
fn arrays(ins: &Inspection) -> Result<Vec<(&'static str, NpyArray)>> {
    let tokens = NpyData::I64(ins.tokens.iter().map(|&t| t as i64).collect());
    Ok(vec![
        ("feat.npy", NpyArray::from_tensor(&ins.feat)?),
        ("tokens.npy", NpyArray::new(&[1, ins.tokens.len()], tokens)?),
        ("feat_q.npy", NpyArray::from_tensor(&ins.feat_q)?),
        ("logits.npy", NpyArray::from_tensor(&ins.logits)?),
        ("fdm.npy", NpyArray::from_tensor(&ins.fdm)?),
        ("decoded.npy", NpyArray::from_tensor(&ins.decoded)?),
    ])
}

fn refuse_existing_outputs(out: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let existing: Vec<&str> = OUTPUT_FILES.iter().copied().filter(|f| out.join(f).exists()).collect();
    if !existing.is_empty() {
        bail!("{} already holds {} (pass --force to overwrite)", out.display(), existing.join(", "));
    }
    Ok(())
}

/// Tokens from a token file (spec §5.6) or from an integer `.npy` (any shape, C order).
fn read_token_input(path: &Path) -> Result<Vec<u32>> {
    if path.extension().and_then(|e| e.to_str()) != Some("npy") {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow!("reading token file {}: {e}", path.display()))?;
        return text
            .split_whitespace()
            .map(|w| w.parse::<u32>().map_err(|_| anyhow!("{}: `{w}` is not a token index", path.display())))
            .collect();
    }
    let array = npy::read(path)?;
    let wide: Vec<i64> = match array.data {
        NpyData::I64(v) => v,
        NpyData::I32(v) => v.into_iter().map(i64::from).collect(),
        NpyData::F32(_) => bail!("{}: token ids must be integers (<i8 or <i4), found <f4", path.display()),
    };
    wide.iter()
        .map(|&t| u32::try_from(t).map_err(|_| anyhow!("{}: `{t}` is not a token index", path.display())))
        .collect()
}

/// `--random-init`: a seeded fresh model of `--preset` saved at `--weights` (atomic write).
fn write_random_init(a: &InspectArgs) -> Result<()> {
    let path = a.weights.as_ref().ok_or_else(|| anyhow!("--random-init needs --weights FILE (where to write the weights)"))?;
    if a.image.is_some() || a.mask.is_some() || a.out.is_some() || a.tokens.is_some() {
        bail!("--random-init only writes a weights file: drop --image, --mask, --out and --tokens");
    }
    if path.exists() && !a.force {
        bail!("{} already exists (pass --force to overwrite)", path.display());
    }
    let preset = a.preset.as_deref().unwrap_or("tiny");
    let seed = a.seed.unwrap_or(0);
    let model = InpaintingModel::new(&ModelConfig::by_name(preset)?, seed)?;
    model.save(path).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    // Counted as docs/PRESETS.md and the README do (learnable + codebook), not every value in the
    // file (the codebook's running statistics are stored too).
    let params = crate::model::cost::thousands(model.spec().model_total() as u64);
    println!("wrote {} ({preset} preset, {params} parameters, seed {seed})", path.display());
    Ok(())
}
