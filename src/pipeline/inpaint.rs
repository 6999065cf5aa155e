//! One inpainting at the model's resolution (spec §5.1): features of the masked image, token
//! sampling (or replay of given tokens, spec §5.6), FDM on the sampled features (unless the PUT
//! baseline is asked for), decoding with the masked image as reference, and compositing so that
//! known pixels are exactly the input (the official code does not composite, spec §9.16; we do,
//! and keep the raw decoder output too). `n` samples of one image run as one batch.

use super::sampler::{sample, Sampled, SamplerInput, SamplerOptions};
use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::model::codec::feature_rows;
use crate::model::inpainting::InpaintingModel;
use crate::model::masks;
use crate::nn::Bound;
use crate::ops;
use crate::profile;
use crate::rng::Rng;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct InpaintOptions {
    pub sampler: SamplerOptions,
    /// Samples drawn for the image, run as one batch.
    pub samples: usize,
    /// Apply FDM (false = the PUT baseline: codebook features decoded as they are).
    pub use_fdm: bool,
    pub seed: u64,
}

impl Default for InpaintOptions {
    fn default() -> Self {
        InpaintOptions { sampler: SamplerOptions::default(), samples: 1, use_fdm: true, seed: 0 }
    }
}

pub struct Inpainted {
    /// Per sample, 3 x H x W in [0, 255]: decoder output at holes, input pixels elsewhere.
    pub images: Vec<Tensor>,
    /// Per sample, the raw decoder output 3 x H x W in [0, 255] (not composited).
    pub raw: Vec<Tensor>,
    /// Per sample, the L tokens (row-major grid).
    pub tokens: Vec<Vec<u32>>,
    /// Transformer passes run (0 in token-replay mode).
    pub passes: usize,
    /// Of them, replays of a CUDA graph; and why none was used where one was asked for.
    pub graph_replays: usize,
    pub graph_note: Option<String>,
    /// Number of masked patches (token type != 1).
    pub masked_patches: usize,
    /// B x C x h x w features given to the decoder before FDM (codebook rows at masked
    /// patches, encoder features elsewhere): what PUT decodes.
    pub generated: Tensor,
    /// The same after FDM (`v = qv + FDM(qv, M)`), when FDM ran.
    pub dequantized: Option<Tensor>,
    /// B*h*w flags: true at fully visible patches.
    pub visible: Vec<bool>,
}

/// Inpaint `image` (3 x S x S in [0, 255], S = the model's image size) under `mask`
/// (1 x S x S, 1 = visible). `tokens`: replay these (one L-vector per sample) instead of sampling.
pub fn inpaint(
    model: &InpaintingModel,
    image: &Tensor,
    mask: &Tensor,
    opts: &InpaintOptions,
    tokens: Option<&[Vec<u32>]>,
    on_pass: &mut dyn FnMut(usize, usize),
) -> Result<Inpainted> {
    let s = model.cfg.image_size;
    if image.shape() != [3, s, s] || mask.shape() != [1, s, s] {
        return Err(Error::shape("inpaint", format!("image {:?} and mask {:?}, expected [3, {s}, {s}] and [1, {s}, {s}]", image.shape(), mask.shape())));
    }
    if opts.samples == 0 {
        return Err(Error::msg("the number of samples must be at least 1"));
    }
    let n = opts.samples;
    let device = model.device();
    let images = image.reshape(&[1, 3, s, s])?.broadcast_as(&[n, 3, s, s])?.contiguous()?.to_device(&device)?;
    let masks_b = mask.reshape(&[1, 1, s, s])?.broadcast_as(&[n, 1, s, s])?.contiguous()?.to_device(&device)?;
    let tape = Tape::no_grad();
    let params = model.store.bind(&tape, |_| false);
    let feats = profile::stage("encode", || model.codec.get_features(&tape, &params, &model.store, &images, Some(&masks_b)))?;
    let (e, g) = (model.cfg.codec.e_dim, model.cfg.grid());
    let l = g * g;
    let masked_patches = feats.visible[..l].iter().filter(|v| !**v).count();
    if masked_patches == 0 {
        return Err(Error::msg("the mask has no hole: nothing to inpaint"));
    }
    let table = feature_rows(feats.feature.value())?.reshape(&[n, l, e])?;
    let vocab = model.cfg.transformer.vocab as u32;
    let sampled = profile::stage("sample", || match tokens {
        Some(t) => replay(model, t, &table, &feats.visible, n, l, vocab),
        None => {
            let mut rng = Rng::new(opts.seed);
            let input = SamplerInput { model, tape: &tape, params: &params, table, tokens: feats.tokens.clone(), visible: feats.visible.clone() };
            sample(input, &opts.sampler, &mut rng, on_pass)
        }
    })?;
    let generated = sampled.table.reshape(&[n, g, g, e])?.permute(&[0, 3, 1, 2])?.contiguous()?;
    let Decoded { feature, out, .. } = dequantize_and_decode(model, &tape, &params, &generated, &feats.feature, &images, &masks_b, opts.use_fdm)?;
    let composited = profile::stage("composite", || composite(&out, &images, &masks_b))?;
    let split = |t: &Tensor| -> Result<Vec<Tensor>> { (0..n).map(|i| t.narrow(0, i, 1)?.reshape(&[3, s, s])?.to_device(&crate::Device::Cpu)).collect() };
    Ok(Inpainted {
        images: split(&composited)?,
        raw: split(&out)?,
        tokens: sampled.tokens.chunks(l).map(|c| c.to_vec()).collect(),
        passes: sampled.passes,
        graph_replays: sampled.graph_replays,
        graph_note: sampled.graph_note,
        masked_patches,
        dequantized: opts.use_fdm.then(|| feature.clone()),
        generated,
        visible: feats.visible,
    })
}

/// `out` at holes, `input` at visible pixels: `out (1 - m) + input m`, exact at binary m.
pub fn composite(out: &Tensor, input: &Tensor, mask: &Tensor) -> Result<Tensor> {
    ops::composite::mask_composite(out, input, mask)
}

/// What `dequantize_and_decode` produced.
pub struct Decoded {
    /// B x C x h x w features given to the decoder: `v = qv + FDM(qv, M)` with FDM, else the
    /// generated features as they are.
    pub feature: Tensor,
    /// FDM's own prediction `pv = FDM(qv, M)` (zero at fully visible patches), when FDM ran.
    pub fdm: Option<Tensor>,
    /// The raw decoder output B x 3 x H x W in [0, 255] (not composited).
    pub out: Tensor,
}

/// The deterministic tail of an inpainting (spec §5.1 steps 5-6): FDM on the `generated` features
/// (B x C x h x w: codebook rows at masked patches) with the encoder features `encoded` restored at
/// visible patches (`apply_fdm`, spec §4.2), unless `use_fdm` is false, then
/// post_quant_conv + decoder with the masked image as reference, de-normalised to [0, 255].
/// `images` B x 3 x S x S in [0, 255] and `masks` B x 1 x S x S (1 = visible) on the model's device.
#[allow(clippy::too_many_arguments)]
pub fn dequantize_and_decode(
    model: &InpaintingModel,
    tape: &Tape,
    params: &Bound,
    generated: &Tensor,
    encoded: &Var,
    images: &Tensor,
    masks: &Tensor,
    use_fdm: bool,
) -> Result<Decoded> {
    let m = masks::masked_patch_indicator(masks, model.cfg.codec.patch)?;
    let (feature, fdm) = if use_fdm {
        let applied = profile::stage("fdm", || model.fdm.apply(tape, params, &tape.constant(generated.clone()), encoded, &tape.constant(m)))?;
        (applied.v, Some(applied.pv.value().clone()))
    } else {
        (tape.constant(generated.clone()), None)
    };
    let out = profile::stage("decode", || masks::denormalise(model.codec.decode(tape, params, &feature, images, masks)?.value()))?;
    Ok(Decoded { feature: feature.value().clone(), fdm, out })
}

/// The check `replay` makes of one token vector (L tokens, `visible` its L patches): every token
/// at a hole is below `limit` (see `replay`; `vocab` is the transformer's vocabulary). Public so
/// that a caller replaying files can check each one first and name the file in the error.
pub fn check_replay_tokens(tokens: &[u32], visible: &[bool], vocab: u32, limit: u32) -> Result<()> {
    let bad = tokens.iter().zip(visible).enumerate().find(|(_, (&tok, &vis))| !vis && tok >= limit);
    let Some((pos, (&tok, _))) = bad else { return Ok(()) };
    Err(Error::msg(if limit == vocab {
        format!("token {tok} at position {pos} is out of range: a sampled token is below {vocab}, the transformer's vocabulary (the unmasked half of the codebook)")
    } else {
        format!("token {tok} at position {pos} is not a codebook index (< {limit})")
    }))
}

/// Token replay (spec §5.6): codebook rows at masked positions from the given tokens; visible
/// positions keep the encoder features (what `apply_fdm` restores in the official code).
/// Tokens at masked positions must be below `limit`: the transformer's vocabulary (the unmasked
/// half, what the sampler draws) for `fdm inpaint`; the whole codebook for `fdm inspect`, which
/// also replays the masked-half tokens of a quantised input.
pub fn replay(model: &InpaintingModel, tokens: &[Vec<u32>], table: &Tensor, visible: &[bool], n: usize, l: usize, limit: u32) -> Result<Sampled> {
    let vocab = model.cfg.transformer.vocab as u32;
    if tokens.len() != n || tokens.iter().any(|t| t.len() != l) {
        return Err(Error::msg(format!("token replay needs {n} token vectors of {l} tokens")));
    }
    for (t, vis) in tokens.iter().zip(visible.chunks(l)) {
        check_replay_tokens(t, vis, vocab, limit)?;
    }
    let flat: Vec<u32> = tokens.concat();
    let mut idx = Vec::new();
    let mut picked = Vec::new();
    for (i, (&tok, &vis)) in flat.iter().zip(visible).enumerate() {
        if !vis {
            idx.push(i as u32);
            picked.push(tok);
        }
    }
    let e = table.shape()[2];
    let rows = model.codec.quantizer.rows(&model.store, &picked)?;
    let t = ops::index::scatter_rows(&table.reshape(&[n * l, e])?, &idx, &rows)?.reshape(&[n, l, e])?;
    Ok(Sampled { table: t, tokens: flat, passes: 0, fill_order: vec![Vec::new(); n], graph_replays: 0, graph_note: None })
}
