//! The assembled models: state-dict keys and shapes equal the spec's table for both presets,
//! parameter counts to the unit (spec §2.5, §3.6, §4.3), save/load round trip, strict loading.
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::Result;

fn assert_matches_spec(model: &InpaintingModel) {
    let spec = model.spec();
    let ours: Vec<(String, Vec<usize>)> = model.store.iter().map(|(_, n, t)| (n.to_string(), t.shape().to_vec())).collect();
    let mut want = spec.key_shapes();
    let mut got = ours.clone();
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "number of tensors");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn model_keys_and_counts_match_spec_paper_cpu() -> Result<()> {
    let m = InpaintingModel::new(&ModelConfig::paper(), 0)?;
    assert_matches_spec(&m);
    let s = &m.store;
    assert_eq!(s.numel_with_prefix("content_codec.encoder."), 642_560);
    assert_eq!(s.numel_with_prefix("content_codec.decoder."), 6_627_075);
    assert_eq!(s.numel_with_prefix("content_codec.quant_conv."), 65_792);
    assert_eq!(s.numel_with_prefix("content_codec.post_quant_conv."), 65_792);
    assert_eq!(s.numel_with_prefix("fdm."), 3_806_976);
    assert_eq!(s.numel_with_prefix("generator."), 111_252_992);
    assert_eq!(s.numel_with_prefix("generator.blocks.0."), 3_152_384);
    // learnable + codebook `embedding` (spec §8.2 grand total), + 1 for `temp`.
    let buffers = s.numel_with_prefix("content_codec.quantize.");
    assert_eq!(buffers, 525_312);
    assert_eq!(s.numel() - buffers + 262_144, 122_723_331 + 1);
    Ok(())
}

#[test]
fn model_keys_match_spec_tiny_cpu() -> Result<()> {
    assert_matches_spec(&InpaintingModel::new(&ModelConfig::tiny(), 0)?);
    Ok(())
}

#[test]
fn model_save_load_round_trip_tiny_cpu() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("fdm-model-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("tiny.safetensors");
    let a = InpaintingModel::new(&ModelConfig::tiny(), 42)?;
    a.save(&path)?;
    let b = InpaintingModel::load(&path, None)?;
    assert_eq!(b.cfg, a.cfg);
    for ((_, na, ta), (_, nb, tb)) in a.store.iter().zip(b.store.iter()) {
        assert_eq!(na, nb);
        assert_eq!(ta.to_vec_f32()?, tb.to_vec_f32()?, "{na}");
    }
    // A different seed gives different weights (the init is really seeded).
    let c = InpaintingModel::new(&ModelConfig::tiny(), 43)?;
    let id = a.store.id_of("fdm.mix.0.weight").unwrap();
    assert_ne!(a.store.get(id).to_vec_f32()?, c.store.get(id).to_vec_f32()?);
    // Loading as the wrong preset is a clear error naming both.
    let e = InpaintingModel::load(&path, Some(&ModelConfig::paper())).err().expect("must refuse").to_string();
    assert!(e.contains("tiny") && e.contains("paper"), "{e}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
