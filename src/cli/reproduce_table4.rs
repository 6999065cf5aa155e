//! `fdm reproduce table4`: the paper's Table 4 (FDM added to VQGAN for image generation, FID on
//! FFHQ / ADE20K / ImageNet) adapted to what this project has: our VQ codec, no generation
//! transformer. The adaptation is a token-only reconstruction, which isolates what FDM does
//! (dequantise codebook features) with no pixel known:
//! 1. encode the full, unmasked photo and take its nearest code at every patch in the
//!    **unmasked half** of the codebook (`get_features(image)` with no mask, spec §2.3/§2.7). This
//!    is the half the transformer samples from (its classes are codes 0..vocab) and the half FDM
//!    is trained to dequantise (Phase 2, spec §6.3: `f'_q` = codes 0..vocab at every position);
//!    the masked half is never decoded at inference;
//! 2. `f_q` = those codebook rows, `M` = 1 at every patch (every patch is generated; FDM's
//!    `qv = f (1 - M) + f_q M` is then exactly `f_q`);
//! 3. decode with no reference pixels (`Codec::decode_unguided`: pixel mask all hole):
//!    (a) "VQ codec" = decode(f_q), (b) "VQ codec + FDM" = decode(f_q + FDM(f_q, M));
//!    and, as the ceiling FDM aims at, (c) decode(f) of the continuous encoder features;
//! 4. score (a), (b) and (c) against the photos: LPIPS, PSNR, SSIM per image (means), and FID / KID of
//!    the photos vs the reconstructions when Inception weights are given.
//!
//! The paper's numbers are printed beside ours; they measure generation on other data sets and
//! are not comparable in value, only in the direction of the change.

use super::reproduce::{fid_missing_reason, provenance_markdown, scope_markdown, Provenance, RunScope};
use crate::autograd::Tape;
use crate::metrics::fid::{self as fidm, FidModel};
use crate::metrics::kid::{kid, Kid, DEFAULT_SUBSETS, DEFAULT_SUBSET_SIZE};
use crate::metrics::Lpips;
use crate::model::inpainting::InpaintingModel;
use crate::model::masks::denormalise;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The adaptation in one paragraph, stated in the Markdown and the JSON.
pub const TABLE4_ADAPTATION: &str = "The paper adds FDM to VQGAN for image generation (unconditional FFHQ, semantic ADE20K, \
class-conditional ImageNet) and reports FID. We have no VQGAN and no generation transformer, so Table 4 is adapted to a \
token-only reconstruction on our codec: each photo is encoded unmasked and every patch takes its nearest code in the \
unmasked half of the codebook (the half the transformer samples and FDM is trained on, spec 2.3 and 6.3); the codebook \
rows f_q are decoded with no reference pixels (the decoder's reference image fully masked), once as they are (VQ codec) \
and once after FDM with M = 1 at every patch (VQ codec + FDM: f_q + FDM(f_q, M)); the encoder's unquantised features, \
decoded the same way, give the ceiling FDM aims at. All are scored against the photos. \
This isolates what FDM adds to a VQ model whose features all come from tokens, as in generation, but it is not \
generation: no token is sampled.";

/// The rows of our table: (a), (b) and the ceiling (c) of the module docs.
pub const TABLE4_METHODS: [&str; 3] = ["VQ codec", "VQ codec + FDM", "encoder features, unquantised (ceiling)"];

/// The three decodings of one photo (module docs, step 3).
pub struct TokenReconstruction {
    /// The L tokens (row-major grid), all in the unmasked half.
    pub tokens: Vec<u32>,
    /// `f_q`: 1 x e_dim x h x w codebook rows of the tokens.
    pub quantized: Tensor,
    /// (a) decode(f_q), 3 x S x S in [0, 255].
    pub vq: Tensor,
    /// (b) decode(f_q + FDM(f_q, M = 1)), 3 x S x S in [0, 255].
    pub vq_fdm: Tensor,
    /// (c) decode(f) of the unquantised encoder features (FDM's training target), 3 x S x S.
    pub continuous: Tensor,
}

/// Steps 1-3 of the module docs for one photo (3 x S x S in [0, 255], S = the model's size).
pub fn token_reconstruction(model: &InpaintingModel, image: &Tensor) -> Result<TokenReconstruction> {
    let s = model.cfg.image_size;
    if image.shape() != [3, s, s] {
        bail!("table4: photo of shape {:?}, expected [3, {s}, {s}]", image.shape());
    }
    let device = model.device();
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let codec = &model.codec;
    let batch = image.reshape(&[1, 3, s, s])?.to_device(&device)?;
    // No mask: every patch is quantised in the unmasked half (spec §2.7 `get_features(image)`).
    let feats = codec.get_features(&tape, &params, &model.store, &batch, None)?;
    let fs = feats.feature.shape().to_vec();
    let quantized = codec.codebook_features(&model.store, &feats.tokens, 1, (fs[2], fs[3]))?;
    let fq = tape.constant(quantized.clone());
    let m = tape.constant(Tensor::full(1.0, &[1, 1, fs[2], fs[3]]).to_device(&device)?);
    let to_image = |out: &Tensor| -> Result<Tensor> { Ok(denormalise(out)?.reshape(&[3, s, s])?.to_device(&crate::Device::Cpu)?) };
    let vq = to_image(codec.decode_unguided(&tape, &params, &fq)?.value())?;
    // With M = 1 the background is multiplied by exactly 0: qv = f_q.
    let v = model.fdm.apply(&tape, &params, &fq, &fq, &m)?.v;
    let vq_fdm = to_image(codec.decode_unguided(&tape, &params, &v)?.value())?;
    let continuous = to_image(codec.decode_unguided(&tape, &params, &feats.feature)?.value())?;
    Ok(TokenReconstruction {
        tokens: feats.tokens,
        quantized: quantized.to_device(&crate::Device::Cpu)?,
        vq,
        vq_fdm,
        continuous,
    })
}

/// Per-image scores of one reconstruction against its photo.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub lpips: f64,
    pub psnr: f64,
    pub ssim: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct Table4Image {
    pub stem: String,
    pub vq: Scores,
    pub vq_fdm: Scores,
    pub continuous: Scores,
}

#[derive(Serialize, Debug, Clone)]
pub struct Table4Row {
    pub method: String,
    /// None without Inception weights or with fewer than 2 photos.
    pub fid: Option<f64>,
    pub kid: Option<Kid>,
    /// Means over the photos.
    pub lpips: f64,
    pub psnr: f64,
    pub ssim: f64,
}

#[derive(Serialize, Debug)]
pub struct Table4 {
    pub provenance: Provenance,
    #[serde(flatten)]
    pub scope: RunScope,
    pub adaptation: String,
    /// Which codebook half the tokens come from and the FDM mask used.
    pub codebook: String,
    pub rows: Vec<Table4Row>,
    pub images: Vec<Table4Image>,
    pub lpips_net: String,
    pub inception_weights: Option<String>,
    pub fid_resize: Option<String>,
    /// Why FID and KID are left out; None when they were computed.
    pub fid_missing: Option<String>,
}

fn scores(lpips: &Lpips, out: &Tensor, photo: &Tensor) -> Result<Scores> {
    Ok(Scores {
        lpips: lpips.distance_images(out, photo)?,
        psnr: crate::metrics::psnr(out, photo)?,
        ssim: crate::metrics::ssim(out, photo)?,
    })
}

fn mean_of(v: &[Scores]) -> Scores {
    let n = v.len().max(1) as f64;
    Scores {
        lpips: v.iter().map(|s| s.lpips).sum::<f64>() / n,
        psnr: v.iter().map(|s| s.psnr).sum::<f64>() / n,
        ssim: v.iter().map(|s| s.ssim).sum::<f64>() / n,
    }
}

/// Table 4 (adapted): `token_reconstruction` of every photo, scored. `on_image(i, stem, rec)` is
/// called after each photo (progress, saving the reconstructions). FID and KID of the photos vs
/// each method's reconstructions when an Inception model (with its weights' name) is given and
/// there are at least 2 photos; KID uses the seed of the provenance.
pub fn table4(
    model: &InpaintingModel,
    photos: &[(String, Tensor)],
    lpips: &Lpips,
    fid: Option<(&FidModel, &str)>,
    prov: Provenance,
    on_image: &mut dyn FnMut(usize, &str, &TokenReconstruction) -> Result<()>,
) -> Result<Table4> {
    if photos.is_empty() {
        bail!("table4 needs at least one photo (the photo folder gave none)");
    }
    let (mut outs, mut images) = ([Vec::new(), Vec::new(), Vec::new()], Vec::new());
    for (i, (stem, photo)) in photos.iter().enumerate() {
        let rec = token_reconstruction(model, photo).with_context(|| format!("table4: photo {stem}"))?;
        let (vq, vq_fdm, continuous) = (
            scores(lpips, &rec.vq, photo)?,
            scores(lpips, &rec.vq_fdm, photo)?,
            scores(lpips, &rec.continuous, photo)?,
        );
        images.push(Table4Image {
            stem: stem.clone(),
            vq,
            vq_fdm,
            continuous,
        });
        on_image(i, stem, &rec)?;
        for (set, out) in outs.iter_mut().zip([rec.vq, rec.vq_fdm, rec.continuous]) {
            set.push(out);
        }
    }
    let real = match fid {
        Some((m, _)) if photos.len() >= 2 => Some(m.features(&photos.iter().map(|(_, t)| t).collect::<Vec<_>>())?),
        _ => None,
    };
    let set_scores = |outs: &[Tensor]| -> Result<(Option<f64>, Option<Kid>)> {
        match (fid, &real) {
            (Some((m, _)), Some(real)) => {
                let fake = m.features(&outs.iter().collect::<Vec<_>>())?;
                Ok((
                    Some(fidm::fid(real, &fake)?),
                    Some(kid(real, &fake, DEFAULT_SUBSETS, DEFAULT_SUBSET_SIZE, prov.seed)?),
                ))
            }
            _ => Ok((None, None)),
        }
    };
    let mut rows = Vec::new();
    let pick: [fn(&Table4Image) -> Scores; 3] = [|i| i.vq, |i| i.vq_fdm, |i| i.continuous];
    for ((method, outs), pick) in TABLE4_METHODS.iter().zip(&outs).zip(pick) {
        let (fid_value, kid_value) = set_scores(outs)?;
        let per: Vec<Scores> = images.iter().map(pick).collect();
        let m = mean_of(&per);
        rows.push(Table4Row {
            method: method.to_string(),
            fid: fid_value,
            kid: kid_value,
            lpips: m.lpips,
            psnr: m.psnr,
            ssim: m.ssim,
        });
    }
    // The last code of the unmasked half, written inclusive as `fdm inspect` writes the halves.
    let last = model.cfg.codec.masked_embed_start - 1;
    Ok(Table4 {
        scope: RunScope::new(&prov, photos),
        fid_missing: fid_missing_reason(fid.is_some(), photos.len()),
        provenance: prov,
        adaptation: TABLE4_ADAPTATION.into(),
        codebook: format!("tokens: nearest code in the unmasked half (codes 0-{last}) at every patch; FDM mask M = 1 at every patch; decoder reference fully masked"),
        rows,
        images,
        lpips_net: lpips.net().name().to_string(),
        inception_weights: fid.map(|(_, w)| w.to_string()),
        fid_resize: fid.map(|(m, _)| m.resize().name().to_string()),
    })
}

/// Write `table4.md` and `table4.json` into `dir` (created if missing; the two together, as
/// `write_table`); returns both paths.
pub fn write_table4(t: &Table4, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    super::reproduce::write_table(dir, "table4", &table4_markdown(t), t)
}

pub fn table4_markdown(t: &Table4) -> String {
    // The paper's Table 4: FID of VQGAN and VQGAN + FDM (FFHQ, ADE20K, ImageNet).
    const PAPER: [[f64; 3]; 2] = [[17.03, 33.26, 14.65], [15.84, 31.32, 13.46]];
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let kid = |k: &Option<Kid>| k.as_ref().map(|k| format!("{:.4} ± {:.4}", k.mean, k.std)).unwrap_or_else(|| "-".into());
    let mut s = String::from("## Table 4 (adapted): VQ codec with and without FDM, token-only reconstruction\n\n");
    s += "| method | FID | KID | LPIPS | PSNR (dB) | SSIM | paper | paper: FID FFHQ | FID ADE20K | FID ImageNet |\n";
    s += "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n";
    for (i, r) in t.rows.iter().enumerate() {
        let paper = match (PAPER.get(i), ["VQGAN", "Ours (VQGAN + FDM)"].get(i)) {
            (Some(p), Some(name)) => format!("{name} | {:.2} | {:.2} | {:.2}", p[0], p[1], p[2]),
            _ => "- | - | - | -".to_string(),
        };
        s += &format!(
            "| {} | {} | {} | {:.4} | {:.3} | {:.4} | {paper} |\n",
            r.method,
            opt(r.fid),
            kid(&r.kid),
            r.lpips,
            r.psnr,
            r.ssim
        );
    }
    if let [a, b, c] = &t.rows[..] {
        s += &format!(
            "\nChange with FDM: LPIPS {:+.4}, PSNR {:+.3} dB, SSIM {:+.4}{} (paper: FID -1.19, -1.94, -1.19).\n",
            b.lpips - a.lpips,
            b.psnr - a.psnr,
            b.ssim - a.ssim,
            match (a.fid, b.fid) {
                (Some(x), Some(y)) => format!(", FID {:+.2}", y - x),
                _ => String::new(),
            }
        );
        s += &format!(
            "Room left by quantisation (ceiling minus VQ codec): LPIPS {:+.4}, PSNR {:+.3} dB, SSIM {:+.4}. The ceiling decodes the encoder's continuous features, which FDM is trained to recover.\n",
            c.lpips - a.lpips,
            c.psnr - a.psnr,
            c.ssim - a.ssim
        );
    }
    s += &format!("\n{}\n\n", t.adaptation);
    s += &format!("Codebook and masks: {}.\n", t.codebook);
    s += &provenance_markdown(&t.provenance);
    s += &format!(
        "LPIPS: {} backbone, spatial mean; PSNR and SSIM as `fdm eval`; means over the photos. ",
        t.lpips_net
    );
    s += &match &t.fid_missing {
        Some(why) => format!("FID / KID: not computed: {why}.\n"),
        None => format!(
            "FID / KID: Inception `{}` ({} resize), photos vs reconstructions.\n",
            t.inception_weights.as_deref().unwrap_or_default(),
            t.fid_resize.as_deref().unwrap_or_default()
        ),
    };
    s += &scope_markdown(&t.scope);
    if t.scope.reduced_run {
        s += "FID from so few images is dominated by the small-sample bias and is not comparable to the paper's values (full generated sets on other data sets); LPIPS, PSNR and SSIM are the per-image measures to read.\n";
    }
    s
}
