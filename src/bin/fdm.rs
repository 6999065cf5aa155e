//! The `fdm` command line: argument parsing only; the work is in `fdm::cli` and below.
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fdm::cli::device::{pick_device, DeviceArg};
use fdm::cli::inpaint::{paired_jobs, InpaintRun, Job, PrecisionArg};
use fdm::model::inpainting::InpaintingModel;
use fdm::pipeline::inpaint::InpaintOptions;
use fdm::pipeline::sampler::SamplerOptions;
use std::path::PathBuf;

/// Large freed buffers are reused rather than unmapped and mapped again (`host_alloc`).
#[global_allocator]
static ALLOCATOR: fdm::host_alloc::ReusingAlloc = fdm::host_alloc::ReusingAlloc::new();

/// The bundled tiny model, trained by `fdm train` on the bundled photos (see README).
const BUNDLED_WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");

#[derive(Parser)]
#[command(name = "fdm", version, about = "PUT + FDM pluralistic image inpainting on a from-scratch tensor engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fill the holes of photos: several different completions per photo.
    Inpaint(InpaintArgs),
    /// Time one inpainting per layer and stage (MACs, GFLOP/s, FDM's share of the whole).
    Profile(ProfileArgs),
    /// Reproduce the paper's tables on given weights, photos and masks.
    Reproduce(ReproduceArgs),
    /// Check the engine on this machine: which device is used (on a GPU, whether its Linear GEMMs
    /// run on cuBLAS, and the kernel switches set), a small forward and backward whose gradients
    /// are checked, and one CUDA kernel on the emulator against the CPU.
    Selfcheck,
    /// Train one phase (phase1a, phase1b, phase2, phase3) on a folder of photos.
    ///
    /// phase1a starts from fresh weights; phase1b, phase2 and phase3 each start from the previous
    /// phase's final weights, given with --init (phase1a.safetensors for phase1b, and so on), or
    /// continue a run of their own with --resume.
    Train(fdm::train::cli::TrainArgs),
    /// Score generated images against ground truth: PSNR, SSIM, MAE, L1, LPIPS, diversity.
    Eval(fdm::metrics::eval::EvalArgs),
    /// Write one image's intermediate tensors (features, tokens, logits, FDM, decoded) as .npy.
    ///
    /// Runs one image and mask through the deterministic path (encode, quantise, one transformer
    /// pass, token replay, FDM, decode; no sampling) and writes feat.npy, tokens.npy, feat_q.npy,
    /// logits.npy, fdm.npy, decoded.npy and inspect.json to --out (docs/INSPECT.md defines each
    /// file). With --random-init it writes a seeded, freshly initialised weights file to
    /// --weights instead.
    Inspect(fdm::cli::inspect::InspectArgs),
}

#[derive(Args)]
struct InpaintArgs {
    /// Photos to inpaint (PNG, JPEG, WebP, BMP, TIFF or GIF, any size; RGBA and grey are converted with a note).
    images: Vec<PathBuf>,
    /// Mask for the photos: white = hole to fill, black = keep (grey thresholded at 128).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Folder of photos, paired by file stem with --mask-dir (skips finished outputs).
    #[arg(long, requires = "mask_dir", conflicts_with_all = ["images", "mask"])]
    image_dir: Option<PathBuf>,
    /// Folder of masks named like the photos in --image-dir.
    #[arg(long, requires = "image_dir")]
    mask_dir: Option<PathBuf>,
    /// Output folder: <stem>_<k>.png per sample and <stem>_sheet.png.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Samples per photo, drawn in batches of --batch-size (each one batched forward).
    #[arg(short = 'n', long = "samples", default_value_t = 1, value_parser = at_least_one)]
    samples: usize,
    /// Most samples drawn as one batched forward; more run in several batches, each written out
    /// when done (the first batch draws with --seed, the others with seeds derived from it, so
    /// the same -n, --batch-size and --seed give the same samples). 1 to 4096.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch_size: u64,
    /// Weights file (safetensors from `fdm train` or weights-tools/convert_pth.py) [default: the
    /// bundled tiny model, assets/weights/fdm-tiny.safetensors].
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Where to run: auto (a usable CUDA GPU, else the CPU), cpu, cuda, or cuda-emu (the CUDA
    /// kernels on a CPU emulator: for checking, very slow).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Storage of the transformer's Linear weights. bf16 halves the transformer's weight memory
    /// and runs its linears and attention on tensor cores on CUDA (activations rounded to bf16,
    /// f32 sums); the CPU computes the same roundings (no speed-up there). Inference only.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Seed of the token draws: the same seed on the same device gives identical output.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Positions filled per transformer pass (paper: 1).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    tokens_per_pass: usize,
    /// Top-K filter of the token draw (paper: 50): 1 to the model's token vocabulary (256 for the
    /// tiny preset, 512 for the paper's).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    top_k: usize,
    /// Softmax temperature of the token draw (paper: 1).
    #[arg(long, default_value_t = 1.0, value_parser = positive_finite)]
    temperature: f32,
    /// Re-sampling sweeps over the filled tokens after the fill (paper: 0).
    #[arg(long, default_value_t = 0)]
    gibbs_sweeps: usize,
    /// Decode without FDM (the PUT baseline).
    #[arg(long)]
    no_fdm: bool,
    /// On a GPU, run every transformer pass eagerly instead of replaying a CUDA graph of it (same
    /// tokens; for comparison and debugging).
    #[arg(long)]
    no_cuda_graph: bool,
    /// Masks use black = hole instead.
    #[arg(long)]
    invert_mask: bool,
    /// Resize a mask of another size than its photo to the photo's size (nearest neighbour, then
    /// the usual threshold), with a note; without it such a mask is an error.
    #[arg(long)]
    resize_mask: bool,
    /// Also write the sampled tokens as <stem>_<k>.txt.
    #[arg(long)]
    save_tokens: bool,
    /// Replay these token files (one per sample) instead of sampling.
    #[arg(long, num_args = 1..)]
    tokens: Vec<PathBuf>,
}

#[derive(Args)]
struct ProfileArgs {
    /// Photo to inpaint (defaults to a bundled photo).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Mask (white = hole; defaults to the bundled rectangle mask).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Weights file (default: the bundled tiny model).
    #[arg(long, conflicts_with = "random_init")]
    weights: Option<PathBuf>,
    /// Profile freshly initialised weights of this preset (timing and MACs only).
    #[arg(long, value_parser = ["tiny", "paper"])]
    random_init: Option<String>,
    /// Where to run: auto (a usable CUDA GPU, else the CPU), cpu, cuda, or cuda-emu (the CUDA
    /// kernels on a CPU emulator: for checking, very slow).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Storage of the transformer's Linear weights (as `fdm inpaint --precision`): bf16 runs
    /// them and the attention on tensor cores on CUDA.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Seed of the token draws (as `fdm inpaint --seed`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples drawn as one batch (as `fdm inpaint -n`): the per-op costs at that batch size. 1 to
    /// 64.
    #[arg(short = 'n', long = "samples", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    samples: u64,
    /// Profile the PUT baseline (no FDM).
    #[arg(long)]
    no_fdm: bool,
    /// Write the aggregated table as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every timed op as a Chrome trace (chrome://tracing, Perfetto).
    #[arg(long)]
    chrome_trace: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum TableArg {
    Table1,
    Table2,
    Table3,
    /// Adapted: VQ codec with and without FDM on token-only reconstructions (see README).
    Table4,
    All,
}

#[derive(Args)]
struct ReproduceArgs {
    /// Which table to reproduce (all: the four in turn).
    #[arg(value_enum)]
    table: TableArg,
    /// Weights file (default: the bundled tiny model).
    #[arg(long, conflicts_with = "random_init")]
    weights: Option<PathBuf>,
    /// Use freshly initialised weights of this preset: for Table 2's timing and MACs; the other
    /// tables then score an untrained model (their files say so).
    #[arg(long, value_parser = ["tiny", "paper"])]
    random_init: Option<String>,
    /// Folder of test photos (default: the bundled photos).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder of mask files (white = hole), used by hole ratio; default: seeded generated masks.
    #[arg(long)]
    masks: Option<PathBuf>,
    /// Number of photos to use (the paper uses its whole test split).
    #[arg(short = 'n', long, default_value_t = 4)]
    images: usize,
    /// Output folder: each table as <table>.md and <table>.json (Table 4 also its reconstructions).
    #[arg(long, default_value = "out/reproduce")]
    out: PathBuf,
    /// Seed of the generated masks and of the token draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run: auto (a usable CUDA GPU, else the CPU), cpu, cuda, or cuda-emu (the CUDA
    /// kernels on a CPU emulator: for checking, very slow).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Tables 1 and 4: converted Inception weights for FID (default: $FDM_INCEPTION_WEIGHTS or the
    /// cached / assets/weights inception_fid.safetensors; without them FID is left out).
    #[arg(long)]
    inception_weights: Option<PathBuf>,
    /// Tables 1 and 4: LPIPS backbone (vgg, PUT's default, or alex).
    #[arg(long, default_value = "vgg", value_parser = ["vgg", "alex"])]
    lpips: String,
}

/// A count of at least 1 (`-n`, `--top-k`, `--tokens-per-pass`), refused when the command line is
/// read rather than after the model and the photos are loaded.
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A positive, finite number (`--temperature`): 0, a negative, `inf` or `nan` is refused when the
/// command line is read, before anything is loaded.
fn positive_finite(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("must be positive and finite, got {s}"))
    }
}

/// Errors are printed as one line, `error: what: why: cause` (`cli::one_line`), and the exit
/// status is 1.
fn main() -> std::process::ExitCode {
    fdm::host_threads::pool_setup();
    let command = Cli::parse().command;
    // Every command but training runs on a pool thread (`host_threads`: far fewer thread
    // wake-ups per op); training waits on its data loader, so its runner puts each step there.
    let result = match command {
        Command::Train(_) => run(command),
        _ => fdm::host_threads::on_pool(move || run(command)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", fdm::cli::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Inpaint(a) => inpaint(a),
        Command::Profile(a) => profile(a),
        Command::Reproduce(a) => reproduce(a),
        Command::Selfcheck => selfcheck(),
        Command::Train(args) => Ok(fdm::train::cli::main(&args)?),
        Command::Eval(args) => fdm::metrics::eval::run(&args).map(|_| ()).map_err(Into::into),
        Command::Inspect(args) => fdm::cli::inspect::run(&args),
    }
}

fn inpaint(a: InpaintArgs) -> Result<()> {
    let jobs = match (&a.image_dir, &a.mask_dir) {
        (Some(i), Some(m)) => paired_jobs(i, m)?,
        _ => {
            if a.images.is_empty() {
                bail!("give photos to inpaint (or --image-dir with --mask-dir)");
            }
            let mask = a.mask.clone().context("--mask is required with photos (white = hole)")?;
            a.images.iter().map(|p| Job { image: p.clone(), mask: mask.clone() }).collect()
        }
    };
    let weights = a.weights.clone().unwrap_or_else(|| PathBuf::from(BUNDLED_WEIGHTS));
    if !weights.exists() {
        bail!("weights file {} not found (pass --weights FILE)", weights.display());
    }
    // Before the model is loaded, so an unwritable --out is reported at once, not after sampling.
    fdm::cli::inpaint::check_output_folder(&a.out)?;
    let device = pick_device(a.device)?;
    let mut model = InpaintingModel::load(&weights, None).with_context(|| format!("loading weights {}", weights.display()))?;
    // Rounded on the host first, so a bf16 model uploads half the transformer's bytes.
    model.set_transformer_precision(a.precision.into())?;
    model.to_device(&device)?;
    model.prepare_for_inference()?;
    let opts = InpaintOptions {
        sampler: SamplerOptions { tokens_per_pass: a.tokens_per_pass, top_k: a.top_k, temperature: a.temperature, gibbs_sweeps: a.gibbs_sweeps, cuda_graph: !a.no_cuda_graph },
        samples: a.samples,
        use_fdm: !a.no_fdm,
        seed: a.seed,
    };
    // The top-k bound is the model's vocabulary: checked here, not under an image's name.
    let vocab = model.cfg.transformer.vocab;
    if opts.sampler.top_k > vocab {
        bail!("--top-k must be in 1..={vocab} for this model (its token vocabulary), got {}", opts.sampler.top_k);
    }
    let run = InpaintRun {
        jobs,
        out: a.out,
        opts,
        batch_size: a.batch_size as usize,
        invert_mask: a.invert_mask,
        save_tokens: a.save_tokens,
        replay: a.tokens,
        resume: a.image_dir.is_some(),
        resize_mask: a.resize_mask,
    };
    println!("model: {} preset from {} ({} transformer weights)", model.cfg.preset, weights.display(), fdm::model::inpainting::Precision::from(a.precision).name());
    fdm::cli::inpaint::run(&model, &run, &device)
}

fn load_model(weights: Option<PathBuf>, random_init: Option<&str>, device: &fdm::Device) -> Result<InpaintingModel> {
    load_model_as(weights, random_init, device, PrecisionArg::F32)
}

/// `load_model` with the transformer's Linear weights stored at `precision` (rounded on the host,
/// before the upload).
fn load_model_as(weights: Option<PathBuf>, random_init: Option<&str>, device: &fdm::Device, precision: PrecisionArg) -> Result<InpaintingModel> {
    let mut model = match random_init {
        Some(preset) => InpaintingModel::new(&fdm::model::presets::ModelConfig::by_name(preset)?, 0)?,
        None => {
            let w = weights.unwrap_or_else(|| PathBuf::from(BUNDLED_WEIGHTS));
            if !w.exists() {
                bail!("weights file {} not found (pass --weights FILE)", w.display());
            }
            InpaintingModel::load(&w, None).with_context(|| format!("loading weights {}", w.display()))?
        }
    };
    model.set_transformer_precision(precision.into())?;
    model.to_device(device)?;
    model.prepare_for_inference()?;
    Ok(model)
}

fn profile(a: ProfileArgs) -> Result<()> {
    use fdm::cli::profile as prof;
    let asset = |p: &str| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/")).join(p);
    let image = a.image.unwrap_or_else(|| asset("photos/dev_005.jpg"));
    let default_mask = a.mask.is_none();
    let mask = a.mask.unwrap_or_else(|| asset("masks/rect.png"));
    let device = pick_device(a.device)?;
    // Report files are checked before the model is loaded and the inpainting is timed.
    for p in a.json.iter().chain(&a.chrome_trace) {
        fdm::io::atomic::check_output_file(p)?;
    }
    let model = load_model_as(a.weights, a.random_init.as_deref(), &device, a.precision)?;
    let img = fdm::io::image::load_image(&image).with_context(|| format!("loading {}", image.display()))?;
    let m = fdm::io::image::load_mask(&mask, false).with_context(|| format!("loading {}", mask.display()))?;
    if let Err(e) = fdm::io::image::check_mask_matches(&img.tensor, &m) {
        if default_mask {
            bail!("{} is {}x{}: without --mask the bundled mask is used, which is for 256x256 images (give a --mask of the photo's size)", image.display(), img.tensor.shape()[2], img.tensor.shape()[1]);
        }
        return Err(e.into());
    }
    let opts = InpaintOptions { use_fdm: !a.no_fdm, seed: a.seed, samples: a.samples as usize, ..Default::default() };
    let bar = indicatif::ProgressBar::new(0);
    let (recording, passes) = prof::record(&device, || {
        let r = fdm::pipeline::photo::inpaint_photo(&model, &img.tensor, &m, &opts, None, &mut |p, t| {
            bar.set_length(t as u64);
            bar.set_position(p as u64);
        })?;
        Ok(r.passes)
    })?;
    bar.finish_and_clear();
    let report = prof::aggregate_recording(&recording, &device.name(), passes);
    println!(
        "model: {} preset ({} transformer weights); image {}; mask {}; {} sample(s) as one batch",
        model.cfg.preset,
        fdm::model::inpainting::Precision::from(a.precision).name(),
        image.display(),
        mask.display(),
        a.samples
    );
    prof::print(&report);
    if let Some(p) = &a.json {
        prof::write_json(&report, p)?;
    }
    if let Some(p) = &a.chrome_trace {
        prof::write_chrome_trace(&recording, p)?;
    }
    Ok(())
}

fn reproduce(a: ReproduceArgs) -> Result<()> {
    use fdm::cli::reproduce as rep;
    let device = pick_device(a.device)?;
    let weights_name = match (&a.random_init, &a.weights) {
        (Some(p), _) => format!("fresh {p} weights (untrained)"),
        (None, Some(w)) => w.display().to_string(),
        (None, None) => BUNDLED_WEIGHTS.to_string(),
    };
    // The output folder is checked before anything is loaded or computed.
    fdm::cli::inpaint::check_output_folder(&a.out)?;
    if a.masks.is_some() && matches!(a.table, TableArg::Table4) {
        eprintln!("note: --masks is not used by table4 (a token-only reconstruction has no hole)");
    }
    let model = load_model(a.weights.clone(), a.random_init.as_deref(), &device)?;
    let s = model.cfg.image_size;
    let data = a.data.clone().unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")));
    let photos = rep::load_photos(&data, a.images, s)?;
    let (file_masks, masks_desc) = match &a.masks {
        Some(dir) => {
            let (masks, names) = rep::load_photos_masks(dir, s)?;
            (masks, rep::masks_description(dir, &names))
        }
        None => (Vec::new(), "generated by the seeded stroke/rectangle generator per hole-ratio bucket".into()),
    };
    let prov = rep::Provenance { weights: weights_name, preset: model.cfg.preset.clone(), data: data.display().to_string(), images: photos.len(), masks: masks_desc, device: device.name(), seed: a.seed };
    if photos.len() < rep::PAPER_TEST_IMAGES {
        println!("reproducing on {} photo(s) (the paper uses whole test splits: this is a reduced run)", photos.len());
    } else {
        println!("reproducing on {} photo(s)", photos.len());
    }
    let mut rng = fdm::rng::Rng::new(a.seed);
    let mut pick = |bucket: (f32, f32), i: usize| -> Result<fdm::Tensor> {
        if file_masks.is_empty() {
            return rep::bucket_mask(&mut rng, s, bucket);
        }
        rep::file_mask_in_bucket(&file_masks, bucket, i)
    };
    // LPIPS and the Inception model (FID) are loaded once for Tables 1 and 4.
    let scored = matches!(a.table, TableArg::Table1 | TableArg::Table4 | TableArg::All);
    let lpips = if scored { Some(fdm::metrics::Lpips::load_default(fdm::metrics::LpipsNet::parse(&a.lpips)?)?) } else { None };
    let weights = if scored { a.inception_weights.clone().or_else(fdm::metrics::fid::default_weights_path) } else { None };
    let fid_model = match &weights {
        Some(w) => Some(fdm::metrics::fid::FidModel::load(w, fdm::metrics::fid::FidResize::Pytorch)?),
        None => {
            if scored {
                eprintln!("note: FID left out of Tables 1 and 4. {}", fdm::metrics::fid::weights_help());
            }
            None
        }
    };
    let name = weights.as_ref().map(|w| w.display().to_string()).unwrap_or_default();
    if matches!(a.table, TableArg::Table1 | TableArg::All) {
        let lpips = lpips.as_ref().context("LPIPS loaded for table 1")?;
        let bar = indicatif::ProgressBar::new((4 * photos.len()) as u64);
        let buckets = rep::TABLE1_BUCKETS;
        let t = rep::table1(&model, &photos, &mut |b, i| pick(buckets[b], i), lpips, fid_model.as_ref().map(|m| (m, name.as_str())), prov.clone(), &mut |r| bar.set_position(r as u64))?;
        bar.finish_and_clear();
        let md = rep::table1_markdown(&t);
        println!("{md}");
        rep::write_table(&a.out, "table1", &md, &t)?;
    }
    if matches!(a.table, TableArg::Table2 | TableArg::All) {
        let masks = (0..photos.len()).map(|i| pick((0.2, 0.3), i)).collect::<Result<Vec<_>>>()?;
        let bar = indicatif::ProgressBar::new(photos.len() as u64);
        let t = rep::table2(&model, &photos, &masks, prov.clone(), &mut |i| bar.set_position(i as u64))?;
        bar.finish_and_clear();
        let md = rep::table2_markdown(&t);
        println!("{md}");
        rep::write_table(&a.out, "table2", &md, &t)?;
    }
    if matches!(a.table, TableArg::Table3 | TableArg::All) {
        let buckets = [(0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)];
        let t = rep::table3(&model, &photos, &buckets, &mut |b, i| pick(buckets[b], i), prov.clone())?;
        let md = rep::table3_markdown(&t);
        println!("{md}");
        rep::write_table(&a.out, "table3", &md, &t)?;
    }
    if matches!(a.table, TableArg::Table4 | TableArg::All) {
        use fdm::cli::reproduce_table4 as t4;
        let lpips = lpips.as_ref().context("LPIPS loaded for table 4")?;
        let prov = rep::Provenance { masks: "none (token-only reconstruction: no pixel known, FDM mask M = 1 at every patch)".into(), ..prov.clone() };
        // The reconstructions are saved for a look at what FDM changes (the paper's Figure 8).
        let dir = a.out.join("table4");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let bar = indicatif::ProgressBar::new(photos.len() as u64);
        let mut save = |i: usize, stem: &str, r: &t4::TokenReconstruction| -> Result<()> {
            fdm::io::image::save_png(&r.vq, dir.join(format!("{stem}_vq.png")))?;
            fdm::io::image::save_png(&r.vq_fdm, dir.join(format!("{stem}_vq_fdm.png")))?;
            fdm::io::image::save_png(&r.continuous, dir.join(format!("{stem}_ceiling.png")))?;
            bar.set_position(i as u64 + 1);
            Ok(())
        };
        let t = t4::table4(&model, &photos, lpips, fid_model.as_ref().map(|m| (m, name.as_str())), prov, &mut save)?;
        bar.finish_and_clear();
        println!("{}", t4::table4_markdown(&t));
        t4::write_table4(&t, &a.out)?;
    }
    println!("written to {}", a.out.display());
    Ok(())
}

/// A forward and backward through the tape: loss = sum(a * b), whose gradients are b and a.
fn selfcheck_autograd() -> Result<()> {
    use fdm::autograd::{binary, reduce, Tape};
    let tape = Tape::new();
    let (av, bv) = (vec![1.0f32, 2.0, 3.0], vec![0.5f32, -1.0, 4.0]);
    let a = tape.var(fdm::Tensor::from_vec(av.clone(), &[3])?);
    let b = tape.var(fdm::Tensor::from_vec(bv.clone(), &[3])?);
    let loss = reduce::sum(&tape, &binary::mul(&tape, &a, &b)?, &[0], false)?;
    let grads = tape.backward(&loss)?;
    let (da, db) = (grads.expect(&a, "a")?.to_vec_f32()?, grads.expect(&b, "b")?.to_vec_f32()?);
    if da != bv || db != av {
        bail!("autograd: d sum(a b) / da = {da:?} and / db = {db:?}, expected {bv:?} and {av:?}");
    }
    println!("engine: sum(a * b) = {:?}; its gradients are b and a, as they must be", loss.value().to_vec_f32()?);
    Ok(())
}

fn selfcheck() -> Result<()> {
    let (device, why) = fdm::Device::best();
    println!("device: {why}");
    if let fdm::Device::Cuda(dev) = &device {
        println!("{}", fdm::cuda::blas::status_line(dev));
        if fdm::cuda::ops::attention::wide_requested() {
            println!("attention (bf16): 128 queries per block where the grid keeps 128 blocks ({}=0 turns it off)", fdm::cuda::ops::attention::WIDE_ENV);
        }
        if fdm::cuda::ops::conv2d::wide_requested() {
            println!("conv2d: 128-pixel x 64-channel tiles where the grid keeps 256 blocks ({}=1)", fdm::cuda::ops::conv2d::WIDE_ENV);
        }
        if fdm::cuda::ops::attention_fa::bf16_inputs_requested() {
            println!("attention (bf16): the bf16-input kernel where 128-query blocks run ({}=1)", fdm::cuda::ops::attention_fa::BF16_INPUTS_ENV);
        }
    }
    selfcheck_autograd()?;
    // The CUDA path (dispatch, launcher, kernel) on the emulated device, against the CPU.
    let x = fdm::Tensor::from_vec((0..64).map(|i| (i as f32 * 0.37).sin() * 4.0).collect(), &[4, 16])?;
    let want = fdm::ops::softmax::softmax(&x)?.to_vec_f32()?;
    let emu = fdm::Device::Cuda(fdm::cuda::CudaDevice::emulated());
    let got = fdm::ops::softmax::softmax(&x.to_device(&emu)?)?.to_vec_f32()?;
    let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    if worst > 1e-5 {
        bail!("CUDA softmax kernel on the emulator differs from the CPU by {worst}");
    }
    println!("cuda kernels (emulated): softmax of 4 x 16 matches the CPU (max difference {worst:.1e})");
    Ok(())
}
