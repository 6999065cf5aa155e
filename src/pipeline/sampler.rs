//! The token sampler of spec §5.2 (paper mode by default) and what goes beyond it.
//!
//! State per image: a feature table (L x C rows: continuous encoder features, replaced by the
//! codebook row of each sampled token), the tokens, and the known flags (true at fully visible
//! patches). Each pass runs the transformer on the full sequence of every image that still has
//! unknown positions, picks the `tokens_per_pass` unknown positions with the largest raw logit
//! (ties: lowest position), draws each token from the top-K softmax of its logits / temperature
//! with one host-drawn uniform (so every backend draws the same tokens from one seed), and writes
//! the codebook rows into the table. The number of passes is `ceil(masked / tokens_per_pass)`.
//!
//! Gibbs sweeps (beyond the paper, off by default): after filling, each sweep revisits the
//! masked positions in the order they were filled, `tokens_per_pass` at a time. The revisited
//! positions get their initial (encoder) features back, so the transformer sees every other token
//! but not the one being re-drawn; the new tokens are drawn with the same top-K rule and written
//! back. One sweep costs as many passes as the fill did.
//!
//! Inference runs on a no-grad tape: nothing is recorded and no gradient buffer exists.
//!
//! The host loop asks the transformer for the logits at the positions it reads only (the unknown
//! ones in a fill, the revisited ones in a sweep; `Transformer::forward_at`), each image's
//! positions in increasing order and padded with repeats to the longest list (a padded row is
//! flagged known, so it is never picked). On the CPU that runs the last block at those rows only,
//! with the bits the full pass gives them, so the tokens are those of a full pass.
//!
//! On a CUDA device the fill runs with its state on the device (`ops::sampling_device`): the
//! host knows every pass's pick counts in advance (min(n, unknown left) per image), so it draws
//! every pass's uniforms in the same order as the host loop, uploads them once, and reads nothing
//! back until the fill is done; images that finish early still go through the transformer (their
//! steps pick nothing), which changes no token. Gibbs sweeps then continue on the host-driven loop.
//! On a GPU (not while profiling, and unless `cuda_graph` is off) the fill's first pass runs
//! eagerly, the second records the transformer pass into a CUDA graph (`ops::graph`: it reads the
//! feature table, which the picks update in place), and every later pass replays it with one
//! launch instead of ~400. The tokens are the eager loop's: the same kernels run in the same order.
//! If the capture fails, the fill goes on eagerly and `Sampled::graph_note` says why.

use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::model::inpainting::InpaintingModel;
use crate::nn::Bound;
use crate::ops;
use crate::ops::sampling_device::{DeviceFill, PassRule};
use crate::profile;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Sampling knobs; the defaults are the paper's (spec §5.5).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerOptions {
    pub tokens_per_pass: usize,
    pub top_k: usize,
    pub temperature: f32,
    pub gibbs_sweeps: usize,
    /// Replay the transformer pass of the fill from a CUDA graph on a GPU (no effect elsewhere;
    /// the tokens are the same either way).
    pub cuda_graph: bool,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions { tokens_per_pass: 1, top_k: 50, temperature: 1.0, gibbs_sweeps: 0, cuda_graph: true }
    }
}

impl SamplerOptions {
    pub fn validate(&self, vocab: usize) -> Result<()> {
        if self.tokens_per_pass == 0 {
            return Err(Error::msg("tokens per pass must be at least 1"));
        }
        if self.top_k == 0 || self.top_k > vocab {
            return Err(Error::msg(format!("top-k must be in 1..={vocab}, got {}", self.top_k)));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::msg(format!("temperature must be positive and finite, got {}", self.temperature)));
        }
        Ok(())
    }
}

/// What the sampler produced for a batch of B images.
pub struct Sampled {
    /// B x L x C: encoder features at visible patches, codebook rows at masked ones.
    pub table: Tensor,
    /// B*L tokens (visible positions keep their initial unmasked-half token).
    pub tokens: Vec<u32>,
    /// Transformer passes run (fill + sweeps).
    pub passes: usize,
    /// Per image, the masked positions in the order they were filled.
    pub fill_order: Vec<Vec<u32>>,
    /// Passes whose transformer ran as a replay of a CUDA graph.
    pub graph_replays: usize,
    /// Why no CUDA graph was used where one was asked for on a GPU (the capture failed).
    pub graph_note: Option<String>,
}

/// Everything one sampling run reads.
pub struct SamplerInput<'a> {
    pub model: &'a InpaintingModel,
    pub tape: &'a Tape,
    pub params: &'a Bound,
    /// B x L x C initial feature table (continuous encoder features of the masked image).
    pub table: Tensor,
    pub tokens: Vec<u32>,
    pub visible: Vec<bool>,
}

/// Run the sampling loop. `on_pass(done, total)` is called after every pass.
pub fn sample(input: SamplerInput<'_>, opts: &SamplerOptions, rng: &mut Rng, on_pass: &mut dyn FnMut(usize, usize)) -> Result<Sampled> {
    let SamplerInput { model, tape, params, table, mut tokens, visible } = input;
    let vocab = model.cfg.transformer.vocab;
    opts.validate(vocab)?;
    let [b, l, c] = table.shape()[..] else {
        return Err(Error::shape("sample", format!("feature table must be B x L x C, got {:?}", table.shape())));
    };
    if visible.len() != b * l || tokens.len() != b * l {
        return Err(Error::shape("sample", format!("{} flags and {} tokens for {b} x {l} positions", visible.len(), tokens.len())));
    }
    let masked_per_image: Vec<usize> = (0..b).map(|i| visible[i * l..(i + 1) * l].iter().filter(|v| !**v).count()).collect();
    let fill_passes = masked_per_image.iter().map(|m| m.div_ceil(opts.tokens_per_pass)).max().unwrap_or(0);
    let total = fill_passes * (1 + opts.gibbs_sweeps);
    let initial = table.clone();
    let mut st = LoopState { table, known: visible, passes: 0, fill_order: vec![Vec::new(); b], graph_replays: 0, graph_note: None };
    let run = |x: &Tensor| -> Result<Tensor> { Ok(model.transformer.forward(tape, params, &tape.constant(x.clone()))?.value().clone()) };
    let run_at = |x: &Tensor, rows: &Rows| -> Result<Tensor> {
        Ok(model.transformer.forward_at(tape, params, &tape.constant(x.clone()), &rows.positions, rows.per_image)?.value().clone())
    };

    if matches!(st.table.device(), crate::Device::Cuda(_)) {
        let ctx = FillContext { model, run: &run, opts, dims: (b, l, c), total };
        fill_on_device(&mut st, &mut tokens, &masked_per_image, fill_passes, &ctx, rng, on_pass)?;
    }
    while st.known.iter().any(|k| !k) {
        let active: Vec<usize> = (0..b).filter(|&i| st.known[i * l..(i + 1) * l].iter().any(|k| !k)).collect();
        let rows = Rows::new(active.iter().map(|&i| (0..l as u32).filter(|&pos| !st.known[i * l + pos as usize]).collect()));
        let logits = run_at(&st.rows_of(&active, l, c)?, &rows)?;
        let chosen = profile::op("choose_positions", || ops::sampling::choose_positions(&logits, &rows.padding, opts.tokens_per_pass), |_| 0)?;
        let mut picks = Vec::new();
        for (slot, (&img, chosen_rows)) in active.iter().zip(&chosen).enumerate() {
            for &row in chosen_rows {
                let pos = rows.position(slot, row as usize);
                if !st.known[img * l + pos] {
                    picks.push(Pick { slot, img, pos, row: row as usize });
                }
            }
        }
        let drawn = draw(model, &logits, &picks, rows.per_image, opts, rng)?;
        st.write(model, &picks, &drawn, l, &mut tokens)?;
        for pick in &picks {
            st.known[pick.img * l + pick.pos] = true;
            st.fill_order[pick.img].push(pick.pos as u32);
        }
        st.passes += 1;
        on_pass(st.passes, total);
    }
    for _ in 0..opts.gibbs_sweeps {
        gibbs_sweep(&mut st, &initial, &run_at, model, opts, rng, &mut tokens, (b, l, c), &mut |p| on_pass(p, total))?;
    }
    Ok(Sampled { table: st.table, tokens, passes: st.passes, fill_order: st.fill_order, graph_replays: st.graph_replays, graph_note: st.graph_note })
}

/// What the device fill reads besides the state.
struct FillContext<'a> {
    model: &'a InpaintingModel,
    run: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    opts: &'a SamplerOptions,
    dims: (usize, usize, usize),
    total: usize,
}

/// The fill with its state on the CUDA device: no read-back until every pass is queued.
fn fill_on_device(
    st: &mut LoopState,
    tokens: &mut Vec<u32>,
    masked_per_image: &[usize],
    fill_passes: usize,
    ctx: &FillContext,
    rng: &mut Rng,
    on_pass: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let (b, l, _) = ctx.dims;
    if fill_passes == 0 {
        return Ok(()); // nothing masked: the state stays as it is
    }
    let n = ctx.opts.tokens_per_pass.min(l);
    let rule = PassRule { per_image: n, top_k: ctx.opts.top_k, temperature: ctx.opts.temperature };
    let codebook = ctx.model.store.get(ctx.model.codec.quantizer.embedding);
    // The host loop draws one uniform per pick, images in order, picks in rank order; the host
    // knows every pass's pick counts, so all of them are drawn (in that order) and uploaded once.
    let mut u = vec![0f32; fill_passes * b * n];
    let mut left = masked_per_image.to_vec();
    for pass_u in u.chunks_mut((b * n).max(1)) {
        for (i, left) in left.iter_mut().enumerate() {
            let picks = (*left).min(n);
            pass_u[i * n..i * n + picks].iter_mut().for_each(|x| *x = rng.uniform());
            *left -= picks;
        }
    }
    let mut fill = DeviceFill::new(&st.table, tokens, &st.known, &u)?;
    // Passes are queued without waiting; the host stays at most two passes ahead of the device,
    // so the progress callback (passes/s) follows the device's work, not the queue's.
    let device = match st.table.device() {
        crate::Device::Cuda(d) => d,
        crate::Device::Cpu => return Err(Error::msg("the device fill needs a CUDA table")),
    };
    let mut in_flight = std::collections::VecDeque::new();
    let want_graph = ctx.opts.cuda_graph && !device.is_emulated() && !profile::is_recording();
    let mut graph: Option<ops::graph::Recorded<Tensor>> = None;
    for pass in 0..fill_passes {
        // Pass 0 runs eagerly (it loads the kernels and fills the allocator's pool); pass 1
        // records the graph that it and every later pass replay.
        if pass == 1 && want_graph {
            match ops::graph::record(&st.table.device(), || (ctx.run)(fill.table())) {
                Ok(g) => graph = Some(g),
                Err(e) => st.graph_note = Some(e.to_string()),
            }
        }
        let logits = match &graph {
            Some(g) => {
                st.graph_replays += 1;
                g.replay()?.clone()
            }
            None => (ctx.run)(fill.table())?,
        };
        profile::op("sample_on_device", || fill.pass(&logits, codebook, rule, pass), |_| 0)?;
        in_flight.push_back(device.fence()?);
        if in_flight.len() > 2 {
            in_flight.pop_front().map(|f| f.wait()).transpose()?;
        }
        st.passes += 1;
        on_pass(st.passes, ctx.total);
    }
    let done = fill.finish()?;
    st.table = done.table;
    *tokens = done.tokens;
    for (i, order) in st.fill_order.iter_mut().enumerate() {
        let cells = &done.order[i * l..(i + 1) * l];
        let mut filled: Vec<(u32, u32)> = cells.iter().enumerate().filter(|(_, &r)| r != ops::sampling_device::NONE).map(|(pos, &r)| (r, pos as u32)).collect();
        filled.sort_unstable();
        if filled.len() != masked_per_image[i] {
            return Err(Error::msg(format!("the device sampler filled {} of image {i}'s {} masked positions", filled.len(), masked_per_image[i])));
        }
        for &(_, pos) in &filled {
            st.known[i * l + pos as usize] = true;
        }
        order.extend(filled.into_iter().map(|(_, pos)| pos));
    }
    Ok(())
}

/// One drawn position: its active slot, image, position and row in the pass's logits.
struct Pick {
    slot: usize,
    img: usize,
    pos: usize,
    row: usize,
}

/// The positions whose logits a pass reads, `per_image` per active image: `positions[slot *
/// per_image + row]`, each image's list padded with repeats of its last position, the padding
/// flagged in `padding` (for `choose_positions`, as known positions).
struct Rows {
    per_image: usize,
    positions: Vec<u32>,
    padding: Vec<bool>,
}

impl Rows {
    fn new(lists: impl Iterator<Item = Vec<u32>>) -> Rows {
        let lists: Vec<Vec<u32>> = lists.collect();
        let per_image = lists.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (mut positions, mut padding) = (Vec::new(), Vec::new());
        for list in &lists {
            let pad = *list.last().unwrap_or(&0);
            positions.extend(list.iter().copied().chain(std::iter::repeat(pad)).take(per_image));
            padding.extend((0..per_image).map(|r| r >= list.len()));
        }
        Rows { per_image, positions, padding }
    }

    fn position(&self, slot: usize, row: usize) -> usize {
        self.positions[slot * self.per_image + row] as usize
    }
}

struct LoopState {
    table: Tensor,
    known: Vec<bool>,
    passes: usize,
    fill_order: Vec<Vec<u32>>,
    graph_replays: usize,
    graph_note: Option<String>,
}

impl LoopState {
    /// The feature rows of the given images as an A x L x C tensor (the table itself when all).
    fn rows_of(&self, images: &[usize], l: usize, c: usize) -> Result<Tensor> {
        let b = self.table.shape()[0];
        if images.len() == b {
            return Ok(self.table.clone());
        }
        let idx: Vec<u32> = images.iter().map(|&i| i as u32).collect();
        ops::index::gather_rows(&self.table.reshape(&[b, l * c])?, &idx)?.reshape(&[images.len(), l, c])
    }

    /// Write the codebook rows of `drawn` tokens at the picked positions.
    fn write(&mut self, model: &InpaintingModel, picks: &[Pick], drawn: &[u32], l: usize, tokens: &mut [u32]) -> Result<()> {
        if picks.is_empty() {
            return Ok(());
        }
        let shape = self.table.shape().to_vec();
        let rows = model.codec.quantizer.rows(&model.store, drawn)?;
        let idx: Vec<u32> = picks.iter().map(|p| (p.img * l + p.pos) as u32).collect();
        let flat = self.table.reshape(&[shape[0] * shape[1], shape[2]])?;
        self.table = ops::index::scatter_rows(&flat, &idx, &rows)?.reshape(&shape)?;
        for (p, &tok) in picks.iter().zip(drawn) {
            tokens[p.img * l + p.pos] = tok;
        }
        Ok(())
    }
}

/// One token per pick from the logits of its (active slot, row) row of `logits` (A x
/// `per_image` x vocab), uniforms drawn in pick order.
fn draw(model: &InpaintingModel, logits: &Tensor, picks: &[Pick], per_image: usize, opts: &SamplerOptions, rng: &mut Rng) -> Result<Vec<u32>> {
    if picks.is_empty() {
        return Ok(Vec::new());
    }
    let v = model.cfg.transformer.vocab;
    let rows: Vec<u32> = picks.iter().map(|p| (p.slot * per_image + p.row) as u32).collect();
    let a = logits.shape()[0];
    let selected = ops::index::gather_rows(&logits.reshape(&[a * per_image, v])?, &rows)?;
    let u: Vec<f32> = picks.iter().map(|_| rng.uniform()).collect();
    profile::op("topk_sample", || ops::sampling::topk_sample(&selected, &u, opts.top_k, opts.temperature), |_| 0)
}

#[allow(clippy::too_many_arguments)]
fn gibbs_sweep(
    st: &mut LoopState,
    initial: &Tensor,
    run_at: &dyn Fn(&Tensor, &Rows) -> Result<Tensor>,
    model: &InpaintingModel,
    opts: &SamplerOptions,
    rng: &mut Rng,
    tokens: &mut [u32],
    (b, l, c): (usize, usize, usize),
    on_pass: &mut dyn FnMut(usize),
) -> Result<()> {
    let steps = st.fill_order.iter().map(|o| o.len().div_ceil(opts.tokens_per_pass)).max().unwrap_or(0);
    let init_flat = initial.reshape(&[b * l, c])?;
    for step in 0..steps {
        let chunk = |img: usize| -> &[u32] {
            let o = &st.fill_order[img];
            let lo = (step * opts.tokens_per_pass).min(o.len());
            &o[lo..(lo + opts.tokens_per_pass).min(o.len())]
        };
        let active: Vec<usize> = (0..b).filter(|&i| !chunk(i).is_empty()).collect();
        let mut picks = Vec::new();
        for (slot, &img) in active.iter().enumerate() {
            picks.extend(chunk(img).iter().enumerate().map(|(row, &p)| Pick { slot, img, pos: p as usize, row }));
        }
        // Hide the revisited tokens: their rows go back to the encoder features.
        let idx: Vec<u32> = picks.iter().map(|p| (p.img * l + p.pos) as u32).collect();
        let hidden = ops::index::gather_rows(&init_flat, &idx)?;
        let shape = st.table.shape().to_vec();
        st.table = ops::index::scatter_rows(&st.table.reshape(&[b * l, c])?, &idx, &hidden)?.reshape(&shape)?;
        let rows = Rows::new(active.iter().map(|&img| chunk(img).to_vec()));
        let logits = run_at(&st.rows_of(&active, l, c)?, &rows)?;
        let drawn = draw(model, &logits, &picks, rows.per_image, opts, rng)?;
        st.write(model, &picks, &drawn, l, tokens)?;
        st.passes += 1;
        on_pass(st.passes);
    }
    Ok(())
}
