//! `fdm reproduce table4` (adapted: VQ codec with and without FDM on token-only reconstructions)
//! on the tiny preset with fresh weights and 1-2 bundled photos: the reconstructions decode
//! exactly the unmasked-half codebook rows of the photo's tokens (the ceiling row: the encoder's
//! continuous features) with no reference pixels, checked against the codec's own pieces; FDM
//! changes them and a zeroed FDM output conv does not; the table's rows are the means of the
//! per-image scores, and the files carry the provenance.
use fdm::autograd::Tape;
use fdm::cli::reproduce::{load_photos, Provenance};
use fdm::cli::reproduce_table4::*;
use fdm::metrics::{Lpips, LpipsNet};
use fdm::model::inpainting::InpaintingModel;
use fdm::model::masks::denormalise;
use fdm::model::presets::ModelConfig;
use fdm::Tensor;
use std::path::{Path, PathBuf};

fn photos(n: usize) -> Vec<(String, Tensor)> {
    load_photos(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")), n, 256).unwrap()
}

fn prov(images: usize) -> Provenance {
    Provenance {
        weights: "fresh tiny weights".into(),
        preset: "tiny".into(),
        data: "assets/photos".into(),
        images,
        masks: "none (token-only)".into(),
        device: "cpu".into(),
        seed: 5,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-table4-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn table4_reconstruction_decodes_the_unmasked_half_codebook_rows_cpu() {
    let model = InpaintingModel::new(&ModelConfig::tiny(), 1).unwrap();
    let photo = &photos(1)[0].1;
    let rec = token_reconstruction(&model, photo).unwrap();
    assert_eq!(rec.vq.shape(), &[3, 256, 256]);
    assert_eq!(rec.vq_fdm.shape(), &[3, 256, 256]);
    assert_eq!(rec.tokens.len(), 32 * 32);
    assert_eq!(rec.quantized.shape(), &[1, 64, 32, 32]);

    // The same f_q built here from the codec's pieces: nearest codes of the unmasked photo in
    // the unmasked half (tokens below masked_start), their codebook rows, decoded with an
    // all-hole pixel mask and an all-zero image as reference.
    let (tape, codec) = (Tape::no_grad(), &model.codec);
    let p = model.store.bind(&tape, |_| false);
    let batch = photo.reshape(&[1, 3, 256, 256]).unwrap();
    let feats = codec.get_features(&tape, &p, &model.store, &batch, None).unwrap();
    assert_eq!(rec.tokens, feats.tokens);
    assert!(rec.tokens.iter().all(|&t| (t as usize) < model.cfg.codec.masked_embed_start));
    let fq = codec.codebook_features(&model.store, &feats.tokens, 1, (32, 32)).unwrap();
    assert_eq!(rec.quantized.to_vec_f32().unwrap(), fq.to_vec_f32().unwrap());
    let (zeros_img, all_hole) = (Tensor::zeros(&[1, 3, 256, 256]), Tensor::zeros(&[1, 1, 256, 256]));
    let decode = |f: &fdm::autograd::Var| {
        let out = codec.decode(&tape, &p, f, &zeros_img, &all_hole).unwrap();
        denormalise(out.value()).unwrap().reshape(&[3, 256, 256]).unwrap().to_vec_f32().unwrap()
    };
    let fq_var = tape.constant(fq);
    assert_eq!(rec.vq.to_vec_f32().unwrap(), decode(&fq_var), "VQ codec = decode(f_q) with no reference");
    // VQ codec + FDM = decode(f_q + FDM(f_q, 1)) with FDM's plain forward.
    let ones = tape.constant(Tensor::full(1.0, &[1, 1, 32, 32]));
    let pv = model.fdm.forward(&tape, &p, &fq_var, &ones).unwrap();
    let v = fdm::autograd::binary::add(&tape, &fq_var, &pv).unwrap();
    assert_eq!(rec.vq_fdm.to_vec_f32().unwrap(), decode(&v), "VQ codec + FDM = decode(f_q + FDM(f_q, 1))");
    assert_ne!(rec.vq.to_vec_f32().unwrap(), rec.vq_fdm.to_vec_f32().unwrap(), "FDM changes the output");
    // The ceiling row decodes the continuous encoder features the same way.
    assert_eq!(rec.continuous.to_vec_f32().unwrap(), decode(&feats.feature));
}

#[test]
fn table4_zeroed_fdm_output_conv_gives_equal_methods_cpu() {
    let cfg = ModelConfig::tiny();
    let mut model = InpaintingModel::new(&cfg, 2).unwrap();
    // The tail conv of FDM's `mix` (after the head conv, its ReLU and the residual blocks).
    let tail = format!("fdm.mix.{}.", cfg.fdm.res_blocks + 2);
    let ids: Vec<_> = model
        .store
        .iter()
        .filter(|(_, n, _)| n.starts_with(&tail))
        .map(|(id, _, t)| (id, t.shape().to_vec()))
        .collect();
    assert_eq!(ids.len(), 2, "weight and bias of {tail}");
    for (id, shape) in ids {
        model.store.set(id, Tensor::zeros(&shape)).unwrap();
    }
    let rec = token_reconstruction(&model, &photos(1)[0].1).unwrap();
    assert_eq!(rec.vq.to_vec_f32().unwrap(), rec.vq_fdm.to_vec_f32().unwrap());
}

#[test]
fn table4_rows_are_means_of_per_image_scores_and_files_carry_provenance_cpu() {
    let model = InpaintingModel::new(&ModelConfig::tiny(), 3).unwrap();
    let photos = photos(2);
    let alex = Lpips::load_default(LpipsNet::Alex).unwrap();
    let mut seen: Vec<(usize, String, Tensor, Tensor)> = Vec::new();
    let t = table4(&model, &photos, &alex, None, prov(2), &mut |i, stem, r| {
        seen.push((i, stem.to_string(), r.vq.clone(), r.vq_fdm.clone()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(t.rows.len(), 3);
    assert_eq!(t.images.len(), 2);
    let methods: Vec<&str> = t.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["VQ codec", "VQ codec + FDM", "encoder features, unquantised (ceiling)"]);
    for ((_, stem, vq, vq_fdm), (im, (_, photo))) in seen.iter().zip(t.images.iter().zip(&photos)) {
        assert_eq!(&im.stem, stem);
        assert_eq!(im.vq.psnr, fdm::metrics::psnr(vq, photo).unwrap());
        assert_eq!(im.vq_fdm.ssim, fdm::metrics::ssim(vq_fdm, photo).unwrap());
        assert_eq!(im.vq_fdm.lpips, alex.distance_images(vq_fdm, photo).unwrap());
    }
    let mean = |f: &dyn Fn(&Table4Image) -> f64| (f(&t.images[0]) + f(&t.images[1])) / 2.0;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
    assert!(close(t.rows[0].psnr, mean(&|i| i.vq.psnr)) && close(t.rows[1].psnr, mean(&|i| i.vq_fdm.psnr)));
    assert!(close(t.rows[0].lpips, mean(&|i| i.vq.lpips)) && close(t.rows[1].lpips, mean(&|i| i.vq_fdm.lpips)));
    assert!(close(t.rows[0].ssim, mean(&|i| i.vq.ssim)) && close(t.rows[1].ssim, mean(&|i| i.vq_fdm.ssim)));
    assert!(close(t.rows[2].psnr, mean(&|i| i.continuous.psnr)) && close(t.rows[2].lpips, mean(&|i| i.continuous.lpips)));
    assert!(t
        .rows
        .iter()
        .all(|r| r.fid.is_none() && r.kid.is_none() && r.psnr.is_finite() && r.lpips > 0.0));
    assert!(t.rows[0].psnr != t.rows[1].psnr && t.rows[0].lpips != t.rows[1].lpips, "{:?}", t.rows);

    let dir = temp_dir("files");
    let (md_path, json_path) = write_table4(&t, &dir).unwrap();
    let md = std::fs::read_to_string(md_path).unwrap();
    for needle in [
        "17.03",
        "15.84",
        "VQ codec + FDM",
        "(ceiling)",
        "Room left by quantisation",
        "token-only reconstruction",
        "fresh tiny weights",
        "assets/photos",
        "2 photo(s)",
        "seed 5",
        "unmasked half",
        "FID / KID: not computed: no Inception weights found",
        "reduced run",
        "codes 0-255",
        "Photos (2): `dev_005.jpg`, `dev_018.jpg`",
    ] {
        assert!(md.contains(needle), "markdown lacks `{needle}`:\n{md}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    assert_eq!(json["provenance"]["data"], "assets/photos");
    assert_eq!(json["provenance"]["images"], 2);
    assert_eq!(json["provenance"]["seed"], 5);
    assert_eq!(json["rows"][1]["method"], "VQ codec + FDM");
    assert_eq!(json["images"][0]["stem"], photos[0].0.as_str());
    assert!(json["adaptation"].as_str().unwrap().contains("no token is sampled"));
    // The written files say the run is reduced and which photos it used, not only the terminal.
    assert_eq!(json["reduced_run"], true);
    assert!(json["reduced_run_reason"].as_str().unwrap().contains("2 photo(s)"), "{json}");
    assert_eq!(json["photo_files"], serde_json::json!(["dev_005.jpg", "dev_018.jpg"]));
    assert!(json["fid_missing"].as_str().unwrap().contains("no Inception weights"), "{json}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn table4_rejects_an_empty_photo_folder_and_wrong_shapes_cpu() {
    let dir = temp_dir("empty");
    let err = load_photos(&dir, 4, 256).unwrap_err().to_string();
    assert!(err.contains("holds no .png/.jpg/.jpeg images"), "{err}");
    // -n 0 is refused before any table runs (every table would average over nothing).
    let err = load_photos(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")), 0, 256).unwrap_err().to_string();
    assert!(err.contains("-n 0") && err.contains("at least one photo"), "{err}");
    let model = InpaintingModel::new(&ModelConfig::tiny(), 4).unwrap();
    let alex = Lpips::load_default(LpipsNet::Alex).unwrap();
    let err = table4(&model, &[], &alex, None, prov(0), &mut |_, _, _| Ok(())).unwrap_err().to_string();
    assert!(err.contains("at least one photo"), "{err}");
    let err = token_reconstruction(&model, &Tensor::zeros(&[3, 128, 128])).err().unwrap().to_string();
    assert!(err.contains("expected [3, 256, 256]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
