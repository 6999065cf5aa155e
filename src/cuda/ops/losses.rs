//! Launchers for `kernels/losses.cu`: the element-wise mean losses of spec §6.5 (L1, MSE, BCE on
//! probabilities, hinge terms, a scaled mean, the hole fraction) forward (a two-pass f64 sum) and
//! backward (element-wise, reading the output gradient from the device), and cross-entropy over
//! the last dim of logits `[rows, classes]` with u32 targets, an ignore index and the weighted
//! form of spec §3.5. Every loss comes back as a one-element f32 device buffer; every backward
//! takes the loss's output gradient `g` as a one-element f32 device buffer (no host round trip).

use super::checks::{check_u32, run_flag_launch};
use crate::cuda::launch::{
    check_f32, device_ptr, row_block_threads, row_blocks, run_on_device, u32_arg, KArg, Launch,
    LaunchCfg,
};
use crate::cuda::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::losses::CrossEntropyParams;

const MODULE: &str = "losses";
/// Threads per block of every loss kernel (LOSS_THREADS in the kernel) except the CE rows.
const THREADS: u32 = 256;
/// Elements per thread, at least, of the first pass; and the most first-pass blocks.
const PER_THREAD: usize = 16;
const MAX_PARTS: usize = 1024;

/// The element-wise losses (the `kind` codes of the kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// `mean |y - x|` of (a = y, b = x).
    L1 = 0,
    /// `mean (y - x)^2`.
    Mse = 1,
    /// `mean -(t ln p + (1 - t) ln(1 - p))` of (a = p, b = t).
    Bce = 2,
    /// `mean relu(1 + sign a)`.
    Hinge = 3,
    /// `c * mean a`.
    ScaledMean = 4,
    /// `mean (1 - a)`.
    HoleFraction = 5,
}

impl LossKind {
    /// Whether the loss reads a second input b.
    pub fn has_pair(self) -> bool {
        matches!(self, LossKind::L1 | LossKind::Mse | LossKind::Bce)
    }
}

/// First-pass blocks for n elements (a function of n only, so the sum order is fixed).
pub fn loss_parts(n: usize) -> usize {
    n.div_ceil(THREADS as usize * PER_THREAD)
        .clamp(1, MAX_PARTS)
}

/// The two launches of a loss forward: `part` holds `2 * loss_parts(n)` f32; `out` one f32.
/// `sign` is used by Hinge, `c` by ScaledMean; `b` is 0 for the single-input kinds.
#[allow(clippy::too_many_arguments)]
pub fn loss_fwd_launches(
    out: u64,
    part: u64,
    a: u64,
    b: u64,
    n: usize,
    kind: LossKind,
    sign: f32,
    c: f32,
) -> Vec<Launch> {
    let parts = loss_parts(n);
    let scale = if kind == LossKind::ScaledMean { c } else { 1.0 };
    let sum = Launch {
        module: MODULE,
        kernel: "loss_sum_f32",
        cfg: LaunchCfg::linear(parts as u32, THREADS, 0),
        args: vec![
            KArg::Ptr(part),
            KArg::Ptr(a),
            KArg::Ptr(b),
            KArg::U32(n as u32),
            KArg::I32(kind as i32),
            KArg::F32(sign),
        ],
    };
    let finish = Launch {
        module: MODULE,
        kernel: "loss_finish_f32",
        cfg: LaunchCfg::linear(1, THREADS, 0),
        args: vec![
            KArg::Ptr(out),
            KArg::Ptr(part),
            KArg::U32(parts as u32),
            KArg::U32(n as u32),
            KArg::F32(scale),
        ],
    };
    vec![sum, finish]
}

/// Element-wise backward: `da` (and `db = -da` for L1 / MSE when non-zero) from the one-element
/// output gradient `g`.
#[allow(clippy::too_many_arguments)]
pub fn loss_bwd_launch(
    da: u64,
    db: u64,
    a: u64,
    b: u64,
    g: u64,
    n: usize,
    kind: LossKind,
    sign: f32,
    c: f32,
) -> Launch {
    let args = vec![
        KArg::Ptr(da),
        KArg::Ptr(db),
        KArg::Ptr(a),
        KArg::Ptr(b),
        KArg::Ptr(g),
        KArg::U32(n as u32),
        KArg::I32(kind as i32),
        KArg::F32(sign),
        KArg::F32(c),
    ];
    Launch {
        module: MODULE,
        kernel: "loss_bwd_f32",
        cfg: LaunchCfg::for_elements(n, THREADS, 4096),
        args,
    }
}

fn ce_row_cfg(p: &CrossEntropyParams) -> LaunchCfg {
    LaunchCfg::linear(
        row_blocks(p.rows as usize),
        row_block_threads(p.classes as usize),
        0,
    )
}

/// `row_ce [rows]`: the per-row cross-entropy (0 on ignored rows).
pub fn ce_rows_launch(row_ce: u64, logits: u64, targets: u64, p: &CrossEntropyParams) -> Launch {
    let args = vec![
        KArg::Ptr(row_ce),
        KArg::Ptr(logits),
        KArg::Ptr(targets),
        KArg::U32(p.rows),
        KArg::U32(p.classes),
        KArg::U32(p.ignore_index),
    ];
    Launch {
        module: MODULE,
        kernel: "ce_rows_f32",
        cfg: ce_row_cfg(p),
        args,
    }
}

/// `loss [1]` (may be 0) and `den [2]` (the denominator as an f32 pair) from `row_ce` (may be 0
/// when only `den` is wanted); `weights` 0 for the plain mean.
pub fn ce_finish_launch(
    loss: u64,
    den: u64,
    row_ce: u64,
    targets: u64,
    weights: u64,
    p: &CrossEntropyParams,
) -> Launch {
    let args = vec![
        KArg::Ptr(loss),
        KArg::Ptr(den),
        KArg::Ptr(row_ce),
        KArg::Ptr(targets),
        KArg::Ptr(weights),
        KArg::U32(p.rows),
        KArg::U32(p.ignore_index),
    ];
    Launch {
        module: MODULE,
        kernel: "ce_finish_f32",
        cfg: LaunchCfg::linear(1, THREADS, 0),
        args,
    }
}

/// `dlogits [rows, classes]` from the logits, the output gradient `g [1]` and `den [2]` from
/// `ce_finish_launch`.
#[allow(clippy::too_many_arguments)]
pub fn ce_bwd_launch(
    dlogits: u64,
    logits: u64,
    targets: u64,
    weights: u64,
    g: u64,
    den: u64,
    p: &CrossEntropyParams,
) -> Launch {
    let args = vec![
        KArg::Ptr(dlogits),
        KArg::Ptr(logits),
        KArg::Ptr(targets),
        KArg::Ptr(weights),
        KArg::Ptr(g),
        KArg::Ptr(den),
        KArg::U32(p.rows),
        KArg::U32(p.classes),
        KArg::U32(p.ignore_index),
    ];
    Launch {
        module: MODULE,
        kernel: "ce_bwd_f32",
        cfg: ce_row_cfg(p),
        args,
    }
}

/// `*bad` (0xffffffff beforehand) lowered to the first row whose target is neither a class nor
/// the ignore index.
pub fn ce_target_check_launch(bad: u64, targets: u64, p: &CrossEntropyParams) -> Launch {
    let args = vec![
        KArg::Ptr(bad),
        KArg::Ptr(targets),
        KArg::U32(p.rows),
        KArg::U32(p.classes),
        KArg::U32(p.ignore_index),
    ];
    Launch {
        module: MODULE,
        kernel: "ce_target_check_u32",
        cfg: LaunchCfg::for_elements(p.rows as usize, THREADS, 4096),
        args,
    }
}

fn check_inputs(
    op: &'static str,
    kind: LossKind,
    a: &CudaStorage,
    b: Option<&CudaStorage>,
    n: usize,
) -> Result<()> {
    u32_arg(op, n)?;
    check_f32(op, a, n)?;
    match (kind.has_pair(), b) {
        (true, Some(b)) => check_f32(op, b, n),
        (false, None) => Ok(()),
        _ => Err(Error::shape(
            op,
            format!("{kind:?} takes {} input(s)", 1 + kind.has_pair() as usize),
        )),
    }
}

/// The mean loss `kind` over the first n elements of a (and b): a one-element f32 buffer.
/// `sign` is used by Hinge (-1: real logits, +1: fakes), `c` by ScaledMean.
pub fn loss_mean(
    kind: LossKind,
    a: &CudaStorage,
    b: Option<&CudaStorage>,
    n: usize,
    sign: f32,
    c: f32,
) -> Result<CudaStorage> {
    check_inputs("loss_mean", kind, a, b, n)?;
    let dev = a.device();
    let out = dev.alloc(DType::F32, 1)?;
    let part = dev.alloc(DType::F32, 2 * loss_parts(n))?;
    let pb = b.map_or(0, |b| device_ptr(b, 0));
    for l in loss_fwd_launches(
        device_ptr(&out, 0),
        device_ptr(&part, 0),
        device_ptr(a, 0),
        pb,
        n,
        kind,
        sign,
        c,
    ) {
        run_on_device(dev, &l)?;
    }
    Ok(out)
}

/// Gradients of `loss_mean(kind, a, b, n, sign, c)` times the one-element output gradient g:
/// (d/da, d/db) — d/db is Some for L1 and MSE only (the BCE target gets no gradient).
pub fn loss_mean_bwd(
    kind: LossKind,
    a: &CudaStorage,
    b: Option<&CudaStorage>,
    g: &CudaStorage,
    n: usize,
    sign: f32,
    c: f32,
) -> Result<(CudaStorage, Option<CudaStorage>)> {
    const OP: &str = "loss_mean_backward";
    check_inputs(OP, kind, a, b, n)?;
    check_f32(OP, g, 1)?;
    let dev = a.device();
    let da = dev.alloc(DType::F32, n)?;
    let db = if matches!(kind, LossKind::L1 | LossKind::Mse) {
        Some(dev.alloc(DType::F32, n)?)
    } else {
        None
    };
    let launch = loss_bwd_launch(
        device_ptr(&da, 0),
        db.as_ref().map_or(0, |d| device_ptr(d, 0)),
        device_ptr(a, 0),
        b.map_or(0, |b| device_ptr(b, 0)),
        device_ptr(g, 0),
        n,
        kind,
        sign,
        c,
    );
    run_on_device(dev, &launch)?;
    Ok((da, db))
}

/// Checks logits / targets / weights and that every target is a class or the ignore index
/// (waits for the stream: one word comes back).
fn check_ce(
    op: &'static str,
    logits: &CudaStorage,
    targets: &CudaStorage,
    weights: Option<&CudaStorage>,
    p: &CrossEntropyParams,
) -> Result<()> {
    let (rows, classes) = (p.rows as usize, p.classes as usize);
    if classes == 0 {
        return Err(Error::shape(op, "zero classes"));
    }
    u32_arg(op, rows * classes)?;
    check_f32(op, logits, rows * classes)?;
    check_u32(op, targets, rows)?;
    if let Some(w) = weights {
        check_f32(op, w, rows)?;
    }
    if rows == 0 {
        return Ok(());
    }
    let pt = device_ptr(targets, 0);
    let bad = run_flag_launch(logits.device(), |flag| ce_target_check_launch(flag, pt, p))?;
    match bad {
        None => Ok(()),
        Some(i) => Err(Error::shape(
            op,
            format!("the target at row {i} is out of range for {classes} classes"),
        )),
    }
}

fn ce_den(dev: &CudaDevice) -> Result<CudaStorage> {
    dev.alloc(DType::F32, 2)
}

/// Cross-entropy of logits `[rows, classes]` against u32 targets `[rows]`: the mean over
/// non-ignored rows (weights None) or `sum w ce / (sum w + 1e-18)` (spec §3.5). One f32.
pub fn cross_entropy(
    logits: &CudaStorage,
    targets: &CudaStorage,
    weights: Option<&CudaStorage>,
    p: &CrossEntropyParams,
) -> Result<CudaStorage> {
    check_ce("cross_entropy", logits, targets, weights, p)?;
    let dev = logits.device();
    let (loss, den) = (dev.alloc(DType::F32, 1)?, ce_den(dev)?);
    let row_ce = dev.alloc(DType::F32, p.rows as usize)?;
    let (pt, pw) = (
        device_ptr(targets, 0),
        weights.map_or(0, |w| device_ptr(w, 0)),
    );
    run_on_device(
        dev,
        &ce_rows_launch(device_ptr(&row_ce, 0), device_ptr(logits, 0), pt, p),
    )?;
    let finish = ce_finish_launch(
        device_ptr(&loss, 0),
        device_ptr(&den, 0),
        device_ptr(&row_ce, 0),
        pt,
        pw,
        p,
    );
    run_on_device(dev, &finish)?;
    Ok(loss)
}

/// d loss / d logits `[rows, classes]` times the one-element output gradient g.
pub fn cross_entropy_bwd(
    logits: &CudaStorage,
    targets: &CudaStorage,
    weights: Option<&CudaStorage>,
    g: &CudaStorage,
    p: &CrossEntropyParams,
) -> Result<CudaStorage> {
    const OP: &str = "cross_entropy_backward";
    check_ce(OP, logits, targets, weights, p)?;
    check_f32(OP, g, 1)?;
    let dev = logits.device();
    let den = ce_den(dev)?;
    let d = dev.alloc(DType::F32, p.rows as usize * p.classes as usize)?;
    let (pt, pw) = (
        device_ptr(targets, 0),
        weights.map_or(0, |w| device_ptr(w, 0)),
    );
    run_on_device(dev, &ce_finish_launch(0, device_ptr(&den, 0), 0, pt, pw, p))?;
    let launch = ce_bwd_launch(
        device_ptr(&d, 0),
        device_ptr(logits, 0),
        pt,
        pw,
        device_ptr(g, 0),
        device_ptr(&den, 0),
        p,
    );
    run_on_device(dev, &launch)?;
    Ok(d)
}
