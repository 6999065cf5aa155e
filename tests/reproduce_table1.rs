//! `fdm reproduce table1` machinery on the tiny preset (fresh weights) with a small hole so it
//! runs fast: LPIPS per method and bucket equals LPIPS computed here on the same inpainting runs,
//! PUT and PUT + FDM share masks and seeds, FID is left out without an Inception model (and with
//! fewer than 2 photos), and the Markdown states the reduced run beside the paper's numbers.
use fdm::cli::reproduce::*;
use fdm::metrics::{Lpips, LpipsNet};
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::pipeline::inpaint::{inpaint, InpaintOptions};
use fdm::Tensor;

fn small_hole() -> Tensor {
    let mut m = vec![1.0; 256 * 256];
    for y in 64..80 {
        m[y * 256 + 64..y * 256 + 80]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    Tensor::from_vec(m, &[1, 256, 256]).unwrap()
}

#[test]
fn table1_lpips_per_method_and_bucket_cpu() {
    let model = InpaintingModel::new(&ModelConfig::tiny(), 1).unwrap();
    let photos = load_photos(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")),
        1,
        256,
    )
    .unwrap();
    let alex = Lpips::load_default(LpipsNet::Alex).unwrap();
    let prov = Provenance {
        weights: "fresh".into(),
        preset: "tiny".into(),
        data: "assets/photos".into(),
        images: 1,
        masks: "test".into(),
        device: "cpu".into(),
        seed: 3,
    };
    let mut runs = 0;
    let t = table1(
        &model,
        &photos,
        &mut |_, _| Ok(small_hole()),
        &alex,
        None,
        prov,
        &mut |r| runs = r,
    )
    .unwrap();
    assert_eq!(runs, 4, "2 buckets x 2 methods x 1 photo");
    let direct = |use_fdm: bool| {
        let opts = InpaintOptions {
            seed: 3,
            use_fdm,
            ..Default::default()
        };
        let out = inpaint(
            &model,
            &photos[0].1,
            &small_hole(),
            &opts,
            None,
            &mut |_, _| {},
        )
        .unwrap();
        alex.distance_images(&out.raw[0], &photos[0].1).unwrap()
    };
    let (put, ours) = (direct(false), direct(true));
    assert_eq!(t.rows.len(), 2);
    for (row, expected) in t.rows.iter().zip([put, ours]) {
        // Same mask in both buckets here, and sampling is seeded: both columns equal the direct run.
        assert!(
            (row.lpips_small - expected).abs() < 1e-9 && (row.lpips_large - expected).abs() < 1e-9,
            "{row:?} vs {expected}"
        );
        assert!(
            row.fid_small.is_none() && row.fid_large.is_none(),
            "{row:?}"
        );
    }
    let md = table1_markdown(&t);
    assert!(
        md.contains("12.58")
            && md.contains("Ours (PUT + FDM)")
            && md.contains("reduced run")
            && md.contains("FID: not computed: no Inception weights found")
            && md.contains("Photos (1): `dev_005.jpg`"),
        "{md}"
    );
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["reduced_run"], true);
    assert_eq!(json["photo_files"], serde_json::json!(["dev_005.jpg"]));
    assert!(json["fid_missing"].as_str().unwrap().contains("no Inception weights"), "{json}");
    // With an Inception model, one photo per set still leaves FID out, and says why.
    assert!(fid_missing_reason(true, 1).unwrap().contains("at least 2 photos"));
    assert_eq!(fid_missing_reason(true, 2), None);
}
