//! Table 2 and 3 machinery on the tiny preset (fresh weights) with small holes so it runs fast:
//! parameter split, engine-counted MACs equal the model's cost formulas, FDM measured apart,
//! feature distances computed at masked patches only, Markdown beside the paper's numbers.
use fdm::cli::reproduce::*;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::Tensor;

fn small_hole() -> Tensor {
    let mut m = vec![1.0; 256 * 256];
    for y in 64..80 {
        m[y * 256 + 64..y * 256 + 80].iter_mut().for_each(|v| *v = 0.0);
    }
    Tensor::from_vec(m, &[1, 256, 256]).unwrap()
}

fn prov() -> Provenance {
    Provenance { weights: "fresh".into(), preset: "tiny".into(), data: "assets/photos".into(), images: 1, masks: "test".into(), device: "cpu".into(), seed: 0 }
}

#[test]
fn table2_counts_params_and_macs_cpu() {
    let cfg = ModelConfig::tiny();
    let model = InpaintingModel::new(&cfg, 1).unwrap();
    let photos = load_photos(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")), 1, 256).unwrap();
    let t = table2(&model, &photos, &[small_hole()], prov(), &mut |_| {}).unwrap();
    assert_eq!(t.params_fdm, 115_584); // docs/PRESETS.md
    assert_eq!(t.params_put + t.params_fdm, 760_195);
    assert_eq!(t.mean_passes, 4.0);
    assert_eq!(t.macs_fdm, fdm::model::cost::fdm_macs(&cfg).total());
    // PUT MACs: encoder + quant_conv + VQ half search + passes + post_quant_conv + decoder
    // (`inpainting_macs` without FDM, and its whole-codebook search halved: each row searches
    // one half), where the four passes read the logits of 4, 3, 2 and 1 unknown positions: on
    // the CPU the last block runs at those rows only (`Transformer::forward_at`), a quarter
    // fewer MACs than four full passes here.
    use fdm::model::cost::{fdm_macs, inpainting_macs, transformer_pass_macs, transformer_pass_macs_at, vq_distance_macs};
    let (full, pruned): (u64, u64) = (transformer_pass_macs(&cfg).total(), (1..=4).map(|u| transformer_pass_macs_at(&cfg, u).total()).sum());
    let codec = inpainting_macs(&cfg, 0) - fdm_macs(&cfg).total() - vq_distance_macs(&cfg) / 2;
    assert_eq!(t.macs_put, codec + pruned);
    assert!(pruned < 4 * full * 3 / 4 + full / 10, "{pruned} of {}", 4 * full);
    assert!(t.time_put_s > 0.0 && t.time_fdm_s > 0.0 && t.time_fdm_s < t.time_put_s);
    let md = table2_markdown(&t);
    assert!(md.contains("59.331T") && md.contains("Ours (PUT + FDM)") && md.contains("fresh"), "{md}");
    assert!(md.contains("only at the positions still unknown"), "the CPU's pruned passes are stated: {md}");
    assert!(md.contains("This is a reduced run: 1 photo(s)") && md.contains("Photos (1): `dev_005.jpg`"), "{md}");
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!((json["reduced_run"].clone(), json["photo_files"].clone()), (serde_json::json!(true), serde_json::json!(["dev_005.jpg"])));
}

#[test]
fn table3_measures_distances_at_masked_patches_cpu() {
    let model = InpaintingModel::new(&ModelConfig::tiny(), 2).unwrap();
    let photos = load_photos(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")), 1, 256).unwrap();
    let t = table3(&model, &photos, &[(0.0, 1.0)], &mut |_, _| Ok(small_hole()), prov()).unwrap();
    assert_eq!(t.rows.len(), 1);
    let r = &t.rows[0];
    assert!(r.put.is_finite() && r.put > 0.0 && r.ours.is_finite());
    assert_ne!(r.put, r.ours, "FDM changes the masked features");
    let md = table3_markdown(&t);
    assert!(md.contains("3.685") && md.contains("This is a reduced run: 1 photo(s)") && md.contains("`dev_005.jpg`"), "{md}");
    assert_eq!(serde_json::to_value(&t).unwrap()["reduced_run"], true);
}

#[test]
fn mask_files_of_another_size_are_resized_to_the_model_size_cpu() {
    let dir = std::env::temp_dir().join(format!("fdm-reproduce-masks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A 64x64 mask with its left quarter a hole: resized (nearest), the ratio stays 0.25.
    let m: Vec<f32> = (0..64 * 64).map(|i| if i % 64 < 16 { 0.0 } else { 1.0 }).collect();
    fdm::io::image::save_mask_png(&Tensor::from_vec(m, &[1, 64, 64]).unwrap(), dir.join("m.png")).unwrap();
    let (masks, _) = load_photos_masks(&dir, 256).unwrap();
    assert_eq!(masks[0].shape(), &[1, 256, 256]);
    assert_eq!(fdm::io::image::hole_fraction(&masks[0]).unwrap(), 0.25);
    std::fs::remove_dir_all(&dir).unwrap();
}
