//! LPIPS v0.1 (Zhang et al. 2018; the `lpips` package) on the engine, with either backbone, and
//! the pluralistic diversity score (spec §7.4).
//!
//! For images `in0, in1 [N, 3, H, W]` in [-1, 1]:
//! 1. ScalingLayer: `(x - shift) / scale`, shift = [-.030, -.088, -.188], scale = [.458, .448, .450];
//! 2. backbone taps (`model::vgg`): VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, or
//!    AlexNet relu1..relu5 (both images go through the backbone as one batch of 2N);
//! 3. per tap k: unit-normalise over channels `f / (sqrt(sum_c f^2) + 1e-10)`, squared
//!    difference, 1x1 conv `lin{k}` (`[1, C_k, 1, 1]`, no bias) -> `[N, 1, h_k, w_k]`;
//! 4. `spatial = false` (the package default): mean over h, w, summed over k -> `[N]`;
//!    `spatial = true` (PUT's `cal_lpips.py`, spec §7.4): each map bilinearly upsampled to
//!    `H x W` (align_corners = False), summed over k, and the mean of that map reported. The two
//!    differ slightly when a tap's size does not divide the input size (AlexNet).
//!
//! Images from files are `[3, H, W]` in [0, 255]; `distance_images` maps them with `x/255*2 - 1`
//! (PUT: `ToTensor` then `(x - 0.5) / 0.5`) and uses the spatial mean, the paper's setting.
//! The whole computation is on a tape, so a training tape gets gradients for the images (the
//! weights are bound as constants).
//!
//! Weights: `assets/weights/{vgg16,alexnet}_lpips.safetensors` (weights-tools/convert_lpips.py;
//! keys `features.{i}.weight/bias`, `lin{k}.weight`; metadata `net`).
//!
//! Diversity: mean LPIPS over unordered pairs of distinct samples of the same input, averaged
//! over all pairs of all inputs. PUT draws `loops = 5` random distinct pairs per input (and
//! skips inputs with fewer than 3 samples); `DiversityPairs::Random` does the same draw with a
//! seeded generator (inputs need at least 2 samples here), `DiversityPairs::All` uses every pair.

use crate::autograd::{self as ag, Tape, Var};
use crate::error::{Error, Result};
use crate::io::WeightStore;
use crate::model::vgg::{Backbone, FeatureNet};
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::DType;
use std::path::{Path, PathBuf};

const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
const NORM_EPS: f32 = 1e-10;

/// Which LPIPS backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpipsNet {
    Vgg,
    Alex,
}

impl LpipsNet {
    pub fn backbone(self) -> Backbone {
        match self {
            LpipsNet::Vgg => Backbone::Vgg16,
            LpipsNet::Alex => Backbone::AlexNet,
        }
    }
    /// The name of the weights file (`assets/weights/<file>`).
    pub fn weights_file(self) -> &'static str {
        match self {
            LpipsNet::Vgg => "vgg16_lpips.safetensors",
            LpipsNet::Alex => "alexnet_lpips.safetensors",
        }
    }
    /// The layers LPIPS taps, shallow to deep.
    pub fn taps(self) -> [&'static str; 5] {
        match self {
            LpipsNet::Vgg => ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"],
            LpipsNet::Alex => ["relu1", "relu2", "relu3", "relu4", "relu5"],
        }
    }
    /// `vgg` / `vgg16` / `alex` / `alexnet`.
    pub fn parse(s: &str) -> Result<LpipsNet> {
        match s {
            "vgg" | "vgg16" => Ok(LpipsNet::Vgg),
            "alex" | "alexnet" => Ok(LpipsNet::Alex),
            _ => Err(Error::msg(format!("unknown LPIPS network `{s}` (use vgg or alex)"))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            LpipsNet::Vgg => "vgg",
            LpipsNet::Alex => "alex",
        }
    }
}

/// The bundled weights file of `net`: `assets/weights/<file>` under the current directory, else
/// under this crate's source tree.
pub fn default_weights_path(net: LpipsNet) -> PathBuf {
    let local = Path::new("assets/weights").join(net.weights_file());
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/weights")
        .join(net.weights_file())
}

/// An LPIPS model: backbone and the five linear layers.
pub struct Lpips {
    net: LpipsNet,
    features: FeatureNet,
    lins: Vec<Tensor>,
}

impl Lpips {
    /// Load a converted weights file; its `net` metadata (when present) must match `net`.
    pub fn load(path: impl AsRef<Path>, net: LpipsNet) -> Result<Lpips> {
        let path = path.as_ref();
        let (weights, meta) = crate::io::safetensors::load(path)?;
        if let Some(found) = meta.get("net") {
            if LpipsNet::parse(found)? != net {
                return Err(Error::msg(format!(
                    "{}: holds LPIPS weights for `{found}`, expected `{}`",
                    path.display(),
                    net.name()
                )));
            }
        }
        Lpips::from_weights(net, &weights).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
    }

    /// Load the bundled weights of `net` (`default_weights_path`).
    pub fn load_default(net: LpipsNet) -> Result<Lpips> {
        let path = default_weights_path(net);
        if !path.exists() {
            return Err(Error::msg(format!(
                "LPIPS weights not found at {} (build them with weights-tools/convert_lpips.py)",
                path.display()
            )));
        }
        Lpips::load(path, net)
    }

    /// Build from tensors keyed `features.{i}.*` and `lin{k}.weight`.
    pub fn from_weights(net: LpipsNet, weights: &WeightStore) -> Result<Lpips> {
        let features = FeatureNet::from_weights(net.backbone(), weights, "features")?;
        let mut lins = Vec::new();
        for (k, tap) in net.taps().iter().enumerate() {
            let channels = tap_channels(net.backbone(), tap)?;
            let key = format!("lin{k}.weight");
            let t = weights
                .get(&key)
                .ok_or_else(|| Error::msg(format!("missing {key} [1, {channels}, 1, 1]")))?;
            if t.shape() != [1, channels, 1, 1] {
                return Err(Error::shape(
                    "lpips",
                    format!("{key}: expected [1, {channels}, 1, 1], found {:?}", t.shape()),
                ));
            }
            lins.push(t.to_dtype(DType::F32)?);
        }
        Ok(Lpips { net, features, lins })
    }

    pub fn net(&self) -> LpipsNet {
        self.net
    }

    /// LPIPS of `in0`, `in1` `[N, 3, H, W]` in [-1, 1] -> `[N]` (module docs for `spatial`).
    pub fn forward(&self, tape: &Tape, in0: &Var, in1: &Var, spatial: bool) -> Result<Var> {
        let s = in0.shape().to_vec();
        if s.len() != 4 || s[1] != 3 || in1.shape() != s.as_slice() {
            return Err(Error::shape(
                "lpips",
                format!(
                    "inputs must be two [N, 3, H, W] of one shape, got {:?} and {:?}",
                    s,
                    in1.shape()
                ),
            ));
        }
        let n = s[0];
        let both = ag::shape::concat(tape, &[in0, in1], 0)?;
        let shift = tape.constant(Tensor::from_vec(SHIFT.to_vec(), &[1, 3, 1, 1])?);
        let scale = tape.constant(Tensor::from_vec(SCALE.to_vec(), &[1, 3, 1, 1])?);
        let scaled = ag::binary::div(tape, &ag::binary::sub(tape, &both, &shift)?, &scale)?;
        let bound = self.features.bind_frozen(tape);
        let feats = self.features.forward(tape, &bound, &scaled, &self.net.taps())?;
        let mut total: Option<Var> = None;
        for (f, lin) in feats.iter().zip(&self.lins) {
            let unit = unit_normalise(tape, f)?;
            let (u0, u1) = (
                ag::shape::narrow(tape, &unit, 0, 0, n)?,
                ag::shape::narrow(tape, &unit, 0, n, n)?,
            );
            let d = ag::unary::square(tape, &ag::binary::sub(tape, &u0, &u1)?)?;
            let map = ag::conv::conv2d(tape, &d, &tape.constant(lin.clone()), None, 1, 0)?;
            let term = if spatial {
                ag::resize::resize_bilinear(tape, &map, (s[2], s[3]))?
            } else {
                ag::reduce::mean(tape, &map, &[2, 3], true)?
            };
            total = Some(match total {
                None => term,
                Some(t) => ag::binary::add(tape, &t, &term)?,
            });
        }
        let total = total.expect("five taps");
        ag::reduce::mean(tape, &total, &[1, 2, 3], false)
    }

    /// LPIPS of two image batches `[N, 3, H, W]` in [-1, 1], no tape, as f64 values.
    pub fn eval(&self, in0: &Tensor, in1: &Tensor, spatial: bool) -> Result<Vec<f64>> {
        let tape = Tape::no_grad();
        let out = self.forward(&tape, &tape.constant(in0.clone()), &tape.constant(in1.clone()), spatial)?;
        Ok(out.value().to_vec_f32()?.into_iter().map(f64::from).collect())
    }

    /// LPIPS (spatial mean) of two `[3, H, W]` images in [0, 255], as PUT's `cal_lpips.py`.
    pub fn distance_images(&self, a: &Tensor, b: &Tensor) -> Result<f64> {
        if a.shape() != b.shape() || a.shape().len() != 3 || a.shape()[0] != 3 {
            return Err(Error::shape(
                "lpips",
                format!(
                    "images must be two [3, H, W] of one shape, got {:?} and {:?}",
                    a.shape(),
                    b.shape()
                ),
            ));
        }
        let (x0, x1) = (to_signed_unit(a)?, to_signed_unit(b)?);
        Ok(self.eval(&x0, &x1, true)?[0])
    }
}

/// `[3, H, W]` in [0, 255] -> `[1, 3, H, W]` in [-1, 1].
fn to_signed_unit(img: &Tensor) -> Result<Tensor> {
    let s = img.shape();
    let x = crate::ops::unary::add_scalar(&crate::ops::unary::mul_scalar(img, 2.0 / 255.0)?, -1.0)?;
    x.reshape(&[1, s[0], s[1], s[2]])
}

/// `f / (sqrt(sum_c f^2) + eps)` over dim 1 (lpips `normalize_tensor`).
fn unit_normalise(tape: &Tape, f: &Var) -> Result<Var> {
    let sq = ag::reduce::sum(tape, &ag::unary::square(tape, f)?, &[1], true)?;
    let norm = ag::unary::add_scalar(tape, &ag::unary::sqrt(tape, &sq)?, NORM_EPS)?;
    ag::binary::div(tape, f, &norm)
}

/// Output channels of the conv feeding a tap (the ReLU right after it).
fn tap_channels(backbone: Backbone, tap: &str) -> Result<usize> {
    let idx = backbone.index_of(tap)?;
    let layers = backbone.layers();
    layers[..idx]
        .iter()
        .rev()
        .find_map(|l| match l.kind {
            crate::model::vgg::LayerKind::Conv { c_out, .. } => Some(c_out),
            _ => None,
        })
        .ok_or_else(|| Error::msg(format!("{}: no conv before {tap}", backbone.name())))
}

/// How diversity picks pairs of samples of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiversityPairs {
    /// Every unordered pair of distinct samples.
    All,
    /// `per_input` distinct random pairs per input (capped at the number of pairs), seeded.
    Random { per_input: usize, seed: u64 },
}

/// The unordered pairs `(i, j)`, `i < j`, to score among `n` samples.
pub fn diversity_pairs(n: usize, how: DiversityPairs, rng: &mut Rng) -> Vec<(usize, usize)> {
    let all: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    match how {
        DiversityPairs::All => all,
        DiversityPairs::Random { per_input, .. } => {
            let mut pool = all;
            rng.shuffle(&mut pool);
            pool.truncate(per_input);
            pool.sort_unstable();
            pool
        }
    }
}

/// Result of a diversity computation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diversity {
    /// Mean LPIPS over all scored pairs.
    pub mean: f64,
    /// Sample standard deviation over pairs (N - 1; 0 for one pair), as PUT reports.
    pub std: f64,
    pub pairs: usize,
    /// Inputs skipped for having fewer than 2 samples.
    pub skipped_inputs: usize,
}

/// Diversity over groups of samples (`groups[i]` = the `[3, H, W]` samples of input `i`).
pub fn diversity(lpips: &Lpips, groups: &[Vec<Tensor>], how: DiversityPairs) -> Result<Diversity> {
    let mut rng = Rng::new(match how {
        DiversityPairs::Random { seed, .. } => seed,
        DiversityPairs::All => 0,
    });
    let (mut values, mut skipped) = (Vec::new(), 0);
    for group in groups {
        if group.len() < 2 {
            skipped += 1;
            continue;
        }
        for (i, j) in diversity_pairs(group.len(), how, &mut rng) {
            values.push(lpips.distance_images(&group[i], &group[j])?);
        }
    }
    if values.is_empty() {
        return Err(Error::msg("diversity: no input has two or more samples"));
    }
    let (mean, std) = mean_std(&values);
    Ok(Diversity {
        mean,
        std,
        pairs: values.len(),
        skipped_inputs: skipped,
    })
}

/// Mean and sample standard deviation (N - 1 normalisation; 0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}
