//! `fdm train` through the binary, run as a user would from a working folder: where a resumed
//! run writes, and the errors of a bad `--resume` or `--init`.
mod cli_common;
use cli_common::fdm_in;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-cli-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `fdm train ARGS` run in `cwd` on the bundled photos; (exit status ok, stdout + stderr).
fn train(cwd: &Path, args: &[&str]) -> (bool, String) {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos");
    fdm_in(cwd, &[&["train"][..], args, &["--no-progress", "--device", "cpu", "--data", data]].concat())
}

#[test]
fn train_resume_without_out_continues_in_the_resumed_run_cpu() {
    let dir = scratch("resume");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let run = dir.join("myrun");
    let run_s = run.to_str().unwrap();
    let (ok, log) = train(&dir, &["phase2", "--batch", "1", "--steps", "1", "--init", init, "--out", run_s]);
    assert!(ok, "{log}");
    // Resumed by its run folder, then by its checkpoint: each continues in `myrun`.
    let (ok, log) = train(&dir, &["phase2", "--steps", "2", "--resume", run_s]);
    assert!(ok, "{log}");
    assert!(run.join("ckpt-00000002").is_dir(), "{log}");
    let ckpt = run.join("ckpt-00000002");
    let (ok, log) = train(&dir, &["phase2", "--steps", "3", "--resume", ckpt.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert!(run.join("ckpt-00000003").is_dir(), "{log}");
    assert!(!dir.join("runs").exists(), "nothing written to ./runs: {log}");
    let rows = std::fs::read_to_string(run.join("losses.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows, 3, "one loss log over the three steps");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_resume_of_a_missing_path_says_it_does_not_exist_cpu() {
    let dir = scratch("missing");
    let (ok, log) = train(&dir, &["phase2", "--resume", "/nonexistent/run"]);
    assert!(!ok && log.contains("/nonexistent/run does not exist"), "{log}");
    // An existing folder with no checkpoint keeps its own message.
    let (ok, log) = train(&dir, &["phase2", "--resume", dir.to_str().unwrap()]);
    assert!(!ok && log.contains("neither a checkpoint nor a folder holding one"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_init_of_a_missing_file_names_the_option_cpu() {
    let dir = scratch("init");
    let (ok, log) = train(&dir, &["phase2", "--init", "/nonexistent/w.safetensors", "--out", dir.join("o").to_str().unwrap()]);
    assert!(!ok && log.contains("--init /nonexistent/w.safetensors: no such file"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_config_errors_name_the_option_and_the_phase_cpu() {
    let dir = scratch("config");
    let out = dir.join("o");
    let out_s = out.to_str().unwrap();
    let (ok, log) = train(&dir, &["phase2", "--config", "/nonexistent/c.json", "--out", out_s]);
    assert!(!ok && log.contains("--config /nonexistent/c.json: No such file"), "{log}");
    // A phase-3 config under `train phase2` is reported as such, not by what phase 2 rejects in it.
    let p3 = dir.join("p3.json");
    let text = fdm::train::config::TrainConfig::tiny(fdm::train::config::Phase::Phase3).to_json();
    std::fs::write(&p3, text.replace("\"seed\"", "\"extra_key\": 1,\n  \"seed\"")).unwrap();
    let (ok, log) = train(&dir, &["phase2", "--config", p3.to_str().unwrap(), "--out", out_s]);
    assert!(!ok && log.contains("is a phase3 config, not phase2"), "{log}");
    let (ok, log) = train(&dir, &["phase3", "--config", p3.to_str().unwrap(), "--out", out_s]);
    assert!(!ok && log.contains("unknown field `extra_key`") && log.lines().count() == 1, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--resume` with the run's own command line (same `--config`, `--batch`, `--seed`) continues
/// it; a value that differs is named with both values, and a `--steps` already reached is an
/// error instead of a rewritten checkpoint.
#[test]
fn train_resume_accepts_the_runs_own_options_and_names_a_changed_one_cpu() {
    let dir = scratch("resume-options");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let cfg = dir.join("p2.json");
    let mut c = fdm::train::config::TrainConfig::tiny(fdm::train::config::Phase::Phase2);
    c.batch_size = 1;
    std::fs::write(&cfg, c.to_json()).unwrap();
    let (run, cfg) = (dir.join("run"), cfg.to_str().unwrap().to_string());
    let run_s = run.to_str().unwrap();
    let same = ["--config", &cfg, "--batch", "1", "--seed", "0", "--out", run_s];
    let (ok, log) = train(&dir, &[&["phase2", "--steps", "1", "--init", init][..], &same].concat());
    assert!(ok, "{log}");
    let (ok, log) = train(&dir, &[&["phase2", "--steps", "2", "--resume", run_s][..], &same].concat());
    assert!(ok && run.join("ckpt-00000002").is_dir(), "{log}");
    let (ok, log) = train(&dir, &["phase2", "--steps", "3", "--resume", run_s, "--batch", "3", "--seed", "0"]);
    assert!(!ok && log.contains("--batch 3 (the checkpoint's run has 1)") && !log.contains("--seed"), "{log}");
    let (ok, log) = train(&dir, &["phase2", "--steps", "2", "--resume", run_s]);
    assert!(!ok && log.contains("is already at step 2 (--steps 2)"), "{log}");
    let (ok, log) = train(&dir, &["phase2", "--steps", "3", "--resume", run_s, "--init", init]);
    assert!(!ok && log.contains("drop --init"), "{log}");
    assert!(!run.join("ckpt-00000003").exists(), "no refused resume trained");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A bad `--out` is one clear error before anything runs; a folder holding a run of another
/// phase names that phase; `--overwrite` also removes the old run's sample grids.
#[test]
fn train_out_folder_errors_and_overwrite_clears_samples_cpu() {
    let dir = scratch("out");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let file = dir.join("afile");
    std::fs::write(&file, b"x").unwrap();
    let (ok, log) = train(&dir, &["phase2", "--init", init, "--out", file.to_str().unwrap()]);
    assert!(!ok && log.contains("is a file, not a folder") && log.lines().count() == 1, "{log}");
    let nested = file.join("run");
    let (ok, log) = train(&dir, &["phase2", "--init", init, "--out", nested.to_str().unwrap()]);
    assert!(!ok && log.contains("cannot create --out") && log.lines().count() == 1, "{log}");
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let (ok, log) = train(&dir, &["phase2", "--init", init, "--batch", "1", "--steps", "2", "--sample-every", "1", "--out", run_s]);
    assert!(ok && run.join("samples/step_00000002.png").is_file(), "{log}");
    std::fs::write(run.join("samples/notes.txt"), b"mine").unwrap();
    let (ok, log) = train(&dir, &["phase3", "--init", init, "--batch", "1", "--steps", "1", "--out", run_s]);
    assert!(!ok && log.contains("already holds a phase2 run") && log.contains("train phase3 into another --out"), "{log}");
    let (ok, log) = train(&dir, &["phase2", "--init", init, "--batch", "1", "--steps", "1", "--overwrite", "--out", run_s]);
    assert!(ok, "{log}");
    assert!(!run.join("samples/step_00000001.png").exists() && !run.join("samples/step_00000002.png").exists(), "{log}");
    assert!(run.join("samples/notes.txt").is_file(), "only the grids the tool wrote are removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With stderr going to a pipe (no terminal, so no bar) the run prints plain progress lines.
#[test]
fn train_prints_progress_lines_when_stderr_is_not_a_terminal_cpu() {
    let dir = scratch("lines");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos");
    let run = |out: &str, extra: &[&str]| {
        let base = ["train", "phase2", "--device", "cpu", "--data", data, "--init", init, "--batch", "1", "--steps", "3", "--out", out];
        fdm_in(&dir, &[&base[..], extra].concat())
    };
    let (ok, log) = run("a", &["--progress-every", "0"]);
    assert!(ok, "{log}");
    for step in 1..=3 {
        assert!(log.contains(&format!("step {step}/3 | total ")), "{log}");
    }
    assert!(log.contains("steps/s | eta 0:00:00"), "{log}");
    let (ok, log) = run("b", &["--progress-every", "0", "--no-progress"]);
    assert!(ok && !log.contains("step 1/3"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A copy of the bundled photos in `dir`, the files renamed by `name(i)`.
fn copy_photos(dir: &Path, name: impl Fn(usize) -> String) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "jpg")).collect();
    photos.sort();
    for (i, p) in photos.iter().enumerate() {
        std::fs::copy(p, dir.join(name(i))).unwrap();
    }
    dir.to_path_buf()
}

/// The checkpoint records which photos it trained on: `--resume` on a folder of the same number
/// of other files is an error naming both counts and `--allow-data-change`, which continues with
/// a note (and records the new photos); a checkpoint from before the fingerprint resumes with a
/// note that nothing could be checked.
#[test]
fn train_resume_checks_the_data_fingerprint_cpu() {
    let dir = scratch("fingerprint");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let a = copy_photos(&dir.join("a"), |i| format!("photo_{i}.jpg"));
    // Same photos, same count, one file renamed: the order indexes other files.
    let b = copy_photos(&dir.join("b"), |i| if i == 0 { "zz_renamed.jpg".into() } else { format!("photo_{i}.jpg") });
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let go = |args: &[&str]| fdm_in(&dir, &[&["train", "phase2", "--no-progress", "--device", "cpu"][..], args].concat());
    let (ok, log) = go(&["--data", a_s, "--batch", "1", "--steps", "1", "--init", init, "--out", run_s]);
    assert!(ok, "{log}");
    let state = |step: u64| fdm::train::checkpoint::read_state(&run.join(format!("ckpt-{step:08}"))).unwrap();
    let first = state(1).data.expect("a new checkpoint holds the data fingerprint");
    assert_eq!(first.files, 4);
    // The same folder resumes silently.
    let (ok, log) = go(&["--data", a_s, "--steps", "2", "--resume", run_s]);
    assert!(ok && !log.contains("note:"), "{log}");
    let (ok, log) = go(&["--data", b_s, "--steps", "3", "--resume", run_s]);
    assert!(!ok, "{log}");
    assert_eq!(log.lines().count(), 1, "one line: {log}");
    assert!(log.contains("trained on 4 photos") && log.contains(&format!("--data {b_s} holds 4")), "{log}");
    assert!(log.contains("would not match an uninterrupted one") && log.contains("--allow-data-change"), "{log}");
    assert!(!run.join("ckpt-00000003").exists(), "a refused resume trains nothing");
    let (ok, log) = go(&["--data", b_s, "--steps", "3", "--resume", run_s, "--allow-data-change"]);
    assert!(ok && log.contains("note: --allow-data-change"), "{log}");
    let changed = state(3).data.unwrap();
    assert!(changed.files == 4 && changed.hash != first.hash, "the new photos are recorded: {changed:?} vs {first:?}");
    // --allow-data-change belongs to --resume.
    let (ok, log) = go(&["--data", a_s, "--init", init, "--out", dir.join("other").to_str().unwrap(), "--allow-data-change"]);
    assert!(!ok && log.contains("--resume"), "{log}");
    // A checkpoint written before the field: still loads, resumes, and says what it could not check.
    let json = run.join("ckpt-00000003/state.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("data").unwrap();
    std::fs::write(&json, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert!(fdm::train::checkpoint::read_state(&run.join("ckpt-00000003")).unwrap().data.is_none());
    let (ok, log) = go(&["--data", a_s, "--steps", "4", "--resume", run_s]);
    assert!(ok && log.contains("records no data fingerprint") && log.contains("could not check"), "{log}");
    assert_eq!(state(4).data.unwrap(), first, "the resumed run records the data it now trains on");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file of a checkpoint folder, by name.
fn checkpoint_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// The data rows of a run's loss log.
fn loss_rows(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("losses.csv")).unwrap().lines().skip(1).map(String::from).collect()
}

/// `--resume --allow-data-change` on a folder holding another number of photos (so another
/// number of batches per epoch): the position in the old order means nothing in the new one, so
/// the epoch after the checkpoint's starts at its step from the beginning of the new data order
/// (a note says so) instead of the run failing; the checkpoints record where that order starts,
/// so the resumed run resumes bit for bit, and the same command twice trains the same. Without
/// the flag the resume is refused.
#[test]
fn train_resume_allow_data_change_with_another_number_of_batches_starts_the_next_epoch_cpu() {
    let dir = scratch("data-count");
    let init = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/fdm-tiny.safetensors");
    let four = copy_photos(&dir.join("four"), |i| format!("photo_{i}.jpg"));
    let three = copy_photos(&dir.join("three"), |i| format!("photo_{i}.jpg"));
    std::fs::remove_file(three.join("photo_3.jpg")).unwrap();
    let (four_s, three_s) = (four.to_str().unwrap(), three.to_str().unwrap());
    let go = |args: &[&str]| fdm_in(&dir, &[&["train", "phase2", "--no-progress", "--device", "cpu"][..], args].concat());
    let run = dir.join("run");
    // Batch 1: 4 batches per epoch; the checkpoint is 2 batches into epoch 0.
    let (ok, log) = go(&["--data", four_s, "--batch", "1", "--steps", "2", "--init", init, "--out", run.to_str().unwrap()]);
    assert!(ok, "{log}");
    let ckpt = run.join("ckpt-00000002");
    let ckpt_s = ckpt.to_str().unwrap();
    let (ok, log) = go(&["--data", three_s, "--steps", "5", "--resume", ckpt_s]);
    assert!(!ok && log.contains(&format!("--data {three_s} holds 3")) && log.contains("--allow-data-change"), "{log}");
    assert!(!run.join("ckpt-00000005").exists(), "a refused resume trains nothing");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    for out in [&a, &b] {
        let (ok, log) = go(&["--data", three_s, "--steps", "5", "--resume", ckpt_s, "--allow-data-change", "--out", out.to_str().unwrap()]);
        assert!(ok, "{log}");
        assert!(log.contains("epoch 1 starts at step 2 from the beginning of the new data order"), "{log}");
        assert!(log.contains("3 steps per epoch"), "{log}");
    }
    assert_eq!(checkpoint_files(&a.join("ckpt-00000005")), checkpoint_files(&b.join("ckpt-00000005")), "the same resume twice trains the same");
    assert_eq!(loss_rows(&a), loss_rows(&b));
    // Steps 2, 3 and 4 are epoch 1 of the new order (3 batches), step 5 would begin epoch 2.
    let epochs: Vec<String> = loss_rows(&a).iter().map(|r| r.split(',').take(2).collect::<Vec<_>>().join(",")).collect();
    assert_eq!(epochs, ["2,1", "3,1", "4,1"]);
    let state = fdm::train::checkpoint::read_state(&a.join("ckpt-00000005")).unwrap();
    assert_eq!((state.epoch, state.batch_in_epoch, state.iters_per_epoch), (2, 0, 3));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("ckpt-00000005/state.json")).unwrap()).unwrap();
    assert_eq!(json["data_origin"], serde_json::json!({"step": 2, "epoch": 1}), "the checkpoint records where the new data order starts");
    // The resumed run continues bit for bit: 2 -> 5 -> 7 equals 2 -> 7, and needs no flag (its
    // checkpoint holds the new photos and where their order starts).
    let (ok, log) = go(&["--data", three_s, "--steps", "7", "--resume", a.to_str().unwrap()]);
    assert!(ok && !log.contains("note:"), "{log}");
    let (ok, log) = go(&["--data", three_s, "--steps", "7", "--resume", ckpt_s, "--allow-data-change", "--out", c.to_str().unwrap()]);
    assert!(ok, "{log}");
    assert_eq!(checkpoint_files(&a.join("ckpt-00000007")), checkpoint_files(&c.join("ckpt-00000007")), "resumed in two legs = in one");
    assert_eq!(loss_rows(&a), loss_rows(&c));
    std::fs::remove_dir_all(&dir).unwrap();
}
