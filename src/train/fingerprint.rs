//! Which photos a run trains on, recorded in its checkpoints (`state.json`, field `data`).
//!
//! The data order of a checkpoint is a position in seeded permutations of the dataset's indices
//! (`data`): it means something only for the same sorted list of files. A data folder of the
//! same size with other photos resumes without any error from the arithmetic, and the resumed
//! run then trains on another sequence than an uninterrupted one would. The fingerprint (the
//! number of photos and an FNV-1a 64 hash of their sorted relative paths and file sizes) lets
//! `--resume` notice: a different fingerprint is an error unless `--allow-data-change`, and a
//! checkpoint written before fingerprints existed resumes with a note that nothing was checked.
//!
//! Relative paths keep the fingerprint of a folder that moved; sizes catch a file replaced
//! under the same name. The contents are not read again: the scan has already read every file
//! once, and a hash of the bytes would double the start-up of a large folder.

use super::data::Dataset;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The identity of a training file list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Number of photos the run indexes.
    pub files: u64,
    /// FNV-1a 64 of the sorted relative paths and sizes (`hash_files`), 16 hex digits.
    pub hash: String,
}

/// FNV-1a, 64 bits: a simple, stable hash (its constants are the published ones), so the
/// fingerprint of the same files is the same on every build and platform.
pub struct Fnv1a64(u64);

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Self {
        Fnv1a64(Self::OFFSET)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(Self::PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

/// The fingerprint of (relative path, size in bytes) pairs in the order given (sorted by path).
/// Paths are hashed with `/` between components, so the same folder gives the same value on
/// every platform; a 0 byte ends each path and the size follows as 8 little-endian bytes.
pub fn hash_files<'a>(files: impl IntoIterator<Item = (&'a Path, u64)>) -> DataFingerprint {
    let (mut h, mut n) = (Fnv1a64::new(), 0u64);
    for (path, size) in files {
        let parts: Vec<String> = path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        h.write(parts.join("/").as_bytes());
        h.write(&[0]);
        h.write(&size.to_le_bytes());
        n += 1;
    }
    DataFingerprint { files: n, hash: format!("{:016x}", h.finish()) }
}

/// The fingerprint of the files a scan found (their paths relative to the data folder).
pub fn of_dataset(dataset: &Dataset) -> Result<DataFingerprint> {
    let mut entries = Vec::with_capacity(dataset.files.len());
    for path in &dataset.files {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?
            .len();
        entries.push((path.strip_prefix(&dataset.root).unwrap_or(path), size));
    }
    Ok(hash_files(entries))
}

/// `--resume` on `data`: the checkpoint's fingerprint (`had`, None for a checkpoint from before
/// fingerprints) against the folder's now. Ok with an optional note to print; an error naming
/// both counts and the way out when they differ and `allow_change` is off.
pub fn check_resume(
    had: Option<&DataFingerprint>,
    now: &DataFingerprint,
    data: &Path,
    allow_change: bool,
) -> Result<Option<String>> {
    let Some(had) = had else {
        return Ok(Some(format!(
            "note: the checkpoint records no data fingerprint (it predates them): could not check that --data {} holds the photos it trained on",
            data.display()
        )));
    };
    if had == now {
        return Ok(None);
    }
    let what = format!(
        "the checkpoint's run trained on {} photos (data fingerprint {}), --data {} holds {} (fingerprint {})",
        had.files,
        had.hash,
        data.display(),
        now.files,
        now.hash
    );
    if allow_change {
        return Ok(Some(format!(
            "note: --allow-data-change: {what}; continuing, so this run will not match an uninterrupted one"
        )));
    }
    Err(Error::msg(format!(
        "--resume: {what}: the data order would index other files, so the resumed run would not match an uninterrupted one; pass --allow-data-change to continue anyway"
    )))
}
