//! The parts of training checked on their own: the spectral-norm discriminator (spec §6.5), the
//! data pipeline (spec §6.6, §6.7), the training presets (spec §6.1) and AdamW's groups.

use fdm::autograd::Tape;
use fdm::io::image as img_io;
use fdm::model::discriminator::{
    power_iteration_step, sigma_of, spectral_normalise, Discriminator,
};
use fdm::model::inpainting::InpaintingModel;
use fdm::model::{ModelConfig, ParamSpec, Role};
use fdm::rng::Rng;
use fdm::testing::{assert_grad_close, finite_diff, random_vec};
use fdm::train::config::{Phase, TrainConfig};
use fdm::train::data::{epoch_order, BatchSource, Dataset, Loader, MaskSampler};
use fdm::train::optimizer::decays;
use fdm::Tensor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-train-parts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---- discriminator -------------------------------------------------------------------------

#[test]
fn discriminator_keys_shapes_and_output_cpu() {
    let cfg = ModelConfig::tiny();
    let mut d = Discriminator::new(&cfg, 0).unwrap();
    let spec = ParamSpec::discriminator(&cfg);
    let keys: Vec<_> = d
        .store
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.shape().to_vec()))
        .collect();
    assert_eq!(keys, spec.key_shapes());
    // Paper: 2,763,776 learnable values (spec §10).
    assert_eq!(
        ParamSpec::discriminator(&ModelConfig::paper()).numel_where(|e| e.role == Role::Learnable),
        2_763_776
    );
    let tape = Tape::no_grad();
    let p = d.bind(&tape, false);
    let x = Tensor::from_vec(
        random_vec(1, 2 * 3 * 256 * 256, 0.0, 1.0),
        &[2, 3, 256, 256],
    )
    .unwrap();
    let y = d.forward(&tape, &p, &tape.constant(x), true).unwrap();
    assert_eq!(y.shape(), &[2, 1, 30, 30]);
    let probs = y.value().to_vec_f32().unwrap();
    assert!(
        probs.iter().all(|&v| (0.0..=1.0).contains(&v)),
        "sigmoid outputs"
    );
    assert!(
        probs.iter().any(|&v| v > 0.0 && v < 1.0),
        "not all saturated"
    );
    // Saved and restored weights give the same store.
    let w = d.weights().unwrap();
    let mut d2 = Discriminator::new(&cfg, 9).unwrap();
    d2.set_weights(&w).unwrap();
    for ((_, n, a), (_, _, b)) in d.store.iter().zip(d2.store.iter()) {
        assert_eq!(a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap(), "{n}");
    }
}

/// Largest singular value of a row-major [r, c] matrix by f64 power iteration on W^T W.
fn sigma_max_f64(w: &[f32], r: usize, c: usize) -> f64 {
    let mut v = vec![1.0f64; c];
    let mut s = 0.0;
    for _ in 0..2000 {
        let wv: Vec<f64> = (0..r)
            .map(|i| (0..c).map(|j| w[i * c + j] as f64 * v[j]).sum())
            .collect();
        let wtwv: Vec<f64> = (0..c)
            .map(|j| (0..r).map(|i| w[i * c + j] as f64 * wv[i]).sum())
            .collect();
        let n = wtwv.iter().map(|x| x * x).sum::<f64>().sqrt();
        v = wtwv.iter().map(|x| x / n).collect();
        s = n.sqrt();
    }
    s
}

#[test]
fn discriminator_power_iteration_finds_the_spectral_norm_cpu() {
    // conv1 of the tiny preset: W [32, 3*16]. Training forwards iterate u, v; sigma = u^T W v
    // approaches the largest singular value (f64 reference above).
    let mut d = Discriminator::new(&ModelConfig::tiny(), 3).unwrap();
    let w = d
        .store
        .get(
            d.store
                .id_of("loss.discriminator.conv1.0.weight_orig")
                .unwrap(),
        )
        .clone();
    let want = sigma_max_f64(&w.to_vec_f32().unwrap(), 32, 48);
    let x = Tensor::from_vec(random_vec(2, 3 * 64 * 64, 0.0, 1.0), &[1, 3, 64, 64]).unwrap();
    for _ in 0..60 {
        let tape = Tape::no_grad();
        let p = d.bind(&tape, false);
        d.forward(&tape, &p, &tape.constant(x.clone()), true)
            .unwrap();
    }
    let got = d.sigma(0).unwrap() as f64;
    assert!(
        (got - want).abs() <= 1e-4 * want,
        "sigma {got} vs largest singular value {want}"
    );
    // The stored vectors are unit length and one more step barely moves sigma (the vectors
    // themselves converge more slowly when the top singular values are close).
    let u = d
        .store
        .get(
            d.store
                .id_of("loss.discriminator.conv1.0.weight_u")
                .unwrap(),
        )
        .clone();
    let v = d
        .store
        .get(
            d.store
                .id_of("loss.discriminator.conv1.0.weight_v")
                .unwrap(),
        )
        .clone();
    for t in [&u, &v] {
        let n: f32 = t.to_vec_f32().unwrap().iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5, "unit vector, |x|^2 = {n}");
    }
    let (u2, v2) = power_iteration_step(&w, &u).unwrap();
    assert!((sigma_of(&w, &u2, &v2).unwrap() as f64 - got).abs() <= 1e-4 * got);
}

#[test]
fn discriminator_spectral_norm_gradient_matches_finite_differences_cpu() {
    // f(W) = sum(R * W / (u^T W v)) with u, v held constant (PyTorch's spectral norm): the
    // analytic gradient of the tape node vs central differences of an f64 twin of f.
    let (o, k) = (3usize, 8usize);
    let w0 = random_vec(4, o * k, -1.0, 1.0);
    let r = random_vec(5, o * k, -1.0, 1.0);
    let mut rng = Rng::new(6);
    let norm = |v: Vec<f32>| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<_>>()
    };
    let u = norm((0..o).map(|_| rng.normal()).collect());
    let v = norm((0..k).map(|_| rng.normal()).collect());
    let tape = Tape::new();
    let w = tape.var(Tensor::from_vec(w0.clone(), &[o, k / 4, 2, 2]).unwrap());
    let (ut, vt) = (
        Tensor::from_vec(u.clone(), &[o]).unwrap(),
        Tensor::from_vec(v.clone(), &[k]).unwrap(),
    );
    let wn = spectral_normalise(&tape, &w, &ut, &vt).unwrap();
    let weighted = fdm::autograd::binary::mul(
        &tape,
        &wn,
        &tape.constant(Tensor::from_vec(r.clone(), &[o, k / 4, 2, 2]).unwrap()),
    )
    .unwrap();
    let loss = fdm::autograd::reduce::sum_all(&tape, &weighted).unwrap();
    let g = tape.backward(&loss).unwrap();
    let analytic: Vec<f64> = g
        .get(&w)
        .unwrap()
        .to_vec_f32()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    let f = |wx: &[f64]| {
        let sigma: f64 = (0..o)
            .map(|i| u[i] as f64 * (0..k).map(|j| wx[i * k + j] * v[j] as f64).sum::<f64>())
            .sum();
        wx.iter().zip(&r).map(|(a, b)| a * *b as f64).sum::<f64>() / sigma
    };
    let x64: Vec<f64> = w0.iter().map(|&x| x as f64).collect();
    assert_grad_close(
        &analytic,
        &finite_diff(&x64, 1e-6, f),
        1e-3,
        "spectral norm dL/dW",
    );
}

// ---- data ----------------------------------------------------------------------------------

#[test]
fn data_epoch_order_is_a_reproducible_permutation_cpu() {
    let a = epoch_order(7, 3, 50);
    assert_eq!(a, epoch_order(7, 3, 50));
    assert_ne!(a, epoch_order(7, 4, 50), "epochs shuffle differently");
    assert_ne!(a, epoch_order(8, 3, 50), "seeds shuffle differently");
    let mut s = a.clone();
    s.sort();
    assert_eq!(s, (0..50).collect::<Vec<_>>());
}

fn source(phase: Phase, batch: usize) -> (Arc<BatchSource>, Arc<Dataset>) {
    let mut cfg = TrainConfig::tiny(phase);
    cfg.batch_size = batch;
    let ds = Arc::new(Dataset::scan(&photos(), 0.1).unwrap());
    (Arc::new(BatchSource::new(ds.clone(), &cfg, 8).unwrap()), ds)
}

#[test]
fn data_batches_are_a_function_of_seed_and_step_cpu() {
    let (src, ds) = source(Phase::Phase1a, 2);
    let mut loader = Loader::start(src.clone(), 0, 4, 2);
    let originals: Vec<Vec<f32>> = ds
        .files
        .iter()
        .map(|p| img_io::load_image(p).unwrap().tensor.to_vec_f32().unwrap())
        .collect();
    let (mut plain, mut mirrored) = (0, 0);
    for step in 0..4 {
        let prefetched = loader.next_batch().unwrap();
        let direct = src.batch(step).unwrap();
        assert_eq!(prefetched.step, step);
        for (a, b) in [
            (&prefetched.images, &direct.images),
            (&prefetched.masks, &direct.masks),
            (&prefetched.erase_masks, &direct.erase_masks),
        ] {
            assert_eq!(
                a.to_vec_f32().unwrap(),
                b.to_vec_f32().unwrap(),
                "step {step}"
            );
        }
        // Each epoch visits every photo once (2 batches of 2 out of 4).
        if step % 2 == 1 {
            let mut seen = [src.batch(step - 1).unwrap().indices, direct.indices.clone()].concat();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3]);
        }
        // The photos are 256x256: no resize, crop at (0, 0); each image is its photo or its
        // mirror, times the erase mask (phase 1a).
        let img = direct.images.to_vec_f32().unwrap();
        let erase = direct.erase_masks.to_vec_f32().unwrap();
        let n = 256 * 256;
        for (k, &idx) in direct.indices.iter().enumerate() {
            let got = &img[k * 3 * n..(k + 1) * 3 * n];
            let e = &erase[k * n..(k + 1) * n];
            let src_img = &originals[idx];
            let at = |flip: bool, i: usize| {
                let (c, y, x) = (i / n, (i % n) / 256, i % 256);
                src_img[c * n + y * 256 + if flip { 255 - x } else { x }] * e[i % n]
            };
            let is = |flip: bool| (0..3 * n).all(|i| got[i] == at(flip, i));
            match (is(false), is(true)) {
                (true, _) => plain += 1,
                (_, true) => mirrored += 1,
                _ => panic!("step {step}: image {k} is neither photo {idx} nor its mirror"),
            }
        }
    }
    assert!(
        plain > 0 && mirrored > 0,
        "flips: {plain} plain, {mirrored} mirrored"
    );
}

#[test]
fn data_scan_skips_a_truncated_jpeg_cpu() {
    let dir = scratch("truncated");
    for name in ["dev_005.jpg", "dev_018.jpg", "dev_047.jpg"] {
        std::fs::copy(photos().join(name), dir.join(name)).unwrap();
    }
    let jpg = std::fs::read(photos().join("dev_064.jpg")).unwrap();
    std::fs::write(dir.join("cut.jpg"), &jpg[..jpg.len() - 2000]).unwrap();
    let ds = Dataset::scan(&dir, 0.5).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.skipped.len(), 1);
    assert!(ds.skipped[0].0.ends_with("cut.jpg") && ds.skipped[0].1.contains("truncated"), "{:?}", ds.skipped);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scan takes every readable format by extension (any case) and leaves other files alone.
#[test]
fn data_scan_reads_every_readable_format_cpu() {
    let dir = scratch("formats");
    let img = ::image::RgbImage::from_fn(40, 30, |x, y| ::image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
    for name in ["a.png", "b.JPG", "c.webp", "d.bmp", "e.tiff", "f.gif"] {
        img.save_with_format(dir.join(name), ::image::ImageFormat::from_path(name.to_lowercase()).unwrap()).unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not a photo").unwrap();
    let ds = Dataset::scan(&dir, 0.1).unwrap();
    let names: Vec<String> = ds.files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["a.png", "b.JPG", "c.webp", "d.bmp", "e.tiff", "f.gif"]);
    assert!(ds.skipped.is_empty() && ds.sizes.iter().all(|&s| s == (40, 30)), "{:?} {:?}", ds.skipped, ds.sizes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_resizes_the_shorter_side_and_crops_cpu() {
    let dir = scratch("resize");
    for (i, (w, h)) in [(400u32, 300u32), (300, 520)].into_iter().enumerate() {
        let img = ::image::RgbImage::from_fn(w, h, |x, y| {
            ::image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        img.save(dir.join(format!("p{i}.png"))).unwrap();
    }
    let mut cfg = TrainConfig::tiny(Phase::Phase2);
    cfg.batch_size = 2;
    let ds = Arc::new(Dataset::scan(&dir, 0.1).unwrap());
    let b = BatchSource::new(ds, &cfg, 8).unwrap().batch(0).unwrap();
    assert_eq!(b.images.shape(), &[2, 3, 256, 256]);
    let v = b.images.to_vec_f32().unwrap();
    assert!(v.iter().all(|&x| (0.0..=255.0).contains(&x)));
    // Blue is constant 128 in the source and stays so through bilinear resizing.
    let n = 256 * 256;
    assert!((0..2).all(|k| v[k * 3 * n + 2 * n..k * 3 * n + 3 * n]
        .iter()
        .all(|&x| x == 128.0)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_load_size_zero_keeps_each_photos_scale_cpu() {
    let dir = scratch("keep_size");
    // R and G encode the source pixel's position, so a crop can be located in its photo.
    let (w, h) = (300u32, 280u32);
    let big = ::image::RgbImage::from_fn(w, h, |x, y| {
        ::image::Rgb([(x / 2) as u8, (y / 2) as u8, 128])
    });
    big.save(dir.join("a_big.png")).unwrap();
    // Smaller than the crop: enlarged so its shorter side is 256.
    ::image::RgbImage::from_pixel(200, 240, ::image::Rgb([9, 9, 128]))
        .save(dir.join("b_small.png"))
        .unwrap();
    let mut cfg = TrainConfig::tiny(Phase::Phase2);
    cfg.batch_size = 2;
    cfg.load_size = 0;
    cfg.validate().unwrap();
    let ds = Arc::new(Dataset::scan(&dir, 0.1).unwrap());
    let src = BatchSource::new(ds, &cfg, 8).unwrap();
    let n = 256 * 256;
    let mut offsets = std::collections::BTreeSet::new();
    for step in 0..6 {
        let b = src.batch(step).unwrap();
        assert_eq!(b.images.shape(), &[2, 3, 256, 256]);
        let v = b.images.to_vec_f32().unwrap();
        for (k, &idx) in b.indices.iter().enumerate() {
            let img = &v[k * 3 * n..(k + 1) * 3 * n];
            if idx == 1 {
                assert!(
                    img[..2 * n].iter().all(|&x| x == 9.0),
                    "small photo enlarged"
                );
                continue;
            }
            // The crop is an unresized window of the big photo, possibly mirrored.
            let found = (0..=(w - 256))
                .flat_map(|x0| (0..=(h - 256)).map(move |y0| (x0, y0)))
                .flat_map(|(x0, y0)| [(x0, y0, false), (x0, y0, true)])
                .find(|&(x0, y0, flip)| {
                    (0..256u32).all(|y| {
                        (0..256u32).all(|x| {
                            let sx = if flip { x0 + 255 - x } else { x0 + x };
                            let p = big.get_pixel(sx, y0 + y);
                            let i = (y * 256 + x) as usize;
                            img[i] == p[0] as f32 && img[n + i] == p[1] as f32
                        })
                    })
                });
            let (x0, y0, _) = found.unwrap_or_else(|| panic!("step {step}: not a window"));
            offsets.insert((x0, y0));
        }
    }
    assert!(offsets.len() > 1, "random offsets: {offsets:?}");
    cfg.load_size = 100;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("load_size 100"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_masks_follow_each_phase_cpu() {
    // Spec §6.7: 1a = provided (p 0.7) or stroke, then zero_mask p 0.3, erase p 0.2;
    // 1b = provided (p 0.8) or stroke, low_to_high p 0.05, no zero masks, no erasing;
    // 2/3 = provided masks of hole ratio 0.2-0.6 only. 200 draws: binomial 3-sigma ranges.
    let hole = |m: &[f32]| m.iter().filter(|&&v| v == 0.0).count() as f32 / m.len() as f32;
    let draws = |phase: Phase| {
        let s = MaskSampler::new(&TrainConfig::tiny(phase).masks, 256, 8).unwrap();
        (0..200)
            .map(|i| s.draw(&mut Rng::new(i)).unwrap())
            .collect::<Vec<_>>()
    };
    let a = draws(Phase::Phase1a);
    let zero = a.iter().filter(|(m, _)| hole(m) == 1.0).count();
    let erased = a.iter().filter(|(_, e)| hole(e) > 0.0).count();
    assert!(
        (40..=80).contains(&zero),
        "1a zero masks: {zero}/200 (p 0.3)"
    );
    assert!(
        (22..=58).contains(&erased),
        "1a erase masks: {erased}/200 (p 0.2)"
    );
    for (m, e) in draws(Phase::Phase1b) {
        assert!(
            hole(&m) < 1.0 && hole(&m) > 0.0,
            "1b masks have holes and visible pixels"
        );
        assert!(e.iter().all(|&v| v == 1.0), "no erasing in 1b");
    }
    for (m, _) in draws(Phase::Phase2) {
        let r = hole(&m);
        assert!((0.2..0.6).contains(&r), "phase 2 hole ratio {r}");
        assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
    }
}

#[test]
fn data_unreadable_files_are_skipped_up_to_a_limit_cpu() {
    let dir = scratch("unreadable");
    for i in 0..3 {
        for f in std::fs::read_dir(photos())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        {
            let sub = dir.join(format!("copy{i}"));
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::copy(&f, sub.join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.join("broken.jpg"), b"not a jpeg").unwrap();
    let ds = Dataset::scan(&dir, 0.1).unwrap(); // 1 of 13 = 7.7 %
    assert_eq!((ds.len(), ds.skipped.len()), (12, 1));
    std::fs::write(dir.join("broken2.png"), b"not a png").unwrap();
    let e = Dataset::scan(&dir, 0.1).unwrap_err().to_string(); // 2 of 14 = 14 %
    assert!(e.contains("unreadable") && e.contains("broken"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- presets and optimiser groups ------------------------------------------------------------

#[test]
fn train_presets_follow_the_spec_table_cpu() {
    let a = TrainConfig::paper(Phase::Phase1a);
    let d = a.discriminator.as_ref().unwrap();
    assert_eq!(
        (
            a.generator.betas,
            a.generator.warmup_lr,
            a.generator.warmup,
            a.generator.min_lr,
            a.batch_size,
            a.epochs
        ),
        ((0.0, 0.9), 2e-4, 150, 1e-6, 10, 100)
    );
    assert_eq!((d.warmup_lr, d.warmup, d.start_iter), (2e-5, 300, 300));
    assert_eq!(
        (a.losses.disc_start, a.losses.feature_losses_start),
        (300, 150)
    );
    assert_eq!(
        (
            a.losses.l1,
            a.losses.gradient,
            a.losses.adversarial,
            a.losses.perceptual,
            a.losses.style
        ),
        (1.0, 5.0, 0.1, 0.1, 250.0)
    );
    let b = TrainConfig::paper(Phase::Phase1b);
    assert!(b.generator.adamw && b.discriminator.is_none());
    assert_eq!(
        (
            b.generator.betas,
            b.generator.weight_decay,
            b.generator.warmup_lr,
            b.generator.warmup,
            b.generator.min_lr,
            b.batch_size,
            b.epochs
        ),
        ((0.9, 0.95), 0.01, 3e-4, 2000, 1e-5, 2, 300)
    );
    let p2 = TrainConfig::paper(Phase::Phase2);
    assert_eq!(
        (
            p2.generator.warmup,
            p2.masks.provided_p,
            p2.masks.ratio_range
        ),
        (300, 1.0, (0.2, 0.6))
    );
    let p3 = TrainConfig::paper(Phase::Phase3);
    assert_eq!(
        (
            p3.generator.warmup,
            p3.discriminator.as_ref().unwrap().start_iter
        ),
        (150, 300)
    );
    for phase in [Phase::Phase1a, Phase::Phase1b, Phase::Phase2, Phase::Phase3] {
        for c in [TrainConfig::paper(phase), TrainConfig::tiny(phase)] {
            assert_eq!(TrainConfig::from_json(&c.to_json()).unwrap(), c);
        }
    }
    let mut bad = TrainConfig::tiny(Phase::Phase2);
    bad.batch_size = 0;
    bad.masks.erase_p = 1.5;
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("batch_size") && e.contains("erase_p"), "{e}");
}

#[test]
fn train_phase_parameters_and_decay_groups_cpu() {
    let m = InpaintingModel::new(&ModelConfig::tiny(), 0).unwrap();
    let names: Vec<(String, Tensor)> = m
        .store
        .iter()
        .map(|(_, n, t)| (n.to_string(), t.clone()))
        .collect();
    let trained = |p: Phase| names.iter().filter(|(n, _)| p.trains(n)).count();
    assert!(names.iter().all(|(n, _)| !Phase::Phase1a.trains(n)
        || n.starts_with("content_codec.") && !n.contains(".quantize.")));
    assert_eq!(
        trained(Phase::Phase1b),
        names
            .iter()
            .filter(|(n, _)| n.starts_with("generator."))
            .count()
    );
    assert!(!names.iter().any(|(n, _)| Phase::Phase3.trains(n)
        && (n.contains(".encoder.pre") || n.contains("quant_conv.") && !n.contains("post_quant"))));
    // AdamW decay group of phase 1b: Linear weights only (spec §6.1).
    for (n, t) in names.iter().filter(|(n, _)| n.starts_with("generator.")) {
        let want = n.ends_with(".weight") && !n.contains(".ln") && !n.contains("layer_norm");
        assert_eq!(decays(n, t), want, "{n}");
    }
}

/// `benches/train-speed/paper-<phase>.json` (what `scripts/train-speed.sh` times) are the paper
/// preset of each phase with only what makes every step a full one changed: every loss term and
/// the discriminator from step 0, no periodic checkpoint, no step limit.
#[test]
fn train_speed_configs_are_the_paper_preset_with_every_term_on_cpu() {
    for phase in [Phase::Phase1a, Phase::Phase1b, Phase::Phase2, Phase::Phase3] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/train-speed/paper-{}.json", phase.name()));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got: TrainConfig = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut want = TrainConfig::paper(phase);
        want.max_steps = None;
        want.checkpoint_every = 0;
        want.losses.disc_start = 0;
        want.losses.feature_losses_start = 0;
        if let Some(d) = want.discriminator.as_mut() {
            d.start_iter = 0;
        }
        assert_eq!(got, want, "{}", path.display());
    }
}

/// Every training config committed with the project (the tiny runs' recipes and the speed
/// benchmarks) still loads now that an unknown key is an error, and declares its own phase.
#[test]
fn committed_training_configs_all_load_cpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for folder in ["assets/weights/train-tiny", "benches/train-speed"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                let c = TrainConfig::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(TrainConfig::declared_phase(&text), Some(c.phase), "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "found only {seen} configs");
}

/// A key that is no field, at the top or in a section (a typo such as `batch_sizee`), is an
/// error naming it instead of being dropped in silence; `crop_size: 0` says so plainly.
#[test]
fn training_config_rejects_unknown_keys_and_a_zero_crop_cpu() {
    let good = TrainConfig::tiny(Phase::Phase2).to_json();
    let with = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        TrainConfig::from_json(&good.replacen(from, to, 1)).unwrap_err().to_string()
    };
    let e = with("\"seed\"", "\"extra_key\": 1,\n  \"seed\"");
    assert!(e.contains("unknown field `extra_key`"), "{e}");
    let e = with("\"batch_size\"", "\"batch_sizee\"");
    assert!(e.contains("unknown field `batch_sizee`"), "{e}");
    let e = with("\"l1\"", "\"l11\"");
    assert!(e.contains("unknown field `l11`"), "{e}");
    let e = with("\"adamw\"", "\"adam_w\"");
    assert!(e.contains("unknown field `adam_w`"), "{e}");
    let e = with("\"erase_p\"", "\"erase\"");
    assert!(e.contains("unknown field `erase`"), "{e}");
    let e = with("\"crop_size\": 256", "\"crop_size\": 0");
    assert!(e.contains("crop_size must be at least 1") && !e.contains("load_size"), "{e}");
    let e = with("\"load_size\": 256", "\"load_size\": 100");
    assert!(e.contains("load_size 100 must be 0 (keep each photo's size) or at least crop_size 256"), "{e}");
    assert_eq!(TrainConfig::declared_phase(&good.replace("phase2", "phase3")), Some(Phase::Phase3));
}

/// The note about skipped files names the first five with their reasons and counts the rest;
/// the photos smaller than the crop (enlarged to it) are counted.
#[test]
fn data_scan_names_skipped_files_and_counts_small_photos_cpu() {
    let dir = scratch("skipnote");
    for name in ["dev_005.jpg", "dev_018.jpg"] {
        std::fs::copy(photos().join(name), dir.join(name)).unwrap();
    }
    for i in 0..7 {
        std::fs::write(dir.join(format!("bad{i}.png")), b"not a png").unwrap();
    }
    let ds = Dataset::scan(&dir, 0.9).unwrap();
    let note = ds.skipped_note().unwrap();
    assert!(note.starts_with("note: skipped 7 unreadable file(s) under "), "{note}");
    assert!(note.contains("bad0.png (") && note.contains("bad4.png (") && !note.contains("bad5.png"), "{note}");
    assert!(note.ends_with(" ... and 2 more"), "{note}");
    let (w, h) = ds.sizes[0];
    let short = w.min(h) as usize;
    assert_eq!((ds.smaller_than(short), ds.smaller_than(short + 1) >= 1), (0, true));
    let _ = std::fs::remove_dir_all(&dir);
    let clean = scratch("skipnote-clean");
    std::fs::copy(photos().join("dev_005.jpg"), clean.join("a.jpg")).unwrap();
    assert!(Dataset::scan(&clean, 0.1).unwrap().skipped_note().is_none());
    let _ = std::fs::remove_dir_all(&clean);
}

/// FNV-1a 64 gives its published values; the data fingerprint depends on the photos' paths
/// relative to the folder and their sizes, not on where the folder is.
#[test]
fn data_fingerprint_names_the_files_not_the_folder_cpu() {
    use fdm::train::fingerprint::{hash_files, of_dataset, Fnv1a64};
    let fnv = |b: &[u8]| {
        let mut h = Fnv1a64::new();
        h.write(b);
        h.finish()
    };
    assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    let dir = scratch("fingerprint");
    let copy = |to: &Path| {
        std::fs::create_dir_all(to.join("sub")).unwrap();
        for e in std::fs::read_dir(photos()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg") {
                std::fs::copy(&p, to.join("sub").join(p.file_name().unwrap())).unwrap();
            }
        }
    };
    let (a, b) = (dir.join("a"), dir.join("elsewhere/b"));
    copy(&a);
    copy(&b);
    let print = |d: &Path| of_dataset(&Dataset::scan(d, 0.1).unwrap()).unwrap();
    let fa = print(&a);
    assert_eq!(fa.files, 4);
    assert_eq!(fa.hash.len(), 16);
    assert_eq!(fa, print(&b), "the same files in another folder");
    assert_eq!(fa, print(&a), "stable");
    // The hash is over "sub/<name>" (a '/' on every platform) and the size.
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(a.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (Path::new("sub").join(p.file_name().unwrap()), std::fs::metadata(&p).unwrap().len()))
        .collect();
    files.sort();
    assert_eq!(hash_files(files.iter().map(|(p, n)| (p.as_path(), *n))), fa);
    // One file replaced by another photo under its name (same names, same count): another
    // fingerprint, from the size.
    assert_ne!(files[0].1, files[1].1);
    std::fs::copy(b.join(&files[1].0), b.join(&files[0].0)).unwrap();
    let fb = print(&b);
    assert!(fb.files == 4 && fb.hash != fa.hash, "{fb:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/TRAINING.md's table of the `losses.csv` columns lists, for each phase, exactly the
/// columns that phase writes, in file order.
#[test]
fn training_doc_lists_every_loss_log_column_of_each_phase_cpu() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/TRAINING.md")).unwrap();
    let section = doc.split("## The loss log (`losses.csv`)").nth(1).expect("the loss-log section");
    let section = section.split("\n## ").next().unwrap();
    // Rows `| `name` | phases | meaning |`.
    let rows: Vec<(String, Vec<String>)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].split_whitespace().map(String::from).collect())
        })
        .collect();
    assert!(!rows.is_empty(), "no column rows found");
    for (phase, tag) in [(Phase::Phase1a, "1a"), (Phase::Phase1b, "1b"), (Phase::Phase2, "2"), (Phase::Phase3, "3")] {
        let documented: Vec<&str> = rows.iter().filter(|(_, p)| p.iter().any(|x| x == tag)).map(|(n, _)| n.as_str()).collect();
        assert_eq!(documented, fdm::train::runner::csv_columns(phase), "phase {tag}");
    }
}
