//! `fdm profile`: stage aggregation on synthetic events, and the command end to end on the tiny
//! preset (fresh weights) with a small hole, JSON and Chrome trace outputs.
use fdm::cli::profile::{aggregate, aggregate_recording};
use fdm::io::image::save_mask_png;
use fdm::profile::{Event, KernelEvent, Recording};
use fdm::Tensor;
use std::process::Command;

fn ev(stage: &'static str, op: &'static str, dur_us: f64, macs: u64) -> Event {
    Event { stage, op, start_us: 0.0, dur_us, macs }
}

#[test]
fn aggregate_groups_by_stage_and_computes_shares_cpu() {
    let events = vec![
        ev("encode", "linear", 100.0, 1_000_000),
        ev("encode", "(stage)", 200.0, 0),
        ev("sample", "attention", 500.0, 4_000_000),
        ev("sample", "attention", 500.0, 4_000_000),
        ev("sample", "(stage)", 1500.0, 0),
        ev("fdm", "conv2d", 250.0, 2_000_000),
        ev("fdm", "(stage)", 300.0, 0),
    ];
    let r = aggregate(&events, "cpu", 2);
    assert_eq!(r.total_ms, 2.0);
    assert_eq!(r.fdm_ms, 0.3);
    assert!((r.fdm_fraction - 0.15).abs() < 1e-12);
    let names: Vec<&str> = r.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["encode", "sample", "fdm"]);
    let att = r.ops.iter().find(|o| o.op == "attention").unwrap();
    assert_eq!((att.calls, att.macs), (2, 8_000_000));
    assert!((att.ms - 1.0).abs() < 1e-12 && (att.share - 0.5).abs() < 1e-12);
    // 2 x 8e6 FLOP in 1 ms = 16 GFLOP/s.
    assert!((att.gflops - 16.0).abs() < 1e-9);
}

fn kernel(stage: &'static str, kernel: &'static str, dur_us: f64) -> KernelEvent {
    KernelEvent { stage, op: "-", module: "m", kernel, start_us: 0.0, dur_us }
}

#[test]
fn aggregate_groups_kernel_launches_by_stage_and_name_cpu() {
    let rec = Recording {
        events: vec![ev("encode", "(stage)", 1000.0, 0), ev("decode", "(stage)", 1000.0, 0)],
        kernels: vec![kernel("decode", "conv", 300.0), kernel("encode", "gemm", 100.0), kernel("decode", "conv", 100.0), kernel("decode", "add", 500.0)],
        untimed_kernels: 1,
    };
    let r = aggregate_recording(&rec, "cuda", 0);
    let rows: Vec<(&str, &str, usize, f64)> = r.kernels.iter().map(|k| (k.stage.as_str(), k.kernel.as_str(), k.launches, k.mean_us)).collect();
    // Stages in pipeline order, the slowest kernel first within a stage.
    assert_eq!(rows, vec![("encode", "gemm", 1, 100.0), ("decode", "add", 1, 500.0), ("decode", "conv", 2, 200.0)]);
    assert!((r.kernels[2].share - 0.2).abs() < 1e-12 && (r.kernels[2].ms - 0.4).abs() < 1e-12);
    assert_eq!(r.untimed_kernels, 1);
}

/// A 256x256 mask with one 8x8 hole (one patch: one transformer pass).
fn one_patch_mask(dir: &std::path::Path) -> std::path::PathBuf {
    let mut m = vec![1.0; 256 * 256];
    for y in 96..104 {
        m[y * 256 + 96..y * 256 + 104].iter_mut().for_each(|v| *v = 0.0);
    }
    let mask = dir.join("m.png");
    save_mask_png(&Tensor::from_vec(m, &[1, 256, 256]).unwrap(), &mask).unwrap();
    mask
}

#[test]
fn profile_on_emulated_cuda_lists_every_kernel_launch() {
    let dir = std::env::temp_dir().join(format!("fdm-profile-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = one_patch_mask(&dir);
    let (json, trace) = (dir.join("p.json"), dir.join("t.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["profile", "--random-init", "tiny", "--device", "cuda-emu", "--mask", mask.to_str().unwrap()])
        .args(["--json", json.to_str().unwrap(), "--chrome-trace", trace.to_str().unwrap()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("kernel (module)") && log.contains("wall time"), "no kernel table: {log}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let kernels = j["kernels"].as_array().unwrap();
    let stages: std::collections::BTreeSet<&str> = kernels.iter().map(|k| k["stage"].as_str().unwrap()).collect();
    for s in ["encode", "sample", "fdm", "decode"] {
        assert!(stages.contains(s), "no kernel launches in stage {s}: {stages:?}");
    }
    let conv = kernels.iter().find(|k| k["module"] == "conv2d" && k["stage"] == "fdm").expect("FDM's convolutions are kernel launches");
    assert!(conv["launches"].as_u64().unwrap() >= 2 && conv["ms"].as_f64().unwrap() > 0.0);
    // A stage's kernels cannot take longer than the stage (launches on the emulator are serial).
    for st in j["stages"].as_array().unwrap() {
        let name = st["stage"].as_str().unwrap();
        let kernel_ms: f64 = kernels.iter().filter(|k| k["stage"] == name).map(|k| k["ms"].as_f64().unwrap()).sum();
        assert!(kernel_ms > 0.0 && kernel_ms <= st["ms"].as_f64().unwrap(), "{name}: kernels {kernel_ms} ms vs stage {}", st["ms"]);
    }
    assert_eq!(j["untimed_kernels"], 0);
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let launches = t["traceEvents"].as_array().unwrap().iter().filter(|e| e["tid"] == 2).count();
    let counted: u64 = kernels.iter().map(|k| k["launches"].as_u64().unwrap()).sum();
    assert_eq!(launches as u64, counted, "every launch is one trace event");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn profile_command_writes_table_json_and_trace_cpu() {
    let dir = std::env::temp_dir().join(format!("fdm-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = one_patch_mask(&dir);
    let (json, trace) = (dir.join("p.json"), dir.join("t.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["profile", "--random-init", "tiny", "--device", "cpu", "--mask", mask.to_str().unwrap()])
        .args(["--json", json.to_str().unwrap(), "--chrome-trace", trace.to_str().unwrap()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for s in ["encode", "sample", "fdm", "decode", "attention", "1 transformer passes"] {
        assert!(log.contains(s), "missing {s}: {log}");
    }
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["passes"], 1);
    assert!(j["fdm_fraction"].as_f64().unwrap() > 0.0);
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert!(t["traceEvents"].as_array().unwrap().len() > 10);
    assert!(j["kernels"].as_array().unwrap().is_empty(), "no kernel rows on the CPU");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn profile_with_bf16_transformer_weights_cpu() {
    let dir = std::env::temp_dir().join(format!("fdm-profile-bf16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = one_patch_mask(&dir);
    let json = dir.join("p.json");
    let out = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["profile", "--device", "cpu", "--precision", "bf16", "--mask", mask.to_str().unwrap(), "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("(bf16 transformer weights)"), "{log}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(j["passes"], 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The sample stage's Linear MACs of `fdm profile -n samples` on the one-patch mask (JSON).
fn sample_linear_macs(dir: &std::path::Path, mask: &std::path::Path, samples: &str) -> u64 {
    let json = dir.join(format!("n{samples}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["profile", "--random-init", "tiny", "--device", "cpu", "--mask", mask.to_str().unwrap(), "-n", samples])
        .args(["--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains(&format!("; {samples} sample(s) as one batch")), "{log}");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ops = j["ops"].as_array().unwrap();
    let linear = ops.iter().find(|o| o["stage"] == "sample" && o["op"] == "linear").expect("a sample/linear row");
    linear["macs"].as_u64().unwrap()
}

#[test]
fn profile_samples_run_as_one_batch_cpu() {
    let dir = std::env::temp_dir().join(format!("fdm-profile-n-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mask = one_patch_mask(&dir);
    let (one, three) = (sample_linear_macs(&dir, &mask, "1"), sample_linear_macs(&dir, &mask, "3"));
    assert!(one > 0);
    assert_eq!(three, 3 * one, "three samples: three times the transformer's Linear work");
    let out = Command::new(env!("CARGO_BIN_EXE_fdm")).args(["profile", "--device", "cpu", "-n", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--samples"), "the error names the flag");
    std::fs::remove_dir_all(&dir).unwrap();
}
