//! The state-dict key table (spec §8.2) and the parameter / MAC counts of spec §2.5, §2.6, §3.6,
//! §4.3 and §6.5, reproduced to the unit from the shapes. The expected numbers are the spec's
//! (hand-derived there from the layer shapes), not outputs of this code.

use fdm::model::cost::{
    decoder_macs, discriminator_macs, discriminator_output_side, encoder_macs, fdm_macs, quant_conv_macs,
    softmax_exps_per_pass, transformer_pass_macs, vq_distance_macs,
};
use fdm::model::{ModelConfig, Module, ParamSpec, Role};
use std::collections::HashSet;

fn paper() -> (ModelConfig, ParamSpec) {
    let cfg = ModelConfig::paper();
    let spec = ParamSpec::inference(&cfg);
    (cfg, spec)
}

#[test]
fn param_spec_paper_module_counts_match_spec_cpu() {
    let (_, s) = paper();
    assert_eq!(s.learnable(Module::Encoder), 642_560, "encoder");
    assert_eq!(s.learnable(Module::Decoder), 6_627_075, "decoder");
    assert_eq!(s.learnable(Module::QuantConv), 65_792, "quant_conv");
    assert_eq!(s.learnable(Module::PostQuantConv), 65_792, "post_quant_conv");
    assert_eq!(s.codec_learnable(), 7_401_219, "codec learnable");
    assert_eq!(s.learnable(Module::Fdm), 3_806_976, "FDM");
    assert_eq!(s.learnable(Module::Transformer), 111_252_992, "transformer");
    assert_eq!(s.numel_with_prefix("generator.blocks.0."), 3_152_384, "one block");
    assert_eq!(s.numel_with_prefix("generator.blocks."), 110_333_440, "35 blocks");
    assert_eq!(s.model_total(), 122_723_331, "learnable + codebook");
    assert_eq!(s.numel_of_role(Role::Dummy), 1, "temp");
    assert_eq!(
        s.numel_of_role(Role::Codebook) + s.numel_of_role(Role::EmaState),
        525_312,
        "quantizer buffers"
    );
    assert_eq!(
        s.learnable(Module::Quantizer),
        0,
        "EMA codebook has no learnable parameters"
    );
}

#[test]
fn param_spec_paper_submodule_counts_match_spec_cpu() {
    let (_, s) = paper();
    let c = |p: &str| s.numel_with_prefix(&format!("content_codec.{p}"));
    assert_eq!(c("encoder.pre_layers."), 49_408);
    assert_eq!(c("encoder.res_layers."), 527_360);
    assert_eq!(c("encoder.res_layers.3."), 65_920);
    assert_eq!(c("encoder.post_layers."), 65_792);
    assert_eq!(c("decoder.pre_layers."), 590_080);
    assert_eq!(c("decoder.res_layers."), 2_624_512);
    assert_eq!(c("decoder.res_layers.0."), 328_064);
    assert_eq!(c("decoder.up_layers.0."), 1_048_832);
    assert_eq!(c("decoder.up_layers.1."), 524_416);
    assert_eq!(c("decoder.up_layers.2."), 131_136);
    assert_eq!(c("decoder.up_layers."), 1_704_384);
    assert_eq!(c("decoder.encoder.layers.0."), 1_792);
    assert_eq!(c("decoder.encoder.layers.1."), 131_200);
    assert_eq!(c("decoder.encoder.layers.2."), 524_544);
    assert_eq!(c("decoder.encoder.layers.3."), 1_048_832);
    assert_eq!(c("decoder.encoder."), 1_706_368);
    assert_eq!(c("decoder.post_layers."), 1_731);
    assert_eq!(s.numel_with_prefix("fdm.mix.0."), 592_384);
    assert_eq!(s.numel_with_prefix("fdm.mix.10."), 590_080);
    assert_eq!(s.numel_with_prefix("generator.emb_proj."), 131_584);
    assert_eq!(s.numel_with_prefix("generator.pos_emb"), 524_288);
    assert_eq!(s.numel_with_prefix("generator.layer_norm."), 1_024);
    assert_eq!(s.numel_with_prefix("generator.to_logits."), 262_656);
    assert_eq!(s.numel_with_prefix("generator.blocks.7.mlp.0."), 1_050_624);
    assert_eq!(s.numel_with_prefix("generator.blocks.7.mlp.2."), 1_049_088);
}

/// Every row of the spec §8.2 table, written out by hand (i = 0..7, n = 0..34, j = 2..9).
#[test]
fn param_spec_paper_keys_and_shapes_follow_spec_table_cpu() {
    let (_, s) = paper();
    let mut want: Vec<(String, Vec<usize>)> = vec![("temp".into(), vec![1])];
    let wb = |w: &mut Vec<(String, Vec<usize>)>, name: &str, ws: &[usize], bs: &[usize]| {
        w.push((format!("{name}.weight"), ws.to_vec()));
        w.push((format!("{name}.bias"), bs.to_vec()));
    };
    let cc = "content_codec";
    wb(&mut want, &format!("{cc}.encoder.pre_layers.0"), &[256, 192], &[256]);
    for i in 0..8 {
        wb(
            &mut want,
            &format!("{cc}.encoder.res_layers.{i}.layers.0"),
            &[128, 256],
            &[128],
        );
        wb(
            &mut want,
            &format!("{cc}.encoder.res_layers.{i}.layers.2"),
            &[256, 128],
            &[256],
        );
    }
    wb(&mut want, &format!("{cc}.encoder.post_layers.0"), &[256, 256], &[256]);
    wb(&mut want, &format!("{cc}.quant_conv"), &[256, 256, 1, 1], &[256]);
    want.push((format!("{cc}.quantize.embedding"), vec![1024, 256]));
    want.push((format!("{cc}.quantize.cluster_size"), vec![1024]));
    want.push((format!("{cc}.quantize.embedding_avg"), vec![1024, 256]));
    wb(&mut want, &format!("{cc}.post_quant_conv"), &[256, 256, 1, 1], &[256]);
    wb(
        &mut want,
        &format!("{cc}.decoder.pre_layers.0"),
        &[256, 256, 3, 3],
        &[256],
    );
    for i in 0..8 {
        wb(
            &mut want,
            &format!("{cc}.decoder.res_layers.{i}.conv.0"),
            &[128, 256, 3, 3],
            &[128],
        );
        wb(
            &mut want,
            &format!("{cc}.decoder.res_layers.{i}.conv.2"),
            &[256, 128, 1, 1],
            &[256],
        );
    }
    wb(
        &mut want,
        &format!("{cc}.decoder.up_layers.0.deconv"),
        &[256, 256, 4, 4],
        &[256],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.up_layers.1.deconv"),
        &[256, 128, 4, 4],
        &[128],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.up_layers.2.deconv"),
        &[128, 64, 4, 4],
        &[64],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.encoder.layers.0"),
        &[64, 3, 3, 3],
        &[64],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.encoder.layers.1"),
        &[128, 64, 4, 4],
        &[128],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.encoder.layers.2"),
        &[256, 128, 4, 4],
        &[256],
    );
    wb(
        &mut want,
        &format!("{cc}.decoder.encoder.layers.3"),
        &[256, 256, 4, 4],
        &[256],
    );
    wb(&mut want, &format!("{cc}.decoder.post_layers.0"), &[3, 64, 3, 3], &[3]);
    wb(&mut want, "fdm.mix.0", &[256, 257, 3, 3], &[256]);
    for j in 2..10 {
        wb(&mut want, &format!("fdm.mix.{j}.conv.0"), &[128, 256, 3, 3], &[128]);
        wb(&mut want, &format!("fdm.mix.{j}.conv.2"), &[256, 128, 1, 1], &[256]);
    }
    wb(&mut want, "fdm.mix.10", &[256, 256, 3, 3], &[256]);
    wb(&mut want, "generator.emb_proj", &[512, 256], &[512]);
    want.push(("generator.pos_emb".into(), vec![1, 1024, 512]));
    for n in 0..35 {
        let p = format!("generator.blocks.{n}");
        wb(&mut want, &format!("{p}.ln1"), &[512], &[512]);
        for a in ["query", "key", "value", "proj"] {
            wb(&mut want, &format!("{p}.attn.{a}"), &[512, 512], &[512]);
        }
        wb(&mut want, &format!("{p}.ln2"), &[512], &[512]);
        wb(&mut want, &format!("{p}.mlp.0"), &[2048, 512], &[2048]);
        wb(&mut want, &format!("{p}.mlp.2"), &[512, 2048], &[512]);
    }
    wb(&mut want, "generator.layer_norm", &[512], &[512]);
    wb(&mut want, "generator.to_logits", &[512, 512], &[512]);
    assert_eq!(s.key_shapes(), want);
    let unique: HashSet<&str> = s.names().collect();
    assert_eq!(unique.len(), s.len(), "keys are unique");
}

#[test]
fn param_spec_tiny_uses_paper_names_cpu() {
    let (paper_cfg, p) = paper();
    let tiny_cfg = ModelConfig::tiny();
    let t = ParamSpec::inference(&tiny_cfg);
    // Same key set up to block counts: every tiny key is a paper key, with the same rank.
    // The FDM tail's index follows the block count (mix.{res_blocks + 2}): mix.4 in tiny is the
    // layer that is mix.10 in paper.
    for e in &t.entries {
        let name = e.name.replace("fdm.mix.4.", "fdm.mix.10.");
        let pe = p
            .get(&name)
            .unwrap_or_else(|| panic!("tiny key {} is not a paper key", e.name));
        assert_eq!(pe.shape.len(), e.shape.len(), "{}: rank", e.name);
        assert_eq!((pe.module, pe.role), (e.module, e.role), "{}: module/role", e.name);
    }
    assert_eq!(t.get("fdm.mix.4.weight").unwrap().shape, vec![64, 64, 3, 3]);
    assert_eq!(t.get("content_codec.quantize.embedding").unwrap().shape, vec![512, 64]);
    assert_eq!(t.get("generator.to_logits.weight").unwrap().shape, vec![256, 64]);
    assert_eq!(t.get("fdm.mix.0.weight").unwrap().shape, vec![64, 65, 3, 3]);
    assert!(paper_cfg.validate().is_ok() && tiny_cfg.validate().is_ok());
}

#[test]
fn cost_paper_macs_match_spec_cpu() {
    let cfg = ModelConfig::paper();
    let t = transformer_pass_macs(&cfg);
    assert_eq!(t.total(), 150_726_508_544, "transformer pass");
    assert_eq!(t.with_prefix("generator.blocks.0."), 1u64 << 32, "one block = 2^32");
    assert_eq!(t.with_prefix("generator.emb_proj"), 134_217_728);
    assert_eq!(t.with_prefix("generator.to_logits"), 268_435_456);
    assert_eq!(fdm_macs(&cfg).total(), 3_894_673_408, "FDM");
    assert_eq!(fdm_macs(&cfg).with_prefix("fdm.mix.0"), 606_339_072);
    assert_eq!(encoder_macs(&cfg).total(), 1024 * 638_976, "encoder");
    assert_eq!(quant_conv_macs(&cfg), 67_108_864);
    assert_eq!(vq_distance_macs(&cfg), 268_435_456);
    let d = decoder_macs(&cfg);
    // Spec §2.6 per-layer figures (in G, 3 decimals) and the 14.252 G total.
    let g = |x: u64| (x as f64 / 1e9 * 1000.0).round() / 1000.0;
    assert_eq!(g(d.with_prefix("content_codec.decoder.pre_layers")), 0.604);
    assert_eq!(g(d.with_prefix("content_codec.decoder.res_layers")), 2.684);
    assert_eq!(g(d.with_prefix("content_codec.decoder.up_layers.0")), 1.074);
    assert_eq!(g(d.with_prefix("content_codec.decoder.up_layers.1")), 2.147);
    assert_eq!(g(d.with_prefix("content_codec.decoder.up_layers.2")), 2.147);
    assert_eq!(g(d.with_prefix("content_codec.decoder.encoder.layers.0")), 0.113);
    assert_eq!(g(d.with_prefix("content_codec.decoder.encoder.layers.1")), 2.147);
    assert_eq!(g(d.with_prefix("content_codec.decoder.encoder.layers.3")), 1.074);
    assert_eq!(g(d.with_prefix("content_codec.decoder.post_layers")), 0.113);
    assert_eq!(g(d.total()), 14.252);
    assert_eq!(softmax_exps_per_pass(&cfg), 35 * 8 * 1024 * 1024);
}

#[test]
fn discriminator_paper_matches_spec_cpu() {
    let cfg = ModelConfig::paper();
    let d = ParamSpec::discriminator(&cfg);
    assert_eq!(d.numel_of_role(Role::Learnable), 2_763_776);
    let shapes: Vec<Vec<usize>> = d
        .entries
        .iter()
        .filter(|e| e.role == Role::Learnable)
        .map(|e| e.shape.clone())
        .collect();
    assert_eq!(
        shapes,
        vec![
            vec![64, 3, 4, 4],
            vec![128, 64, 4, 4],
            vec![256, 128, 4, 4],
            vec![512, 256, 4, 4],
            vec![1, 512, 4, 4]
        ]
    );
    assert_eq!(d.get("loss.discriminator.conv5.0.weight_u").unwrap().shape, vec![1]);
    assert_eq!(
        d.get("loss.discriminator.conv2.0.weight_v").unwrap().shape,
        vec![64 * 16]
    );
    assert_eq!(discriminator_output_side(&cfg), 30);
    assert!(discriminator_macs(&cfg).total() > 0);
}

#[test]
fn config_validate_lists_every_problem_cpu() {
    let mut cfg = ModelConfig::tiny();
    cfg.transformer.n_head = 3; // 64 not divisible by 3
    cfg.transformer.vocab = 100; // != masked_embed_start
    cfg.codec.up_channels = vec![64, 32]; // patch 8 needs three up-steps
    let err = cfg.validate().unwrap_err().to_string();
    for needle in ["n_head 3", "vocab 100", "up_channels"] {
        assert!(err.contains(needle), "error should mention {needle}: {err}");
    }
    assert!(ModelConfig::by_name("huge")
        .unwrap_err()
        .to_string()
        .contains("unknown preset"));
}

#[test]
fn config_json_round_trip_cpu() {
    for cfg in [ModelConfig::paper(), ModelConfig::tiny()] {
        let back = ModelConfig::from_json(&cfg.to_json()).unwrap();
        assert_eq!(back, cfg);
    }
    assert!(ModelConfig::from_json("{\"preset\": 1}").is_err());
}

/// The key table the checkpoint converter reads (`weights-tools/paper_keys.json`) is this
/// crate's paper spec, byte for byte. Regenerate with
/// `FDM_BLESS=1 cargo test --release --test param_spec`.
#[test]
fn param_spec_paper_keys_json_is_current_cpu() {
    let cfg = ModelConfig::paper();
    let spec = ParamSpec::inference(&cfg);
    let config_json = serde_json::to_string(&cfg).unwrap();
    let mut text = String::from("{\n");
    text.push_str("  \"about\": \"Inference state-dict keys and shapes of the paper preset (spec 8.2), generated by tests/param_spec.rs from src/model/param_spec.rs; do not edit.\",\n");
    text.push_str("  \"preset\": \"paper\",\n");
    text.push_str(&format!("  \"config\": {config_json},\n"));
    text.push_str("  \"tensors\": [\n");
    for (i, e) in spec.entries.iter().enumerate() {
        let sep = if i + 1 == spec.len() { "" } else { "," };
        text.push_str(&format!("    [\"{}\", {:?}, \"{:?}\"]{sep}\n", e.name, e.shape, e.role));
    }
    text.push_str("  ]\n}\n");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights-tools/paper_keys.json");
    if std::env::var("FDM_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&path).expect("weights-tools/paper_keys.json exists (FDM_BLESS=1 writes it)");
    assert!(
        stored == text,
        "weights-tools/paper_keys.json differs from the paper spec: rerun with FDM_BLESS=1"
    );
    // The file is valid JSON holding the same config.
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(ModelConfig::from_json(&v["config"].to_string()).unwrap(), cfg);
    assert_eq!(v["tensors"].as_array().unwrap().len(), spec.len());
}
