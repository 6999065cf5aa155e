//! `fdm inspect` end to end through the binary: the files and shapes for the bundled tiny model
//! (no --weights) and for a `--random-init --preset paper` weights file, token replay through
//! `--tokens` (token file and .npy) giving the same decoded image, and one-line errors for bad input.
mod cli_common;
use cli_common::{fdm, write_mask};
use fdm::io::npy::{self, NpyData};
use fdm::model::inpainting::InpaintingModel;
use std::path::{Path, PathBuf};

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");

fn setup(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdm-cli-inspect-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}



fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn f32s(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        NpyData::F32(v) => (a.shape, v),
        other => panic!("{}: expected <f4, got {}", path.display(), other.descr()),
    }
}

fn i64s(path: &Path) -> (Vec<usize>, Vec<i64>) {
    let a = npy::read(path).unwrap();
    match a.data {
        NpyData::I64(v) => (a.shape, v),
        other => panic!("{}: expected <i8, got {}", path.display(), other.descr()),
    }
}

/// Every output file of `out` with the shapes of a model of feature width `c` and vocabulary `v`.
fn check_outputs(out: &Path, c: usize, v: usize, log: &str) {
    for (name, shape) in [("feat", vec![1, c, 32, 32]), ("feat_q", vec![1, c, 32, 32]), ("logits", vec![1, 1024, v]), ("fdm", vec![1, c, 32, 32]), ("decoded", vec![1, 3, 256, 256])] {
        assert_eq!(f32s(&out.join(format!("{name}.npy"))).0, shape, "{name}; {log}");
        assert!(log.contains(&format!("{name}.npy")), "one line per file: {log}");
    }
    let (shape, tokens) = i64s(&out.join("tokens.npy"));
    assert_eq!(shape, vec![1, 1024]);
    assert!(tokens.iter().all(|&t| t >= 0 && (t as usize) < 2 * v));
    let (_, d) = f32s(&out.join("decoded.npy"));
    assert!(d.iter().all(|&x| (0.0..=255.0).contains(&x)), "decoded in [0, 255]");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("inspect.json")).unwrap()).unwrap();
    assert_eq!(json["files"]["logits.npy"]["shape"], serde_json::json!([1, 1024, v]));
}

#[test]
fn inspect_bundled_tiny_writes_every_file_and_replays_cpu() {
    let dir = setup("tiny");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72)); // patches 12..14 x 7..9: 2 x 2
    let out = dir.join("out");
    let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&mask), "--out", s(&out), "--device", "cpu"]);
    assert!(ok, "{log}");
    check_outputs(&out, 64, 256, &log);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("inspect.json")).unwrap()).unwrap();
    assert_eq!(json["preset"], "tiny");
    assert_eq!(json["masked_patches"], 4);
    assert!(json["weights"].as_str().unwrap().ends_with("fdm-tiny.safetensors"), "bundled weights by default");
    let (_, tokens) = i64s(&out.join("tokens.npy"));
    assert_eq!(tokens.iter().filter(|&&t| t >= 256).count(), 4, "masked half at the 4 masked patches");

    // The quantised tokens replayed from a token file and from tokens.npy give the same image.
    let file = dir.join("tokens.txt");
    std::fs::write(&file, tokens.iter().map(|t| format!("{t} ")).collect::<String>() + "\n").unwrap();
    let (decoded_shape, want) = f32s(&out.join("decoded.npy"));
    for (k, given) in [file.clone(), out.join("tokens.npy")].iter().enumerate() {
        let again = dir.join(format!("replay{k}"));
        let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&mask), "--out", s(&again), "--tokens", s(given), "--device", "cpu"]);
        assert!(ok, "{log}");
        let (shape, got) = f32s(&again.join("decoded.npy"));
        assert_eq!(shape, decoded_shape);
        assert_eq!(got, want, "replay of {}", given.display());
    }

    // A mask with no hole is allowed: every token in the unmasked half, FDM output zero.
    let none = dir.join("none.png");
    write_mask(&none, (256, 256), (0, 0, 0, 0));
    let whole = dir.join("whole");
    let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&none), "--out", s(&whole), "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(i64s(&whole.join("tokens.npy")).1.iter().all(|&t| t < 256));
    assert!(f32s(&whole.join("fdm.npy")).1.iter().all(|&x| x == 0.0));
    // An existing output folder is refused without --force, overwritten with it.
    let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&none), "--out", s(&whole), "--device", "cpu"]);
    assert!(!ok && log.contains("--force") && log.contains("feat.npy"), "{log}");
    let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&none), "--out", s(&whole), "--device", "cpu", "--force"]);
    assert!(ok, "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_random_init_paper_weights_cpu() {
    let dir = setup("paper");
    let w = dir.join("paper.safetensors");
    let (ok, log) = fdm(&["inspect", "--random-init", "--preset", "paper", "--seed", "3", "--weights", s(&w)]);
    assert!(ok, "{log}");
    assert!(log.contains("paper preset") && log.contains("seed 3"), "{log}");
    let (ok, log) = fdm(&["inspect", "--random-init", "--preset", "paper", "--seed", "3", "--weights", s(&w)]);
    assert!(!ok && log.contains("already exists") && log.contains("--force"), "{log}");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (0, 8, 0, 8)); // one patch
    let out = dir.join("out");
    let (ok, log) = fdm(&["inspect", "--weights", s(&w), "--image", PHOTO, "--mask", s(&mask), "--out", s(&out), "--device", "cpu"]);
    assert!(ok, "{log}");
    check_outputs(&out, 256, 512, &log);
    let (_, tokens) = i64s(&out.join("tokens.npy"));
    assert!(tokens[0] >= 512 && tokens[1..].iter().all(|&t| t < 512), "only patch 0 is masked");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_random_init_is_seeded_and_force_overwrites_cpu() {
    let dir = setup("seeded");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    for p in [&a, &b] {
        let (ok, log) = fdm(&["inspect", "--random-init", "--preset", "tiny", "--seed", "9", "--weights", s(p)]);
        assert!(ok, "{log}");
        // The count of docs/PRESETS.md (learnable + codebook), not every value in the file.
        assert!(log.contains("760,195 parameters"), "{log}");
    }
    // Compared tensor by tensor: the metadata's key order is not fixed, so the bytes may differ.
    let tensors = |p: &Path| -> Vec<(String, Vec<f32>)> {
        let m = InpaintingModel::load(p, None).unwrap();
        m.store.iter().map(|(_, name, t)| (name.to_string(), t.to_vec_f32().unwrap())).collect()
    };
    assert!(tensors(&a) == tensors(&b), "same seed, same weights");
    let (ok, log) = fdm(&["inspect", "--random-init", "--seed", "10", "--weights", s(&b), "--force"]);
    assert!(ok, "{log}");
    assert!(tensors(&a) != tensors(&b), "another seed, other weights");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_bad_input_is_a_clear_error_cpu() {
    let dir = setup("bad");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72));
    let out = dir.join("out");
    let base = |extra: &[&str]| -> (bool, String) {
        let mut args = vec!["inspect", "--image", PHOTO, "--mask", s(&mask), "--out", s(&out), "--device", "cpu"];
        args.extend_from_slice(extra);
        fdm(&args)
    };
    let one_line = |log: &str| {
        assert_eq!(log.trim().lines().count(), 1, "one-line error: {log}");
        assert!(!log.contains("panicked"), "{log}");
    };
    // Missing image.
    let (ok, log) = fdm(&["inspect", "--image", "/nonexistent.jpg", "--mask", s(&mask), "--out", s(&out), "--device", "cpu"]);
    assert!(!ok && log.contains("nonexistent.jpg"), "{log}");
    one_line(&log);
    let (ok, log) = fdm(&["inspect", "--mask", s(&mask), "--out", s(&out)]);
    assert!(!ok && log.contains("--image"), "{log}");
    one_line(&log);
    // Mask of the wrong size.
    let small = dir.join("small.png");
    write_mask(&small, (128, 128), (0, 8, 0, 8));
    let (ok, log) = fdm(&["inspect", "--image", PHOTO, "--mask", s(&small), "--out", s(&out), "--device", "cpu"]);
    assert!(!ok && log.contains("128x128") && log.contains("256x256"), "{log}");
    one_line(&log);
    // Token files: wrong length, an id past the codebook, not a number.
    let short = dir.join("short.txt");
    std::fs::write(&short, "1 2 3\n").unwrap();
    let (ok, log) = base(&["--tokens", s(&short)]);
    assert!(!ok && log.contains("3 tokens, expected 1024"), "{log}");
    one_line(&log);
    let big = dir.join("big.txt");
    std::fs::write(&big, (0..1024).map(|i| if i == 5 { "512 ".to_string() } else { "0 ".to_string() }).collect::<String>()).unwrap();
    let (ok, log) = base(&["--tokens", s(&big)]);
    assert!(!ok && log.contains("token 512 at position 5"), "{log}");
    one_line(&log);
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, "1 two 3").unwrap();
    let (ok, log) = base(&["--tokens", s(&junk)]);
    assert!(!ok && log.contains("`two`"), "{log}");
    one_line(&log);
    // --random-init without --weights; weights that do not exist.
    let (ok, log) = fdm(&["inspect", "--random-init", "--preset", "tiny"]);
    assert!(!ok && log.contains("--random-init needs --weights"), "{log}");
    one_line(&log);
    let (ok, log) = base(&["--weights", "/nonexistent.safetensors"]);
    assert!(!ok && log.contains("not found"), "{log}");
    one_line(&log);
    assert!(!out.exists(), "nothing written on errors");
    std::fs::remove_dir_all(&dir).unwrap();
}
