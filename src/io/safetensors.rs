//! Weights files: safetensors (8-byte little-endian header length, JSON header, raw
//! little-endian tensor data) read through a memory map and written atomically (spec §8;
//! docs/ARCHITECTURE.md §4).
//!
//! * Dtypes: f32, f16, bf16, u32 load into CPU tensors of the same dtype; any other dtype is an
//!   error naming every such tensor.
//! * Metadata: the header's `__metadata__` (string -> string) carries `format` = "fdm-weights",
//!   `preset` (the config's name) and `config` (the `ModelConfig` as JSON), plus anything the
//!   caller adds (e.g. `source` for converted checkpoints).
//! * Strict loading (`load_strict`, `load_model`): the header is compared with the `ParamSpec`
//!   before any data is copied, and every missing / unexpected / mis-shaped / non-float tensor
//!   is listed in one `WeightsError::Mismatch`.
//! * Saving writes `.<name>.tmp-<pid>` in the target directory, fsyncs it, renames it over the
//!   target and fsyncs the directory, so a crash leaves the old file or the new one, never a
//!   torn one; a reader that memory-mapped the old file keeps its (unlinked) copy. Tensors are
//!   written in store order, 4-byte dtypes before 2-byte ones so every tensor stays aligned.
//!
//! The memory map is only read during the load call: all data is copied into owned tensors, so
//! the file may be replaced afterwards. Modifying the file *during* a load is undefined (mmap).

use super::error::WeightsError;
use super::weight_store::WeightStore;
use crate::dtype::DType;
use crate::model::{ModelConfig, ParamSpec};
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;
use ::safetensors::tensor::{Dtype as StDtype, Metadata, TensorInfo};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

// The raw data is written and read as native-endian slices; safetensors is little-endian.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "fdm weights IO assumes a little-endian host"
);

/// `__metadata__` key naming the file format, and its value.
pub const META_FORMAT: &str = "format";
pub const FORMAT_TAG: &str = "fdm-weights";
/// `__metadata__` key holding the preset (config) name.
pub const META_PRESET: &str = "preset";
/// `__metadata__` key holding the `ModelConfig` JSON.
pub const META_CONFIG: &str = "config";

/// String metadata of a weights file (`__metadata__`).
pub type FileMetadata = BTreeMap<String, String>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn to_st_dtype(d: DType) -> StDtype {
    match d {
        DType::F32 => StDtype::F32,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::U32 => StDtype::U32,
    }
}

fn from_st_dtype(d: StDtype) -> Option<DType> {
    match d {
        StDtype::F32 => Some(DType::F32),
        StDtype::F16 => Some(DType::F16),
        StDtype::BF16 => Some(DType::BF16),
        StDtype::U32 => Some(DType::U32),
        _ => None,
    }
}

/// The metadata `save_model` writes for a config.
pub fn model_metadata(cfg: &ModelConfig) -> FileMetadata {
    let mut m = FileMetadata::new();
    m.insert(META_FORMAT.into(), FORMAT_TAG.into());
    m.insert(META_PRESET.into(), cfg.preset.clone());
    m.insert(META_CONFIG.into(), cfg.to_json());
    m
}

/// The model config a file's metadata describes: the `config` JSON when present, else the
/// preset named by `preset`; `None` when the metadata has neither.
pub fn config_from_metadata(meta: &FileMetadata, path: &Path) -> Result<Option<ModelConfig>, WeightsError> {
    let bad = |detail: String| WeightsError::Metadata {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(json) = meta.get(META_CONFIG) {
        return ModelConfig::from_json(json)
            .map(Some)
            .map_err(|e| bad(format!("`{META_CONFIG}` entry: {e}")));
    }
    match meta.get(META_PRESET) {
        Some(name) => ModelConfig::by_name(name).map(Some).map_err(|e| bad(e.to_string())),
        None => Ok(None),
    }
}

/// Memory-map a file (refusing files too short to be safetensors before mapping them).
fn map_file(path: &Path) -> Result<memmap2::Mmap, WeightsError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len < 8 {
        return Err(WeightsError::Corrupt {
            path: path.into(),
            detail: format!("file is {len} bytes, shorter than the 8-byte header length"),
        });
    }
    // SAFETY: the map is read-only and dropped before this module returns; the data is copied
    // into owned tensors. Concurrent truncation of the file by another process is the one
    // hazard of any mmap-based reader (documented in the module docs).
    unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))
}

/// Parsed header: metadata and tensor infos in file (offset) order, plus the data section.
struct Parsed<'a> {
    metadata: FileMetadata,
    infos: Vec<(String, TensorInfo)>,
    data: &'a [u8],
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>, WeightsError> {
    let (n, meta) = ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        let detail = match e {
            ::safetensors::SafeTensorError::MetadataIncompleteBuffer => format!(
                "the file is {} bytes, which does not match the tensor sizes in its header (truncated, or trailing bytes)",
                bytes.len()
            ),
            other => other.to_string(),
        };
        WeightsError::Corrupt { path: path.into(), detail }
    })?;
    let infos = meta
        .offset_keys()
        .into_iter()
        .map(|k| {
            let info = meta.info(&k).expect("offset_keys come from the same header").clone();
            (k, info)
        })
        .collect();
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(Parsed {
        metadata,
        infos,
        data: &bytes[8 + n..],
    })
}

/// Copy one tensor's bytes into an owned CPU tensor (the data may be unaligned in the map).
fn tensor_from_bytes(dtype: DType, shape: &[usize], raw: &[u8]) -> Result<Tensor, WeightsError> {
    let storage = match dtype {
        DType::F32 => CpuStorage::F32(bytemuck::pod_collect_to_vec(raw)),
        DType::F16 => CpuStorage::F16(bytemuck::pod_collect_to_vec(raw)),
        DType::BF16 => CpuStorage::BF16(bytemuck::pod_collect_to_vec(raw)),
        DType::U32 => CpuStorage::U32(bytemuck::pod_collect_to_vec(raw)),
    };
    Ok(Tensor::from_cpu(storage, shape)?)
}

/// Build the store from parsed infos (all of them, or those `keep` accepts), in order.
fn read_tensors(path: &Path, p: &Parsed, keep: impl Fn(&str) -> bool) -> Result<WeightStore, WeightsError> {
    let unsupported: Vec<(String, String)> = p
        .infos
        .iter()
        .filter(|(n, i)| keep(n) && from_st_dtype(i.dtype).is_none())
        .map(|(n, i)| (n.clone(), format!("{:?}", i.dtype)))
        .collect();
    if !unsupported.is_empty() {
        return Err(WeightsError::UnsupportedDType {
            path: path.into(),
            tensors: unsupported,
        });
    }
    let mut store = WeightStore::new();
    for (name, info) in p.infos.iter().filter(|(n, _)| keep(n)) {
        let dtype = from_st_dtype(info.dtype).expect("checked above");
        let raw = &p.data[info.data_offsets.0..info.data_offsets.1];
        store.insert(name.clone(), tensor_from_bytes(dtype, &info.shape, raw)?);
    }
    Ok(store)
}

/// Only the metadata of a file (reads the header through the map; no tensor data is copied).
pub fn read_metadata(path: impl AsRef<Path>) -> Result<FileMetadata, WeightsError> {
    let path = path.as_ref();
    let map = map_file(path)?;
    Ok(parse(path, &map)?.metadata)
}

/// Every tensor of a file, in file order, with its metadata. No spec check.
pub fn load(path: impl AsRef<Path>) -> Result<(WeightStore, FileMetadata), WeightsError> {
    let path = path.as_ref();
    let map = map_file(path)?;
    let parsed = parse(path, &map)?;
    let store = read_tensors(path, &parsed, |_| true)?;
    Ok((store, parsed.metadata))
}

/// Exactly the tensors of `spec` (in spec order), or one error listing every problem.
pub fn load_strict(path: impl AsRef<Path>, spec: &ParamSpec) -> Result<(WeightStore, FileMetadata), WeightsError> {
    let path = path.as_ref();
    let map = map_file(path)?;
    let parsed = parse(path, &map)?;
    check_header(path, &parsed, spec)?;
    let store = read_tensors(path, &parsed, |_| true)?.reordered_like(spec);
    Ok((store, parsed.metadata))
}

/// Compare the header (names, shapes, dtypes) with the spec before copying any data.
fn check_header(path: &Path, p: &Parsed, spec: &ParamSpec) -> Result<(), WeightsError> {
    let mut m = super::error::SpecMismatch {
        context: path.display().to_string(),
        ..Default::default()
    };
    let by_name: HashMap<&str, &TensorInfo> = p.infos.iter().map(|(n, i)| (n.as_str(), i)).collect();
    for e in &spec.entries {
        match by_name.get(e.name.as_str()) {
            None => m.missing.push((e.name.clone(), e.shape.clone())),
            Some(i) if i.shape != e.shape => m.misshaped.push((e.name.clone(), e.shape.clone(), i.shape.clone())),
            Some(i) => match from_st_dtype(i.dtype) {
                Some(d) if d.is_float() => {}
                Some(d) => m.wrong_dtype.push((e.name.clone(), d)),
                None => {} // reported by read_tensors with the file's dtype name
            },
        }
    }
    for (n, i) in &p.infos {
        if spec.get(n).is_none() {
            m.unexpected.push((n.clone(), i.shape.clone()));
        }
    }
    if m.is_empty() {
        Ok(())
    } else {
        Err(WeightsError::Mismatch(m))
    }
}

/// Load a model's weights: the config comes from the file's metadata (or `expected` when the
/// file has none); when both exist they must be equal. Strict against that config's spec.
pub fn load_model(
    path: impl AsRef<Path>,
    expected: Option<&ModelConfig>,
) -> Result<(WeightStore, ModelConfig), WeightsError> {
    let path = path.as_ref();
    let meta = read_metadata(path)?;
    let cfg = match (config_from_metadata(&meta, path)?, expected) {
        (Some(found), Some(want)) if &found != want => {
            return Err(WeightsError::ConfigMismatch {
                path: path.into(),
                found: found.preset.clone(),
                expected: want.preset.clone(),
                detail: if found.preset == want.preset {
                    let diff = found.differences(want, "expected").join(", ");
                    format!(" (same name, different shapes: {diff})")
                } else {
                    String::new()
                },
            })
        }
        (Some(found), _) => found,
        (None, Some(want)) => want.clone(),
        (None, None) => {
            return Err(WeightsError::Metadata {
                path: path.into(),
                detail: format!("no `{META_CONFIG}` or `{META_PRESET}` entry, so this is not an fdm model file (fdm train and weights-tools/convert_pth.py write one)"),
            })
        }
    };
    let (store, _) = load_strict(path, &ParamSpec::inference(&cfg))?;
    Ok((store, cfg))
}

/// A tensor's raw little-endian bytes: borrowed for a dense CPU tensor, copied otherwise.
fn tensor_bytes(t: &Tensor) -> Result<Cow<'_, [u8]>, WeightsError> {
    if t.is_dense() {
        if let Storage::Cpu(s) = t.storage() {
            return Ok(Cow::Borrowed(match s {
                CpuStorage::F32(v) => bytemuck::cast_slice(v),
                CpuStorage::F16(v) => bytemuck::cast_slice(v),
                CpuStorage::BF16(v) => bytemuck::cast_slice(v),
                CpuStorage::U32(v) => bytemuck::cast_slice(v),
            }));
        }
    }
    Ok(Cow::Owned(match t.to_cpu_storage()? {
        CpuStorage::F32(v) => bytemuck::cast_slice(&v).to_vec(),
        CpuStorage::F16(v) => bytemuck::cast_slice(&v).to_vec(),
        CpuStorage::BF16(v) => bytemuck::cast_slice(&v).to_vec(),
        CpuStorage::U32(v) => bytemuck::cast_slice(&v).to_vec(),
    }))
}

/// Header bytes (JSON padded with spaces to a multiple of 8) for tensors in `order`.
fn header_bytes(
    path: &Path,
    store: &WeightStore,
    order: &[usize],
    metadata: &FileMetadata,
) -> Result<Vec<u8>, WeightsError> {
    let entries: Vec<(&str, &Tensor)> = store.iter().collect();
    let mut offset = 0;
    let mut infos = Vec::with_capacity(order.len());
    for &i in order {
        let (name, t) = entries[i];
        let n = t.numel() * t.dtype().size_in_bytes();
        infos.push((
            name.to_string(),
            TensorInfo {
                dtype: to_st_dtype(t.dtype()),
                shape: t.shape().to_vec(),
                data_offsets: (offset, offset + n),
            },
        ));
        offset += n;
    }
    let meta_map: HashMap<String, String> = metadata.clone().into_iter().collect();
    let header = Metadata::new(Some(meta_map), infos).map_err(|e| WeightsError::Corrupt {
        path: path.into(),
        detail: e.to_string(),
    })?;
    // Through `serde_json::Value`, whose maps are sorted by key: the crate's metadata map is a
    // HashMap, so serialising it directly would order the keys differently on every run and the
    // same weights would not give the same file bytes.
    let json_err = |e: serde_json::Error| WeightsError::Metadata {
        path: path.into(),
        detail: e.to_string(),
    };
    let sorted = serde_json::to_value(&header).map_err(json_err)?;
    let mut bytes = serde_json::to_string(&sorted).map_err(json_err)?.into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    Ok(bytes)
}

/// Write every tensor of `store` with `metadata`, atomically (module docs).
pub fn save(path: impl AsRef<Path>, store: &WeightStore, metadata: &FileMetadata) -> Result<(), WeightsError> {
    let path = path.as_ref();
    // 4-byte dtypes first, then 2-byte ones, each in store order: every tensor stays aligned.
    let sizes: Vec<usize> = store.iter().map(|(_, t)| t.dtype().size_in_bytes()).collect();
    let mut order: Vec<usize> = (0..store.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    let header = header_bytes(path, store, &order, metadata)?;
    let entries: Vec<&Tensor> = store.iter().map(|(_, t)| t).collect();

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| WeightsError::Io {
        path: path.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let write = || -> Result<(), WeightsError> {
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io_err(&tmp))?;
        w.write_all(&header).map_err(io_err(&tmp))?;
        for &i in &order {
            w.write_all(&tensor_bytes(entries[i])?).map_err(io_err(&tmp))?;
        }
        w.flush().map_err(io_err(&tmp))?;
        drop(w);
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        // Make the rename itself durable (best effort: not every platform can open a directory).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Save a model's weights with its config in the metadata, after checking the store against the
/// config's spec (an incomplete model is never written). `extra` adds metadata entries.
pub fn save_model(
    path: impl AsRef<Path>,
    store: &WeightStore,
    cfg: &ModelConfig,
    extra: &FileMetadata,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let spec = ParamSpec::inference(cfg);
    store
        .check_against(&spec, "weights to save")
        .map_err(WeightsError::Mismatch)?;
    let mut meta = model_metadata(cfg);
    meta.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    save(path, &store.reordered_like(&spec), &meta)
}
