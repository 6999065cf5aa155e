//! `fdm inpaint` end to end through the binary, with freshly initialised tiny weights written to
//! a temporary folder: outputs and contact sheet written, known pixels kept, tokens saved and
//! replayed, folder mode resumes, the output folder scores with `fdm eval`, and bad input is a
//! clear error.
mod cli_common;
use cli_common::{fdm, write_mask};
use fdm::io::image::{load_image, save_png};
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use std::path::PathBuf;

fn setup(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fdm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    InpaintingModel::new(&ModelConfig::tiny(), 3).unwrap().save(dir.join("w.safetensors")).unwrap();
    dir
}



const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos/dev_005.jpg");

/// A 16-bit photo (here 16-bit RGB TIFF, of another size than the model's) gets 16-bit PNG samples
/// whose known pixels are the photo's exact 16-bit values, not values cut to 8 bits.
#[test]
fn inpaint_keeps_sixteen_bit_known_pixels_cpu() {
    let dir = setup("deep");
    let (w, h) = (300u32, 200u32);
    let photo = ::image::ImageBuffer::<::image::Rgb<u16>, Vec<u16>>::from_fn(w, h, |x, y| {
        ::image::Rgb([(x * 211 + y * 7) as u16, (y * 301 + x) as u16 ^ 0x5a5a, (x * y * 13 + 1) as u16])
    });
    let path = dir.join("deep.tiff");
    photo.save(&path).unwrap();
    let mask = dir.join("mask.png");
    write_mask(&mask, (200, 300), (80, 120, 100, 160));
    let out = dir.join("out");
    let weights = dir.join("w.safetensors");
    let (ok, log) = fdm(&["inpaint", path.to_str().unwrap(), "--mask", mask.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--out", out.to_str().unwrap(), "-n", "1", "--seed", "2", "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(log.contains("samples written as 16-bit PNG"), "{log}");
    let sample = ::image::open(out.join("deep_0.png")).unwrap();
    assert_eq!(sample.color(), ::image::ColorType::Rgb16, "{log}");
    let sample = sample.into_rgb16();
    let mut changed = 0;
    for (x, y, p) in photo.enumerate_pixels() {
        let hole = (80..120).contains(&y) && (100..160).contains(&x);
        if !hole {
            assert_eq!(sample.get_pixel(x, y), p, "known pixel ({x}, {y})");
        } else if sample.get_pixel(x, y) != p {
            changed += 1;
        }
    }
    assert!(changed > 0, "the hole was filled");
}

#[test]
fn inpaint_writes_samples_sheet_and_tokens_cpu() {
    let dir = setup("basic");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72)); // patches 12..14 x 7..9: 2 x 2
    let out = dir.join("out");
    let w = dir.join("w.safetensors");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", out.to_str().unwrap(), "-n", "2", "--seed", "4", "--save-tokens", "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(log.contains("4 masked patches") && log.contains("4 passes"), "{log}");
    for f in ["dev_005_0.png", "dev_005_1.png", "dev_005_sheet.png", "dev_005_0.txt", "dev_005_1.txt"] {
        assert!(out.join(f).exists(), "{f} missing; {log}");
    }
    // Known pixels are the input's (PNG output of a JPEG input: compare decoded values).
    let input = load_image(PHOTO).unwrap().tensor.to_vec_f32().unwrap();
    let result = load_image(out.join("dev_005_0.png")).unwrap().tensor.to_vec_f32().unwrap();
    for c in 0..3 {
        for y in 0..256 {
            for x in 0..256 {
                let hole = (96..112).contains(&y) && (56..72).contains(&x);
                let i = c * 65536 + y * 256 + x;
                if !hole {
                    assert_eq!(result[i], input[i], "pixel ({c}, {y}, {x})");
                }
            }
        }
    }
    // Replaying the saved tokens reproduces the samples exactly, here one sample per batch.
    let replay = dir.join("replay");
    let t0 = out.join("dev_005_0.txt");
    let t1 = out.join("dev_005_1.txt");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", replay.to_str().unwrap(), "-n", "2", "--batch-size", "1", "--tokens", t0.to_str().unwrap(), t1.to_str().unwrap(), "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(log.contains("2 sample(s)") && log.contains("in 2 batches"), "{log}");
    assert!(replay.join("dev_005_sheet.png").exists(), "{log}");
    for k in 0..2 {
        let a = load_image(out.join(format!("dev_005_{k}.png"))).unwrap().tensor.to_vec_f32().unwrap();
        let b = load_image(replay.join(format!("dev_005_{k}.png"))).unwrap().tensor.to_vec_f32().unwrap();
        assert_eq!(a, b, "replayed sample {k}");
    }
    // A token of the masked half (>= the vocabulary of 256) at a hole (patch 12 x 7 = position
    // 391) in the second of two token files: the error names that file, and nothing is drawn.
    let mut bad: Vec<String> = std::fs::read_to_string(&t1).unwrap().split_whitespace().map(String::from).collect();
    bad[12 * 32 + 7] = "352".into();
    let bad_file = dir.join("bad_tokens.txt");
    std::fs::write(&bad_file, bad.join(" ") + " \n").unwrap();
    let refused = dir.join("refused");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", refused.to_str().unwrap(), "-n", "2", "--batch-size", "1", "--tokens", t0.to_str().unwrap(), bad_file.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok, "{log}");
    assert!(log.contains("token 352 at position 391 is out of range") && log.contains(bad_file.to_str().unwrap()), "{log}");
    assert!(!log.contains(t0.to_str().unwrap()), "only the bad file is named: {log}");
    assert!(!refused.join("dev_005_0.png").exists(), "checked before the first batch: {log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_folder_mode_resumes_and_other_sizes_work_cpu() {
    let dir = setup("folder");
    let (images, masks, out) = (dir.join("images"), dir.join("masks"), dir.join("out"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    // A 200x300 photo: resized for the model, composited back at 200x300.
    let photo = load_image(PHOTO).unwrap().tensor;
    let small = fdm::ops::resize::resize_bilinear(&photo.reshape(&[1, 3, 256, 256]).unwrap(), (200, 300)).unwrap();
    save_png(&small.reshape(&[3, 200, 300]).unwrap(), images.join("odd.png")).unwrap();
    write_mask(&masks.join("odd.png"), (200, 300), (50, 60, 100, 120));
    let w = dir.join("w.safetensors");
    let args = ["inpaint", "--image-dir", images.to_str().unwrap(), "--mask-dir", masks.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"];
    let (ok, log) = fdm(&args);
    assert!(ok, "{log}");
    let res = load_image(out.join("odd_0.png")).unwrap();
    assert_eq!((res.width, res.height), (300, 200));
    let (ok, log) = fdm(&args);
    assert!(ok && log.contains("skipped"), "second run resumes: {log}");
    // The sheet is written last: without it the image was interrupted and is done again.
    std::fs::remove_file(out.join("odd_sheet.png")).unwrap();
    let (ok, log) = fdm(&args);
    assert!(ok && !log.contains("skipped") && out.join("odd_sheet.png").exists(), "an unfinished image is redone: {log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_output_folder_scores_with_eval_as_it_is_cpu() {
    // `fdm eval --fake` on an inpaint output folder: the samples are scored, the contact sheet
    // beside them is not taken for a sample (nor refused as an unmatched fake).
    let dir = setup("eval");
    let (images, masks, out) = (dir.join("images"), dir.join("masks"), dir.join("out"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    std::fs::copy(PHOTO, images.join("dev_005.jpg")).unwrap();
    write_mask(&masks.join("dev_005.png"), (256, 256), (96, 112, 56, 72));
    let w = dir.join("w.safetensors");
    let (ok, log) = fdm(&["inpaint", "--image-dir", images.to_str().unwrap(), "--mask-dir", masks.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", out.to_str().unwrap(), "-n", "2", "--device", "cpu"]);
    assert!(ok && out.join("dev_005_sheet.png").exists(), "{log}");
    let (ok, log) = fdm(&["eval", "--real", images.to_str().unwrap(), "--fake", out.to_str().unwrap(), "--masks", masks.to_str().unwrap(), "--lpips", "none", "--no-fid"]);
    assert!(ok, "{log}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!((json["summaries"][0]["inputs"].as_u64(), json["summaries"][0]["pairs"].as_u64()), (Some(1), Some(2)), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_folder_mode_skips_an_unusable_photo_and_does_the_others_cpu() {
    let dir = setup("skip");
    let (images, masks, out) = (dir.join("images"), dir.join("masks"), dir.join("out"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    let jpg = std::fs::read(PHOTO).unwrap();
    std::fs::write(images.join("a_cut.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    std::fs::copy(PHOTO, images.join("b_good.jpg")).unwrap();
    for name in ["a_cut", "b_good"] {
        write_mask(&masks.join(format!("{name}.png")), (256, 256), (96, 128, 96, 128));
    }
    let w = dir.join("w.safetensors");
    let (ok, log) = fdm(&["inpaint", "--image-dir", images.to_str().unwrap(), "--mask-dir", masks.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok, "a skipped photo makes the run fail at its end: {log}");
    assert!(log.contains("a_cut.jpg: truncated or corrupt (its JPEG data stops before the end-of-image marker); skipped"), "{log}");
    assert_eq!(log.matches("a_cut.jpg").count(), 2, "the path once in the skip line, once in the summary: {log}");
    assert!(log.contains("1 of 2 image(s) skipped"), "{log}");
    assert!(out.join("b_good_0.png").exists() && out.join("b_good_sheet.png").exists(), "the photo after it was done: {log}");
    assert!(!out.join("a_cut_0.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_bad_input_is_a_clear_error_cpu() {
    let dir = setup("bad");
    let w = dir.join("w.safetensors");
    let full = dir.join("full.png");
    write_mask(&full, (256, 256), (0, 0, 0, 0));
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", full.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("no hole"), "{log}");
    let other = dir.join("other.png");
    write_mask(&other, (128, 128), (0, 8, 0, 8));
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", other.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("128x128") && log.contains("--resize-mask"), "size mismatch must be named: {log}");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--weights", w.to_str().unwrap()]);
    assert!(!ok && log.contains("--mask"), "{log}");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", other.to_str().unwrap(), "--weights", "/nonexistent.safetensors"]);
    assert!(!ok && log.contains("not found"), "{log}");
    let (ok, log) = fdm(&["inpaint", "/nonexistent.jpg", "--mask", full.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("nonexistent.jpg"), "{log}");
    let cut = dir.join("cut.jpg");
    let jpg = std::fs::read(PHOTO).unwrap();
    std::fs::write(&cut, &jpg[..jpg.len() / 3]).unwrap();
    let (ok, log) = fdm(&["inpaint", cut.to_str().unwrap(), "--mask", other.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("cut.jpg: truncated or corrupt"), "{log}");
    let copy = dir.join("dev_005.png");
    std::fs::copy(PHOTO, &copy).unwrap();
    let (ok, log) = fdm(&["inpaint", PHOTO, copy.to_str().unwrap(), "--mask", other.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("would write the same outputs (dev_005_<k>.png)"), "{log}");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", other.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--batch-size", "0"]);
    assert!(!ok && log.contains("--batch-size"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_resize_mask_resizes_with_a_note_cpu() {
    let dir = setup("resize");
    let w = dir.join("w.safetensors");
    // Half the photo's size: the hole doubles to rows 96..112, columns 56..72 (2 x 2 patches).
    let (masks, images, out) = (dir.join("masks"), dir.join("images"), dir.join("out"));
    std::fs::create_dir_all(&masks).unwrap();
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(PHOTO, images.join("dev_005.jpg")).unwrap();
    let mask = masks.join("dev_005.png");
    write_mask(&mask, (128, 128), (48, 56, 28, 36));
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--resize-mask", "--weights", w.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(log.contains("resized from 128x128 to 256x256") && log.contains("4 masked patches"), "{log}");
    // Folder mode: the same flag, the same note.
    let (ok, log) = fdm(&["inpaint", "--image-dir", images.to_str().unwrap(), "--mask-dir", masks.to_str().unwrap(), "--resize-mask", "--weights", w.to_str().unwrap(), "--out", dir.join("out2").to_str().unwrap(), "--device", "cpu"]);
    assert!(ok && log.contains("resized from 128x128 to 256x256"), "{log}");
    let (ok, log) = fdm(&["inpaint", "--image-dir", images.to_str().unwrap(), "--mask-dir", masks.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--out", dir.join("out3").to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("--resize-mask"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_all_hole_mask_says_nothing_is_kept_cpu() {
    let dir = setup("allhole");
    let w = dir.join("w.safetensors");
    let mask = dir.join("all.png");
    write_mask(&mask, (256, 256), (0, 256, 0, 256));
    // 64 positions per pass keep the 256-patch fill short.
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--tokens-per-pass", "64", "--weights", w.to_str().unwrap(), "--out", dir.join("out").to_str().unwrap(), "--device", "cpu"]);
    assert!(ok, "{log}");
    assert!(log.contains("every pixel as a hole") && log.contains("nothing of"), "{log}");
    assert_eq!(log.matches("every pixel as a hole").count(), 1, "one note: {log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_write_errors_and_bad_flags_come_first_and_once_cpu() {
    let dir = setup("write");
    let w = dir.join("w.safetensors");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72));
    let base = ["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", w.to_str().unwrap(), "--device", "cpu"];
    let with = |extra: &[&str]| fdm(&[&base[..], extra].concat());
    // A folder that cannot be written to is found before the model is loaded.
    let (ok, log) = with(&["--out", "/proc/self"]);
    assert!(!ok && log.contains("cannot write to the output folder /proc/self: "), "{log}");
    assert!(!log.contains("model:") && log.matches("os error").count() == 1, "{log}");
    // A sample that cannot be written: the file once, the cause once.
    let out = dir.join("out");
    std::fs::create_dir_all(out.join("dev_005_0.png/inside")).unwrap();
    let (ok, log) = with(&["--out", out.to_str().unwrap()]);
    assert!(!ok && log.contains(&format!("cannot write {}", out.join("dev_005_0.png").display())), "{log}");
    assert_eq!(log.matches("dev_005_0.png").count(), 1, "{log}");
    assert!(!log.contains(".tmp-"), "no temporary file name: {log}");
    // Sampling flags are refused as the command line is read, naming the flag.
    for (flag, value) in [("-n", "0"), ("--top-k", "0"), ("--tokens-per-pass", "0"), ("--temperature", "0"), ("--temperature", "nan"), ("--batch-size", "0")] {
        let (ok, log) = with(&[flag, value, "--out", out.to_str().unwrap()]);
        let name = if flag == "-n" { "--samples" } else { flag };
        assert!(!ok && log.contains(name) && !log.contains("inpainting"), "{flag} {value}: {log}");
    }
    let (ok, log) = with(&["--top-k", "100000", "--out", out.to_str().unwrap()]);
    assert!(!ok && log.contains("--top-k must be in 1..=") && !log.contains("inpainting"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_weights_of_another_model_are_summarised_cpu() {
    use fdm::io::safetensors::{load, model_metadata, save};
    let dir = setup("preset");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72));
    // Tiny tensors under the paper preset's config: hundreds of differences, a few named.
    let (store, _) = load(dir.join("w.safetensors")).unwrap();
    let wrong = dir.join("wrong.safetensors");
    save(&wrong, &store, &model_metadata(&ModelConfig::paper())).unwrap();
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", wrong.to_str().unwrap(), "--device", "cpu"]);
    assert!(!ok && log.contains("weights do not match") && log.contains("more"), "{log}");
    assert!(log.lines().count() < 15, "a summary, not every tensor: {log}");
    // A weights file with no model config (an LPIPS backbone) is named as not an fdm model.
    let lpips = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/weights/vgg16_lpips.safetensors");
    let (ok, log) = fdm(&["inpaint", PHOTO, "--mask", mask.to_str().unwrap(), "--weights", lpips, "--device", "cpu"]);
    assert!(!ok && log.contains("not an fdm model file") && !log.contains("name the preset"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inpaint_errors_are_one_line_without_repeats_cpu() {
    let dir = setup("oneline");
    let mask = dir.join("mask.png");
    write_mask(&mask, (256, 256), (96, 112, 56, 72));
    let m = mask.to_str().unwrap();
    let folder = dir.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        &["inpaint", "/nonexistent.jpg", "--mask", m, "--device", "cpu"],
        &["inpaint", folder, "--mask", m, "--device", "cpu"],
        &["train", "phase2", "--data", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos"), "--init", "/nonexistent.safetensors", "--out", folder, "--device", "cpu"],
    ];
    for args in cases {
        let (ok, log) = fdm(args);
        let err: Vec<&str> = log.lines().filter(|l| !l.starts_with("model:")).collect();
        assert!(!ok && err.len() == 1 && err[0].starts_with("error: "), "{args:?}: {log}");
        if args[0] == "train" {
            assert!(err[0].contains("--init") && err[0].contains("no such file"), "the option and the cause: {log}");
        } else {
            assert_eq!(err[0].matches("os error").count(), 1, "the cause once: {log}");
        }
        let named = if args[1] == folder { folder } else if args[0] == "train" { "/nonexistent.safetensors" } else { "/nonexistent.jpg" };
        assert_eq!(err[0].matches(named).count(), 1, "the path once: {log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
