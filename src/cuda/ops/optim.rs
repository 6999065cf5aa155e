//! Launchers for `kernels/optim.cu`: the Adam/AdamW step, the weight EMA, scaling and gradient
//! accumulation (all in place on device buffers, spec §6.0-§6.1), the f64 sum of squares for
//! clipping by global norm, and the EMA codebook update of spec §2.3 (assignment statistics,
//! then cluster-size / embedding-sum EMA and normalisation). The in-place functions write
//! through `&CudaStorage`: device memory is not guarded by Rust's borrows, and the caller owns
//! the buffers it updates (the optimiser state).

use super::checks::check_u32;
use super::gather::check_indices;
use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::codebook::{CodebookEmaParams, CodebookParams};
use crate::params::optim::AdamParams;

const MODULE: &str = "optim";
/// Threads per block (OPT_THREADS in the kernel).
const THREADS: u32 = 256;
const MAX_BLOCKS: u32 = 4096;
/// First-pass blocks of the sum of squares: at most this many, at least 16 elements a thread.
const MAX_PARTS: usize = 1024;

fn elements(n: usize) -> LaunchCfg {
    LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS)
}

fn launch(kernel: &'static str, cfg: LaunchCfg, args: Vec<KArg>) -> Launch {
    Launch {
        module: MODULE,
        kernel,
        cfg,
        args,
    }
}

/// `struct AdamParams` of the kernel: the fields of params/optim.rs in declared order.
fn adam_arg(p: &AdamParams) -> KArg {
    let words = [
        p.n,
        p.decoupled,
        p.beta2.to_bits(),
        p.one_minus_beta1.to_bits(),
        p.one_minus_beta2.to_bits(),
        p.eps.to_bits(),
        p.weight_decay.to_bits(),
        p.decay_factor.to_bits(),
        p.step_size.to_bits(),
        p.bias_correction2_sqrt.to_bits(),
    ];
    KArg::Struct(bytemuck::cast_slice(&words).to_vec())
}

/// One Adam/AdamW step over `p.n` elements: param, m and v updated in place.
pub fn adam_step_launch(param: u64, grad: u64, m: u64, v: u64, p: &AdamParams) -> Launch {
    let args = vec![
        KArg::Ptr(param),
        KArg::Ptr(grad),
        KArg::Ptr(m),
        KArg::Ptr(v),
        adam_arg(p),
    ];
    launch("adam_step_f32", elements(p.n as usize), args)
}

/// ema = decay * ema + (1 - decay) * param, in place.
pub fn ema_update_launch(ema: u64, param: u64, n: usize, decay: f32) -> Launch {
    let args = vec![
        KArg::Ptr(ema),
        KArg::Ptr(param),
        KArg::U32(n as u32),
        KArg::F32(decay),
    ];
    launch("ema_update_f32", elements(n), args)
}

/// x *= s, in place.
pub fn scale_launch(x: u64, n: usize, s: f32) -> Launch {
    let args = vec![KArg::Ptr(x), KArg::U32(n as u32), KArg::F32(s)];
    launch("scale_f32", elements(n), args)
}

/// acc += g, in place.
pub fn accumulate_launch(acc: u64, g: u64, n: usize) -> Launch {
    let args = vec![KArg::Ptr(acc), KArg::Ptr(g), KArg::U32(n as u32)];
    launch("accumulate_f32", elements(n), args)
}

/// First-pass blocks of the sum of squares of n elements (a function of n only).
pub fn sq_norm_parts(n: usize) -> usize {
    n.div_ceil(THREADS as usize * 16).clamp(1, MAX_PARTS)
}

/// The two launches of the sum of squares: `part` holds `2 * sq_norm_parts(n)` f32, `out` two
/// (hi, lo) whose f64 sum is the result.
pub fn sq_norm_launches(out: u64, part: u64, x: u64, n: usize) -> Vec<Launch> {
    let parts = sq_norm_parts(n);
    vec![
        launch(
            "sq_norm_partial_f32",
            LaunchCfg::linear(parts as u32, THREADS, 0),
            vec![KArg::Ptr(part), KArg::Ptr(x), KArg::U32(n as u32)],
        ),
        launch(
            "sq_norm_finish_f32",
            LaunchCfg::linear(1, THREADS, 0),
            vec![KArg::Ptr(out), KArg::Ptr(part), KArg::U32(parts as u32)],
        ),
    ]
}

/// counts `[codes]` and sums `[codes, dim]` of the rows of z `[n, dim]` assigned by idx `[n]`:
/// one block per code.
pub fn codebook_stats_launch(
    counts: u64,
    sums: u64,
    z: u64,
    idx: u64,
    p: &CodebookParams,
) -> Launch {
    let args = vec![
        KArg::Ptr(counts),
        KArg::Ptr(sums),
        KArg::Ptr(z),
        KArg::Ptr(idx),
        KArg::U32(p.n),
        KArg::U32(p.codes),
        KArg::U32(p.dim),
    ];
    let blocks = (p.codes as usize).clamp(1, 1 << 16) as u32;
    launch(
        "codebook_stats_f32",
        LaunchCfg::linear(blocks, THREADS, 0),
        args,
    )
}

/// Device addresses of the EMA quantiser's buffers for `codebook_ema_launches`.
#[derive(Clone, Copy, Debug)]
pub struct CodebookEmaPtrs {
    /// `[codes]`, updated in place.
    pub cluster_size: u64,
    /// `[codes, dim]`, updated in place.
    pub embedding_avg: u64,
    /// `[codes, dim]`, overwritten.
    pub embedding: u64,
    /// `[codes]` and `[codes, dim]`: the (all-reduced) assignment statistics.
    pub counts: u64,
    pub sums: u64,
    /// Two f32 of scratch.
    pub scratch: u64,
}

/// The two launches of one EMA codebook step (cluster sizes and their total, then the
/// embedding sums and the normalised codebook).
pub fn codebook_ema_launches(b: &CodebookEmaPtrs, p: &CodebookEmaParams) -> Vec<Launch> {
    let size = launch(
        "codebook_ema_size_f32",
        LaunchCfg::linear(1, THREADS, 0),
        vec![
            KArg::Ptr(b.cluster_size),
            KArg::Ptr(b.scratch),
            KArg::Ptr(b.counts),
            KArg::U32(p.codes),
            KArg::F32(p.decay),
            KArg::F32(p.eps),
        ],
    );
    let embed = launch(
        "codebook_ema_embed_f32",
        elements(p.codes as usize * p.dim as usize),
        vec![
            KArg::Ptr(b.embedding),
            KArg::Ptr(b.embedding_avg),
            KArg::Ptr(b.sums),
            KArg::Ptr(b.cluster_size),
            KArg::Ptr(b.scratch),
            KArg::U32(p.codes),
            KArg::U32(p.dim),
            KArg::F32(p.decay),
            KArg::F32(p.eps),
        ],
    );
    vec![size, embed]
}

/// One Adam/AdamW update of `p.n` elements, in place on param, m (exp_avg) and v (exp_avg_sq).
pub fn adam_step(
    param: &CudaStorage,
    grad: &CudaStorage,
    m: &CudaStorage,
    v: &CudaStorage,
    p: &AdamParams,
) -> Result<()> {
    let n = p.n as usize;
    for t in [param, grad, m, v] {
        check_f32("adam_step", t, n)?;
    }
    let l = adam_step_launch(
        device_ptr(param, 0),
        device_ptr(grad, 0),
        device_ptr(m, 0),
        device_ptr(v, 0),
        p,
    );
    run_on_device(param.device(), &l)
}

/// ema = decay * ema + (1 - decay) * param over n elements, in place.
pub fn ema_update(ema: &CudaStorage, param: &CudaStorage, n: usize, decay: f32) -> Result<()> {
    check_f32("ema_update", ema, n)?;
    check_f32("ema_update", param, n)?;
    u32_arg("ema_update", n)?;
    let l = ema_update_launch(device_ptr(ema, 0), device_ptr(param, 0), n, decay);
    run_on_device(ema.device(), &l)
}

/// x *= s over n elements, in place.
pub fn scale(x: &CudaStorage, n: usize, s: f32) -> Result<()> {
    check_f32("scale", x, n)?;
    u32_arg("scale", n)?;
    run_on_device(x.device(), &scale_launch(device_ptr(x, 0), n, s))
}

/// acc += g over n elements, in place.
pub fn accumulate(acc: &CudaStorage, g: &CudaStorage, n: usize) -> Result<()> {
    check_f32("accumulate", acc, n)?;
    check_f32("accumulate", g, n)?;
    u32_arg("accumulate", n)?;
    run_on_device(
        acc.device(),
        &accumulate_launch(device_ptr(acc, 0), device_ptr(g, 0), n),
    )
}

/// Sum of squares of the first n elements, in f64 (waits for the stream: two words come back).
pub fn sq_norm(x: &CudaStorage, n: usize) -> Result<f64> {
    Ok(sq_norms(&[(x, n)])?[0])
}

/// The sums of squares of several buffers (the first n elements of each, all on one device), in
/// f64, with one read-back for all of them (a gradient-norm clip waits for the stream once per
/// step instead of once per parameter).
pub fn sq_norms(xs: &[(&CudaStorage, usize)]) -> Result<Vec<f64>> {
    let Some((first, _)) = xs.first() else {
        return Ok(Vec::new());
    };
    let dev = first.device();
    let mut part_offsets = Vec::with_capacity(xs.len());
    let mut parts_total = 0;
    for &(x, n) in xs {
        check_f32("sq_norm", x, n)?;
        u32_arg("sq_norm", n)?;
        if !x.device().same_as(dev) {
            return Err(Error::Cuda("sq_norms: buffers on different devices".into()));
        }
        part_offsets.push(parts_total);
        parts_total += 2 * sq_norm_parts(n);
    }
    let out = dev.alloc(DType::F32, 2 * xs.len())?;
    let part = dev.alloc(DType::F32, parts_total)?;
    for (i, &(x, n)) in xs.iter().enumerate() {
        let launches = sq_norm_launches(device_ptr(&out, 2 * i), device_ptr(&part, part_offsets[i]), device_ptr(x, 0), n);
        for l in launches {
            run_on_device(dev, &l)?;
        }
    }
    let v = out.download()?.to_f32_vec();
    Ok(v.chunks(2).map(|hl| hl[0] as f64 + hl[1] as f64).collect())
}

/// (counts `[codes]`, sums `[codes, dim]`) of the rows of z `[n, dim]` by code idx `[n]` (u32);
/// an index >= codes is an Err naming it.
pub fn codebook_assignment_stats(
    z: &CudaStorage,
    idx: &CudaStorage,
    p: &CodebookParams,
) -> Result<(CudaStorage, CudaStorage)> {
    const OP: &str = "codebook_assignment_stats";
    let (n, k, d) = (p.n as usize, p.codes as usize, p.dim as usize);
    check_f32(OP, z, n * d)?;
    check_u32(OP, idx, n)?;
    u32_arg(OP, (n * d).max(k * d))?;
    check_indices(OP, idx, n, k)?;
    let dev = z.device();
    let (counts, sums) = (dev.alloc(DType::F32, k)?, dev.alloc(DType::F32, k * d)?);
    if k == 0 {
        return Ok((counts, sums));
    }
    let l = codebook_stats_launch(
        device_ptr(&counts, 0),
        device_ptr(&sums, 0),
        device_ptr(z, 0),
        device_ptr(idx, 0),
        p,
    );
    run_on_device(dev, &l)?;
    Ok((counts, sums))
}

/// One EMA codebook step from the statistics, in place on cluster_size `[codes]`,
/// embedding_avg `[codes, dim]` and embedding `[codes, dim]`.
pub fn codebook_ema_apply(
    cluster_size: &CudaStorage,
    embedding_avg: &CudaStorage,
    embedding: &CudaStorage,
    counts: &CudaStorage,
    sums: &CudaStorage,
    p: &CodebookEmaParams,
) -> Result<()> {
    const OP: &str = "codebook_ema_apply";
    let (k, d) = (p.codes as usize, p.dim as usize);
    if k == 0 {
        return Err(Error::shape(OP, "a codebook of zero codes"));
    }
    u32_arg(OP, k * d)?;
    for (t, len) in [
        (cluster_size, k),
        (counts, k),
        (embedding_avg, k * d),
        (embedding, k * d),
        (sums, k * d),
    ] {
        check_f32(OP, t, len)?;
    }
    let dev = embedding.device();
    let scratch = dev.alloc(DType::F32, 2)?;
    let ptrs = CodebookEmaPtrs {
        cluster_size: device_ptr(cluster_size, 0),
        embedding_avg: device_ptr(embedding_avg, 0),
        embedding: device_ptr(embedding, 0),
        counts: device_ptr(counts, 0),
        sums: device_ptr(sums, 0),
        scratch: device_ptr(&scratch, 0),
    };
    for l in codebook_ema_launches(&ptrs, p) {
        run_on_device(dev, &l)?;
    }
    Ok(())
}
