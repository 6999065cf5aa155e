//! `mask_composite(out, input, mask) = out (1 - m) + input m`: the generated image at holes,
//! the input at visible pixels (exact where the mask is 0 or 1; spec §5.1 step 6). Images
//! `[C, H, W]` or `[N, C, H, W]`, the mask one plane per image (`[1, H, W]` / `[N, 1, H, W]`).
//!
//! On the CPU one fused pass (`cpu/ops/composite.rs`) with the bits of the three element-wise
//! ops it stands for; elsewhere (a CUDA device, other shapes) those ops themselves.

use super::prep::dense_f32;
use super::{binary, unary};
use crate::cpu::ops::composite as cpu;
use crate::error::Result;
use crate::tensor::Tensor;

/// Channels and plane size when `out`/`input` are images and `mask` has one plane per image.
fn image_layout(out: &[usize], input: &[usize], mask: &[usize]) -> Option<(usize, usize)> {
    let rank = out.len();
    let fits = (rank == 3 || rank == 4) && out == input && mask.len() == rank && mask[rank - 3] == 1
        && mask.iter().zip(out).enumerate().all(|(d, (m, o))| d == rank - 3 || m == o);
    fits.then(|| (out[rank - 3], out[rank - 2] * out[rank - 1])).filter(|&(c, plane)| c > 0 && plane > 0)
}

/// `out (1 - mask) + input mask`, broadcasting the mask over the channels.
pub fn mask_composite(out: &Tensor, input: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let layout = image_layout(out.shape(), input.shape(), mask.shape());
    let on_cpu = super::is_cpu(out) && super::is_cpu(input) && super::is_cpu(mask);
    if let (Some((channels, plane)), true) = (layout, on_cpu) {
        let op = "mask_composite";
        let (o, i, m) = (dense_f32(op, out)?, dense_f32(op, input)?, dense_f32(op, mask)?);
        let y = cpu::composite_fast(channels, plane, o.cpu_f32()?, i.cpu_f32()?, m.cpu_f32()?);
        return Tensor::from_vec(y, out.shape());
    }
    let one_minus = unary::add_scalar(&unary::mul_scalar(mask, -1.0)?, 1.0)?;
    binary::add(&binary::mul(out, &one_minus)?, &binary::mul(input, mask)?)
}
