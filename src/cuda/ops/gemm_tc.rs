//! Launchers for `kernels/gemm_tc.cu`: the tensor-core Linear forward with a bf16 weight
//! (`Y [m, out] = bf16(X) [m, in] W^T + b`, W `[out, in]` bf16, X, b, Y f32, f32 accumulation;
//! the transformer's linears at inference, spec §3.2), the f32 <-> bf16 conversions behind
//! `Tensor::to_dtype`, and the one-mma layout self-test.

use crate::cuda::launch::{
    check_dtype_len, check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg,
};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "gemm_tc";
/// Output tile per block (TC_BM x TC_BN in the kernel) and threads per block (4 warps).
const TILE: usize = 64;
const THREADS: u32 = 128;
/// Threads per block and the block cap of the grid-stride conversion kernels.
const CAST_THREADS: u32 = 256;
const CAST_MAX_BLOCKS: u32 = 4096;
/// The CUDA limit on gridDim.y, where the column tiles go.
const MAX_GRID_Y: usize = 65535;

/// Which kernel of `kernels/gemm_tc.cu` runs a bf16 linear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcKernel {
    /// `gemm_bf16_tc`: any k and alignment; the reference of the other.
    Plain,
    /// `gemm_bf16_tc_pipe`: vector loads and double-buffered shared memory; needs k % 8 == 0 and
    /// 16-byte aligned A and B (every k of the model: 64, 256, 512, 2048).
    Pipelined,
}

impl TcKernel {
    /// Whether the pipelined kernel can take these operands.
    pub fn pipelined_fits(a: u64, b: u64, k: usize) -> bool {
        k.is_multiple_of(8) && a.is_multiple_of(16) && b.is_multiple_of(16)
    }

    /// The pipelined kernel where it fits, else the plain one.
    pub fn for_operands(a: u64, b: u64, k: usize) -> Self {
        if Self::pipelined_fits(a, b, k) {
            TcKernel::Pipelined
        } else {
            TcKernel::Plain
        }
    }
}

/// `C [m, n] = bf16(A) [m, k] B^T + bias`, B `[n, k]` bf16. Grid: (row tiles, column tiles).
/// `bias` may be 0 (no bias). `TcKernel::Pipelined` only where `TcKernel::pipelined_fits`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_launch(kernel: TcKernel, c: u64, a: u64, b: u64, bias: u64, m: usize, n: usize, k: usize) -> Launch {
    let grid = (
        m.div_ceil(TILE).max(1) as u32,
        n.div_ceil(TILE).max(1) as u32,
        1,
    );
    Launch {
        module: MODULE,
        kernel: match kernel {
            TcKernel::Plain => "gemm_bf16_tc",
            TcKernel::Pipelined => "gemm_bf16_tc_pipe",
        },
        cfg: LaunchCfg {
            grid,
            block: (THREADS, 1, 1),
            smem_bytes: 0,
        },
        args: vec![
            KArg::Ptr(c),
            KArg::Ptr(a),
            KArg::Ptr(b),
            KArg::Ptr(bias),
            KArg::U32(m as u32),
            KArg::U32(n as u32),
            KArg::U32(k as u32),
        ],
    }
}

/// Linear forward with a bf16 weight on the device: `x` f32 `[m, inp]` dense, `w` bf16
/// `[out, inp]` dense, `bias` f32 `[out]`; returns a new f32 buffer `[m, out]`. The activations
/// are rounded to bf16 (round to nearest even); products of bf16 values are summed in f32. On
/// cuBLAS where it is available on this device (`cuda::blas`, same numerics), else on the
/// hand-written kernels (`linear_bf16_fwd_with(None, ..)`).
pub fn linear_bf16_fwd(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    if !crate::cuda::blas::available(x.device()) {
        return linear_bf16_fwd_with(None, x, w, bias, m, out, inp);
    }
    linear_bf16_fwd_cublas(InputAct::Identity, x, w, bias, (m, out, inp))
}

/// `linear_bf16_fwd` of an input already in bf16 (`xb` [m, inp]): no cast. On cuBLAS only (an
/// error elsewhere: the caller widens `xb` and runs `linear_bf16_fwd`, the same numbers).
pub fn linear_bf16_fwd_of_bf16(
    xb: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    u32_arg("linear_bf16 output", m * out)?;
    let mut y = xb.device().alloc(DType::F32, m * out)?;
    let path = crate::cuda::blas::default_bias_path();
    crate::cuda::blas::bf16_linear_of_bf16(path, &mut y, xb, w, bias, m, out, inp)?;
    Ok(y)
}

/// `linear_bf16_fwd` of `gelu2(x)` with the activation inside cuBLAS's input cast (one launch and
/// one pass over `x` fewer; the same bits as the unary kernel and then `linear_bf16_fwd`). Only
/// where cuBLAS runs the linear (`cuda::blas::available`); an error elsewhere.
pub fn linear_bf16_fwd_after_gelu2(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    linear_bf16_fwd_cublas(InputAct::Gelu2, x, w, bias, (m, out, inp))
}

/// A new f32 `[m, out]` buffer holding the cuBLAS bf16 linear of `act(x)`.
fn linear_bf16_fwd_cublas(
    act: InputAct,
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    (m, out, inp): (usize, usize, usize),
) -> Result<CudaStorage> {
    u32_arg("linear_bf16 output", m * out)?;
    let mut y = x.device().alloc(DType::F32, m * out)?;
    crate::cuda::blas::bf16_linear_act(act, &mut y, x, w, bias, m, out, inp)?;
    Ok(y)
}

/// `linear_bf16_fwd` on the hand-written kernels always, the kernel chosen by the caller (`Some`:
/// the benches time both; an error where `Pipelined` does not fit) or by the operands (`None`:
/// the pipelined kernel where it fits).
pub fn linear_bf16_fwd_with(
    forced: Option<TcKernel>,
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    const OP: &str = "linear_bf16";
    check_f32(OP, x, m * inp)?;
    check_dtype_len(OP, w, DType::BF16, out * inp)?;
    if let Some(b) = bias {
        check_f32(OP, b, out)?;
    }
    for (what, v) in [
        ("linear_bf16 input", m * inp),
        ("linear_bf16 weight", out * inp),
        ("linear_bf16 output", m * out),
    ] {
        u32_arg(what, v)?;
    }
    if out.div_ceil(TILE) > MAX_GRID_Y {
        return Err(Error::shape(
            OP,
            format!(
                "{out} output features exceed the kernel's grid ({} at most)",
                MAX_GRID_Y * TILE
            ),
        ));
    }
    let y = x.device().alloc(DType::F32, m * out)?;
    if m * out == 0 {
        return Ok(y);
    }
    let (xp, wp) = (device_ptr(x, 0), device_ptr(w, 0));
    let kernel = match forced {
        None => TcKernel::for_operands(xp, wp, inp),
        Some(TcKernel::Pipelined) if !TcKernel::pipelined_fits(xp, wp, inp) => {
            return Err(Error::msg(format!(
                "{OP}: the pipelined kernel needs in_features % 8 == 0 and 16-byte aligned operands (in_features {inp})"
            )))
        }
        Some(k) => k,
    };
    let launch = gemm_bf16_launch(kernel, device_ptr(&y, 0), xp, wp, bias.map_or(0, |b| device_ptr(b, 0)), m, out, inp);
    run_on_device(x.device(), &launch)?;
    Ok(y)
}

/// Element-wise conversion of `n` values: f32 -> bf16 bits (`to_bf16`, round to nearest even,
/// NaN kept) or bf16 -> f32 (exact).
pub fn cast_launch(to_bf16: bool, y: u64, x: u64, n: usize) -> Launch {
    Launch {
        module: MODULE,
        kernel: if to_bf16 {
            "cast_f32_to_bf16"
        } else {
            "cast_bf16_to_f32"
        },
        cfg: LaunchCfg::for_elements(n, CAST_THREADS, CAST_MAX_BLOCKS),
        args: vec![KArg::Ptr(y), KArg::Ptr(x), KArg::U32(n as u32)],
    }
}

/// What a Linear's input goes through before it is rounded to bf16 (the fused activation of
/// `linear_prep_bf16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputAct {
    Identity,
    /// x sigmoid(1.702 x), the transformer MLP's activation (the unary kernel's formula).
    Gelu2,
}

/// `linear_prep_bf16`: `xb [n_x] = bf16(act(x))` and, with a bias, `y [n_y]` = the bias `[out]`
/// in every row (pass 0 for `bias` to only cast).
#[allow(clippy::too_many_arguments)]
pub fn linear_prep_launch(xb: u64, y: u64, x: u64, bias: u64, n_x: usize, n_y: usize, out: usize, act: InputAct) -> Launch {
    Launch {
        module: MODULE,
        kernel: "linear_prep_bf16",
        cfg: LaunchCfg::for_elements(n_x.max(n_y), CAST_THREADS, CAST_MAX_BLOCKS),
        args: vec![
            KArg::Ptr(xb),
            KArg::Ptr(y),
            KArg::Ptr(x),
            KArg::Ptr(bias),
            KArg::U32(n_x as u32),
            KArg::U32(n_y as u32),
            KArg::U32(out.max(1) as u32),
            KArg::U32(u32::from(act == InputAct::Gelu2)),
        ],
    }
}

/// A new device buffer holding `x` (f32 or bf16, every element) converted to `to` (bf16 or f32).
/// Converting to the dtype `x` already has is an error: callers return the tensor itself.
pub fn convert(x: &CudaStorage, to: DType) -> Result<CudaStorage> {
    let to_bf16 = match (x.dtype(), to) {
        (DType::F32, DType::BF16) => true,
        (DType::BF16, DType::F32) => false,
        (from, _) => {
            return Err(Error::msg(format!(
                "cast on the device: {} -> {} is not supported (f32 <-> bf16 only)",
                from.name(),
                to.name()
            )))
        }
    };
    let n = x.len();
    u32_arg("cast", n)?;
    let y = x.device().alloc(to, n)?;
    if n > 0 {
        run_on_device(
            x.device(),
            &cast_launch(to_bf16, device_ptr(&y, 0), device_ptr(x, 0), n),
        )?;
    }
    Ok(y)
}

/// `y[i]` = bf16 bits of `x[2i]` (low half) and `x[2i + 1]` (high half), rounded to nearest even
/// by the tensor-core kernels' paired conversion (the self-test of that conversion).
pub fn bf16x2_selftest_launch(y: u64, x: u64, pairs: u32) -> Launch {
    Launch {
        module: MODULE,
        kernel: "bf16x2_selftest",
        cfg: LaunchCfg::for_elements(pairs as usize, 256, 1024),
        args: vec![KArg::Ptr(y), KArg::Ptr(x), KArg::U32(pairs)],
    }
}

/// One warp, one mma: `d [16, 8] = a [16, 16] * bt^T + c` with `a` and `bt [8, 16]` bf16
/// row-major, `c`, `d` f32 row-major (the fragment-layout self-test).
pub fn mma_selftest_launch(d: u64, a: u64, bt: u64, c: u64) -> Launch {
    Launch {
        module: MODULE,
        kernel: "gemm_tc_selftest_mma",
        cfg: LaunchCfg::linear(1, 32, 0),
        args: vec![KArg::Ptr(d), KArg::Ptr(a), KArg::Ptr(bt), KArg::Ptr(c)],
    }
}
