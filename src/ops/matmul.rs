//! Tensor-level matrix products (f32):
//! * `matmul(a, b)`: `[.., M, K] x [.., K, N] -> [.., M, N]` with equal batch dims, or any
//!   batch of `a` times a 2-D `b` (one matrix shared by the batch); 2-D x 2-D is the plain case.
//!   An operand that is a transposed view of dense data (e.g. `k.transpose(-1,-2)` in attention)
//!   is used in place through the GEMM's transpose flag, without a copy.
//! * `linear(x, w, b)`: `x [.., in]`, `w [out, in]` (PyTorch layout, spec §0), `b [out]` ->
//!   `[.., out]`: the transformer's q/k/v/proj/MLP layers (spec §3.2) and the encoder MLP.
//! * their backward rules (`matmul_backward`, `linear_backward` and its three pieces).
//!
//! `linear` also takes a bf16 weight (inference only; its backward is an error): see `linear`.
//!
//! Shapes are checked here with errors naming the problem; the loops live in `cpu::ops`.

use crate::cpu::ops::{gemm, linear as cpu_linear};
use crate::cuda::ops::gemm as cuda;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::gemm::GemmParams;
use crate::params::linear::LinearParams;
use crate::shape::numel;
use crate::tensor::Tensor;

/// Fails unless `t` holds f32 values.
pub(crate) fn check_f32(op: &'static str, t: &Tensor) -> Result<()> {
    match t.dtype() {
        DType::F32 => Ok(()),
        dtype => Err(Error::DType { op, dtype }),
    }
}

/// A GEMM operand: dense storage plus whether the logical matrix is its transpose.
struct Operand {
    dense: Tensor,
    trans: bool,
    /// Row length of the stored matrix (the GEMM's leading dimension).
    ld: usize,
}

impl Operand {
    /// `t` as a `[.., rows, cols]` operand: used as is when dense, as a transpose when it is a
    /// transposed view of dense data, copied otherwise.
    fn new(t: &Tensor) -> Result<Operand> {
        let r = t.rank();
        let (rows, cols) = (t.shape()[r - 2], t.shape()[r - 1]);
        if t.is_dense() {
            return Ok(Operand { dense: t.clone(), trans: false, ld: cols });
        }
        let swapped = t.transpose(r - 2, r - 1)?;
        if swapped.is_dense() {
            return Ok(Operand { dense: swapped, trans: true, ld: rows });
        }
        Ok(Operand { dense: t.contiguous()?, trans: false, ld: cols })
    }
    /// The operand as the CUDA GEMM reads it, batch items `batch_stride` elements apart.
    fn on_device(&self, batch_stride: usize) -> Result<cuda::MatOperand<'_>> {
        Ok(cuda::MatOperand { data: self.dense.cuda_dense()?, trans: self.trans, ld: self.ld, batch_stride })
    }
    /// The logical matrix (or batch of matrices) as dense row-major storage: the stored data
    /// when not transposed, else a transposed copy.
    fn materialised(&self) -> Result<Tensor> {
        if !self.trans {
            return Ok(self.dense.clone());
        }
        let r = self.dense.rank();
        self.dense.transpose(r - 2, r - 1)?.contiguous()
    }
    /// The same storage read as the transposed matrix.
    fn flipped(&self) -> Operand {
        Operand { dense: self.dense.clone(), trans: !self.trans, ld: self.ld }
    }
}

/// Checked dims of a matmul: (batch, m, k, n, b_shared, output shape).
fn matmul_dims(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(usize, usize, usize, usize, bool, Vec<usize>)> {
    if a.rank() < 2 || b.rank() < 2 {
        return Err(Error::shape(op, format!("operands need at least 2 dims, got a {:?} and b {:?}", a.shape(), b.shape())));
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (kb, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != kb {
        return Err(Error::shape(op, format!("inner dims differ: a {:?} has K = {k}, b {:?} has K = {kb}", a.shape(), b.shape())));
    }
    let batch_dims = &a.shape()[..ra - 2];
    let shared = rb == 2 && ra > 2;
    if !shared && batch_dims != &b.shape()[..rb - 2] {
        return Err(Error::shape(op, format!("batch dims differ: a {:?} vs b {:?} (need equal batch dims or a 2-D b)", a.shape(), b.shape())));
    }
    let mut out = batch_dims.to_vec();
    out.extend([m, n]);
    Ok((numel(batch_dims), m, k, n, shared, out))
}

fn check_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    check_f32(op, a)?;
    check_f32(op, b)?;
    super::check_same_device(op, a, b)
}

/// `[.., M, K] x [.., K, N] -> [.., M, N]`.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (batch, m, k, n, shared, out_shape) = matmul_dims("matmul", a, b)?;
    check_pair("matmul", a, b)?;
    let (oa, ob) = (Operand::new(a)?, Operand::new(b)?);
    if !super::is_cpu(a) {
        let y = cuda::matmul(&oa.on_device(m * k)?, &ob.on_device(if shared { 0 } else { k * n })?, (m, n, k), batch)?;
        return Tensor::from_cuda(y, &out_shape);
    }
    let mut out = vec![0f32; batch * m * n];
    let p = GemmParams::with_trans(m, n, k, oa.trans, ob.trans)
        .leading_dims(oa.ld, ob.ld, n)
        .batched(batch, m * k, if shared { 0 } else { k * n }, m * n);
    gemm::gemm_fast(&p, oa.dense.cpu_f32()?, ob.dense.cpu_f32()?, &mut out);
    Tensor::from_vec(out, &out_shape)
}

/// Gradients of `matmul(a, b)`: `da = g * b^T`, `db = a^T * g` (summed over the batch when `b`
/// is a 2-D matrix shared by it).
pub fn matmul_backward(a: &Tensor, b: &Tensor, grad_out: &Tensor) -> Result<(Tensor, Tensor)> {
    let (batch, m, k, n, shared, out_shape) = matmul_dims("matmul_backward", a, b)?;
    if grad_out.shape() != out_shape.as_slice() {
        return Err(Error::shape("matmul_backward", format!("grad_out {:?} vs output {:?}", grad_out.shape(), out_shape)));
    }
    check_pair("matmul_backward", a, b)?;
    check_pair("matmul_backward", a, grad_out)?;
    let (oa, ob, og) = (Operand::new(a)?, Operand::new(b)?, Operand::new(grad_out)?);
    if !super::is_cpu(a) {
        return matmul_backward_cuda((&oa, &ob, &og), (batch, m, k, n, shared), a.shape(), b.shape());
    }
    let (a_data, b_data, g_data) = (oa.dense.cpu_f32()?, ob.dense.cpu_f32()?, og.dense.cpu_f32()?);
    let b_stride = if shared { 0 } else { k * n };
    // da[M, K] = g[M, N] * b^T[N, K]
    let bt = ob.flipped();
    let mut da = vec![0f32; batch * m * k];
    let p = GemmParams::with_trans(m, k, n, og.trans, bt.trans).leading_dims(og.ld, bt.ld, k).batched(batch, m * n, b_stride, m * k);
    gemm::gemm_fast(&p, g_data, b_data, &mut da);
    // db[K, N] = a^T[K, M] * g[M, N]; a shared b accumulates every batch item (stride_c 0).
    let at = oa.flipped();
    let mut db = vec![0f32; if shared { k * n } else { batch * k * n }];
    let p = GemmParams::with_trans(k, n, m, at.trans, og.trans)
        .leading_dims(at.ld, og.ld, n)
        .beta(if shared { 1.0 } else { 0.0 })
        .batched(batch, m * k, m * n, b_stride);
    gemm::gemm_fast(&p, a_data, g_data, &mut db);
    Ok((Tensor::from_vec(da, a.shape())?, Tensor::from_vec(db, b.shape())?))
}

/// `matmul_backward` on a CUDA device. A `b` shared by the batch gets `db = A'^T G'` with the
/// batch folded into the product's inner dim (`A'` = a as `[batch * m, k]`), one GEMM whose
/// reduction covers every batch item, rather than batch items accumulating into one output.
fn matmul_backward_cuda(
    (oa, ob, og): (&Operand, &Operand, &Operand),
    (batch, m, k, n, shared): (usize, usize, usize, usize, bool),
    a_shape: &[usize],
    b_shape: &[usize],
) -> Result<(Tensor, Tensor)> {
    let b_stride = if shared { 0 } else { k * n };
    let bt = ob.flipped();
    let da = cuda::matmul(&og.on_device(m * n)?, &bt.on_device(b_stride)?, (m, k, n), batch)?;
    let db = if shared {
        let (a2, g2) = (oa.materialised()?, og.materialised()?);
        let at = Operand { dense: a2, trans: true, ld: k };
        let g = Operand { dense: g2, trans: false, ld: n };
        cuda::matmul(&at.on_device(0)?, &g.on_device(0)?, (k, n, batch * m), 1)?
    } else {
        cuda::matmul(&oa.flipped().on_device(m * k)?, &og.on_device(m * n)?, (k, n, m), batch)?
    };
    Ok((Tensor::from_cuda(da, a_shape)?, Tensor::from_cuda(db, b_shape)?))
}

/// Checked dims of a linear layer and the output shape `[.., out]`.
fn linear_dims(op: &'static str, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<(LinearParams, Vec<usize>)> {
    if w.rank() != 2 {
        return Err(Error::shape(op, format!("weight must be [out, in], got {:?}", w.shape())));
    }
    let (outf, inf) = (w.shape()[0], w.shape()[1]);
    let Some((&x_in, lead)) = x.shape().split_last() else {
        return Err(Error::shape(op, "input is a scalar; expected [.., in]"));
    };
    if x_in != inf {
        return Err(Error::shape(op, format!("input's last dim {x_in} (input {:?}) != in_features {inf} of weight [out, in] = {:?}", x.shape(), w.shape())));
    }
    if let Some(b) = b {
        if b.shape() != [outf] {
            return Err(Error::shape(op, format!("bias must be [{outf}] (out_features), got {:?}", b.shape())));
        }
    }
    let mut out = lead.to_vec();
    out.push(outf);
    Ok((LinearParams::new(numel(lead), inf, outf, b.is_some()), out))
}

/// All tensors f32 on the same device.
pub(crate) fn check_f32_same_device(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    for t in tensors {
        check_f32(op, t)?;
        super::check_same_device(op, tensors[0], t)?;
    }
    Ok(())
}

/// The shape, dtype and device checks of `linear`: the params and the output shape. `x` is f32,
/// or bf16 with a bf16 weight.
fn linear_checks(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<(LinearParams, Vec<usize>)> {
    let (p, out_shape) = linear_dims("linear", x, w, b)?;
    if !(x.dtype() == DType::BF16 && w.dtype() == DType::BF16) {
        check_f32("linear", x)?;
    }
    if let Some(b) = b {
        check_f32("linear", b)?;
    }
    for t in b.into_iter().chain([w]) {
        super::check_same_device("linear", x, t)?;
    }
    Ok((p, out_shape))
}

/// `linear` of a bf16 input on a GPU whose Linears run on cuBLAS: the GEMM reads it as it is.
/// None elsewhere (the caller widens it: the same numbers, since rounding bf16 values to bf16
/// changes nothing).
fn linear_of_bf16_on_cublas(x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: &LinearParams, out_shape: &[usize]) -> Result<Option<Tensor>> {
    let on_cublas = !super::is_cpu(x) && x.cuda_dense().is_ok_and(|s| crate::cuda::blas::available(s.device()));
    if !on_cublas {
        return Ok(None);
    }
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    let bias = b.as_ref().map(|b| b.cuda_dense()).transpose()?;
    let (m, outf, inf) = (p.rows as usize, p.out_features as usize, p.in_features as usize);
    let y = crate::cuda::ops::gemm_tc::linear_bf16_fwd_of_bf16(x.cuda_dense()?, w.cuda_dense()?, bias, m, outf, inf)?;
    Ok(Some(Tensor::from_cuda(y, out_shape)?))
}

/// `y = x * W^T + b` for `x [.., in]`, `W [out, in]`, `b [out]` -> `[.., out]`.
/// `W` may be bf16 (inference storage of the transformer's weights; `b` and `y` stay f32, `x` is
/// f32 or already rounded to bf16 by the op that made it, which spares the cast):
/// on CUDA tensor cores (activations rounded to bf16, f32 sums; cuBLAS where usable, else the
/// hand-written kernel, see `cuda::blas`); on the CPU the same numerics: `x` rounded to bf16, the
/// weight widened to f32 (exactly), and the f32 path.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (p, out_shape) = linear_checks(x, w, b)?;
    let bf16_weight = match w.dtype() {
        DType::F32 => false,
        DType::BF16 => true,
        dtype => return Err(Error::DType { op: "linear (weight: f32 or bf16)", dtype }),
    };
    // A bf16 input is already rounded: elsewhere than on cuBLAS it is widened (exactly) and not
    // rounded again.
    let rounded = x.dtype() == DType::BF16;
    let widened_x;
    let x = if rounded {
        if let Some(y) = linear_of_bf16_on_cublas(x, w, b, &p, &out_shape)? {
            return Ok(y);
        }
        widened_x = x.to_dtype(DType::F32)?;
        &widened_x
    } else {
        x
    };
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    if !super::is_cpu(&x) {
        let bias = b.as_ref().map(|b| b.cuda_dense()).transpose()?;
        let (m, outf, inf) = (p.rows as usize, p.out_features as usize, p.in_features as usize);
        let y = if bf16_weight {
            crate::cuda::ops::gemm_tc::linear_bf16_fwd(x.cuda_dense()?, w.cuda_dense()?, bias, m, outf, inf)?
        } else {
            cuda::linear_fwd(x.cuda_dense()?, w.cuda_dense()?, bias, m, outf, inf)?
        };
        return Tensor::from_cuda(y, &out_shape);
    }
    // bf16 weights on the CPU: the weight widened to f32 (exactly) and the input rounded to bf16,
    // the tensor-core kernel's numerics (bf16 products, f32 sums), so `--precision bf16` computes
    // the same function on every device (up to summation order).
    let (x, w) = if bf16_weight {
        let x = if rounded { x } else { x.to_dtype(DType::BF16)?.to_dtype(DType::F32)? };
        (x, w.to_dtype(DType::F32)?)
    } else {
        (x, w)
    };
    let y = cpu_linear::linear_fast_new(&p, x.cpu_f32()?, w.cpu_f32()?, b.as_ref().map(|b| b.cpu_f32()).transpose()?);
    Tensor::from_vec(y, &out_shape)
}

/// `linear(gelu2(x), w, b)`: the transformer MLP's second Linear after its activation. With a
/// bf16 weight on a GPU whose linears run on cuBLAS, GELU2 runs inside the input's bf16 cast (the
/// same bits, one launch fewer); everywhere else the two ops.
pub fn linear_after_gelu2(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let fused = w.dtype() == DType::BF16 && !super::is_cpu(x) && x.cuda_dense().is_ok_and(|s| crate::cuda::blas::available(s.device()));
    if !fused {
        return linear(&super::unary::gelu2(x)?, w, b);
    }
    let (p, out_shape) = linear_checks(x, w, b)?;
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    let bias = b.as_ref().map(|b| b.cuda_dense()).transpose()?;
    let (m, outf, inf) = (p.rows as usize, p.out_features as usize, p.in_features as usize);
    let y = crate::cuda::ops::gemm_tc::linear_bf16_fwd_after_gelu2(x.cuda_dense()?, w.cuda_dense()?, bias, m, outf, inf)?;
    Tensor::from_cuda(y, &out_shape)
}

/// Checks `grad_out` against the layer's output shape; returns the params.
fn linear_grad_dims(op: &'static str, x_shape: &[usize], w_shape: &[usize], grad_out: &Tensor) -> Result<LinearParams> {
    let &[outf, inf] = w_shape else {
        return Err(Error::shape(op, format!("weight must be [out, in], got {w_shape:?}")));
    };
    let Some((&x_in, lead)) = x_shape.split_last() else {
        return Err(Error::shape(op, "input is a scalar; expected [.., in]"));
    };
    let mut want = lead.to_vec();
    want.push(outf);
    if x_in != inf || grad_out.shape() != want.as_slice() {
        return Err(Error::shape(op, format!("grad_out {:?} does not match input {x_shape:?} and weight {w_shape:?}", grad_out.shape())));
    }
    Ok(LinearParams::new(numel(lead), inf, outf, false))
}

/// `dx = g * W`: gradient of `linear` with respect to its input (`x_shape` is the input's shape).
pub fn linear_backward_input(x_shape: &[usize], w: &Tensor, grad_out: &Tensor) -> Result<Tensor> {
    let p = linear_grad_dims("linear_backward_input", x_shape, w.shape(), grad_out)?;
    if w.dtype() == DType::BF16 {
        return Err(Error::msg("linear_backward_input: bf16 weights are inference-only (training keeps f32 weights)"));
    }
    check_f32_same_device("linear_backward_input", &[grad_out, w])?;
    let (w, g) = (w.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let (m, outf, inf) = (p.rows as usize, p.out_features as usize, p.in_features as usize);
        return Tensor::from_cuda(cuda::linear_dx(g.cuda_dense()?, w.cuda_dense()?, m, outf, inf)?, x_shape);
    }
    let mut dx = vec![0f32; numel(x_shape)];
    cpu_linear::linear_backward_input_fast(&p, w.cpu_f32()?, g.cpu_f32()?, &mut dx);
    Tensor::from_vec(dx, x_shape)
}

/// `dW = g^T * x` (`[out, in]`): gradient of `linear` with respect to its weight.
pub fn linear_backward_weight(x: &Tensor, w_shape: &[usize], grad_out: &Tensor) -> Result<Tensor> {
    let p = linear_grad_dims("linear_backward_weight", x.shape(), w_shape, grad_out)?;
    check_f32_same_device("linear_backward_weight", &[grad_out, x])?;
    let (x, g) = (x.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let (m, outf, inf) = (p.rows as usize, p.out_features as usize, p.in_features as usize);
        return Tensor::from_cuda(cuda::linear_dw(g.cuda_dense()?, x.cuda_dense()?, m, outf, inf)?, w_shape);
    }
    let mut dw = vec![0f32; numel(w_shape)];
    cpu_linear::linear_backward_weight_fast(&p, x.cpu_f32()?, g.cpu_f32()?, &mut dw);
    Tensor::from_vec(dw, w_shape)
}

/// `db = sum of g over every dim but the last` (`[out]`): gradient of `linear`'s bias.
pub fn linear_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    let Some((&outf, lead)) = grad_out.shape().split_last() else {
        return Err(Error::shape("linear_backward_bias", "grad_out is a scalar; expected [.., out]"));
    };
    check_f32_same_device("linear_backward_bias", &[grad_out])?;
    let g = grad_out.contiguous()?;
    if !super::is_cpu(&g) {
        if numel(lead) == 0 {
            return Tensor::zeros(&[outf]).to_device(&g.device());
        }
        // The sum over the rows of g [rows, out]: the reduction kernel with outer 1, inner `out`.
        let p = crate::params::reduce::ReduceParams::new(crate::params::reduce::ReduceOp::Sum, 1, numel(lead), outf);
        return Tensor::from_cuda(crate::cuda::ops::reduce::reduce(g.cuda_dense()?, &p)?, &[outf]);
    }
    let mut db = vec![0f32; outf];
    cpu_linear::linear_backward_bias_fast(&LinearParams::new(numel(lead), 0, outf, true), g.cpu_f32()?, &mut db);
    Tensor::from_vec(db, &[outf])
}

/// All three gradients of `linear(x, w, b)`: `(dx, dW, db)`.
pub fn linear_backward(x: &Tensor, w: &Tensor, grad_out: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((linear_backward_input(x.shape(), w, grad_out)?, linear_backward_weight(x, w.shape(), grad_out)?, linear_backward_bias(grad_out)?))
}
