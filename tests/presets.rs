//! docs/PRESETS.md quotes parameter and MAC counts; they must be the numbers `model::cost`
//! computes from the presets. The tables between the `<!-- generated:NAME -->` markers are
//! regenerated with `FDM_BLESS=1 cargo test --release --test presets` after a preset changes.

use fdm::model::cost::summary_markdown;
use fdm::model::ModelConfig;
use std::path::PathBuf;

/// Passes of one inpainting used in the tables (~ masked patches of a 20-30 % mask, spec §5.3).
const PASSES: u64 = 400;

/// Transformer shapes considered for `tiny` (same codec/FDM), to show why 4 x 64 was chosen.
fn alternatives() -> Vec<ModelConfig> {
    let variant = |name: &str, layers: usize, width: usize, heads: usize| {
        let mut c = ModelConfig::tiny();
        c.preset = name.to_string();
        c.transformer.n_layer = layers;
        c.transformer.n_embd = width;
        c.transformer.n_head = heads;
        c.validate().expect("alternative config is valid");
        c
    };
    vec![
        ModelConfig::tiny(),
        variant("4 x 64 x 4 heads", 4, 64, 4),
        variant("2 x 128 x 4 heads", 2, 128, 4),
        variant("4 x 96 x 2 heads", 4, 96, 2),
        variant("4 x 128 x 4 heads", 4, 128, 4),
    ]
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/PRESETS.md")
}

/// Replace (bless) or check the block between `<!-- generated:NAME -->` and `<!-- end:NAME -->`.
fn check_block(doc: &mut String, name: &str, body: &str, bless: bool) {
    let (open, close) = (format!("<!-- generated:{name} -->\n"), format!("<!-- end:{name} -->"));
    let start = doc
        .find(&open)
        .unwrap_or_else(|| panic!("docs/PRESETS.md lacks the marker {open:?}"))
        + open.len();
    let end = start
        + doc[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("docs/PRESETS.md lacks {close:?}"));
    if bless {
        doc.replace_range(start..end, body);
    } else {
        assert_eq!(
            &doc[start..end],
            body,
            "docs/PRESETS.md table `{name}` is stale: rerun with FDM_BLESS=1"
        );
    }
}

#[test]
fn presets_doc_tables_match_computed_counts_cpu() {
    let bless = std::env::var("FDM_BLESS").is_ok_and(|v| v == "1");
    let mut doc = std::fs::read_to_string(doc_path()).expect("docs/PRESETS.md exists");
    check_block(
        &mut doc,
        "presets",
        &summary_markdown(&[ModelConfig::paper(), ModelConfig::tiny()], PASSES),
        bless,
    );
    check_block(
        &mut doc,
        "alternatives",
        &summary_markdown(&alternatives(), PASSES),
        bless,
    );
    if bless {
        std::fs::write(doc_path(), doc).expect("write docs/PRESETS.md");
    }
}

#[test]
fn presets_paper_inpainting_cost_matches_paper_table2_cpu() {
    // Spec §3.6: the paper's 59.331 T "FLOPs" (really MACs) for PUT inference is ~394 passes.
    let total = fdm::model::cost::inpainting_macs(&ModelConfig::paper(), 394);
    let rel = (total as f64 - 59.331e12).abs() / 59.331e12;
    assert!(
        rel < 0.005,
        "394 passes give {total} MACs, {:.2} % from 59.331 T",
        rel * 100.0
    );
}
