//! Model configurations and the two presets (spec §2, §3, §4, §6.5; docs/PRESETS.md).
//!
//! A `ModelConfig` fixes every shape of the inference model (codec, transformer, FDM) and of the
//! training discriminator. It is serialised as JSON into the `__metadata__` of every weights
//! file, so a file always says which architecture its tensors belong to.
//!
//! * `paper`: exactly the official shapes (spec §2.5, §3.6, §4.3, §8.2): 122.7 M parameters,
//!   150.7 GMACs per transformer pass.
//! * `tiny`: the same architecture family and the same geometry (256x256 images, 8x8 patches,
//!   a 32x32 grid of 1024 tokens, dual codebook, three 2x up-steps, post-activation residual
//!   blocks, the same state-dict key names), only narrower and shallower. Sizes, with the numbers
//!   computed by `model::cost` (see docs/PRESETS.md, checked by `tests/presets.rs`):
//!   - transformer 4 layers x 64 wide x 2 heads (head dim 32), MLP x4, vocab 256:
//!     0.29 M parameters, 0.76 GMACs and 8.4 M softmax exponentials per pass over 1024 tokens.
//!     At 1024 tokens the two attention products cost `2 * 1024^2 * n_embd` MACs per layer no
//!     matter how narrow the rest is, so width and depth are what bound the ~400 passes of one
//!     inpainting: 4 x 64 gives ~0.3 TMACs per inpainting, i.e. seconds at the 20-40 GMAC/s two
//!     AVX2 cores sustain; 4 x 128 x 4 heads would be 1.92 GMACs per pass (~0.8 TMACs, half a
//!     minute or more) and twice the softmax work.
//!   - codec e_dim 64, codebook 2 x 256 (512 codes, 256 unmasked = the transformer's vocab),
//!     encoder width 64 with 2 residual blocks of hidden width 32, decoder width 64 with 2
//!     residual blocks of hidden 32, up-path channels 64 -> 32 -> 16: 0.81 GMACs to decode one
//!     image (paper: 14.25 G), which keeps codec training (forward + backward, several per step)
//!     in hours on two cores.
//!   - FDM width 64 with 2 residual blocks (hidden 32): 0.12 GMACs, run once per image.
//!   - discriminator base width 32 (paper 64), the same five 4x4 convs and 30x30 output.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Names accepted by `ModelConfig::by_name`.
pub const PRESET_NAMES: [&str; 2] = ["paper", "tiny"];

/// The complete architecture description of one model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Preset name ("paper", "tiny") or a user-chosen name for a custom configuration.
    pub preset: String,
    /// Square input image side in pixels (256 for both presets; spec §0).
    pub image_size: usize,
    pub codec: CodecConfig,
    pub transformer: TransformerConfig,
    pub fdm: FdmConfig,
    pub discriminator: DiscriminatorConfig,
}

/// P-VQVAE codec (spec §2): per-patch MLP encoder, 1x1 quant convs, dual codebook, decoder with
/// reference-image guidance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecConfig {
    /// Patch side r (8): the encoder sees `in_ch * r * r` values per patch.
    pub patch: usize,
    /// Image channels (3).
    pub in_ch: usize,
    /// Encoder width (`res_ch`, 256): pre Linear `patch_dim -> enc_width`.
    pub enc_width: usize,
    /// Number of LinearResBlocks in the encoder (8).
    pub enc_res_blocks: usize,
    /// Hidden width of each LinearResBlock (128).
    pub enc_res_hidden: usize,
    /// Feature / codebook dimension (256): encoder output, quant convs, codebook rows.
    pub e_dim: usize,
    /// Codebook size (1024 = unmasked half + masked half).
    pub n_e: usize,
    /// First index of the masked half of the codebook (512); also the transformer's vocabulary.
    pub masked_embed_start: usize,
    /// Decoder width (256): pre Conv3x3 `e_dim -> dec_width`, residual stack.
    pub dec_width: usize,
    /// Number of ConvResBlocks in the decoder (8).
    pub dec_res_blocks: usize,
    /// Hidden width of each ConvResBlock (128).
    pub dec_res_hidden: usize,
    /// Output channels of `up_layers.0..`, one 2x ConvTranspose each ([256, 128, 64]); there are
    /// log2(patch) of them. The reference branch mirrors them (`reference_channels`).
    pub up_channels: Vec<usize>,
}

/// UQ-Transformer (spec §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerConfig {
    /// Number of pre-LN blocks (35).
    pub n_layer: usize,
    /// Model width D (512).
    pub n_embd: usize,
    /// Attention heads (8); head dim = n_embd / n_head.
    pub n_head: usize,
    /// MLP hidden width = mlp_ratio * n_embd (4).
    pub mlp_ratio: usize,
    /// Output classes = the unmasked half of the codebook (512).
    pub vocab: usize,
    /// Tokens per image (1024 = 32 x 32).
    pub seq_len: usize,
    /// Input feature width = codec e_dim (256).
    pub embed_dim: usize,
}

/// Feature Dequantization Module (spec §4): `mix.0` Conv3x3 (e_dim + 1 -> width) + ReLU,
/// `res_blocks` ConvResBlocks, Conv3x3 (width -> e_dim).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdmConfig {
    pub width: usize,
    pub res_blocks: usize,
    pub res_hidden: usize,
}

/// Phase-1a / Phase-3 patch discriminator (spec §6.5): five 4x4 convs without bias, channels
/// `base * [1, 2, 4, 8]` then 1, strides 2, 2, 2, 1, 1, spectral norm on each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    pub in_ch: usize,
    pub base_width: usize,
}

impl CodecConfig {
    /// Values per patch fed to the encoder (`in_ch * patch^2`, 192).
    pub fn patch_dim(&self) -> usize {
        self.in_ch * self.patch * self.patch
    }
    /// Number of 2x up-steps between the token grid and the image (log2(patch)), or None when
    /// `patch` is not a power of two.
    pub fn up_steps(&self) -> Option<usize> {
        (self.patch.is_power_of_two() && self.patch > 1).then(|| self.patch.trailing_zeros() as usize)
    }
    /// Output channels of `decoder.encoder.layers.0..`: the reference map of each blend must have
    /// the channels of the main path there, so layer 0 (full resolution) matches the last up
    /// output and the last layer (token grid) matches `dec_width` (spec §2.4).
    pub fn reference_channels(&self) -> Vec<usize> {
        let mut ch: Vec<usize> = self.up_channels.iter().rev().copied().collect();
        ch.push(self.dec_width);
        ch
    }
}

impl TransformerConfig {
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }
    pub fn mlp_hidden(&self) -> usize {
        self.mlp_ratio * self.n_embd
    }
}

impl DiscriminatorConfig {
    /// (in, out, stride) of conv1..conv5.
    pub fn convs(&self) -> [(usize, usize, usize); 5] {
        let b = self.base_width;
        [
            (self.in_ch, b, 2),
            (b, 2 * b, 2),
            (2 * b, 4 * b, 2),
            (4 * b, 8 * b, 1),
            (8 * b, 1, 1),
        ]
    }
}

impl ModelConfig {
    /// The official shapes (spec §2.5, §3.6, §4.3, §6.5, §8.2).
    pub fn paper() -> Self {
        ModelConfig {
            preset: "paper".into(),
            image_size: 256,
            codec: CodecConfig {
                patch: 8,
                in_ch: 3,
                enc_width: 256,
                enc_res_blocks: 8,
                enc_res_hidden: 128,
                e_dim: 256,
                n_e: 1024,
                masked_embed_start: 512,
                dec_width: 256,
                dec_res_blocks: 8,
                dec_res_hidden: 128,
                up_channels: vec![256, 128, 64],
            },
            transformer: TransformerConfig {
                n_layer: 35,
                n_embd: 512,
                n_head: 8,
                mlp_ratio: 4,
                vocab: 512,
                seq_len: 1024,
                embed_dim: 256,
            },
            fdm: FdmConfig {
                width: 256,
                res_blocks: 8,
                res_hidden: 128,
            },
            discriminator: DiscriminatorConfig {
                in_ch: 3,
                base_width: 64,
            },
        }
    }

    /// Same family and geometry as `paper`, small enough for two CPU cores (module docs).
    pub fn tiny() -> Self {
        ModelConfig {
            preset: "tiny".into(),
            image_size: 256,
            codec: CodecConfig {
                patch: 8,
                in_ch: 3,
                enc_width: 64,
                enc_res_blocks: 2,
                enc_res_hidden: 32,
                e_dim: 64,
                n_e: 512,
                masked_embed_start: 256,
                dec_width: 64,
                dec_res_blocks: 2,
                dec_res_hidden: 32,
                up_channels: vec![64, 32, 16],
            },
            transformer: TransformerConfig {
                n_layer: 4,
                n_embd: 64,
                n_head: 2,
                mlp_ratio: 4,
                vocab: 256,
                seq_len: 1024,
                embed_dim: 64,
            },
            fdm: FdmConfig {
                width: 64,
                res_blocks: 2,
                res_hidden: 32,
            },
            discriminator: DiscriminatorConfig {
                in_ch: 3,
                base_width: 32,
            },
        }
    }

    /// A preset by name ("paper" or "tiny").
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "tiny" => Ok(Self::tiny()),
            _ => Err(Error::msg(format!(
                "unknown preset `{name}` (known: {})",
                PRESET_NAMES.join(", ")
            ))),
        }
    }

    /// Side of the token grid (image_size / patch, 32).
    pub fn grid(&self) -> usize {
        self.image_size / self.codec.patch.max(1)
    }

    /// The fields where `self` differs from `other`, as `path value (label value)` in field order
    /// (`label` names `other`, e.g. "expected"): what a "same name, different shapes" error names.
    pub fn differences(&self, other: &ModelConfig, label: &str) -> Vec<String> {
        fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, label: &str, out: &mut Vec<String>) {
            match (a, b) {
                (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                    for (k, va) in x {
                        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                        match y.get(k) {
                            Some(vb) => walk(&p, va, vb, label, out),
                            None => out.push(format!("{p} {va} ({label}: absent)")),
                        }
                    }
                }
                _ if a != b => out.push(format!("{path} {a} ({label} {b})")),
                _ => {}
            }
        }
        let (a, b) = (serde_json::to_value(self), serde_json::to_value(other));
        let mut out = Vec::new();
        if let (Ok(a), Ok(b)) = (a, b) {
            walk("", &a, &b, label, &mut out);
        }
        out
    }

    /// Every relation between fields that the models rely on; one error listing all violations.
    pub fn validate(&self) -> Result<()> {
        let (c, t, f) = (&self.codec, &self.transformer, &self.fdm);
        let mut bad: Vec<String> = Vec::new();
        let mut need = |ok: bool, what: String| {
            if !ok {
                bad.push(what)
            }
        };
        let positive = [
            ("image_size", self.image_size),
            ("codec.patch", c.patch),
            ("codec.in_ch", c.in_ch),
            ("codec.enc_width", c.enc_width),
            ("codec.enc_res_hidden", c.enc_res_hidden),
            ("codec.e_dim", c.e_dim),
            ("codec.dec_width", c.dec_width),
            ("codec.dec_res_hidden", c.dec_res_hidden),
            ("transformer.n_layer", t.n_layer),
            ("transformer.n_embd", t.n_embd),
            ("transformer.n_head", t.n_head),
            ("transformer.mlp_ratio", t.mlp_ratio),
            ("fdm.width", f.width),
            ("fdm.res_hidden", f.res_hidden),
            ("discriminator.base_width", self.discriminator.base_width),
        ];
        for (name, v) in positive {
            need(v > 0, format!("{name} must be positive"));
        }
        need(
            c.patch > 0 && self.image_size.is_multiple_of(c.patch),
            format!("image_size {} is not a multiple of patch {}", self.image_size, c.patch),
        );
        match c.up_steps() {
            Some(n) => need(
                c.up_channels.len() == n && c.up_channels.iter().all(|&x| x > 0),
                format!(
                    "codec.up_channels {:?}: need log2(patch) = {n} positive entries",
                    c.up_channels
                ),
            ),
            None => need(false, format!("codec.patch {} must be a power of two >= 2", c.patch)),
        }
        need(
            c.masked_embed_start > 0 && c.masked_embed_start < c.n_e,
            format!(
                "codec.masked_embed_start {} must split n_e {} into two non-empty halves",
                c.masked_embed_start, c.n_e
            ),
        );
        need(
            t.n_head > 0 && t.n_embd % t.n_head == 0,
            format!("transformer.n_embd {} not divisible by n_head {}", t.n_embd, t.n_head),
        );
        need(
            t.seq_len == self.grid() * self.grid(),
            format!(
                "transformer.seq_len {} != grid^2 = {}",
                t.seq_len,
                self.grid() * self.grid()
            ),
        );
        need(
            t.embed_dim == c.e_dim,
            format!("transformer.embed_dim {} != codec.e_dim {}", t.embed_dim, c.e_dim),
        );
        need(
            t.vocab == c.masked_embed_start,
            format!(
                "transformer.vocab {} != codec.masked_embed_start {} (the unmasked half)",
                t.vocab, c.masked_embed_start
            ),
        );
        need(
            self.discriminator.in_ch == c.in_ch,
            "discriminator.in_ch != codec.in_ch".into(),
        );
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "invalid model config `{}`: {}",
                self.preset,
                bad.join("; ")
            )))
        }
    }

    /// Pretty JSON (what goes into a weights file's metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a ModelConfig always serialises")
    }

    /// Parse and validate a JSON configuration.
    pub fn from_json(s: &str) -> Result<Self> {
        let cfg: ModelConfig = serde_json::from_str(s).map_err(|e| Error::msg(format!("model config JSON: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }
}
