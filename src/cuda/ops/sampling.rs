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
    /// Multiplier on the logits (1 / temperature; the official code's fixed 1).
    pub inv_temperature: f32,
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
    let cfg = LaunchCfg::linear(b.clamp(1, 65535) as u32, THREADS, (l * 8) as u32);
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
    let smem = (p.vocab + 3 * p.k) * 4;
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

/// Shapes of one sampling step: logits [b, l, v]; `n` positions per image; top-`k` with
/// multiplier `inv_temperature`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleStep {
    pub b: usize,
    pub l: usize,
    pub v: usize,
    pub n: usize,
    pub k: usize,
    pub inv_temperature: f32,
}

/// One sampler step on the device: (positions u32 [b, n], tokens u32 [b, n]). `known` is u32
/// [b, l] (non-zero = known), `uniforms` f32 [b, n] in [0, 1).
pub fn sample_step(
    logits: &CudaStorage,
    known: &CudaStorage,
    uniforms: &CudaStorage,
    s: SampleStep,
) -> Result<(CudaStorage, CudaStorage)> {
    check_f32("sample_step", logits, s.b * s.l * s.v)?;
    check_f32("sample_step", uniforms, s.b * s.n)?;
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
    if s.l * 8 > 48 * 1024 || (s.v + 3 * s.k) * 4 > 48 * 1024 {
        return Err(Error::shape(
            "sample_step",
            format!(
                "{} positions or {} classes exceed the kernels' shared memory",
                s.l, s.v
            ),
        ));
    }
    let dev = logits.device();
    let score = dev.alloc(DType::F32, s.b * s.l)?;
    let (positions, tokens) = (
        dev.alloc(DType::U32, s.b * s.n)?,
        dev.alloc(DType::U32, s.b * s.n)?,
    );
    let plog = device_ptr(logits, 0);
    run_on_device(
        dev,
        &row_max_launch(device_ptr(&score, 0), plog, s.b * s.l, s.v),
    )?;
    run_on_device(
        dev,
        &select_positions_launch(
            device_ptr(&positions, 0),
            device_ptr(&score, 0),
            device_ptr(known, 0),
            s.b,
            s.l,
            s.n,
        ),
    )?;
    let p = TopkParams {
        rows: (s.b * s.n) as u32,
        vocab: s.v as u32,
        k: s.k as u32,
        seq_len: s.l as u32,
        per_image: s.n as u32,
        inv_temperature: s.inv_temperature,
    };
    run_on_device(
        dev,
        &topk_sample_launch(
            device_ptr(&tokens, 0),
            plog,
            device_ptr(uniforms, 0),
            device_ptr(&positions, 0),
            &p,
        ),
    )?;
    Ok((positions, tokens))
}
