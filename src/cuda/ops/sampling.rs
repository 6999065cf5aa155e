//! Launchers for `kernels/sampling.cu`, one step of the sampler of spec §5.2 on logits
//! [B, L, V]: the confidence of each position (its max raw logit), the n most confident unknown
//! positions per image (ties: lowest position), and the top-K draw at those positions with host
//! uniforms (ties: lowest class index). `NONE` (0xffffffff) marks "no position / no token".

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "sampling";
const THREADS: u32 = 256;
/// Marks an empty position slot or the token of an empty slot.
pub const NONE: u32 = u32::MAX;

/// Same layout as `struct PickParams` in kernels/sampling.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PickParams {
    /// Pick slots (B * n).
    pub picks: u32,
    /// Slots per image (n).
    pub per_image: u32,
    /// Positions per image (L).
    pub seq_len: u32,
    /// Floats per table / codebook row (C).
    pub width: u32,
    /// Fill-order rank of the step's first pick in each image.
    pub order_base: u32,
}

/// Same layout as `struct TopkParams` in kernels/sampling.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopkParams {
    /// Rows to sample.
    pub rows: u32,
    /// Classes per row (V).
    pub vocab: u32,
    /// Top-K, 1 <= k <= vocab.
    pub k: u32,
    /// Logits rows per image (L), used with positions.
    pub seq_len: u32,
    /// Sampled rows per image (n), used with positions.
    pub per_image: u32,
    /// Divisor of the logits (the official code's fixed 1).
    pub temperature: f32,
}

/// out[r] = max over the cols of row r: one warp per row, 8 rows per block.
pub fn row_max_launch(out: u64, x: u64, rows: usize, cols: usize) -> Launch {
    let cfg = LaunchCfg::linear(rows.div_ceil(8).clamp(1, 1 << 20) as u32, THREADS, 0);
    Launch {
        module: MODULE,
        kernel: "row_max_f32",
        cfg,
        args: vec![
            KArg::Ptr(out),
            KArg::Ptr(x),
            KArg::U32(rows as u32),
            KArg::U32(cols as u32),
        ],
    }
}

/// positions [b, n] from score [b, l] and known (u32, non-zero = known) [b, l]: one block per image.
pub fn select_positions_launch(
    positions: u64,
    score: u64,
    known: u64,
    b: usize,
    l: usize,
    n: usize,
) -> Launch {
    let cfg = LaunchCfg::linear(b.clamp(1, 65535) as u32, THREADS, select_smem_bytes(l) as u32);
    let args = vec![
        KArg::Ptr(positions),
        KArg::Ptr(score),
        KArg::Ptr(known),
        KArg::U32(b as u32),
        KArg::U32(l as u32),
        KArg::U32(n as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "select_positions_f32",
        cfg,
        args,
    }
}

/// tokens [p.rows] drawn from the rows of `logits` (all rows in order when `positions` is 0, else
/// the chosen positions of each image); one block per sampled row.
pub fn topk_sample_launch(
    tokens: u64,
    logits: u64,
    uniforms: u64,
    positions: u64,
    p: &TopkParams,
) -> Launch {
    let smem = topk_smem_bytes(p.vocab as usize, p.k as usize) as u32;
    let cfg = LaunchCfg::linear(p.rows.clamp(1, 1 << 20), THREADS, smem);
    let args = vec![
        KArg::Ptr(tokens),
        KArg::Ptr(logits),
        KArg::Ptr(uniforms),
        KArg::Ptr(positions),
        KArg::pod(p),
    ];
    Launch {
        module: MODULE,
        kernel: "topk_sample_f32",
        cfg,
        args,
    }
}

/// Dynamic shared memory of `select_positions_f32`: the scores and positions of one image,
/// padded to a power of two.
pub fn select_smem_bytes(len: usize) -> usize {
    len.next_power_of_two() * 8
}

/// Dynamic shared memory of `topk_sample_f32`: the row padded to a power of two (values and
/// classes) and the k kept weights and classes.
pub fn topk_smem_bytes(vocab: usize, k: usize) -> usize {
    (2 * vocab.next_power_of_two() + 2 * k) * 4
}

/// Shapes of one sampling step: logits [b, l, v]; `n` positions per image; top-`k` with
/// divisor `temperature`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleStep {
    pub b: usize,
    pub l: usize,
    pub v: usize,
    pub n: usize,
    pub k: usize,
    pub temperature: f32,
}

/// One sampler step on the device: (positions u32 [b, n], tokens u32 [b, n]). `known` is u32
/// [b, l] (non-zero = known), `uniforms` f32 [b, n] in [0, 1).
pub fn sample_step(
    logits: &CudaStorage,
    known: &CudaStorage,
    uniforms: &CudaStorage,
    uniform_offset: usize,
    s: SampleStep,
) -> Result<(CudaStorage, CudaStorage)> {
    check_f32("sample_step", logits, s.b * s.l * s.v)?;
    check_f32("sample_step", uniforms, uniform_offset + s.b * s.n)?;
    u32_arg("sample_step", s.b * s.l * s.v)?;
    if known.dtype() != DType::U32 || known.len() < s.b * s.l {
        return Err(Error::shape(
            "sample_step",
            format!(
                "known must be u32 [{}], got {:?} [{}]",
                s.b * s.l,
                known.dtype(),
                known.len()
            ),
        ));
    }
    if s.k == 0 || s.k > s.v || s.n == 0 || s.n > s.l {
        return Err(Error::shape(
            "sample_step",
            format!(
                "top-k {} of {} classes, {} of {} positions",
                s.k, s.v, s.n, s.l
            ),
        ));
    }
    // Dynamic shared memory stays within the 48 KiB every launch may use.
    if select_smem_bytes(s.l) > 48 * 1024 || topk_smem_bytes(s.v, s.k) > 48 * 1024 {
        return Err(Error::shape(
            "sample_step",
            format!(
                "{} positions or {} classes exceed the kernels' shared memory",
                s.l, s.v
            ),
        ));
    }
    let positions = choose_positions(logits, known, (s.b, s.l, s.v), s.n)?;
    let rows = RowSource::Chosen {
        positions: &positions,
        seq_len: s.l,
        per_image: s.n,
    };
    let tokens = topk_sample_rows(logits, uniforms, uniform_offset, rows, s.b * s.n, (s.v, s.k), s.temperature)?;
    Ok((positions, tokens))
}

/// For each of `b` images (logits `[b, l, v]`, known u32 flags `[b * l]`), the `n` unknown
/// positions with the largest max logit, descending (ties: lowest position): u32 `[b * n]`,
/// `NONE` in slots past the image's unknown positions. Shapes are checked by the caller.
pub fn choose_positions(
    logits: &CudaStorage,
    known: &CudaStorage,
    (b, l, v): (usize, usize, usize),
    n: usize,
) -> Result<CudaStorage> {
    check_f32("choose_positions", logits, b * l * v)?;
    if known.dtype() != DType::U32 || known.len() < b * l || select_smem_bytes(l) > 48 * 1024 || n == 0 || n > l {
        return Err(Error::shape(
            "choose_positions",
            format!("{n} of {l} positions (at most 4096) with {} known flags for {b} images", known.len()),
        ));
    }
    let dev = logits.device();
    let score = dev.alloc(DType::F32, b * l)?;
    let positions = dev.alloc(DType::U32, b * n)?;
    run_on_device(
        dev,
        &row_max_launch(device_ptr(&score, 0), device_ptr(logits, 0), b * l, v),
    )?;
    let launch = select_positions_launch(
        device_ptr(&positions, 0),
        device_ptr(&score, 0),
        device_ptr(known, 0),
        b,
        l,
        n,
    );
    run_on_device(dev, &launch)?;
    Ok(positions)
}

/// Which logits rows `topk_sample_rows` samples.
#[derive(Clone, Copy)]
pub enum RowSource<'a> {
    /// Every row of the logits, in order.
    All,
    /// Row `(q / per_image) * seq_len + positions[q]` for sampled row q (`NONE` gives `NONE`).
    Chosen {
        positions: &'a CudaStorage,
        seq_len: usize,
        per_image: usize,
    },
}

/// One token per sampled row (u32 `[rows]`): top-`k` of `v` classes, softmax of
/// logit / `temperature`, inverse-CDF draw with `uniforms[uniform_offset + row]` in [0, 1).
pub fn topk_sample_rows(
    logits: &CudaStorage,
    uniforms: &CudaStorage,
    uniform_offset: usize,
    source: RowSource,
    rows: usize,
    (v, k): (usize, usize),
    temperature: f32,
) -> Result<CudaStorage> {
    check_f32("topk_sample", uniforms, uniform_offset + rows)?;
    if k == 0 || k > v || topk_smem_bytes(v, k) > 48 * 1024 {
        return Err(Error::shape(
            "topk_sample",
            format!("top-k {k} of {v} classes (the kernel's shared memory holds 2 (v rounded up to a power of two) + 2k <= 12288 words)"),
        ));
    }
    let (positions, seq_len, per_image) = match source {
        RowSource::All => {
            check_f32("topk_sample", logits, rows * v)?;
            (0, 1, 1)
        }
        RowSource::Chosen { positions, seq_len, per_image } => {
            check_f32("topk_sample", logits, rows.div_ceil(per_image.max(1)) * seq_len * v)?;
            (device_ptr(positions, 0), seq_len, per_image)
        }
    };
    u32_arg("topk_sample", logits.len())?;
    let p = TopkParams {
        rows: rows as u32,
        vocab: v as u32,
        k: k as u32,
        seq_len: seq_len as u32,
        per_image: per_image as u32,
        temperature,
    };
    let dev = logits.device();
    let tokens = dev.alloc(DType::U32, rows)?;
    let launch = topk_sample_launch(
        device_ptr(&tokens, 0),
        device_ptr(logits, 0),
        device_ptr(uniforms, uniform_offset),
        positions,
        &p,
    );
    run_on_device(dev, &launch)?;
    Ok(tokens)
}

/// The sampler's per-position state on the device, updated in place by `apply_picks`:
/// f32 `table [B*L, C]`, u32 `tokens`, `known` and `order` `[B*L]`.
pub struct PickTargets<'a> {
    pub table: &'a CudaStorage,
    pub tokens: &'a CudaStorage,
    pub known: &'a CudaStorage,
    pub order: &'a CudaStorage,
}

/// One block per pick slot; the codebook row is copied by the block's threads.
pub fn apply_picks_launch(t: [u64; 4], codebook: u64, positions: u64, drawn: u64, p: &PickParams) -> Launch {
    Launch {
        module: MODULE,
        kernel: "apply_picks_f32",
        cfg: LaunchCfg::linear(p.picks.clamp(1, 65535), 128, 0),
        args: vec![
            KArg::Ptr(t[0]),
            KArg::Ptr(t[1]),
            KArg::Ptr(t[2]),
            KArg::Ptr(t[3]),
            KArg::Ptr(codebook),
            KArg::Ptr(positions),
            KArg::Ptr(drawn),
            KArg::pod(p),
        ],
    }
}

/// Write the step's picks (u32 `positions`/`drawn` `[B*n]` from `sample_step`) into the state:
/// codebook rows (f32 `[codebook_rows, C]`) into the table, tokens, known flags, fill order.
pub fn apply_picks(
    t: &PickTargets,
    codebook: &CudaStorage,
    codebook_rows: usize,
    positions: &CudaStorage,
    drawn: &CudaStorage,
    p: &PickParams,
) -> Result<()> {
    const OP: &str = "apply_picks";
    let (slots, cells, width) = (p.picks as usize, p.picks as usize / p.per_image.max(1) as usize * p.seq_len as usize, p.width as usize);
    check_f32(OP, t.table, cells * width)?;
    check_f32(OP, codebook, codebook_rows * width)?;
    u32_arg(OP, cells * width)?;
    u32_arg(OP, codebook_rows * width)?;
    for (what, s, n) in [("tokens", t.tokens, cells), ("known", t.known, cells), ("order", t.order, cells), ("positions", positions, slots), ("drawn", drawn, slots)] {
        if s.dtype() != DType::U32 || s.len() < n {
            return Err(Error::shape(OP, format!("{what} must be u32 [{n}], got {:?} [{}]", s.dtype(), s.len())));
        }
    }
    let targets = [device_ptr(t.table, 0), device_ptr(t.tokens, 0), device_ptr(t.known, 0), device_ptr(t.order, 0)];
    let launch = apply_picks_launch(targets, device_ptr(codebook, 0), device_ptr(positions, 0), device_ptr(drawn, 0), p);
    run_on_device(t.table.device(), &launch)
}
