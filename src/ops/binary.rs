//! Element-wise binary ops with numpy broadcasting: `add, sub, mul, div, maximum, minimum`, any
//! shapes whose broadcast exists (trailing dims aligned; size-1 dims stretch). Output is dense f32
//! of the broadcast shape. The CPU loops (`cpu/ops/binary.rs`) get a collapsed strided
//! description (`params/binary.rs`), which makes same-shape, `[.., C] op [C]`, NCHW op
//! `[1,C,1,1]` and NCHW op `[N,1,H,W]` run as simple vectorised rows. Scalar forms
//! (`add_scalar`, `mul_scalar`, `pow_scalar`) live with the unary ops.
//! The tape (`autograd/tape.rs`) uses `add` to sum gradients that meet at one variable.

use super::prep::dense_f32;
use crate::cpu::ops::binary as cpu;
use crate::cuda::ops::elementwise as cuda;
use crate::error::Result;
use crate::params::binary::{BinaryOp, BinaryParams};
use crate::shape::broadcast_shape;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// `a (op) b` with broadcasting.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let name = op.name();
    let shape = broadcast_shape(name, a.shape(), b.shape())?;
    super::check_same_device(name, a, b)?;
    let (a, b) = (dense_f32(name, a)?, dense_f32(name, b)?);
    let params = BinaryParams::new(op, &shape, a.shape(), b.shape())?;
    match (a.storage(), b.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            Tensor::from_vec(cpu::binary_fast_new(&params, a.cpu_f32()?, b.cpu_f32()?), &shape)
        }
        _ => {
            let r = params.rank();
            let dims = |v: &[u32]| v[..r].iter().map(|&d| d as usize).collect::<Vec<_>>();
            let (cshape, sa, sb) = (
                dims(&params.shape),
                dims(&params.a_strides),
                dims(&params.b_strides),
            );
            let out = cuda::binary(
                cuda_op(op),
                &cshape,
                (a.cuda_dense()?, &sa, 0),
                (b.cuda_dense()?, &sb, 0),
            )?;
            Tensor::from_cuda(out, &shape)
        }
    }
}

/// The kernel's code for the op (`kernels/elementwise.cu`).
fn cuda_op(op: BinaryOp) -> cuda::BinaryOp {
    match op {
        BinaryOp::Add => cuda::BinaryOp::Add,
        BinaryOp::Sub => cuda::BinaryOp::Sub,
        BinaryOp::Mul => cuda::BinaryOp::Mul,
        BinaryOp::Div => cuda::BinaryOp::Div,
        BinaryOp::Maximum => cuda::BinaryOp::Max,
        BinaryOp::Minimum => cuda::BinaryOp::Min,
        BinaryOp::MaxGradShare => cuda::BinaryOp::MaxGradShare,
    }
}

/// a + b with broadcasting.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Add, a, b)
}

/// a - b with broadcasting.
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Sub, a, b)
}

/// a * b with broadcasting.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Mul, a, b)
}

/// a / b with broadcasting (IEEE: x/0 = ±inf, 0/0 = NaN).
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Div, a, b)
}

/// Element-wise maximum with broadcasting; NaN in either input gives NaN (like `torch.maximum`).
pub fn maximum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Maximum, a, b)
}

/// Element-wise minimum with broadcasting; NaN in either input gives NaN.
pub fn minimum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Minimum, a, b)
}

/// The share of the gradient of `maximum(a, b)` that flows to `a`, in the broadcast shape:
/// 1 where a > b, 0.5 where a == b (a tie splits evenly, as PyTorch), 0 where a < b. The share of
/// `b` is `maximum_grad_share(b, a)`; for `minimum(a, b)` the share of `a` is
/// `maximum_grad_share(b, a)`.
pub fn maximum_grad_share(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::MaxGradShare, a, b)
}
