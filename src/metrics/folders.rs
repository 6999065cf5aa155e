//! Matching the files of an evaluation by name (spec §7.1 output layout).
//!
//! * `--real DIR`: ground-truth images `<stem>.<ext>` (`input/` of the official inference);
//! * `--fake DIR`: generated images, either `<stem>.<ext>` (one sample) or `<stem>_<k>.<ext>`
//!   with `k` a decimal sample index (`inpainted_image/<stem>_<l><ext>`); all samples of one
//!   `<stem>` form that input's group, ordered by `k`;
//! * `--masks DIR` (optional): `<stem>.<ext>` per real image, white = hole (spec §6.7).
//!
//! A fake whose stem equals a real stem exactly belongs to it (sample index none) even when the
//! stem also ends in `_<digits>`; otherwise one trailing `_<digits>` is stripped and the rest
//! must be a real stem. One input's samples use one naming: a `<stem>.<ext>` beside
//! `<stem>_<k>.<ext>` files is an error (a stray copy would otherwise count as one more sample).
//! Image files are `.png`, `.jpg`, `.jpeg` (any case); other files are
//! ignored, and so is a fake `<stem>_sheet.<ext>` of a real `<stem>`: the contact sheet that
//! `fdm inpaint` writes beside its samples, so that its output folder scores as it is. Every fake must match a real image and every real image needs at least one fake
//! (and a mask when masks are given); otherwise one error lists the offending names.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The end of the stem of `fdm inpaint`'s contact sheet, `<stem>_sheet.png` (not a sample); the
/// inpaint command names its sheets with it, so the two cannot drift apart.
pub const SHEET_SUFFIX: &str = "_sheet";
/// How many names an error lists before "... and N more".
const LIST_LIMIT: usize = 8;

/// One generated sample of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The `k` of `<stem>_<k>`, or None for a fake named exactly `<stem>`.
    pub index: Option<u64>,
    pub path: PathBuf,
}

/// One evaluation input: its ground truth, samples and optional mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedInput {
    pub stem: String,
    pub real: PathBuf,
    pub samples: Vec<Sample>,
    pub mask: Option<PathBuf>,
}

/// `(stem, path)` of the image files directly in `dir`, sorted by stem; an error when the
/// folder is missing, unreadable, empty of images, or holds two images with one stem.
pub fn list_images(dir: &Path, role: &str) -> Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::msg(format!("{role} folder {}: {e}", dir.display())))?;
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::msg(format!("{role} folder {}: {e}", dir.display())))?
            .path();
        if !path.is_file() || !crate::io::image::has_readable_extension(&path) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| Error::msg(format!("{}: file name is not UTF-8", path.display())))?;
        if let Some(prev) = by_stem.insert(stem.to_string(), path.clone()) {
            return Err(Error::msg(format!(
                "{role} folder: two images share the stem `{stem}`: {} and {}",
                prev.display(),
                path.display()
            )));
        }
    }
    if by_stem.is_empty() {
        return Err(Error::msg(format!(
            "{role} folder {} holds no .png/.jpg/.jpeg images",
            dir.display()
        )));
    }
    Ok(by_stem.into_iter().collect())
}

/// `("abc", 3)` for `"abc_3"`; None when the stem does not end in `_<digits>`.
pub fn split_sample_index(stem: &str) -> Option<(&str, u64)> {
    let (base, k) = stem.rsplit_once('_')?;
    if base.is_empty() || k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, k.parse().ok()?))
}

fn list_names(names: &[String]) -> String {
    let mut s = names.iter().take(LIST_LIMIT).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > LIST_LIMIT {
        s.push_str(&format!(", ... and {} more", names.len() - LIST_LIMIT));
    }
    s
}

/// Group the fakes under their real images (module docs); masks matched by stem.
pub fn match_folders(real_dir: &Path, fake_dir: &Path, mask_dir: Option<&Path>) -> Result<Vec<MatchedInput>> {
    let reals = list_images(real_dir, "real")?;
    let fakes = list_images(fake_dir, "fake")?;
    let masks = mask_dir.map(|d| list_images(d, "mask")).transpose()?;
    let mut inputs: BTreeMap<String, MatchedInput> = reals
        .into_iter()
        .map(|(stem, real)| {
            (
                stem.clone(),
                MatchedInput {
                    stem,
                    real,
                    samples: Vec::new(),
                    mask: None,
                },
            )
        })
        .collect();

    let mut unmatched = Vec::new();
    for (stem, path) in fakes {
        if let Some(input) = inputs.get_mut(&stem) {
            input.samples.push(Sample { index: None, path });
            continue;
        }
        // `fdm inpaint`'s contact sheet, not a sample (module docs).
        if stem.strip_suffix(SHEET_SUFFIX).is_some_and(|base| inputs.contains_key(base)) {
            continue;
        }
        match split_sample_index(&stem).and_then(|(base, k)| inputs.get_mut(base).map(|i| (i, k))) {
            Some((input, k)) => input.samples.push(Sample { index: Some(k), path }),
            None => unmatched.push(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or(stem),
            ),
        }
    }
    if !unmatched.is_empty() {
        return Err(Error::msg(format!(
            "{} fake image(s) match no real image by name (expected <stem>.<ext> or <stem>_<k>.<ext> for a real <stem>): {}",
            unmatched.len(),
            list_names(&unmatched)
        )));
    }
    let mixed: Vec<String> = inputs
        .values()
        .filter(|i| i.samples.len() > 1 && i.samples.iter().any(|s| s.index.is_none()))
        .map(|i| i.stem.clone())
        .collect();
    if !mixed.is_empty() {
        return Err(Error::msg(format!(
            "{} input(s) have both a fake named <stem>.<ext> and fakes named <stem>_<k>.<ext> in {} (keep one naming per input): {}",
            mixed.len(),
            fake_dir.display(),
            list_names(&mixed)
        )));
    }
    let without: Vec<String> = inputs
        .values()
        .filter(|i| i.samples.is_empty())
        .map(|i| i.stem.clone())
        .collect();
    if !without.is_empty() {
        return Err(Error::msg(format!(
            "{} real image(s) have no fake sample in {}: {}",
            without.len(),
            fake_dir.display(),
            list_names(&without)
        )));
    }
    if let Some(masks) = masks {
        let masks: BTreeMap<String, PathBuf> = masks.into_iter().collect();
        let mut missing = Vec::new();
        for input in inputs.values_mut() {
            match masks.get(&input.stem) {
                Some(m) => input.mask = Some(m.clone()),
                None => missing.push(input.stem.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::msg(format!(
                "{} real image(s) have no mask <stem>.png in the masks folder: {}",
                missing.len(),
                list_names(&missing)
            )));
        }
    }
    let mut out: Vec<MatchedInput> = inputs.into_values().collect();
    for input in &mut out {
        input.samples.sort_by_key(|s| s.index);
    }
    Ok(out)
}
