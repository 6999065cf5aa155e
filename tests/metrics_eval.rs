//! `fdm eval` (spec §7): file matching by stem, summaries equal to the per-image metrics, hole
//! ratio buckets, compositing, diversity, the written files, and clear errors.
//! Images are small (64x64) and LPIPS uses AlexNet to keep the runtime low.

use fdm::io::image::{load_image, save_mask_png, save_png};
use fdm::metrics::eval::{evaluate, markdown, ratio_bucket, write_report, EvalArgs};
use fdm::metrics::folders::{match_folders, split_sample_index};
use fdm::metrics::{l1, mae, psnr, ssim, Lpips, LpipsNet};
use fdm::Tensor;
use std::path::{Path, PathBuf};

const S: usize = 64;

/// A fresh empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-metrics-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn image(seed: u64) -> Tensor {
    // Integer pixel values, so the PNG round trip is exact.
    let v = fdm::testing::random_vec(seed, 3 * S * S, 0.0, 255.0)
        .into_iter()
        .map(|x| x.floor())
        .collect();
    Tensor::from_vec(v, &[3, S, S]).unwrap()
}

fn save(dir: &Path, name: &str, t: &Tensor) {
    save_png(t, dir.join(name)).unwrap();
}

fn args(root: &Path) -> EvalArgs {
    EvalArgs {
        real: root.join("real"),
        fake: root.join("fake"),
        masks: None,
        lpips: Some("alex".into()),
        lpips_weights: None,
        diversity_pairs: "all".into(),
        seed: 0,
        composite: false,
        out: Some(root.join("out")),
        no_fid: false,
        inception_weights: None,
        fid_resize: "pytorch".into(),
        fid_batch: 8,
        kid_subsets: 100,
        kid_subset_size: 1000,
    }
}

/// real: a, b; fake: a_0, a_1, b (one sample, exact stem); masks: a 25% hole, b 50% hole.
fn layout(name: &str) -> PathBuf {
    let root = scratch(name);
    for d in ["real", "fake", "masks"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    save(&root.join("real"), "a.png", &image(1));
    save(&root.join("real"), "b.png", &image(2));
    save(&root.join("fake"), "a_0.png", &image(3));
    save(&root.join("fake"), "a_1.png", &image(4));
    save(&root.join("fake"), "b.png", &image(5));
    std::fs::write(root.join("fake/notes.txt"), "not an image").unwrap();
    let mask = |holes: usize| {
        Tensor::from_vec(
            (0..S * S).map(|i| if i < holes { 0.0 } else { 1.0 }).collect(),
            &[1, S, S],
        )
        .unwrap()
    };
    save_mask_png(&mask(S * S / 4), root.join("masks/a.png")).unwrap();
    save_mask_png(&mask(S * S / 2), root.join("masks/b.png")).unwrap();
    root
}

fn load(p: PathBuf) -> Tensor {
    load_image(p).unwrap().tensor
}

#[test]
fn metrics_eval_matching_cpu() {
    assert_eq!(split_sample_index("img_12"), Some(("img", 12)));
    assert_eq!(split_sample_index("img_x"), None);
    assert_eq!(split_sample_index("_3"), None);
    assert_eq!(split_sample_index("img"), None);
    let root = layout("matching");
    let m = match_folders(&root.join("real"), &root.join("fake"), Some(&root.join("masks"))).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].stem.as_str(), m[0].samples.len()), ("a", 2));
    assert_eq!(
        m[0].samples.iter().map(|s| s.index).collect::<Vec<_>>(),
        [Some(0), Some(1)]
    );
    assert_eq!((m[1].stem.as_str(), m[1].samples[0].index), ("b", None));
    assert!(m.iter().all(|i| i.mask.is_some()));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn metrics_eval_summaries_equal_per_image_metrics_cpu() {
    let root = layout("summaries");
    let mut a = args(&root);
    a.masks = Some(root.join("masks"));
    let report = evaluate(&a, &mut |_, _| {}).unwrap();
    let alex = Lpips::load_default(LpipsNet::Alex).unwrap();
    let (ra, rb) = (load(root.join("real/a.png")), load(root.join("real/b.png")));
    let pairs = [
        (load(root.join("fake/a_0.png")), &ra),
        (load(root.join("fake/a_1.png")), &ra),
        (load(root.join("fake/b.png")), &rb),
    ];
    let mean = |f: &dyn Fn(&Tensor, &Tensor) -> f64| pairs.iter().map(|(x, y)| f(x, y)).sum::<f64>() / 3.0;
    let all = &report.summaries[0];
    assert_eq!((all.label.as_str(), all.inputs, all.pairs), ("all", 2, 3));
    let close = |x: f64, y: f64, what: &str| assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{what}: {x} vs {y}");
    close(all.psnr, mean(&|x, y| psnr(x, y).unwrap()), "psnr");
    close(all.ssim, mean(&|x, y| ssim(x, y).unwrap()), "ssim");
    close(all.mae, mean(&|x, y| mae(x, y).unwrap()), "mae");
    close(all.l1, mean(&|x, y| l1(x, y).unwrap()), "l1");
    close(
        all.lpips.unwrap(),
        mean(&|x, y| alex.distance_images(x, y).unwrap()),
        "lpips",
    );
    let labels: Vec<&str> = report.summaries.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "all",
            "all, holes 0.2-0.3",
            "all, holes 0.5-0.6",
            "first sample",
            "first sample, holes 0.2-0.3",
            "first sample, holes 0.5-0.6"
        ]
    );
    assert_eq!(
        (
            report.summaries[1].pairs,
            report.summaries[2].pairs,
            report.summaries[3].pairs
        ),
        (2, 1, 2)
    );
    close(report.summaries[2].psnr, psnr(&pairs[2].0, &rb).unwrap(), "bucket psnr");
    // Diversity: input `a` has the only pair.
    let d = report.diversity.as_ref().unwrap();
    assert_eq!((d.pairs, d.skipped_inputs), (1, 1));
    close(
        d.mean,
        alex.distance_images(&pairs[0].0, &pairs[1].0).unwrap(),
        "diversity",
    );

    let (json, md) = write_report(&report, a.out.as_ref().unwrap()).unwrap();
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(j["samples"].as_array().unwrap().len(), 3);
    assert_eq!(j["summaries"][0]["pairs"], 3);
    assert_eq!(j["lpips_net"], "alex");
    let text = std::fs::read_to_string(md).unwrap();
    assert!(text.contains("| all | 2 | 3 |") && text.contains("Diversity"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn metrics_eval_composite_keeps_known_pixels_cpu() {
    // With --composite, a sample equal to the real image in the hole is scored as identical.
    let root = scratch("composite");
    for d in ["real", "fake", "masks"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let real = image(7);
    let mut fake = real.to_vec_f32().unwrap();
    for c in 0..3 {
        for i in S * S / 2..S * S {
            fake[c * S * S + i] = 255.0 - fake[c * S * S + i]; // change only the lower half
        }
    }
    save(&root.join("real"), "x.png", &real);
    save(
        &root.join("fake"),
        "x_0.png",
        &Tensor::from_vec(fake, &[3, S, S]).unwrap(),
    );
    // Hole = upper half: the changed lower half is known and gets pasted back.
    let mask = Tensor::from_vec(
        (0..S * S).map(|i| if i < S * S / 2 { 0.0 } else { 1.0 }).collect(),
        &[1, S, S],
    )
    .unwrap();
    save_mask_png(&mask, root.join("masks/x.png")).unwrap();
    let mut a = args(&root);
    a.masks = Some(root.join("masks"));
    a.lpips = Some("none".into());
    assert!(evaluate(&a, &mut |_, _| {}).unwrap().summaries[0].psnr < 20.0);
    a.composite = true;
    let r = evaluate(&a, &mut |_, _| {}).unwrap();
    assert_eq!(
        (r.summaries[0].psnr, r.summaries[0].ssim, r.summaries[0].lpips),
        (100.0, 1.0, None)
    );
    assert_eq!(r.samples[0].hole_ratio, Some(0.5));
    assert_eq!(ratio_bucket(0.5), "0.5-0.6");
    assert_eq!(ratio_bucket(1.0), "0.9-1.0");
    let _ = std::fs::remove_dir_all(&root);
}

fn err_of(a: &EvalArgs) -> String {
    evaluate(a, &mut |_, _| {}).expect_err("an error").to_string()
}

#[test]
fn metrics_eval_errors_cpu() {
    let root = layout("errors");
    let mut a = args(&root);
    a.lpips = Some("none".into());

    std::fs::create_dir_all(root.join("empty")).unwrap();
    a.fake = root.join("empty");
    assert!(err_of(&a).contains("holds no .png/.jpg/.jpeg images"));
    a.fake = root.join("missing");
    assert!(err_of(&a).contains("fake folder"));
    a.fake = root.join("fake");

    save(&root.join("fake"), "zzz_0.png", &image(9));
    let e = err_of(&a);
    assert!(e.contains("match no real image") && e.contains("zzz_0.png"), "{e}");
    std::fs::remove_file(root.join("fake/zzz_0.png")).unwrap();

    save(&root.join("real"), "c.png", &image(10));
    let e = err_of(&a);
    assert!(e.contains("have no fake sample") && e.contains('c'), "{e}");
    save(&root.join("fake"), "c_0.png", &Tensor::zeros(&[3, 32, S]));
    let e = err_of(&a);
    assert!(
        e.contains("c_0.png is 64x32 but the real image") && e.contains("is 64x64"),
        "{e}"
    );
    save(&root.join("fake"), "c_0.png", &image(11));

    a.masks = Some(root.join("masks"));
    let e = err_of(&a);
    assert!(e.contains("have no mask") && e.contains('c'), "{e}");
    a.masks = None;
    a.composite = true;
    assert!(err_of(&a).contains("--composite needs --masks"));
    a.composite = false;
    a.diversity_pairs = "0".into();
    assert!(err_of(&a).contains("--diversity-pairs"));
    a.diversity_pairs = "all".into();
    a.lpips = Some("squeeze".into());
    assert!(err_of(&a).contains("unknown LPIPS network"));
    a.lpips = Some("none".into());

    // A stray `<stem>.png` beside `<stem>_<k>.png` samples is not one more sample.
    save(&root.join("fake"), "a.png", &image(12));
    let e = err_of(&a);
    assert!(e.contains("both a fake named <stem>.<ext> and fakes named <stem>_<k>.<ext>") && e.contains(": a"), "{e}");
    std::fs::remove_file(root.join("fake/a.png")).unwrap();

    // Numeric settings out of range fail before any scoring (library callers too).
    for (batch, subsets, size, flag) in [(0, 100, 1000, "--fid-batch"), (8, 0, 1000, "--kid-subsets"), (8, 100, 1, "--kid-subset-size")] {
        (a.fid_batch, a.kid_subsets, a.kid_subset_size) = (batch, subsets, size);
        let e = err_of(&a);
        assert!(e.contains(flag) && e.contains("must be at least"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn metrics_eval_warns_of_small_samples_when_fid_is_computed_cpu() {
    let root = layout("small");
    let mut a = args(&root);
    a.lpips = Some("none".into());
    let report = evaluate(&a, &mut |_, _| {}).unwrap();
    // FID runs only where Inception weights are found; the warning goes with it.
    match (&report.fid, &report.small_sample_warning) {
        (Some(_), Some(w)) => {
            assert!(w.contains("2 real and 3 generated") && w.contains("KID can come out negative"), "{w}");
            assert!(markdown(&report).contains(&format!("Warning: {w}")));
        }
        (None, None) => {}
        other => panic!("FID and the warning disagree: {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Run the binary; (success, stdout + stderr).
fn fdm_eval(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fdm")).arg("eval").args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn metrics_eval_checks_outputs_before_scoring_cpu() {
    let root = layout("outcheck");
    let base = |out: &Path| -> Vec<std::ffi::OsString> {
        ["--lpips", "none", "--no-fid", "--real"].iter().map(Into::into).chain([root.join("real").into(), "--fake".into(), root.join("fake").into(), "--out".into(), out.into()]).collect()
    };
    let run = |args: Vec<std::ffi::OsString>| fdm_eval(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    // --out naming a file.
    let file = root.join("afile");
    std::fs::write(&file, "").unwrap();
    let (ok, log) = run(base(&file));
    assert!(!ok && log.contains("is a file, not a folder") && !log.contains("| all |"), "{log}");
    // A folder where metrics.md goes: neither report file is written.
    let out = root.join("blocked");
    std::fs::create_dir_all(out.join("metrics.md")).unwrap();
    let (ok, log) = run(base(&out));
    assert!(!ok && log.contains("metrics.md") && log.contains("in the way") && !log.contains("| all |"), "{log}");
    assert!(!out.join("metrics.json").exists());
    let report = evaluate(&EvalArgs { lpips: Some("none".into()), no_fid: true, ..args(&root) }, &mut |_, _| {}).unwrap();
    assert!(write_report(&report, &out).is_err() && !out.join("metrics.json").exists());
    // Zero-valued counts are refused when the command line is read.
    let mut zero = base(&root.join("report"));
    zero.extend(["--fid-batch".into(), "0".into()]);
    let (ok, log) = run(zero);
    assert!(!ok && log.contains("--fid-batch") && log.contains("at least 1"), "{log}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn metrics_eval_cli_writes_files_cpu() {
    let root = layout("cli");
    let out = root.join("report");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["eval", "--lpips", "alex", "--diversity-pairs", "3", "--seed", "4"])
        .arg("--real")
        .arg(root.join("real"))
        .arg("--fake")
        .arg(root.join("fake"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        stdout.contains("| all | 2 | 3 |") && stdout.contains("LPIPS (alex)"),
        "{stdout}"
    );
    assert!(out.join("metrics.json").exists() && out.join("metrics.md").exists());
    // A failing run exits non-zero with the message.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["eval", "--lpips", "none", "--real"])
        .arg(root.join("real"))
        .arg("--fake")
        .arg(root.join("nowhere"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("fake folder"));
    let _ = std::fs::remove_dir_all(&root);
}
