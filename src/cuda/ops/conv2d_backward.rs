//! Launchers for `kernels/conv2d_backward.cu`: the gradients of the 2-D convolution of
//! `conv2d.rs` (NCHW input `[n, c, h, w]`, weight `[o, c, kh, kw]`, output gradient
//! `g [n, o, oh, ow]`, the same `Conv2dParams` with stride / padding / dilation; spec §2, §4).
//! * `dx [n, c, h, w]`: implicit GEMM in gather form (one 64-pixel x 64-channel tile per block),
//!   one grid layer per stride phase so that only the taps that reach a pixel are summed; or,
//!   with `FDM_CONV_WIDE=1` and stride 1, the forward convolution of g with the flipped weight
//!   on the 128 x 64 tile kernel;
//! * `dw [o, c, kh, kw]`: a GEMM reducing over the n*oh*ow output positions, split into
//!   `weight_grad_splits` contiguous chunks (blockIdx.z) written to a workspace and summed in a
//!   fixed order by a second kernel: no float atomics, so results are bit-reproducible;
//! * `db [o]`: one block per channel.
//!
//! The split count depends only on the shape, never on the device or timing.

use super::conv2d::{conv2d_fwd_suits_wide, conv2d_fwd_wide_launch, wide_requested, Conv2dParams};
use crate::cuda::launch::{device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "conv2d_backward";
const TILE: usize = 64;
const THREADS: u32 = 256;
/// Blocks the weight gradient aims for: two per SM of a 132-SM H100.
const TARGET_BLOCKS: usize = 264;
/// Fewest output positions one split reduces over (a multiple of the kernel's slice of 16).
const MIN_CHUNK: usize = 256;
const MAX_SPLITS: usize = 64;

/// Checks an argument buffer before a launch: f32 and at least `need` elements, with an error
/// naming the argument. Pure, so it is tested without a GPU; the launchers pass it the storage's
/// dtype and length.
pub fn check_arg(
    op: &'static str,
    name: &str,
    dtype: DType,
    len: usize,
    need: usize,
) -> Result<()> {
    if dtype != DType::F32 {
        return Err(Error::shape(
            op,
            format!("{name} must be f32, got {dtype:?}"),
        ));
    }
    if len < need {
        return Err(Error::shape(
            op,
            format!("{name} has {len} elements, {need} needed"),
        ));
    }
    Ok(())
}

/// `check_arg` on a device buffer.
pub fn check_storage(op: &'static str, name: &str, s: &CudaStorage, need: usize) -> Result<()> {
    check_arg(op, name, s.dtype(), s.len(), need)
}

/// (splits, chunk): the weight gradient's reduction over `n * oh * ow` output positions cut into
/// `splits` contiguous chunks of `chunk` positions (a multiple of 16, at least `MIN_CHUNK` unless
/// the whole reduction is shorter), enough to give about `TARGET_BLOCKS` blocks in all.
pub fn weight_grad_splits(p: &Conv2dParams) -> (u32, u32) {
    let m = (p.n * p.oh * p.ow) as usize;
    let k = (p.c * p.kh * p.kw) as usize;
    let tiles = k.div_ceil(TILE) * (p.o as usize).div_ceil(TILE);
    let wanted = TARGET_BLOCKS.div_ceil(tiles).clamp(1, MAX_SPLITS);
    let chunk = m
        .div_ceil(wanted)
        .max(MIN_CHUNK.min(m))
        .next_multiple_of(16);
    (m.div_ceil(chunk) as u32, chunk as u32)
}

/// dx (+ bias[c] when `bias` != 0, which the transposed convolution's forward uses).
/// Grid: (pixel tiles of the largest stride phase, input-channel tiles, stride_h * stride_w
/// phases).
pub fn conv2d_bwd_input_launch(dx: u64, g: u64, w: u64, bias: u64, p: &Conv2dParams) -> Launch {
    let phase_pixels = (p.n * p.h.div_ceil(p.stride_h) * p.w.div_ceil(p.stride_w)) as usize;
    let grid = (
        phase_pixels.div_ceil(TILE) as u32,
        (p.c as usize).div_ceil(TILE) as u32,
        p.stride_h * p.stride_w,
    );
    Launch {
        module: MODULE,
        kernel: "conv2d_bwd_input_f32",
        cfg: LaunchCfg {
            grid,
            block: (THREADS, 1, 1),
            smem_bytes: 0,
        },
        args: vec![
            KArg::Ptr(dx),
            KArg::Ptr(g),
            KArg::Ptr(w),
            KArg::Ptr(bias),
            KArg::pod(p),
        ],
    }
}

/// The weight gradient's partial sums: `part` holds `splits * weight_len` floats (it is dw itself
/// when splits == 1). Grid: (k tiles, output-channel tiles, splits).
pub fn conv2d_bwd_weight_launch(
    part: u64,
    x: u64,
    g: u64,
    p: &Conv2dParams,
    splits: u32,
    chunk: u32,
) -> Launch {
    let k = (p.c * p.kh * p.kw) as usize;
    let grid = (
        k.div_ceil(TILE) as u32,
        (p.o as usize).div_ceil(TILE) as u32,
        splits,
    );
    Launch {
        module: MODULE,
        kernel: "conv2d_bwd_weight_f32",
        cfg: LaunchCfg {
            grid,
            block: (THREADS, 1, 1),
            smem_bytes: 0,
        },
        args: vec![
            KArg::Ptr(part),
            KArg::Ptr(x),
            KArg::Ptr(g),
            KArg::pod(p),
            KArg::U32(chunk),
        ],
    }
}

/// dw[e] = sum over the splits of part[z * len + e], in split order.
pub fn conv2d_bwd_weight_sum_launch(dw: u64, part: u64, len: u32, splits: u32) -> Launch {
    Launch {
        module: MODULE,
        kernel: "conv2d_bwd_weight_sum_f32",
        cfg: LaunchCfg::for_elements(len as usize, THREADS, 1024),
        args: vec![
            KArg::Ptr(dw),
            KArg::Ptr(part),
            KArg::U32(len),
            KArg::U32(splits),
        ],
    }
}

/// db[o] = sum of g[n, o, :, :] over n and the `plane` positions; one block per channel.
pub fn conv2d_bwd_bias_launch(db: u64, g: u64, n: u32, channels: u32, plane: u32) -> Launch {
    Launch {
        module: MODULE,
        kernel: "conv2d_bwd_bias_f32",
        cfg: LaunchCfg::linear(channels, THREADS, 0),
        args: vec![
            KArg::Ptr(db),
            KArg::Ptr(g),
            KArg::U32(n),
            KArg::U32(channels),
            KArg::U32(plane),
        ],
    }
}

/// The forward convolution whose output is the input gradient of `p` (input g `[n, o, oh, ow]`,
/// weight `conv2d_flip_weight_launch`'s `[c, o, kh, kw]`, padding dil (k-1) - pad, stride 1):
/// None unless `p` has stride 1 and a padding of at most dil (k-1) on both axes.
pub fn conv2d_bwd_input_as_forward(p: &Conv2dParams) -> Option<Conv2dParams> {
    let dual_pad = |pad: u32, dil: u32, k: u32| (dil * (k - 1)).checked_sub(pad).map(|v| v as usize);
    if (p.stride_h, p.stride_w) != (1, 1) {
        return None;
    }
    let pad = (dual_pad(p.pad_h, p.dil_h, p.kh)?, dual_pad(p.pad_w, p.dil_w, p.kw)?);
    let u = |v: u32| v as usize;
    let dual = Conv2dParams::new([u(p.n), u(p.o), u(p.oh), u(p.ow)], [u(p.c), u(p.o), u(p.kh), u(p.kw)], (1, 1), pad, (u(p.dil_h), u(p.dil_w))).ok()?;
    ((dual.oh, dual.ow) == (p.h, p.w)).then_some(dual)
}

/// wt `[c, o, kh, kw]` = w `[o, c, kh, kw]` with the channel axes swapped and the taps reversed.
pub fn conv2d_flip_weight_launch(wt: u64, w: u64, p: &Conv2dParams) -> Launch {
    Launch {
        module: MODULE,
        kernel: "conv2d_flip_weight_f32",
        cfg: LaunchCfg::for_elements(p.weight_len(), 256, 4096),
        args: vec![KArg::Ptr(wt), KArg::Ptr(w), KArg::U32(p.o), KArg::U32(p.c), KArg::U32(p.kh), KArg::U32(p.kw)],
    }
}

/// dx `[n, c, h, w]` from the weight `[o, c, kh, kw]` and the output gradient `[n, o, oh, ow]`.
/// With `FDM_CONV_WIDE=1`, a stride-1 convolution whose dual forward suits the 128 x 64 tile
/// kernel runs as that forward (`conv2d_bwd_input_as_forward`); its sums run in another order
/// than `conv2d_bwd_input_f32`'s, so the bits may differ (within the f32 tolerance).
pub fn conv2d_bwd_input(w: &CudaStorage, g: &CudaStorage, p: &Conv2dParams) -> Result<CudaStorage> {
    const OP: &str = "conv2d_backward_input";
    check_storage(OP, "weight", w, p.weight_len())?;
    check_storage(OP, "output gradient", g, p.output_len())?;
    let dx = w.device().alloc(DType::F32, p.input_len())?;
    let dual = conv2d_bwd_input_as_forward(p).filter(|d| wide_requested() && conv2d_fwd_suits_wide(d));
    if let Some(dual) = dual {
        let wt = w.device().alloc(DType::F32, p.weight_len())?;
        run_on_device(w.device(), &conv2d_flip_weight_launch(device_ptr(&wt, 0), device_ptr(w, 0), p))?;
        let launch = conv2d_fwd_wide_launch(device_ptr(&dx, 0), device_ptr(g, 0), device_ptr(&wt, 0), 0, &dual);
        run_on_device(w.device(), &launch)?;
        return Ok(dx);
    }
    let launch =
        conv2d_bwd_input_launch(device_ptr(&dx, 0), device_ptr(g, 0), device_ptr(w, 0), 0, p);
    run_on_device(w.device(), &launch)?;
    Ok(dx)
}

/// dw `[o, c, kh, kw]` from the input `[n, c, h, w]` and the output gradient `[n, o, oh, ow]`.
pub fn conv2d_bwd_weight(
    x: &CudaStorage,
    g: &CudaStorage,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    const OP: &str = "conv2d_backward_weight";
    check_storage(OP, "input", x, p.input_len())?;
    check_storage(OP, "output gradient", g, p.output_len())?;
    run_weight_grad(OP, x, g, p)
}

/// Runs the split-K weight gradient (and its fixed-order sum when there is more than one split)
/// on buffers the caller has checked. Also the transposed convolution's weight gradient.
pub(crate) fn run_weight_grad(
    op: &'static str,
    x: &CudaStorage,
    g: &CudaStorage,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    let (splits, chunk) = weight_grad_splits(p);
    let len = p.weight_len();
    u32_arg(op, len * splits as usize)?;
    let dev = x.device();
    let dw = dev.alloc(DType::F32, len)?;
    if splits == 1 {
        run_on_device(
            dev,
            &conv2d_bwd_weight_launch(
                device_ptr(&dw, 0),
                device_ptr(x, 0),
                device_ptr(g, 0),
                p,
                1,
                chunk,
            ),
        )?;
        return Ok(dw);
    }
    let part = dev.alloc(DType::F32, len * splits as usize)?;
    run_on_device(
        dev,
        &conv2d_bwd_weight_launch(
            device_ptr(&part, 0),
            device_ptr(x, 0),
            device_ptr(g, 0),
            p,
            splits,
            chunk,
        ),
    )?;
    run_on_device(
        dev,
        &conv2d_bwd_weight_sum_launch(device_ptr(&dw, 0), device_ptr(&part, 0), len as u32, splits),
    )?;
    Ok(dw)
}

/// db `[o]`: the per-channel sums of the output gradient `[n, o, oh, ow]`.
pub fn conv2d_bwd_bias(g: &CudaStorage, p: &Conv2dParams) -> Result<CudaStorage> {
    channel_sums(g, p.n as usize, p.o as usize, (p.oh * p.ow) as usize)
}

/// Per-channel sums of a dense `[n, channels, plane]` buffer (`[channels]`): the bias gradient of
/// any convolution from its output gradient.
pub fn channel_sums(g: &CudaStorage, n: usize, channels: usize, plane: usize) -> Result<CudaStorage> {
    const OP: &str = "conv_backward_bias";
    check_storage(OP, "output gradient", g, n * channels * plane)?;
    let [n32, c32, plane32] = [n, channels, plane].map(|v| u32_arg(OP, v));
    let db = g.device().alloc(DType::F32, channels)?;
    let launch = conv2d_bwd_bias_launch(device_ptr(&db, 0), device_ptr(g, 0), n32?, c32?, plane32?);
    run_on_device(g.device(), &launch)?;
    Ok(db)
}
