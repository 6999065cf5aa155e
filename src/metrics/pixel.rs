//! Per-image pixel metrics of spec §7.2, exactly as the official `cal_metrics.py` computes them.
//!
//! Inputs are images as `io::image::load_image` returns them: `[C, H, W]` f32 tensors (any
//! shape, as long as both are the same) with values in [0, 255]. Every metric divides by 255
//! first, so it is computed on [0, 1] values, and accumulates in f64 (a 256x256x3 image is
//! 196,608 terms; f32 sums would drift in the 5th digit).
//!
//! * `psnr`: `mse = mean((a/255 - b/255)^2)` over every pixel and channel;
//!   `20 log10(1 / sqrt(mse))`, or exactly `100` when `mse < 1e-10` (`get_PSNR`, `tool='none'`).
//! * `mae`: `sum|a/255 - b/255| / sum(a/255 + b/255)` (`get_mae`): a *relative* error, not a
//!   plain mean absolute error. Two all-black images give 0/0; that is returned as 0 (identical
//!   images) instead of the official NaN.
//! * `l1`: `mean|a/255 - b/255|` (`get_l1_loss`), the plain mean absolute error.
//!
//! These are host-side evaluation functions over image data in f64, not engine ops: they never
//! run on the GPU and never enter the tape. SSIM lives in `ssim.rs`.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// PSNR of an identical pair (the official cap, returned when `mse < 1e-10`).
pub const PSNR_CAP: f64 = 100.0;

/// Both images' values as f64 in [0, 1] (divided by 255), after the shape and value checks.
pub(crate) fn unit_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!("images differ in shape: {:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    if a.numel() == 0 {
        return Err(Error::shape(op, format!("empty image {:?}", a.shape())));
    }
    let to_unit = |t: &Tensor, which: &str| -> Result<Vec<f64>> {
        let v = t.to_vec_f32()?;
        if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
            return Err(Error::msg(format!(
                "{op}: {which} image holds a non-finite value ({bad})"
            )));
        }
        Ok(v.into_iter().map(|x| x as f64 / 255.0).collect())
    };
    Ok((to_unit(a, "first")?, to_unit(b, "second")?))
}

/// Mean squared error of `a/255` and `b/255`.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = unit_pair("mse", a, b)?;
    Ok(mse_unit(&a, &b))
}

fn mse_unit(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64
}

/// PSNR in dB of two `[C, H, W]` images in [0, 255] (spec §7.2; 100 for identical images).
pub fn psnr(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = unit_pair("psnr", a, b)?;
    Ok(psnr_from_mse(mse_unit(&a, &b)))
}

/// `20 log10(1 / sqrt(mse))`, capped at 100 for `mse < 1e-10` (peak 1: values in [0, 1]).
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse < 1e-10 {
        PSNR_CAP
    } else {
        20.0 * (1.0 / mse.sqrt()).log10()
    }
}

/// Relative MAE `sum|a - b| / sum(a + b)` on [0, 1] values (spec §7.2); 0 for two black images.
pub fn mae(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = unit_pair("mae", a, b)?;
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    let den: f64 = a.iter().zip(&b).map(|(x, y)| x + y).sum();
    Ok(if den == 0.0 { 0.0 } else { num / den })
}

/// Plain mean absolute error `mean|a - b|` on [0, 1] values (spec §7.2 `get_l1_loss`).
pub fn l1(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = unit_pair("l1", a, b)?;
    Ok(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64)
}
