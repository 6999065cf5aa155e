//! Launchers for `kernels/elementwise.cu`: fill, affine, strided copy, broadcast binary ops and
//! the activations relu / gelu2 (spec §3.2) / sigmoid / tanh with their backward rules.
//! `*_launch` functions are the grid choice and argument order (pure: they also drive the CPU
//! emulator tests); the functions without the suffix run them on a device buffer.
//! All f32 buffers are flat and dense unless a `StridedIndex` says otherwise.

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "elementwise";
/// Threads per block for the grid-stride kernels: 8 warps, a good occupancy on every arch.
const THREADS: u32 = 256;
/// Enough blocks to fill an H100/H200 several times over; larger tensors loop grid-stride.
const MAX_BLOCKS: u32 = 4096;
/// The most dims a `StridedIndex` describes (FDM_MAX_RANK in kernels/common.cuh).
pub const MAX_RANK: usize = 6;

/// Output shape plus the element strides of up to two inputs per output dim (0 = broadcast).
/// Same layout as `struct StridedIndex` in kernels/common.cuh; passed to the kernel by value.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StridedIndex {
    pub numel: u32,
    pub rank: u32,
    pub shape: [u32; MAX_RANK],
    pub stride: [[u32; MAX_RANK]; 2],
}

impl StridedIndex {
    /// For an output of `shape` read from inputs with the given per-dim strides (in elements).
    /// Errors when the rank is above `MAX_RANK` or an offset would not fit in 32 bits.
    pub fn new(shape: &[usize], strides: [&[usize]; 2]) -> Result<Self> {
        if shape.len() > MAX_RANK || strides.iter().any(|s| s.len() != shape.len()) {
            return Err(Error::shape(
                "strided_index",
                format!("shape {shape:?} with strides {strides:?} (rank at most {MAX_RANK})"),
            ));
        }
        let numel: usize = shape.iter().product();
        let fits = |v: usize| u32::try_from(v).is_ok();
        let max_offset = |s: &[usize]| {
            shape
                .iter()
                .zip(s)
                .map(|(&d, &st)| d.saturating_sub(1) * st)
                .sum::<usize>()
        };
        if !fits(numel) || strides.iter().any(|s| !fits(max_offset(s))) {
            return Err(Error::shape(
                "strided_index",
                format!("shape {shape:?}: offsets exceed 32 bits"),
            ));
        }
        let mut p = StridedIndex {
            numel: numel as u32,
            rank: shape.len() as u32,
            ..bytemuck::Zeroable::zeroed()
        };
        for (d, &n) in shape.iter().enumerate() {
            p.shape[d] = n as u32;
            p.stride[0][d] = strides[0][d] as u32;
            p.stride[1][d] = strides[1][d] as u32;
        }
        Ok(p)
    }
}

/// Binary operation codes (BINARY_* in kernels/elementwise.cu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Max = 4,
    Min = 5,
    /// 1 where a > b, 0.5 on ties, 0 where a < b (the share of maximum's gradient for a).
    MaxGradShare = 6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Gelu2,
    Sigmoid,
    Tanh,
}

impl Activation {
    fn fwd_kernel(self) -> &'static str {
        match self {
            Activation::Relu => "relu_fwd_f32",
            Activation::Gelu2 => "gelu2_fwd_f32",
            Activation::Sigmoid => "sigmoid_fwd_f32",
            Activation::Tanh => "tanh_fwd_f32",
        }
    }
    fn bwd_kernel(self) -> &'static str {
        match self {
            Activation::Relu => "relu_bwd_f32",
            Activation::Gelu2 => "gelu2_bwd_f32",
            Activation::Sigmoid => "sigmoid_bwd_f32",
            Activation::Tanh => "tanh_bwd_f32",
        }
    }
    /// Whether the backward kernel reads the forward input x (else the forward output y).
    pub fn bwd_uses_input(self) -> bool {
        matches!(self, Activation::Relu | Activation::Gelu2)
    }
}

fn grid(n: usize) -> LaunchCfg {
    LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS)
}

fn n32(n: usize) -> u32 {
    u32::try_from(n).expect("element-wise kernels take fewer than 2^32 elements")
}

pub fn fill_launch(out: u64, value: f32, n: usize) -> Launch {
    Launch {
        module: MODULE,
        kernel: "fill_f32",
        cfg: grid(n),
        args: vec![KArg::Ptr(out), KArg::F32(value), KArg::U32(n32(n))],
    }
}

pub fn affine_launch(out: u64, x: u64, n: usize, mul: f32, add: f32) -> Launch {
    let args = vec![
        KArg::Ptr(out),
        KArg::Ptr(x),
        KArg::U32(n32(n)),
        KArg::F32(mul),
        KArg::F32(add),
    ];
    Launch {
        module: MODULE,
        kernel: "affine_f32",
        cfg: grid(n),
        args,
    }
}

/// Dense copy of a strided view of 4-byte elements (f32 or u32); `idx.stride[0]` are x's strides.
pub fn strided_copy_launch(out: u64, x: u64, idx: &StridedIndex) -> Launch {
    let args = vec![KArg::Ptr(out), KArg::Ptr(x), KArg::pod(idx)];
    Launch {
        module: MODULE,
        kernel: "strided_copy_b32",
        cfg: grid(idx.numel as usize),
        args,
    }
}

pub fn binary_launch(op: BinaryOp, out: u64, a: u64, b: u64, idx: &StridedIndex) -> Launch {
    let args = vec![
        KArg::Ptr(out),
        KArg::Ptr(a),
        KArg::Ptr(b),
        KArg::pod(idx),
        KArg::I32(op as i32),
    ];
    Launch {
        module: MODULE,
        kernel: "binary_f32",
        cfg: grid(idx.numel as usize),
        args,
    }
}

pub fn binary_contig_launch(op: BinaryOp, out: u64, a: u64, b: u64, n: usize) -> Launch {
    let args = vec![
        KArg::Ptr(out),
        KArg::Ptr(a),
        KArg::Ptr(b),
        KArg::U32(n32(n)),
        KArg::I32(op as i32),
    ];
    Launch {
        module: MODULE,
        kernel: "binary_contig_f32",
        cfg: grid(n),
        args,
    }
}

pub fn activation_fwd_launch(act: Activation, out: u64, x: u64, n: usize) -> Launch {
    let args = vec![KArg::Ptr(out), KArg::Ptr(x), KArg::U32(n32(n))];
    Launch {
        module: MODULE,
        kernel: act.fwd_kernel(),
        cfg: grid(n),
        args,
    }
}

/// `saved` is the forward input x for relu/gelu2 and the forward output y for sigmoid/tanh.
pub fn activation_bwd_launch(act: Activation, dx: u64, saved: u64, dy: u64, n: usize) -> Launch {
    let args = vec![
        KArg::Ptr(dx),
        KArg::Ptr(saved),
        KArg::Ptr(dy),
        KArg::U32(n32(n)),
    ];
    Launch {
        module: MODULE,
        kernel: act.bwd_kernel(),
        cfg: grid(n),
        args,
    }
}

/// A new f32 buffer of n elements, all `value`.
pub fn fill(dev: &crate::cuda::CudaDevice, value: f32, n: usize) -> Result<CudaStorage> {
    let out = dev.alloc(DType::F32, n)?;
    run_on_device(dev, &fill_launch(device_ptr(&out, 0), value, n))?;
    Ok(out)
}

/// x * mul + add over the first n elements of x.
pub fn affine(x: &CudaStorage, n: usize, mul: f32, add: f32) -> Result<CudaStorage> {
    check_f32("affine", x, n)?;
    let out = x.device().alloc(DType::F32, n)?;
    run_on_device(
        x.device(),
        &affine_launch(device_ptr(&out, 0), device_ptr(x, 0), n, mul, add),
    )?;
    Ok(out)
}

/// Dense copy of the view (shape, strides, offset) of a 4-byte-element buffer.
pub fn strided_copy(
    x: &CudaStorage,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> Result<CudaStorage> {
    if x.dtype().size_in_bytes() != 4 {
        return Err(Error::DType {
            op: "strided_copy",
            dtype: x.dtype(),
        });
    }
    let idx = StridedIndex::new(shape, [strides, strides])?;
    let out = x.device().alloc(x.dtype(), idx.numel as usize)?;
    run_on_device(
        x.device(),
        &strided_copy_launch(device_ptr(&out, 0), device_ptr(x, offset), &idx),
    )?;
    Ok(out)
}

/// `a (op) b` for two views broadcast to `shape`: each input given by (buffer, strides per output
/// dim with 0 on broadcast dims, element offset).
pub fn binary(
    op: BinaryOp,
    shape: &[usize],
    a: (&CudaStorage, &[usize], usize),
    b: (&CudaStorage, &[usize], usize),
) -> Result<CudaStorage> {
    check_f32("binary", a.0, 0)?;
    check_f32("binary", b.0, 0)?;
    let idx = StridedIndex::new(shape, [a.1, b.1])?;
    let out = a.0.device().alloc(DType::F32, idx.numel as usize)?;
    let (pa, pb, po) = (
        device_ptr(a.0, a.2),
        device_ptr(b.0, b.2),
        device_ptr(&out, 0),
    );
    let dense = |s: &[usize]| s == crate::shape::contiguous_strides(shape).as_slice();
    let launch = if dense(a.1) && dense(b.1) {
        binary_contig_launch(op, po, pa, pb, idx.numel as usize)
    } else {
        binary_launch(op, po, pa, pb, &idx)
    };
    run_on_device(a.0.device(), &launch)?;
    Ok(out)
}

pub fn activation_fwd(act: Activation, x: &CudaStorage, n: usize) -> Result<CudaStorage> {
    check_f32("activation_fwd", x, n)?;
    let out = x.device().alloc(DType::F32, n)?;
    run_on_device(
        x.device(),
        &activation_fwd_launch(act, device_ptr(&out, 0), device_ptr(x, 0), n),
    )?;
    Ok(out)
}

pub fn activation_bwd(
    act: Activation,
    saved: &CudaStorage,
    dy: &CudaStorage,
    n: usize,
) -> Result<CudaStorage> {
    check_f32("activation_bwd", saved, n)?;
    check_f32("activation_bwd", dy, n)?;
    let dx = dy.device().alloc(DType::F32, n)?;
    let launch = activation_bwd_launch(
        act,
        device_ptr(&dx, 0),
        device_ptr(saved, 0),
        device_ptr(dy, 0),
        n,
    );
    run_on_device(dy.device(), &launch)?;
    Ok(dx)
}
