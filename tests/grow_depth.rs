//! `weights-tools/grow_depth.py` deepens the transformer without changing what it computes: the
//! grown file loads (its config says the new depth), gives bit-identical logits, and its new
//! blocks are copies of their neighbours with zero output projections. Needs `python3` (standard
//! library only); prints SKIP without it.
use fdm::autograd::Tape;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::{Result, Tensor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python_available() -> bool {
    Command::new("python3").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

fn grow(input: &Path, output: &Path, after: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights-tools/grow_depth.py");
    Command::new("python3").arg(script).arg(input).arg(output).args(["--after", after]).output().unwrap()
}

/// A scratch folder for one test, or None (after printing SKIP) when there is no python3.
fn scratch_if_python(name: &str) -> Option<PathBuf> {
    if !python_available() {
        println!("SKIP (no python3)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("fdm-grow-depth-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

fn logits(m: &InpaintingModel, x: &Tensor) -> Result<Vec<f32>> {
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    m.transformer.forward(&t, &p, &t.constant(x.clone()))?.value().to_vec_f32()
}

fn weight(m: &InpaintingModel, name: &str) -> Vec<f32> {
    let w = m.weights().unwrap();
    w.get(name).unwrap_or_else(|| panic!("no tensor {name}")).to_vec_f32().unwrap()
}

#[test]
fn grown_transformer_gives_the_same_logits_cpu() -> Result<()> {
    let Some(dir) = scratch_if_python("same") else { return Ok(()) };
    let (small, grown) = (dir.join("small.safetensors"), dir.join("grown.safetensors"));
    let model = InpaintingModel::new(&ModelConfig::tiny(), 11)?;
    model.save(&small)?;
    let depth = model.cfg.transformer.n_layer;
    let out = grow(&small, &grown, &format!("0,{}", depth - 1));
    assert!(out.status.success(), "grow_depth.py failed: {}", String::from_utf8_lossy(&out.stderr));

    let bigger = InpaintingModel::load(&grown, None)?;
    assert_eq!(bigger.cfg.transformer.n_layer, depth + 2);
    let mut expected_cfg = model.cfg.clone();
    expected_cfg.transformer.n_layer = depth + 2;
    assert_eq!(bigger.cfg, expected_cfg, "only the depth changes");

    let c = model.cfg.codec.e_dim;
    let x = Tensor::from_vec(fdm::testing::random_vec(5, 2 * 1024 * c, -1.0, 1.0), &[2, 1024, c])?;
    assert_eq!(logits(&model, &x)?, logits(&bigger, &x)?, "the grown model computes the same logits");

    // New block 1 copies old block 0, the last new block copies the old last one; each with zero
    // output projections. Old block 1 is now block 2.
    let last_new = depth + 1;
    for (new, old) in [(1, 0), (last_new, depth - 1)] {
        for suffix in ["attn.query.weight", "attn.value.bias", "ln2.weight", "mlp.0.weight"] {
            let (a, b) = (format!("generator.blocks.{new}.{suffix}"), format!("generator.blocks.{old}.{suffix}"));
            assert_eq!(weight(&bigger, &a), weight(&model, &b), "{a} copies {b}");
        }
        for suffix in ["attn.proj.weight", "attn.proj.bias", "mlp.2.weight", "mlp.2.bias"] {
            let name = format!("generator.blocks.{new}.{suffix}");
            assert!(weight(&bigger, &name).iter().all(|&v| v == 0.0), "{name} is zero");
        }
    }
    let moved = "attn.proj.weight";
    assert_eq!(weight(&bigger, &format!("generator.blocks.2.{moved}")), weight(&model, &format!("generator.blocks.1.{moved}")));
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn grow_depth_rejects_bad_arguments_cpu() -> Result<()> {
    let Some(dir) = scratch_if_python("bad") else { return Ok(()) };
    let small = dir.join("small.safetensors");
    InpaintingModel::new(&ModelConfig::tiny(), 3)?.save(&small)?;
    let grown = dir.join("grown.safetensors");
    for (after, says) in [("99", "the input has blocks"), ("one", "expected comma-separated integers")] {
        let out = grow(&small, &grown, after);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "--after {after}: {err}");
        assert!(!grown.exists(), "nothing written on error");
    }
    let out = grow(&small, &small, "0");
    assert!(!out.status.success(), "refuses to overwrite its input");
    assert!(InpaintingModel::load(&small, None).is_ok(), "the input is intact");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
