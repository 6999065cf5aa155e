//! Helpers of the data-parallel training tests (tests/train_dist.rs, tests/train_dist_launch.rs):
//! arguments, configs, running a group of ranks in threads, and the group-vs-one-process
//! comparison with its tolerances.
#![allow(dead_code)]

use fdm::cli::device::DeviceArg;
use fdm::io::safetensors as st;
use fdm::io::weight_store::WeightStore;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::ModelConfig;
use fdm::train::cli::{run, TrainArgs};
use fdm::train::dist_tcp::start_hub;
use fdm::train::runner::RunSummary;
use fdm::train::{Phase, TrainConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos")
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-dist-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn args(phase: &str, out: &Path) -> TrainArgs {
    TrainArgs {
        phase: phase.into(),
        data: photos(),
        preset: "tiny".into(),
        out: Some(out.to_path_buf()),
        gpus: 1,
        no_progress: true,
        device: DeviceArg::Cpu,
        ..Default::default()
    }
}

/// Random tiny weights to start phases 1b / 2 from.
pub fn init_weights(dir: &Path) -> PathBuf {
    let path = dir.join("init.safetensors");
    InpaintingModel::new(&ModelConfig::tiny(), 1)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

/// A tiny config with a 2-step warmup (so the weights move within 3 steps) and, when `one_mask`,
/// the same mask for every sample: then the losses normalised per shard (L1n's hole fraction,
/// the phase-1b count of masked positions) have the same normaliser on both ranks, and the
/// data-parallel loss is the single-process loss (see `dist` module docs).
pub fn config(phase: Phase, dir: &Path, one_mask: bool) -> PathBuf {
    let mut c = TrainConfig::tiny(phase);
    c.generator.warmup = 2;
    if let Some(d) = c.discriminator.as_mut() {
        d.warmup = 2;
        d.start_iter = 0;
    }
    c.losses.disc_start = 1;
    c.losses.feature_losses_start = 1;
    if one_mask {
        let masks = dir.join("masks");
        std::fs::create_dir_all(&masks).unwrap();
        let rect = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/masks/rect.png");
        std::fs::copy(rect, masks.join("rect.png")).unwrap();
        c.masks.mask_dir = Some(masks);
        c.masks.provided_p = 1.0;
        c.masks.zero_mask_p = 0.0;
        c.masks.low_to_high_p = 0.0;
    }
    let path = dir.join(format!("{}.json", phase.name()));
    std::fs::write(&path, c.to_json()).unwrap();
    path
}

/// Run `a` as a group of `world` ranks in threads (rank r gets `per_rank(r, a)`).
pub fn run_group(
    world: usize,
    a: &TrainArgs,
    per_rank: impl Fn(usize, &mut TrainArgs),
) -> Vec<Result<RunSummary, String>> {
    let hub = start_hub(world, Duration::from_secs(120)).unwrap();
    let threads: Vec<_> = (0..world)
        .map(|r| {
            let mut a = TrainArgs {
                ranks: Some(world),
                rank: Some(r),
                dist_addr: Some(hub.addr().to_string()),
                dist_timeout: Some(120),
                ..a.clone()
            };
            per_rank(r, &mut a);
            std::thread::spawn(move || run(&a, None).map_err(|e| e.to_string()))
        })
        .collect();
    let out = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let _ = hub.join();
    out
}

/// Every tensor of two safetensors files agrees: `|a - b| <= atol(name) + TOL_REL * |b|`
/// (`atol` None: not compared). Returns the largest `(|a - b| - TOL_REL |b|) / atol` seen.
pub fn assert_stores_close(a: &Path, b: &Path, atol: &dyn Fn(&str) -> Option<f32>) -> f32 {
    let ((sa, _), (sb, _)) = (st::load(a).unwrap(), st::load(b).unwrap());
    let names = |s: &WeightStore| s.names().map(String::from).collect::<Vec<_>>();
    assert_eq!(names(&sa), names(&sb), "{}", a.display());
    let mut worst = 0.0f32;
    for (name, ta) in sa.iter() {
        let Some(tol) = atol(name) else { continue };
        let (va, vb) = (
            ta.to_vec_f32().unwrap(),
            sb.get(name).unwrap().to_vec_f32().unwrap(),
        );
        for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
            let excess = ((x - y).abs() - TOL_REL * y.abs()).max(0.0);
            worst = worst.max(excess / tol.max(f32::MIN_POSITIVE));
            assert!(
                excess <= tol,
                "{}: {name}[{i}] = {x} vs {y} (tolerance {tol:e} + {TOL_REL} |b|)",
                a.display()
            );
        }
    }
    worst
}

/// Largest |x| over the tensors of `s` whose names end with `suffix`.
pub fn scale_of(s: &WeightStore, suffix: &str) -> f32 {
    s.iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .flat_map(|(_, t)| t.to_vec_f32().unwrap())
        .fold(0.0f32, |m, x| m.max(x.abs()))
}

/// losses.csv: the header and the rows as numbers (an empty cell reads as 0).
pub fn read_csv(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("losses.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse().unwrap_or(0.0)).collect())
        .collect();
    (header, rows)
}

/// The group's run equals the single process's at step `step` (tolerances: `TOL_REL`).
pub fn assert_same_training(one: &Path, group: &Path, step: u64, disc: bool) {
    let ck = |d: &Path, f: &str| d.join(format!("ckpt-{step:08}")).join(f);
    let state = |d: &Path| std::fs::read_to_string(ck(d, "state.json")).unwrap();
    assert_eq!(
        state(one),
        state(group),
        "step, schedules, Adam step counts, generator state"
    );
    let ((header, rows), (header_g, rows_g)) = (read_csv(one), read_csv(group));
    assert_eq!((&header, rows.len()), (&header_g, rows_g.len()));
    for (r1, rg) in rows.iter().zip(&rows_g) {
        for ((name, x), y) in header.iter().zip(rg).zip(r1) {
            let ok = (x - y).abs() <= TOL_REL as f64 * y.abs().max(1e-6);
            assert!(ok, "losses.csv {name}: group {x} vs one process {y}");
        }
    }
    // The total length of the steps an optimiser took (Adam moves a weight by about lr at most).
    let steps_len = |col: &str| {
        let c = header.iter().position(|h| h == col).unwrap();
        rows.iter().map(|r| r[c]).sum::<f64>() as f32
    };
    let weights =
        |len: f32| move |name: &str| (!name.ends_with("attn.key.bias")).then_some(TOL_STEP * len);
    let compare = |f: &str, atol: &dyn Fn(&str) -> Option<f32>| {
        assert_stores_close(&ck(group, f), &ck(one, f), atol)
    };
    let mut report = vec![(
        "model",
        compare("model.safetensors", &weights(steps_len("lr"))),
    )];
    if disc {
        let w = weights(steps_len("lr_discriminator"));
        report.push(("discriminator", compare("discriminator.safetensors", &w)));
    }
    let (moments, _) = st::load(ck(one, "optimizer.safetensors")).unwrap();
    let (avg, avg_sq) = (
        scale_of(&moments, ".exp_avg"),
        scale_of(&moments, ".exp_avg_sq"),
    );
    let per_kind = |name: &str| {
        Some(
            TOL_REL
                * if name.ends_with(".exp_avg_sq") {
                    avg_sq
                } else {
                    avg
                },
        )
    };
    report.push((
        "optimizer moments",
        compare("optimizer.safetensors", &per_kind),
    ));
    eprintln!("largest (|group - one| - {TOL_REL} |one|) / tolerance: {report:?}");
}

/// Tolerances of the group-vs-one-process comparison. Where the two differ: each rank's
/// gradient is the mean over its own sample, the group averages the two in f64 and rounds once,
/// while one process sums over both samples inside each backward kernel (another order of f32
/// additions); so gradients differ by rounding, relative to the gradients' overall scale.
/// * Adam moments (with betas (0, 0.9) the first moment is the last gradient itself):
///   `|a - b| <= TOL_REL * (|b| + the largest moment of that kind in the file)`. A wrong
///   reduction (a sum instead of a mean, a shard counted twice) is off by a factor, not 1e-5.
/// * Weights: Adam moves a weight by lr * m / (sqrt(v) + eps), which turns a rounding-level
///   difference of a gradient of about eps into a larger relative one, but never into more than
///   the step length: `|a - b| <= TOL_REL |b| + TOL_STEP * (sum of the learning rates used)`.
///   The attention key biases are left out of the weight check (their moments are checked): their
///   exact gradient is zero (softmax ignores a shift common to all keys), so the computed one is
///   rounding noise and Adam turns its sign into a full +-lr step, differently in each run.
pub const TOL_REL: f32 = 1e-5;
pub const TOL_STEP: f32 = 1e-2;
