//! Parameters of the broadcasting element-wise binary op `out = a (op) b` (numpy broadcasting).
//!
//! The CPU loops and the CUDA kernel never see the user's shapes: `BinaryParams::new` turns the
//! broadcast into a *collapsed* strided description of at most `BINARY_MAX_RANK` dims — size-1
//! dims dropped, neighbouring dims merged whenever both inputs stay linear across them — so the
//! common cases become tiny: same shape -> 1 dim; `[.., C] op [C]` -> `[M, C]`;
//! NCHW op `[1,C,1,1]` -> `[N, C, H*W]`; NCHW op `[N,1,H,W]` -> `[N, C, H*W]`.
//! Strides are in elements of dense (row-major) `a` and `b`; stride 0 = broadcast.

use crate::error::{Error, Result};
use crate::shape::contiguous_strides;

pub const BINARY_MAX_RANK: usize = 6;

/// Which binary function. The discriminant is the `op` field of `BinaryParams`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    /// NaN-propagating maximum (like `torch.maximum`).
    Maximum = 4,
    /// NaN-propagating minimum (like `torch.minimum`).
    Minimum = 5,
    /// Gradient share of `a` in `maximum(a, b)`: 1 if a > b, 0.5 if a == b, else 0 (PyTorch splits
    /// a tie evenly between the two inputs).
    MaxGradShare = 6,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::MaxGradShare,
    ];
    pub fn from_u32(op: u32) -> Option<BinaryOp> {
        BinaryOp::ALL.into_iter().find(|o| *o as u32 == op)
    }
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::MaxGradShare => "maximum_grad_share",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BinaryParams {
    pub op: u32,
    /// Number of collapsed dims in use (1..=BINARY_MAX_RANK); unused trailing entries are 0.
    pub rank: u32,
    pub shape: [u32; BINARY_MAX_RANK],
    pub a_strides: [u32; BINARY_MAX_RANK],
    pub b_strides: [u32; BINARY_MAX_RANK],
}

impl BinaryParams {
    /// Collapsed description of `a (shape a_shape) op b (shape b_shape)` producing `out_shape`
    /// (which must be their broadcast shape; checked by the caller).
    pub fn new(
        op: BinaryOp,
        out_shape: &[usize],
        a_shape: &[usize],
        b_shape: &[usize],
    ) -> Result<Self> {
        let sa = broadcast_strides(a_shape, out_shape);
        let sb = broadcast_strides(b_shape, out_shape);
        // Walk dims from the innermost outwards, merging into the current innermost group.
        let mut dims: Vec<(usize, usize, usize)> = Vec::new(); // (size, a_stride, b_stride), inner first
        for i in (0..out_shape.len()).rev() {
            let (n, a, b) = (out_shape[i], sa[i], sb[i]);
            if n == 1 {
                continue;
            }
            match dims.last_mut() {
                Some(last) if a == last.1 * last.0 && b == last.2 * last.0 => last.0 *= n,
                _ => dims.push((n, a, b)),
            }
        }
        if dims.is_empty() {
            dims.push((1, 0, 0));
        }
        if dims.len() > BINARY_MAX_RANK {
            return Err(Error::shape(
                op.name(),
                format!("broadcast of {a_shape:?} with {b_shape:?} needs {} strided dims (max {BINARY_MAX_RANK})", dims.len()),
            ));
        }
        if out_shape.iter().product::<usize>() > u32::MAX as usize {
            return Err(Error::shape(
                op.name(),
                format!("output {out_shape:?} has more than 2^32 elements"),
            ));
        }
        dims.reverse();
        let mut p = BinaryParams {
            op: op as u32,
            rank: dims.len() as u32,
            shape: [0; BINARY_MAX_RANK],
            a_strides: [0; BINARY_MAX_RANK],
            b_strides: [0; BINARY_MAX_RANK],
        };
        for (i, &(n, a, b)) in dims.iter().enumerate() {
            p.shape[i] = n as u32;
            p.a_strides[i] = a as u32;
            p.b_strides[i] = b as u32;
        }
        Ok(p)
    }

    pub fn rank(&self) -> usize {
        self.rank as usize
    }
    pub fn numel(&self) -> usize {
        self.shape[..self.rank()]
            .iter()
            .map(|&n| n as usize)
            .product()
    }
}

/// Strides (in elements of the dense input) of `shape` broadcast to `out`: 0 on broadcast dims.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let dense = contiguous_strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 {
                0
            } else {
                dense[i - lead]
            }
        })
        .collect()
}
