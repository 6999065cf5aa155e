//! `fdm reproduce table1|table2|table3` (Table 4: `reproduce_table4.rs`): the paper's protocol for Table 1 (FID and LPIPS of PUT
//! and PUT + FDM with small (hole ratio 0.2-0.4) and large (0.4-0.6) masks), Table 2 (computational overhead of
//! FDM: parameters, inference time and MACs of PUT vs FDM, MACs counted by the engine while it
//! runs) and Table 3 (L2 distance between generated and ideal features per mask-ratio bucket), on
//! the weights, photos and masks given, printed beside the paper's numbers and written as
//! Markdown and JSON. Without `--masks`, masks are drawn per bucket by the seeded generator
//! (`data::masks::bucketed_mask`), and the report says so.

use crate::autograd::Tape;
use crate::data::masks::bucketed_mask;
use crate::model::codec::feature_rows;
use crate::model::inpainting::InpaintingModel;
use crate::pipeline::inpaint::{inpaint, InpaintOptions};
use crate::profile;
use crate::rng::Rng;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a reproduction ran on, stated in every output.
#[derive(Serialize, Clone, Debug)]
pub struct Provenance {
    pub weights: String,
    pub preset: String,
    pub data: String,
    pub images: usize,
    pub masks: String,
    pub device: String,
    pub seed: u64,
}

/// Write a table as `<dir>/<name>.md` and `<dir>/<name>.json` with `write_files_together`: both
/// are complete on disk before either replaces an older one, so an interrupted run does not leave
/// a new Markdown beside an old JSON. Returns both paths.
pub fn write_table(dir: &Path, name: &str, markdown: &str, table: &impl Serialize) -> Result<(PathBuf, PathBuf)> {
    let (md, json) = (dir.join(format!("{name}.md")), dir.join(format!("{name}.json")));
    let text = serde_json::to_string_pretty(table)?;
    crate::io::atomic::write_files_together(&[(&md, markdown.as_bytes()), (&json, text.as_bytes())])?;
    Ok((md, json))
}

/// The smallest test split a column of the paper scores (Places2: 800 images; Paris StreetView:
/// 1,000): a run on fewer photos is a reduced run, not comparable to the paper's values.
pub const PAPER_TEST_IMAGES: usize = 800;

/// How many photo names a Markdown report lists before "... and N more" (the JSON lists all).
const MARKDOWN_NAME_LIMIT: usize = 8;

/// What a table was computed on beyond the provenance: whether the run is reduced (and why) and
/// the photo files used. Flattened into every table's JSON and stated in its Markdown, so the
/// written files say it, not only the terminal.
#[derive(Serialize, Clone, Debug)]
pub struct RunScope {
    pub reduced_run: bool,
    /// Why the run is reduced; None when it is not.
    pub reduced_run_reason: Option<String>,
    /// The photo files used, in the order scored (file names in the data folder).
    pub photo_files: Vec<String>,
}

impl RunScope {
    pub fn new(prov: &Provenance, photos: &[(String, Tensor)]) -> RunScope {
        let n = photos.len();
        let reduced = n < PAPER_TEST_IMAGES;
        RunScope {
            reduced_run: reduced,
            reduced_run_reason: reduced.then(|| {
                format!("{n} photo(s), fewer than the paper's test splits (800 Places2 / 1,000 Paris StreetView images per column): the values are not comparable to the paper's")
            }),
            photo_files: photo_file_names(Path::new(&prov.data), photos),
        }
    }
}

/// The file names of the photos, looked up by stem in their folder. `load_photos` keeps only
/// stems (the tables name outputs by them); when the folder cannot be listed again the stems
/// stand in, since the provenance must not fail a finished run.
fn photo_file_names(dir: &Path, photos: &[(String, Tensor)]) -> Vec<String> {
    let files: std::collections::HashMap<String, PathBuf> = crate::metrics::folders::list_images(dir, "photo").map(|v| v.into_iter().collect()).unwrap_or_default();
    photos
        .iter()
        .map(|(stem, _)| files.get(stem).and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| stem.clone()))
        .collect()
}

/// The scope in Markdown: the photo list (shortened past `MARKDOWN_NAME_LIMIT`) and, for a
/// reduced run, a statement of it.
pub fn scope_markdown(scope: &RunScope) -> String {
    let names = &scope.photo_files;
    let mut list = names.iter().take(MARKDOWN_NAME_LIMIT).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > MARKDOWN_NAME_LIMIT {
        list += &format!(", ... and {} more (all in the JSON)", names.len() - MARKDOWN_NAME_LIMIT);
    }
    let mut s = format!("Photos ({}): {list}.\n", names.len());
    if let Some(why) = &scope.reduced_run_reason {
        s += &format!("This is a reduced run: {why}.\n");
    }
    s
}

/// The tables average over the photos: with none, every mean would be 0 / 0.
fn need_photos(photos: &[(String, Tensor)], table: &str) -> Result<()> {
    if photos.is_empty() {
        bail!("{table} needs at least one photo (the photo folder gave none)");
    }
    Ok(())
}

/// Photos as 3 x S x S tensors: centre square crop, bilinear resize to S. `limit` is `-n`: 0 is
/// refused here, before any table runs, since every table would be empty (means of nothing); a
/// `limit` above the folder's count uses them all, with a note, and the tables record that count.
pub fn load_photos(dir: &Path, limit: usize, s: usize) -> Result<Vec<(String, Tensor)>> {
    if limit == 0 {
        bail!("-n 0: give at least one photo to reproduce on (-n 1 or more)");
    }
    let mut files = crate::metrics::folders::list_images(dir, "photo")?;
    if limit > files.len() {
        eprintln!("note: -n {limit} asks for more photos than {} holds: using its {} photo(s)", dir.display(), files.len());
    }
    files.truncate(limit);
    files
        .iter()
        .map(|(stem, p)| {
            let img = crate::io::image::load_image(p).with_context(|| format!("loading {}", p.display()))?;
            let (h, w) = (img.height, img.width);
            let side = h.min(w);
            let sq = img.tensor.narrow(1, (h - side) / 2, side)?.narrow(2, (w - side) / 2, side)?.contiguous()?;
            let t = if side == s { sq } else { crate::ops::resize::resize_bilinear(&sq.reshape(&[1, 3, side, side])?, (s, s))?.reshape(&[3, s, s])? };
            Ok((stem.clone(), t))
        })
        .collect()
}

/// Every mask file (white = hole) in `dir`, nearest-resized to S x S (with a note naming the
/// resized files), in name order.
/// The PNG masks of `dir` (sorted by name) at `s` x `s`, and their file names.
pub fn load_photos_masks(dir: &Path, s: usize) -> Result<(Vec<Tensor>, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no PNG masks in {}", dir.display());
    }
    let mut resized = Vec::new();
    let masks = files
        .iter()
        .map(|p| {
            let m = crate::io::image::load_mask(p, false).with_context(|| format!("loading {}", p.display()))?;
            let (h, w) = (m.shape()[1], m.shape()[2]);
            if (h, w) == (s, s) {
                return Ok(m);
            }
            resized.push(format!("{} ({w}x{h})", p.file_name().unwrap_or_default().to_string_lossy()));
            Ok(crate::ops::resize::resize_nearest(&m.reshape(&[1, 1, h, w])?, (s, s))?.reshape(&[1, s, s])?)
        })
        .collect::<Result<Vec<_>>>()?;
    // Every table takes its masks from here, so this one note covers them all: a resized mask's
    // hole ratio (its bucket) is the resized one's.
    if !resized.is_empty() {
        eprintln!("note: {} mask file(s) in {} are not {s}x{s} and were resized to it (nearest neighbour): {}", resized.len(), dir.display(), resized.join(", "));
    }
    let names = files.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    Ok((masks, names))
}

/// The provenance's description of mask files: the folder, the rule, and the first file names
/// (all of them up to the Markdown's limit).
pub fn masks_description(dir: &Path, names: &[String]) -> String {
    let shown = names.iter().take(MARKDOWN_NAME_LIMIT).cloned().collect::<Vec<_>>().join(", ");
    let more = names.len().saturating_sub(MARKDOWN_NAME_LIMIT);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{} files from `{}` chosen by hole ratio: {shown}{more}", names.len(), dir.display())
}

/// The `i`-th (cycling) mask whose hole ratio lies in the bucket.
pub fn file_mask_in_bucket(masks: &[Tensor], (lo, hi): (f32, f32), i: usize) -> Result<Tensor> {
    let mut fitting = Vec::new();
    for m in masks {
        let r = crate::io::image::hole_fraction(m)?;
        if r >= lo && r < hi {
            fitting.push(m);
        }
    }
    if fitting.is_empty() {
        bail!("no mask file with hole ratio in [{lo}, {hi})");
    }
    Ok(fitting[i % fitting.len()].clone())
}

/// A seeded mask ([1, S, S], 1 = visible) whose hole ratio lies in the bucket.
pub fn bucket_mask(rng: &mut Rng, s: usize, (lo, hi): (f32, f32)) -> Result<Tensor> {
    let m = bucketed_mask(rng, s, lo, hi, 500).with_context(|| format!("no mask with hole ratio in [{lo}, {hi}) after 500 draws"))?;
    Ok(Tensor::from_vec(m, &[1, s, s])?)
}

#[derive(Serialize, Debug)]
pub struct Table2 {
    pub provenance: Provenance,
    #[serde(flatten)]
    pub scope: RunScope,
    pub params_put: usize,
    pub params_fdm: usize,
    pub time_put_s: f64,
    pub time_fdm_s: f64,
    pub macs_put: u64,
    pub macs_fdm: u64,
    pub mean_passes: f64,
}

fn macs_of(events: &[profile::Event], stage: Option<&str>) -> u64 {
    events.iter().filter(|e| e.op != "(stage)" && stage.is_none_or(|s| e.stage == s)).map(|e| e.macs).sum()
}

fn secs_of(events: &[profile::Event], stage: Option<&str>) -> f64 {
    events.iter().filter(|e| e.op == "(stage)" && stage.is_none_or(|s| e.stage == s)).map(|e| e.dur_us).sum::<f64>() / 1e6
}

/// Table 2: per image, one PUT run (no FDM) and one PUT + FDM run with the same seed; times and
/// MACs are means over images.
pub fn table2(model: &InpaintingModel, photos: &[(String, Tensor)], masks: &[Tensor], prov: Provenance, on_image: &mut dyn FnMut(usize)) -> Result<Table2> {
    need_photos(photos, "table2")?;
    let (mut t_put, mut t_fdm, mut m_put, mut m_fdm, mut passes) = (0.0, 0.0, 0u64, 0u64, 0usize);
    for (i, ((_, img), mask)) in photos.iter().zip(masks).enumerate() {
        let opts = InpaintOptions { seed: prov.seed + i as u64, ..Default::default() };
        profile::start_for(&model.device());
        let put = inpaint(model, img, mask, &InpaintOptions { use_fdm: false, ..opts.clone() }, None, &mut |_, _| {});
        let ev_put = profile::finish();
        passes += put?.passes;
        profile::start_for(&model.device());
        let ours = inpaint(model, img, mask, &opts, None, &mut |_, _| {});
        let ev_fdm = profile::finish();
        ours?;
        t_put += secs_of(&ev_put, None);
        m_put += macs_of(&ev_put, None);
        t_fdm += secs_of(&ev_fdm, Some("fdm"));
        m_fdm += macs_of(&ev_fdm, Some("fdm"));
        on_image(i + 1);
    }
    let n = photos.len().max(1) as f64;
    let s = &model.store;
    let params_fdm = s.numel_with_prefix("fdm.");
    let buffers = s.numel_with_prefix("content_codec.quantize.cluster_size") + s.numel_with_prefix("content_codec.quantize.embedding_avg");
    Ok(Table2 {
        scope: RunScope::new(&prov, photos),
        provenance: prov,
        params_put: s.numel() - params_fdm - buffers - 1, // learnable + codebook, no `temp`
        params_fdm,
        time_put_s: t_put / n,
        time_fdm_s: t_fdm / n,
        macs_put: (m_put as f64 / n) as u64,
        macs_fdm: (m_fdm as f64 / n) as u64,
        mean_passes: passes as f64 / n,
    })
}

/// MACs in the paper's unit (T) when large, else in G so small counts stay visible.
fn tera(m: u64) -> String {
    if m >= 1_000_000_000_000 {
        format!("{:.3}T", m as f64 / 1e12)
    } else {
        format!("{:.3}G", m as f64 / 1e9)
    }
}

pub fn table2_markdown(t: &Table2) -> String {
    let p = &t.provenance;
    let mut s = String::from("## Table 2: computational overhead of FDM (mask ratio 0.2-0.3)\n\n");
    s += "| method | params | inference time | MACs (paper: \"FLOPs\") | paper: params | paper: time | paper: MACs |\n|---|---:|---:|---:|---:|---:|---:|\n";
    s += &format!("| PUT | {:.2}M | {:.3}s | {} | 119M | 25.236s | 59.331T |\n", t.params_put as f64 / 1e6, t.time_put_s, tera(t.macs_put));
    s += &format!("| FDM | {:.2}M | {:.4}s | {} | 3M | 0.004s | 0.004T |\n", t.params_fdm as f64 / 1e6, t.time_fdm_s, tera(t.macs_fdm));
    s += &format!(
        "| Ours (PUT + FDM) | {:.2}M | {:.3}s | {} | 122M | 25.240s | 59.335T |\n\n",
        (t.params_put + t.params_fdm) as f64 / 1e6,
        t.time_put_s + t.time_fdm_s,
        tera(t.macs_put + t.macs_fdm)
    );
    s += &format!(
        "FDM share: {:.4}% of the time, {:.4}% of the MACs (paper: ~0.02% and ~0.01%). Mean transformer passes per image: {:.1}.\n\n",
        100.0 * t.time_fdm_s / (t.time_put_s + t.time_fdm_s),
        100.0 * t.macs_fdm as f64 / (t.macs_put + t.macs_fdm) as f64,
        t.mean_passes
    );
    s += &provenance_markdown(p);
    s += &scope_markdown(&t.scope);
    s += "The training-time column of the paper is not measured by this command (see `fdm train`).\n";
    if p.device == "cpu" {
        s += "MACs are what the engine ran: on the CPU each pass computes the transformer's last block (and the logits) only at the positions still unknown, the only ones the sampler reads, so PUT counts fewer MACs than full passes would.\n";
    }
    s
}

pub fn provenance_markdown(p: &Provenance) -> String {
    format!(
        "Run on: weights `{}` ({} preset), {} photo(s) from `{}`, masks: {}, device {}, seed {}.\n",
        p.weights, p.preset, p.images, p.data, p.masks, p.device, p.seed
    )
}

#[derive(Serialize, Debug)]
pub struct Table3Row {
    pub bucket: (f32, f32),
    pub put: f64,
    pub ours: f64,
}

#[derive(Serialize, Debug)]
pub struct Table3 {
    pub provenance: Provenance,
    #[serde(flatten)]
    pub scope: RunScope,
    pub rows: Vec<Table3Row>,
}

/// Mean over masked patches of the L2 distance between a feature map and the ideal one.
fn mean_patch_l2(a: &Tensor, ideal: &Tensor, visible: &[bool]) -> Result<(f64, usize)> {
    let (ra, ri) = (feature_rows(a)?.to_vec_f32()?, feature_rows(ideal)?.to_vec_f32()?);
    let c = a.shape()[1];
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (l, vis) in visible.iter().enumerate() {
        if !vis {
            let d2: f64 = (0..c).map(|k| (ra[l * c + k] as f64 - ri[l * c + k] as f64).powi(2)).sum();
            sum += d2.sqrt();
            n += 1;
        }
    }
    Ok((sum, n))
}

/// Table 3: per bucket and photo, one sampling run; the same sampled features are compared to
/// the ideal features (encoder features of the original photo) before FDM (PUT) and after.
pub fn table3(model: &InpaintingModel, photos: &[(String, Tensor)], buckets: &[(f32, f32)], masks_for: &mut dyn FnMut(usize, usize) -> Result<Tensor>, prov: Provenance) -> Result<Table3> {
    need_photos(photos, "table3")?;
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let mut rows = Vec::new();
    for (b, &bucket) in buckets.iter().enumerate() {
        let (mut put, mut ours, mut n) = (0.0, 0.0, 0usize);
        for (i, (_, img)) in photos.iter().enumerate() {
            let mask = masks_for(b, i)?;
            let out = inpaint(model, img, &mask, &InpaintOptions { seed: prov.seed + i as u64, ..Default::default() }, None, &mut |_, _| {})?;
            let s = model.cfg.image_size;
            let ideal = model.codec.get_features(&tape, &params, &model.store, &img.reshape(&[1, 3, s, s])?, None)?.feature;
            let (p, k) = mean_patch_l2(&out.generated, ideal.value(), &out.visible)?;
            let (o, _) = mean_patch_l2(out.dequantized.as_ref().expect("FDM ran"), ideal.value(), &out.visible)?;
            put += p;
            ours += o;
            n += k;
        }
        let n = n.max(1) as f64;
        rows.push(Table3Row { bucket, put: put / n, ours: ours / n });
    }
    Ok(Table3 { scope: RunScope::new(&prov, photos), provenance: prov, rows })
}

pub fn table3_markdown(t: &Table3) -> String {
    const PAPER: [(f64, f64); 4] = [(3.685, 2.873), (3.675, 2.876), (3.678, 2.893), (3.669, 2.901)];
    let mut s = String::from("## Table 3: L2 distance between generated and ideal features (masked patches)\n\n");
    s += "| mask ratio | PUT | Ours (PUT + FDM) | difference | paper: PUT | paper: Ours | paper: difference |\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (i, r) in t.rows.iter().enumerate() {
        let (pp, po) = PAPER.get(i).copied().unwrap_or((f64::NAN, f64::NAN));
        s += &format!("| {:.1}-{:.1} | {:.3} | {:.3} | {:.3} | {pp:.3} | {po:.3} | {:.3} |\n", r.bucket.0, r.bucket.1, r.put, r.ours, r.put - r.ours, pp - po);
    }
    s += "\n";
    s += &provenance_markdown(&t.provenance);
    s += &scope_markdown(&t.scope);
    s += "Distances depend on the codec's feature scale: compare the difference's sign and relative size across presets, not the raw values.\n";
    s
}

/// One method's Table 1 row: FID and LPIPS with small (0.2-0.4) and large (0.4-0.6) holes.
#[derive(Serialize, Debug, Clone)]
pub struct Table1Row {
    pub method: String,
    /// None when no Inception weights were given or a set has fewer than 2 images.
    pub fid_small: Option<f64>,
    pub fid_large: Option<f64>,
    pub lpips_small: f64,
    pub lpips_large: f64,
}

#[derive(Serialize, Debug)]
pub struct Table1 {
    pub provenance: Provenance,
    #[serde(flatten)]
    pub scope: RunScope,
    pub rows: Vec<Table1Row>,
    pub lpips_net: String,
    pub inception_weights: Option<String>,
    pub fid_resize: Option<String>,
    /// Why the FID cells are empty; None when FID was computed.
    pub fid_missing: Option<String>,
}

/// Why Table 1 (and 4) leave FID out, or None when it can be computed: it needs the Inception
/// model and at least 2 images per set (a covariance of one feature vector is undefined).
pub fn fid_missing_reason(have_model: bool, photos: usize) -> Option<String> {
    if !have_model {
        Some("no Inception weights found (pass --inception-weights or see weights-tools/convert_inception.py)".into())
    } else if photos < 2 {
        Some(format!("FID needs at least 2 photos per set, this run has {photos}"))
    } else {
        None
    }
}

/// The mask-ratio buckets of Table 1: small and large holes.
pub const TABLE1_BUCKETS: [(f32, f32); 2] = [(0.2, 0.4), (0.4, 0.6)];

/// Table 1: per bucket and photo, one PUT run (no FDM) and one PUT + FDM run with the same seed
/// and mask; LPIPS (spatial mean, PUT's setting) of each raw decoder output against the photo,
/// averaged; FID of the photos against the outputs (one sample per input, as the paper) when an
/// Inception model (with the name of its weights file, for the report) is given. Outputs are scored as `inference.py` saves them (raw, no
/// compositing).
pub fn table1(
    model: &InpaintingModel,
    photos: &[(String, Tensor)],
    masks_for: &mut dyn FnMut(usize, usize) -> Result<Tensor>,
    lpips: &crate::metrics::Lpips,
    fid: Option<(&crate::metrics::fid::FidModel, &str)>,
    prov: Provenance,
    on_run: &mut dyn FnMut(usize),
) -> Result<Table1> {
    use crate::metrics::fid as fidm;
    need_photos(photos, "table1")?;
    let real_feats = match fid {
        Some((m, _)) => Some(m.features(&photos.iter().map(|(_, t)| t).collect::<Vec<_>>())?),
        None => None,
    };
    let mut cells = Vec::new(); // [bucket][method] -> (fid, lpips)
    let mut runs = 0;
    for b in 0..TABLE1_BUCKETS.len() {
        let masks = (0..photos.len()).map(|i| masks_for(b, i)).collect::<Result<Vec<_>>>()?;
        let mut per_method = Vec::new();
        for use_fdm in [false, true] {
            let (mut outs, mut lp) = (Vec::new(), 0.0);
            for (i, ((_, img), mask)) in photos.iter().zip(&masks).enumerate() {
                let opts = InpaintOptions { seed: prov.seed + i as u64, use_fdm, ..Default::default() };
                let out = inpaint(model, img, mask, &opts, None, &mut |_, _| {})?;
                let raw = out.raw.into_iter().next().context("inpaint returned no sample")?;
                lp += lpips.distance_images(&raw, img)?;
                outs.push(raw);
                runs += 1;
                on_run(runs);
            }
            let fid_value = match (fid, &real_feats) {
                (Some((m, _)), Some(real)) if photos.len() >= 2 => {
                    Some(fidm::fid(real, &m.features(&outs.iter().collect::<Vec<_>>())?)?)
                }
                _ => None,
            };
            per_method.push((fid_value, lp / photos.len().max(1) as f64));
        }
        cells.push(per_method);
    }
    let rows = ["PUT", "Ours (PUT + FDM)"]
        .iter()
        .enumerate()
        .map(|(k, name)| Table1Row {
            method: name.to_string(),
            fid_small: cells[0][k].0,
            fid_large: cells[1][k].0,
            lpips_small: cells[0][k].1,
            lpips_large: cells[1][k].1,
        })
        .collect();
    Ok(Table1 {
        scope: RunScope::new(&prov, photos),
        provenance: prov,
        rows,
        lpips_net: lpips.net().name().to_string(),
        inception_weights: fid.map(|(_, w)| w.to_string()),
        fid_resize: fid.map(|(m, _)| m.resize().name().to_string()),
        fid_missing: fid_missing_reason(fid.is_some(), photos.len()),
    })
}

pub fn table1_markdown(t: &Table1) -> String {
    // Paris Street View columns of the paper's Table 1 (FID small, large; LPIPS small, large).
    const PAPER: [(&str, [f64; 4]); 2] = [("PUT", [12.58, 20.52, 0.135, 0.240]), ("Ours (PUT + FDM)", [11.63, 18.66, 0.131, 0.234])];
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let mut s = String::from("## Table 1: FID and LPIPS, small (0.2-0.4) and large (0.4-0.6) masks\n\n");
    s += "| method | FID small | FID large | LPIPS small | LPIPS large | paper (Paris): FID small | FID large | LPIPS small | LPIPS large |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (r, (_, p)) in t.rows.iter().zip(PAPER) {
        s += &format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.3} | {:.3} |\n",
            r.method, opt(r.fid_small), opt(r.fid_large), r.lpips_small, r.lpips_large, p[0], p[1], p[2], p[3]
        );
    }
    s += "\n";
    s += &provenance_markdown(&t.provenance);
    s += &scope_markdown(&t.scope);
    s += &format!("LPIPS: {} backbone, spatial mean, raw decoder output vs the photo. ", t.lpips_net);
    s += &match &t.fid_missing {
        Some(why) => format!("FID: not computed: {why}.\n"),
        None => format!(
            "FID: Inception `{}` ({} resize), photos vs outputs, one sample per photo{}.\n",
            t.inception_weights.as_deref().unwrap_or_default(),
            t.fid_resize.as_deref().unwrap_or_default(),
            if t.scope.reduced_run { format!("; from {} image(s) per set it is dominated by the small-sample bias", t.provenance.images) } else { String::new() }
        ),
    };
    s
}
