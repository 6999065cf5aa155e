//! Patch unfold / fold (spec §1.1): image `[B, C, H, W]` (NCHW) <-> tokens
//! `[B, (H/p)*(W/p), C*p*p]`, non-overlapping `p x p` patches ordered row-major over the grid,
//! each patch vector channel-major (`c*p*p + ky*p + kx`). Fold is the exact inverse; each is the
//! other's backward. (Feature map `[B, C, h, w]` <-> tokens `[B, h*w, C]` needs no op:
//! `reshape([B, C, h*w])` + `permute([0, 2, 1])` + `contiguous()`.)

use super::prep::{check_u32_len, dense_f32};
use crate::cpu::ops::patch as cpu;
use crate::cuda::ops::image as cuda;
use crate::error::{Error, Result};
use crate::params::patch::PatchParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

fn check_geometry(op: &'static str, h: usize, w: usize, p: usize) -> Result<()> {
    if p == 0 || !h.is_multiple_of(p) || !w.is_multiple_of(p) {
        return Err(Error::shape(
            op,
            format!("image {h}x{w} is not a whole number of {p}x{p} patches"),
        ));
    }
    Ok(())
}

/// `[B, C, H, W]` -> `[B, (H/p)*(W/p), C*p*p]`.
pub fn patch_unfold(x: &Tensor, p: usize) -> Result<Tensor> {
    const OP: &str = "patch_unfold";
    let &[b, c, h, w] = x.shape() else {
        return Err(Error::shape(
            OP,
            format!("expected an NCHW image [B, C, H, W], got {:?}", x.shape()),
        ));
    };
    check_geometry(OP, h, w, p)?;
    check_u32_len(OP, x.numel())?;
    let params = PatchParams::new(b, c, h, w, p);
    let x = dense_f32(OP, x)?;
    let shape = [b, (h / p) * (w / p), c * p * p];
    match x.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0f32; x.numel()];
            cpu::unfold_fast(&params, x.cpu_f32()?, &mut out);
            Tensor::from_vec(out, &shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::patch_unfold(x.cuda_dense()?, &params)?, &shape),
    }
}

/// `[B, (H/p)*(W/p), C*p*p]` -> `[B, C, H, W]` for the given image size `(H, W)`.
pub fn patch_fold(tokens: &Tensor, p: usize, image_hw: (usize, usize)) -> Result<Tensor> {
    const OP: &str = "patch_fold";
    let (h, w) = image_hw;
    check_geometry(OP, h, w, p)?;
    let &[b, l, k] = tokens.shape() else {
        return Err(Error::shape(
            OP,
            format!("expected tokens [B, L, C*p*p], got {:?}", tokens.shape()),
        ));
    };
    if l != (h / p) * (w / p) || k % (p * p) != 0 {
        return Err(Error::shape(
            OP,
            format!(
                "tokens {:?} do not fold into {h}x{w} with {p}x{p} patches (need L = {}, C*{})",
                tokens.shape(),
                (h / p) * (w / p),
                p * p
            ),
        ));
    }
    check_u32_len(OP, tokens.numel())?;
    let c = k / (p * p);
    let params = PatchParams::new(b, c, h, w, p);
    let t = dense_f32(OP, tokens)?;
    match t.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0f32; t.numel()];
            cpu::fold_fast(&params, t.cpu_f32()?, &mut out);
            Tensor::from_vec(out, &[b, c, h, w])
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::patch_fold(t.cuda_dense()?, &params)?, &[b, c, h, w]),
    }
}
