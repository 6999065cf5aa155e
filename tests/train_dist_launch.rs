//! Data-parallel runs that fail or are launched for real: a NaN on one rank stops both ranks
//! cleanly, bad group arguments are clear errors, and the launcher (`fdm train --ranks 2`,
//! through the binary) runs a group equal to one process and reports a failing rank. The NCCL
//! transport (`--gpus N`) needs GPUs and NCCL and cannot run here; only its "missing" errors
//! are checked.

mod dist_common;
use dist_common::*;
use fdm::cli::device::DeviceArg;
use fdm::train::cli::{run, TrainArgs};
use std::path::Path;

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
        assert!(
            e.contains("NaN at step 2") && e.contains("mean over 2 ranks"),
            "rank {r}: {e}"
        );
        assert!(
            e.contains("ckpt-00000002"),
            "rank {r} names the last good checkpoint: {e}"
        );
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
    let e = err(TrainArgs {
        ranks: Some(2),
        batch: Some(3),
        ..a()
    });
    assert!(e.contains("3 does not split over 2 ranks"), "{e}");
    let e = err(TrainArgs { gpus: 2, ..a() });
    assert!(
        e.contains("--gpus 2") && e.contains("--ranks 2 --device cpu"),
        "{e}"
    );
    if fdm::cuda::device_count().unwrap_or(0) < 2 {
        let e = err(TrainArgs {
            gpus: 2,
            device: DeviceArg::Auto,
            ..a()
        });
        assert!(e.contains("--gpus 2 needs 2 CUDA GPUs"), "{e}");
    } else if let Err(why) = fdm::train::dist_nccl::nccl_available() {
        let e = err(TrainArgs {
            gpus: 2,
            device: DeviceArg::Auto,
            ..a()
        });
        assert!(e.contains(&why), "{e}");
    }
    let e = err(TrainArgs {
        gpus: 2,
        ranks: Some(2),
        ..a()
    });
    assert!(e.contains("give one"), "{e}");
    let e = err(TrainArgs {
        ranks: Some(2),
        ..a()
    });
    assert!(e.contains("started by the fdm binary"), "{e}");
    let e = err(TrainArgs {
        rank: Some(0),
        ..a()
    });
    assert!(e.contains("--rank is set by the launcher"), "{e}");
    let e = err(TrainArgs {
        ranks: Some(2),
        compare_sampler: true,
        ..a()
    });
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
        "phase2",
        "--data",
        &s(&photos()),
        "--init",
        &s(&init),
        "--steps",
        "2",
        "--batch",
        "2",
        "--no-progress",
        "--device",
        "cpu",
        "--dist-timeout",
        "60",
    ]
    .map(String::from);
    let with = |more: &[&str]| -> Vec<String> {
        common
            .iter()
            .cloned()
            .chain(more.iter().map(|x| x.to_string()))
            .collect()
    };
    let strs = |v: &[String]| v.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ");
    let one = fdm_train(
        &with(&["--out", &s(&dir.join("one"))])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let g = with(&["--out", &s(&dir.join("group")), "--ranks", "2"]);
    let group = fdm_train(&g.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = (
        String::from_utf8_lossy(&group.stdout),
        String::from_utf8_lossy(&group.stderr),
    );
    assert!(group.status.success(), "{}: {err}", strs(&g));
    assert!(err.contains("x 2 ranks (1 samples each)"), "{err}");
    assert!(
        out.contains("2 steps in") && out.contains("weights:"),
        "rank 0 reports once: {out}"
    );
    assert_eq!(out.matches("2 steps in").count(), 1, "{out}");
    assert_same_training(&dir.join("one"), &dir.join("group"), 2, false);
    // A rank that fails: the launcher names it and quotes its error; every process ends.
    let bad = with(&[
        "--out",
        &s(&dir.join("nan")),
        "--ranks",
        "2",
        "--inject-nan-at",
        "1",
        "--inject-nan-rank",
        "1",
    ]);
    let failed = fdm_train(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("data-parallel training failed: rank") && err.contains("NaN at step 1"),
        "{err}"
    );
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
    let out = fdm_train(&[
        "phase1a",
        "--data",
        p.to_str().unwrap(),
        "--gpus",
        "2",
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--ranks 2 --device cpu"),
        "{err}"
    );
}
