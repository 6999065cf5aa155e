//! Data-parallel training (`train::dist`) on the CPU with the host transport: two ranks with one
//! sample each train exactly like one process with the batch of two (phases 2, 1a and 1b), a
//! NaN on one rank stops both cleanly, bad group arguments are clear errors, and the real
//! launcher (`fdm train --ranks 2`, through the binary) runs the group and reports a failing
//! rank. The NCCL transport (`--gpus N`) needs GPUs and cannot run here; only its "missing"
//! errors are checked.
//!
//! Ranks run as threads of the test process (each calls `train::cli::run` with its `--rank`),
//! except in the launcher tests. Tiny preset, the bundled photos, 2-3 steps.

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

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-dist-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn args(phase: &str, out: &Path) -> TrainArgs {
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
fn init_weights(dir: &Path) -> PathBuf {
    let path = dir.join("init.safetensors");
    InpaintingModel::new(&ModelConfig::tiny(), 1).unwrap().save(&path).unwrap();
    path
}

/// A tiny config with a 2-step warmup (so the weights move within 3 steps) and, when `one_mask`,
/// the same mask for every sample: then the losses normalised per shard (L1n's hole fraction,
/// the phase-1b count of masked positions) have the same normaliser on both ranks, and the
/// data-parallel loss is the single-process loss (see `dist` module docs).
fn config(phase: Phase, dir: &Path, one_mask: bool) -> PathBuf {
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
fn run_group(
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
fn assert_stores_close(a: &Path, b: &Path, atol: &dyn Fn(&str) -> Option<f32>) -> f32 {
    let ((sa, _), (sb, _)) = (st::load(a).unwrap(), st::load(b).unwrap());
    let names = |s: &WeightStore| s.names().map(String::from).collect::<Vec<_>>();
    assert_eq!(names(&sa), names(&sb), "{}", a.display());
    let mut worst = 0.0f32;
    for (name, ta) in sa.iter() {
        let Some(tol) = atol(name) else { continue };
        let (va, vb) = (ta.to_vec_f32().unwrap(), sb.get(name).unwrap().to_vec_f32().unwrap());
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
fn scale_of(s: &WeightStore, suffix: &str) -> f32 {
    s.iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .flat_map(|(_, t)| t.to_vec_f32().unwrap())
        .fold(0.0f32, |m, x| m.max(x.abs()))
}

/// losses.csv: the header and the rows as numbers (an empty cell reads as 0).
fn read_csv(dir: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(dir.join("losses.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|x| x.parse().unwrap_or(0.0)).collect())
        .collect();
    (header, rows)
}

/// The group's run equals the single process's at step `step` (tolerances: `TOL_REL`).
fn assert_same_training(one: &Path, group: &Path, step: u64, disc: bool) {
    let ck = |d: &Path, f: &str| d.join(format!("ckpt-{step:08}")).join(f);
    let state = |d: &Path| std::fs::read_to_string(ck(d, "state.json")).unwrap();
    assert_eq!(state(one), state(group), "step, schedules, Adam step counts, generator state");
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
    let weights = |len: f32| move |name: &str| (!name.ends_with("attn.key.bias")).then_some(TOL_STEP * len);
    let compare = |f: &str, atol: &dyn Fn(&str) -> Option<f32>| assert_stores_close(&ck(group, f), &ck(one, f), atol);
    let mut report = vec![("model", compare("model.safetensors", &weights(steps_len("lr"))))];
    if disc {
        let w = weights(steps_len("lr_discriminator"));
        report.push(("discriminator", compare("discriminator.safetensors", &w)));
    }
    let (moments, _) = st::load(ck(one, "optimizer.safetensors")).unwrap();
    let (avg, avg_sq) = (scale_of(&moments, ".exp_avg"), scale_of(&moments, ".exp_avg_sq"));
    let per_kind = |name: &str| Some(TOL_REL * if name.ends_with(".exp_avg_sq") { avg_sq } else { avg });
    report.push(("optimizer moments", compare("optimizer.safetensors", &per_kind)));
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
const TOL_REL: f32 = 1e-5;
const TOL_STEP: f32 = 1e-2;

#[test]
fn dist_phase2_two_ranks_equal_one_process_cpu() {
    let dir = scratch("p2");
    let base = TrainArgs {
        init: Some(init_weights(&dir)),
        config: Some(config(Phase::Phase2, &dir, false)),
        steps: Some(3),
        batch: Some(2),
        ..args("phase2", &dir.join("one"))
    };
    run(&base, None).unwrap();
    let group = TrainArgs { out: Some(dir.join("group")), ..base.clone() };
    let results = run_group(2, &group, |_, _| {});
    let lead = results[0].as_ref().unwrap();
    assert_eq!((lead.step, lead.steps_run), (3, 3));
    assert!(lead.final_weights.is_some());
    let other = results[1].as_ref().unwrap();
    assert!(other.final_weights.is_none(), "only rank 0 writes");
    assert_eq!(lead.last_terms, other.last_terms, "logged losses are the same on every rank");
    assert_same_training(&dir.join("one"), &dir.join("group"), 3, false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dist_phase1a_two_ranks_equal_one_process_cpu() {
    // The codebook starts from the first global batch's features (gathered over the ranks), the
    // EMA statistics are summed over the ranks, and the discriminator trains from step 1.
    let dir = scratch("p1a");
    let base = TrainArgs {
        config: Some(config(Phase::Phase1a, &dir, true)),
        steps: Some(3),
        ..args("phase1a", &dir.join("one"))
    };
    run(&base, None).unwrap();
    let group = TrainArgs { out: Some(dir.join("group")), ..base.clone() };
    for r in run_group(2, &group, |_, _| {}) {
        r.unwrap();
    }
    assert_same_training(&dir.join("one"), &dir.join("group"), 3, true);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dist_phase1b_two_ranks_equal_one_process_cpu() {
    // The random quantisation draws are those of the single process (each rank uses its slice).
    let dir = scratch("p1b");
    let base = TrainArgs {
        init: Some(init_weights(&dir)),
        config: Some(config(Phase::Phase1b, &dir, true)),
        steps: Some(2),
        ..args("phase1b", &dir.join("one"))
    };
    run(&base, None).unwrap();
    let group = TrainArgs { out: Some(dir.join("group")), ..base.clone() };
    for r in run_group(2, &group, |_, _| {}) {
        r.unwrap();
    }
    assert_same_training(&dir.join("one"), &dir.join("group"), 2, false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dist_nan_on_one_rank_stops_every_rank_cpu() {
    let dir = scratch("nan");
    let a = TrainArgs {
        init: Some(init_weights(&dir)),
        steps: Some(4),
        batch: Some(2),
        checkpoint_every: Some(1),
        inject_nan_at: Some(2),
        ..args("phase2", &dir.join("run"))
    };
    // Every rank gets the same arguments (as from the launcher); only rank 1 injects the NaN.
    let results = run_group(2, &a, |_, a| a.inject_nan_rank = Some(1));
    for (r, res) in results.iter().enumerate() {
        let e = res.as_ref().unwrap_err();
        assert!(e.contains("NaN at step 2") && e.contains("mean over 2 ranks"), "rank {r}: {e}");
        assert!(e.contains("ckpt-00000002"), "rank {r} names the last good checkpoint: {e}");
    }
    let ckpts = fdm::train::checkpoint::list(&dir.join("run"));
    assert_eq!(ckpts.last(), Some(&dir.join("run/ckpt-00000002")));
    assert!(!dir.join("run/phase2.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dist_bad_group_arguments_are_clear_errors_cpu() {
    let dir = scratch("bad");
    let err = |a: TrainArgs| run(&a, None).unwrap_err().to_string();
    let a = || args("phase1a", &dir.join("o"));
    let e = err(TrainArgs { ranks: Some(2), batch: Some(3), ..a() });
    assert!(e.contains("3 does not split over 2 ranks"), "{e}");
    let e = err(TrainArgs { gpus: 2, ..a() });
    assert!(e.contains("--gpus 2") && e.contains("--ranks 2 --device cpu"), "{e}");
    if fdm::cuda::device_count().unwrap_or(0) < 2 {
        let e = err(TrainArgs { gpus: 2, device: DeviceArg::Auto, ..a() });
        assert!(e.contains("--gpus 2 needs 2 CUDA GPUs"), "{e}");
    } else if let Err(why) = fdm::train::dist_nccl::nccl_available() {
        let e = err(TrainArgs { gpus: 2, device: DeviceArg::Auto, ..a() });
        assert!(e.contains(&why), "{e}");
    }
    let e = err(TrainArgs { gpus: 2, ranks: Some(2), ..a() });
    assert!(e.contains("give one"), "{e}");
    let e = err(TrainArgs { ranks: Some(2), ..a() });
    assert!(e.contains("started by the fdm binary"), "{e}");
    let e = err(TrainArgs { rank: Some(0), ..a() });
    assert!(e.contains("--rank is set by the launcher"), "{e}");
    let e = err(TrainArgs { ranks: Some(2), compare_sampler: true, ..a() });
    assert!(e.contains("--compare-sampler"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn fdm_train(extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fdm"))
        .arg("train")
        .args(extra)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

#[test]
fn dist_launcher_runs_two_cpu_ranks_through_the_binary_cpu() {
    let dir = scratch("launch");
    let init = init_weights(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let common = [
        "phase2", "--data", &s(&photos()), "--init", &s(&init), "--steps", "2", "--batch", "2",
        "--no-progress", "--device", "cpu", "--dist-timeout", "60",
    ]
    .map(String::from);
    let with = |more: &[&str]| -> Vec<String> {
        common.iter().cloned().chain(more.iter().map(|x| x.to_string())).collect()
    };
    let strs = |v: &[String]| v.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ");
    let one = fdm_train(&with(&["--out", &s(&dir.join("one"))]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stderr));
    let g = with(&["--out", &s(&dir.join("group")), "--ranks", "2"]);
    let group = fdm_train(&g.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = (String::from_utf8_lossy(&group.stdout), String::from_utf8_lossy(&group.stderr));
    assert!(group.status.success(), "{}: {err}", strs(&g));
    assert!(err.contains("x 2 ranks (1 samples each)"), "{err}");
    assert!(out.contains("2 steps in") && out.contains("weights:"), "rank 0 reports once: {out}");
    assert_eq!(out.matches("2 steps in").count(), 1, "{out}");
    assert_same_training(&dir.join("one"), &dir.join("group"), 2, false);
    // A rank that fails: the launcher names it and quotes its error; every process ends.
    let bad = with(&["--out", &s(&dir.join("nan")), "--ranks", "2", "--inject-nan-at", "1", "--inject-nan-rank", "1"]);
    let failed = fdm_train(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(err.contains("data-parallel training failed: rank") && err.contains("NaN at step 1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dist_launcher_without_gpus_is_a_clear_error_cpu() {
    if fdm::cuda::device_count().unwrap_or(0) >= 2 {
        eprintln!("SKIP: this machine has 2 CUDA devices");
        return;
    }
    let p = photos();
    let out = fdm_train(&["phase1a", "--data", p.to_str().unwrap(), "--gpus", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--gpus 2 needs 2 CUDA GPUs"), "{err}");
    let out = fdm_train(&["phase1a", "--data", p.to_str().unwrap(), "--gpus", "2", "--device", "cpu"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--ranks 2 --device cpu"), "{err}");
}
