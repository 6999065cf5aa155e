//! Data-parallel training (`train::dist`) on the CPU with the host transport: two ranks with one
//! sample each train exactly like one process with the batch of two, for phases 2, 1a (codebook
//! start gathered over the ranks, EMA statistics summed, discriminator) and 1b (random
//! quantisation draws sliced per rank). Ranks run as threads of the test process (each calls
//! `train::cli::run` with its `--rank`). Tiny preset, the bundled photos, 2-3 steps. Tolerances:
//! `dist_common::TOL_REL` / `TOL_STEP`.

mod dist_common;
use dist_common::*;
use fdm::train::cli::run;
use fdm::train::cli::TrainArgs;
use fdm::train::Phase;

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
    let group = TrainArgs {
        out: Some(dir.join("group")),
        ..base.clone()
    };
    let results = run_group(2, &group, |_, _| {});
    let lead = results[0].as_ref().unwrap();
    assert_eq!((lead.step, lead.steps_run), (3, 3));
    assert!(lead.final_weights.is_some());
    let other = results[1].as_ref().unwrap();
    assert!(other.final_weights.is_none(), "only rank 0 writes");
    assert_eq!(
        lead.last_terms, other.last_terms,
        "logged losses are the same on every rank"
    );
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
    let group = TrainArgs {
        out: Some(dir.join("group")),
        ..base.clone()
    };
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
    let group = TrainArgs {
        out: Some(dir.join("group")),
        ..base.clone()
    };
    for r in run_group(2, &group, |_, _| {}) {
        r.unwrap();
    }
    assert_same_training(&dir.join("one"), &dir.join("group"), 2, false);
    let _ = std::fs::remove_dir_all(&dir);
}
