//! Weights files: round trips in every stored dtype, metadata, strict loading against the
//! parameter spec (one error naming every problem), damaged files (errors, never panics), and
//! the atomic save (no temporary file left behind, an existing file replaced whole).

use fdm::io::safetensors::{
    config_from_metadata, load, load_model, load_strict, read_metadata, save, save_model, FileMetadata, META_PRESET,
};
use fdm::io::{WeightStore, WeightsError};
use fdm::model::{ModelConfig, ParamSpec};
use fdm::storage::CpuStorage;
use fdm::testing::random_vec;
use fdm::{DType, Tensor};
use half::{bf16, f16};
use std::path::{Path, PathBuf};

/// A fresh, empty directory for one test (removed at the end of the test when it passes).
fn test_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-st-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A store holding every tensor of `spec` with seeded values.
fn store_for(spec: &ParamSpec, seed: u64) -> WeightStore {
    spec.entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.name.clone(),
                Tensor::from_vec(random_vec(seed + i as u64, e.numel(), -1.0, 1.0), &e.shape).unwrap(),
            )
        })
        .collect()
}

fn cpu_storage(t: &Tensor) -> CpuStorage {
    t.to_cpu_storage().unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    v.sort();
    v
}

#[test]
fn safetensors_round_trip_all_dtypes_cpu() {
    let dir = test_dir("round-trip");
    let f = random_vec(1, 12, -3.0, 3.0);
    let mut store = WeightStore::new();
    store.insert(
        "b.f16",
        Tensor::from_cpu(CpuStorage::F16(f.iter().map(|&x| f16::from_f32(x)).collect()), &[3, 4]).unwrap(),
    );
    store.insert("a.f32", Tensor::from_vec(f.clone(), &[2, 3, 2]).unwrap());
    store.insert(
        "c.bf16",
        Tensor::from_cpu(CpuStorage::BF16(f.iter().map(|&x| bf16::from_f32(x)).collect()), &[12]).unwrap(),
    );
    store.insert("d.u32", Tensor::from_u32(vec![0, 7, u32::MAX, 511], &[2, 2]).unwrap());
    store.insert("e.scalar", Tensor::scalar(0.25));
    // A strided view is written as its dense values.
    let m = Tensor::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3]).unwrap();
    store.insert("f.transposed", m.transpose(0, 1).unwrap());
    let path = dir.join("w.safetensors");
    save(&path, &store, &FileMetadata::new()).unwrap();

    let (back, meta) = load(&path).unwrap();
    assert!(meta.is_empty());
    assert_eq!(back.len(), store.len());
    for (name, t) in store.iter() {
        let b = back
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing after round trip"));
        assert_eq!(b.shape(), t.shape(), "{name} shape");
        assert_eq!(b.dtype(), t.dtype(), "{name} dtype");
        match (cpu_storage(b), cpu_storage(t)) {
            (CpuStorage::F32(x), CpuStorage::F32(y)) => assert_eq!(x, y, "{name}"),
            (CpuStorage::F16(x), CpuStorage::F16(y)) => assert_eq!(x, y, "{name}"),
            (CpuStorage::BF16(x), CpuStorage::BF16(y)) => assert_eq!(x, y, "{name}"),
            (CpuStorage::U32(x), CpuStorage::U32(y)) => assert_eq!(x, y, "{name}"),
            _ => unreachable!("dtypes compared above"),
        }
    }
    assert_eq!(
        back.get("f.transposed").unwrap().to_vec_f32().unwrap(),
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    // File order: 4-byte dtypes first (store order among them), then 2-byte ones.
    let order: Vec<&str> = back.names().collect();
    assert_eq!(order, ["a.f32", "d.u32", "e.scalar", "f.transposed", "b.f16", "c.bf16"]);
    assert_eq!(files_in(&dir), ["w.safetensors"], "no temporary file left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_bf16_model_round_trip_and_strict_load_cpu() {
    let dir = test_dir("bf16-model");
    let cfg = ModelConfig::tiny();
    let spec = ParamSpec::inference(&cfg);
    let store = store_for(&spec, 100).to_dtype(DType::BF16).unwrap();
    let path = dir.join("tiny-bf16.safetensors");
    save_model(&path, &store, &cfg, &FileMetadata::new()).unwrap();
    let (back, got_cfg) = load_model(&path, None).unwrap();
    assert_eq!(got_cfg, cfg);
    let names: Vec<&str> = back.names().collect();
    let spec_names: Vec<&str> = spec.names().collect();
    assert_eq!(names, spec_names, "strict load returns spec order");
    for (name, t) in store.iter() {
        let b = back.get(name).unwrap();
        assert_eq!(b.dtype(), DType::BF16);
        assert_eq!(b.to_vec_f32().unwrap(), t.to_vec_f32().unwrap(), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_same_weights_same_bytes_cpu() {
    // The header's metadata keys are written in a fixed order: saving the same weights twice
    // gives identical files (the metadata holds several keys, so a random order shows).
    let dir = test_dir("same-bytes");
    let cfg = ModelConfig::tiny();
    let store = store_for(&ParamSpec::inference(&cfg), 3);
    let mut extra = FileMetadata::new();
    for k in ["a", "b", "c", "d", "e", "f"] {
        extra.insert(format!("key_{k}"), k.into());
    }
    let bytes: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let path = dir.join(format!("w{i}.safetensors"));
            save_model(&path, &store, &cfg, &extra).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    assert!(bytes.iter().all(|b| b == &bytes[0]), "four saves of one store differ");
}

#[test]
fn safetensors_metadata_round_trip_cpu() {
    let dir = test_dir("metadata");
    let cfg = ModelConfig::tiny();
    let store = store_for(&ParamSpec::inference(&cfg), 7);
    let mut extra = FileMetadata::new();
    extra.insert("source".into(), "unit test".into());
    let path = dir.join("m.safetensors");
    save_model(&path, &store, &cfg, &extra).unwrap();
    let meta = read_metadata(&path).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("fdm-weights"));
    assert_eq!(meta.get(META_PRESET).map(String::as_str), Some("tiny"));
    assert_eq!(meta.get("source").map(String::as_str), Some("unit test"));
    assert_eq!(config_from_metadata(&meta, &path).unwrap(), Some(cfg.clone()));
    // A config with the same name but other shapes is refused by name, naming what differs.
    let mut other = cfg.clone();
    other.transformer.n_layer = 5;
    match load_model(&path, Some(&other)) {
        Err(WeightsError::ConfigMismatch {
            found,
            expected,
            detail,
            ..
        }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("tiny", "tiny"));
            assert!(detail.contains("different shapes"), "{detail}");
            let says = format!("transformer.n_layer {} (expected 5)", cfg.transformer.n_layer);
            assert!(detail.contains(&says), "names the field: {detail}");
        }
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    assert!(matches!(
        load_model(&path, Some(&ModelConfig::paper())),
        Err(WeightsError::ConfigMismatch { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_strict_load_lists_every_problem_cpu() {
    let dir = test_dir("strict");
    let cfg = ModelConfig::tiny();
    let spec = ParamSpec::inference(&cfg);
    let mut store = store_for(&spec, 3);
    store.remove("generator.blocks.2.attn.key.weight").unwrap();
    store.remove("fdm.mix.4.bias").unwrap();
    store.insert("lip.mix.0.weight", Tensor::zeros(&[2, 2]));
    store.insert("content_codec.quant_conv.weight", Tensor::zeros(&[64, 64])); // should be [64,64,1,1]
    store.insert(
        "generator.pos_emb",
        Tensor::from_u32(vec![0; 1024 * 64], &[1, 1024, 64]).unwrap(),
    );
    let path = dir.join("bad.safetensors");
    save(&path, &store, &fdm::io::safetensors::model_metadata(&cfg)).unwrap();

    let err = load_strict(&path, &spec).unwrap_err();
    let msg = err.to_string();
    match &err {
        WeightsError::Mismatch(m) => {
            let missing: Vec<&str> = m.missing.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(missing, ["fdm.mix.4.bias", "generator.blocks.2.attn.key.weight"]);
            assert_eq!(m.unexpected, vec![("lip.mix.0.weight".to_string(), vec![2, 2])]);
            assert_eq!(
                m.misshaped,
                vec![(
                    "content_codec.quant_conv.weight".to_string(),
                    vec![64, 64, 1, 1],
                    vec![64, 64]
                )]
            );
            assert_eq!(m.wrong_dtype, vec![("generator.pos_emb".to_string(), DType::U32)]);
            assert_eq!(m.problem_count(), 5);
        }
        other => panic!("expected WeightsError::Mismatch, got {other:?}"),
    }
    assert!(!msg.contains("more"), "five problems are all listed:\n{msg}");
    for name in [
        "fdm.mix.4.bias",
        "generator.blocks.2.attn.key.weight",
        "lip.mix.0.weight",
        "content_codec.quant_conv.weight",
        "generator.pos_emb",
    ] {
        assert!(msg.contains(name), "the one error message names {name}:\n{msg}");
    }
    // load_model goes through the same check.
    assert!(matches!(load_model(&path, None), Err(WeightsError::Mismatch(_))));
    // And an incomplete model is never written by save_model.
    let target = dir.join("never.safetensors");
    assert!(matches!(
        save_model(&target, &store, &cfg, &FileMetadata::new()),
        Err(WeightsError::Mismatch(_))
    ));
    assert!(!target.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_damaged_files_give_errors_not_panics_cpu() {
    let dir = test_dir("damaged");
    let mut store = WeightStore::new();
    store.insert("w", Tensor::from_vec(random_vec(5, 64, -1.0, 1.0), &[8, 8]).unwrap());
    let good = dir.join("good.safetensors");
    save(&good, &store, &FileMetadata::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() - 10].to_vec()),
        ("extra-bytes", [bytes.as_slice(), &[0u8; 4]].concat()),
        ("empty", Vec::new()),
        ("three-bytes", vec![1, 2, 3]),
        (
            "header-too-long",
            [&(1u64 << 40).to_le_bytes()[..], &bytes[8..]].concat(),
        ),
        ("garbage-header", {
            let mut b = bytes.clone();
            b[9] = b'#';
            b
        }),
    ];
    for (name, data) in cases {
        let p = dir.join(format!("{name}.safetensors"));
        std::fs::write(&p, &data).unwrap();
        match load(&p) {
            Err(WeightsError::Corrupt { path, detail }) => {
                assert_eq!(path, p);
                assert!(!detail.is_empty(), "{name}: a reason is given");
            }
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
        assert!(
            matches!(read_metadata(&p), Err(WeightsError::Corrupt { .. })),
            "{name}: read_metadata"
        );
    }
    assert!(matches!(
        load(dir.join("absent.safetensors")),
        Err(WeightsError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_unsupported_dtype_is_named_cpu() {
    let dir = test_dir("dtype");
    // A hand-written file with an i64 tensor and an f64 one.
    let header = br#"{"idx":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"x":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}}"#;
    let mut h = header.to_vec();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&[0u8; 24]);
    let p = dir.join("i64.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    match load(&p) {
        Err(WeightsError::UnsupportedDType { tensors, .. }) => {
            let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["idx", "x"]);
            assert_eq!(tensors[0].1, "I64");
        }
        other => panic!("expected UnsupportedDType, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn safetensors_save_replaces_whole_file_atomically_cpu() {
    let dir = test_dir("atomic");
    let path = dir.join("w.safetensors");
    let mut big = WeightStore::new();
    big.insert("a", Tensor::zeros(&[1000]));
    big.insert("b", Tensor::full(2.0, &[10]));
    save(&path, &big, &FileMetadata::new()).unwrap();
    // Keep a map of the old file open while it is replaced, like a reader would.
    let old_len = std::fs::metadata(&path).unwrap().len();
    let reader = std::fs::File::open(&path).unwrap();
    let mut small = WeightStore::new();
    small.insert("b", Tensor::full(3.0, &[10]));
    save(&path, &small, &FileMetadata::new()).unwrap();
    let (back, _) = load(&path).unwrap();
    assert_eq!(back.names().collect::<Vec<_>>(), ["b"]);
    assert_eq!(back.get("b").unwrap().to_vec_f32().unwrap(), vec![3.0; 10]);
    assert_eq!(
        reader.metadata().unwrap().len(),
        old_len,
        "the old file was replaced, not rewritten in place"
    );
    assert_eq!(files_in(&dir), ["w.safetensors"]);
    // A target in a missing directory is an IO error naming the path, and leaves nothing.
    let missing = dir.join("no-such-dir").join("w.safetensors");
    assert!(matches!(
        save(&missing, &small, &FileMetadata::new()),
        Err(WeightsError::Io { .. })
    ));
    assert_eq!(files_in(&dir), ["w.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weight_store_insert_replace_remove_keep_order_cpu() {
    let mut s = WeightStore::new();
    assert!(s.insert("x", Tensor::zeros(&[2])).is_none());
    s.insert("y", Tensor::zeros(&[3]));
    s.insert("z", Tensor::zeros(&[4]));
    let old = s
        .insert("x", Tensor::full(1.0, &[2]))
        .expect("replacing returns the old tensor");
    assert_eq!(old.to_vec_f32().unwrap(), vec![0.0, 0.0]);
    assert_eq!(s.names().collect::<Vec<_>>(), ["x", "y", "z"]);
    assert!(s.remove("y").is_some());
    assert!(s.remove("y").is_none());
    assert_eq!(s.names().collect::<Vec<_>>(), ["x", "z"]);
    assert_eq!(s.get("z").unwrap().shape(), &[4]);
    assert_eq!(s.numel(), 6);
    // to_dtype converts floats only and refuses a non-float target.
    s.insert("idx", Tensor::from_u32(vec![1, 2], &[2]).unwrap());
    let h = s.to_dtype(DType::F16).unwrap();
    assert_eq!((h.get("x").unwrap().dtype(), h.get("idx").unwrap().dtype()), (DType::F16, DType::U32));
    assert!(s.to_dtype(DType::U32).is_err());
    s.remove("idx");
    assert_eq!(
        s.iter().map(|(n, t)| (n.to_string(), t.numel())).collect::<Vec<_>>(),
        [("x".to_string(), 2), ("z".to_string(), 4)]
    );
}

/// `weights-tools/fixtures/mini.safetensors` is written by the Python checkpoint converter
/// (`weights-tools/test_convert.py` regenerates and compares it): the two writers and readers
/// agree on the format and the metadata keys.
#[test]
fn safetensors_reads_the_python_converter_output_cpu() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights-tools/fixtures/mini.safetensors");
    let (store, meta) = load(&path).unwrap();
    assert_eq!(
        store.names().collect::<Vec<_>>(),
        ["temp", "fdm.mix.0.weight", "fdm.mix.0.bias"]
    );
    assert_eq!(store.get("temp").unwrap().to_vec_f32().unwrap(), vec![0.0]);
    let w = store.get("fdm.mix.0.weight").unwrap();
    assert_eq!((w.shape(), w.dtype()), (&[2usize, 3, 1, 1][..], DType::F32));
    assert_eq!(w.to_vec_f32().unwrap(), vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]);
    assert_eq!(
        store.get("fdm.mix.0.bias").unwrap().to_vec_f32().unwrap(),
        vec![3.25, -0.125]
    );
    assert_eq!(meta.get("format").map(String::as_str), Some("fdm-weights"));
    assert_eq!(meta.get("preset").map(String::as_str), Some("mini"));
    assert_eq!(meta.get("source").map(String::as_str), Some("fdm=mini.pth"));
    // Its config (`{"preset":"mini"}`) is not a model config: a metadata error, not a panic.
    assert!(matches!(
        config_from_metadata(&meta, &path),
        Err(WeightsError::Metadata { .. })
    ));
}
