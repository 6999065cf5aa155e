//! SSIM as the official `get_SSIM` computes it (spec §7.2): both images converted to uint8
//! grayscale with OpenCV's `cvtColor(.., COLOR_RGB2GRAY)`, then scikit-image's
//! `structural_similarity` with its defaults.
//!
//! Grayscale: OpenCV's 8-bit path is fixed point, `Y = (9798 R + 19235 G + 3735 B + 2^14) >> 15`
//! (0.299 / 0.587 / 0.114 scaled by 2^15 and rounded). Checked on all 2^24 RGB triples against
//! OpenCV 4.10.0 and 5.0.0 (a float `round(0.299 R + ...)` differs on ~0.1% of them). The input
//! is first cast to uint8 as numpy's `astype(np.uint8)` does for in-range values (truncation of
//! the fraction); values outside [0, 255] are clamped here (numpy would wrap them).
//! A one-channel `[1, H, W]` image is taken as grayscale directly (`im[:, :, 0].astype(uint8)`).
//!
//! SSIM (skimage 0.26 `structural_similarity`, uint8 inputs): window 7x7 uniform, `K1 = 0.01`,
//! `K2 = 0.03`, `data_range = 255`, sample covariance (`cov_norm = 49 / 48`):
//! `ux, uy` window means, `vx = cov_norm (mean(x^2) - ux^2)`, likewise `vy`, `vxy`;
//! `S = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`, `C1 = (K1 R)^2`,
//! `C2 = (K2 R)^2`. skimage filters the whole image (reflect-padded) and then averages `S` over
//! the image with a border of `(7 - 1) / 2 = 3` pixels cropped; the kept pixels are exactly the
//! centres of windows lying entirely inside the image, so only those windows are evaluated
//! here (the padding never matters). Window sums come from integer summed-area tables, exact for
//! uint8 data; the rest is f64 as in skimage. Images smaller than 7x7 are an error, as there.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// skimage's default (non-Gaussian) window side.
pub const SSIM_WIN: usize = 7;
const K1: f64 = 0.01;
const K2: f64 = 0.03;
const DATA_RANGE: f64 = 255.0;

/// A uint8 grayscale image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GrayU8 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// numpy `astype(np.uint8)` for in-range values (fraction truncated); out-of-range clamped.
fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

/// OpenCV `COLOR_RGB2GRAY` on uint8 (15-bit fixed point, module docs).
pub fn rgb_to_gray_opencv(r: u8, g: u8, b: u8) -> u8 {
    ((9798 * r as u32 + 19235 * g as u32 + 3735 * b as u32 + (1 << 14)) >> 15) as u8
}

/// `[3, H, W]` RGB or `[1, H, W]` gray in [0, 255] -> uint8 grayscale, as `get_SSIM` does.
pub fn to_gray_u8(img: &Tensor) -> Result<GrayU8> {
    let s = img.shape();
    let (c, h, w) = match s {
        &[c, h, w] if c == 1 || c == 3 => (c, h, w),
        _ => {
            return Err(Error::shape(
                "ssim",
                format!("image must be [3, H, W] (RGB) or [1, H, W] (gray), got {s:?}"),
            ))
        }
    };
    let v = img.to_vec_f32()?;
    if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
        return Err(Error::msg(format!("ssim: image holds a non-finite value ({bad})")));
    }
    let n = h * w;
    let data = if c == 1 {
        v.iter().map(|&x| to_u8(x)).collect()
    } else {
        (0..n)
            .map(|i| rgb_to_gray_opencv(to_u8(v[i]), to_u8(v[n + i]), to_u8(v[2 * n + i])))
            .collect()
    };
    Ok(GrayU8 {
        width: w,
        height: h,
        data,
    })
}

/// Summed-area table with a zero first row and column: `t[(y)(w+1) + x]` = sum over `[0,y) x [0,x)`.
fn integral(w: usize, h: usize, f: impl Fn(usize) -> i64) -> Vec<i64> {
    let mut t = vec![0i64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0i64;
        for x in 0..w {
            row += f(y * w + x);
            t[(y + 1) * (w + 1) + x + 1] = t[y * (w + 1) + x + 1] + row;
        }
    }
    t
}

/// Sum of the `SSIM_WIN`-square window whose top-left corner is `(x, y)`.
fn window_sum(t: &[i64], w: usize, x: usize, y: usize) -> i64 {
    let s = w + 1;
    let (x1, y1) = (x + SSIM_WIN, y + SSIM_WIN);
    t[y1 * s + x1] - t[y * s + x1] - t[y1 * s + x] + t[y * s + x]
}

/// Mean SSIM of two uint8 grayscale images of the same size (module docs).
pub fn ssim_gray(a: &GrayU8, b: &GrayU8) -> Result<f64> {
    if (a.width, a.height) != (b.width, b.height) {
        return Err(Error::shape(
            "ssim",
            format!(
                "images differ in size: {}x{} vs {}x{}",
                a.width, a.height, b.width, b.height
            ),
        ));
    }
    let (w, h) = (a.width, a.height);
    if a.data.len() != w * h || b.data.len() != w * h {
        return Err(Error::shape(
            "ssim",
            format!("pixel buffer length does not match {w}x{h}"),
        ));
    }
    if w < SSIM_WIN || h < SSIM_WIN {
        return Err(Error::shape(
            "ssim",
            format!("image {w}x{h} is smaller than the {SSIM_WIN}x{SSIM_WIN} window"),
        ));
    }
    let (pa, pb) = (&a.data, &b.data);
    let px = |p: &[u8], i: usize| p[i] as i64;
    let sx = integral(w, h, |i| px(pa, i));
    let sy = integral(w, h, |i| px(pb, i));
    let sxx = integral(w, h, |i| px(pa, i) * px(pa, i));
    let syy = integral(w, h, |i| px(pb, i) * px(pb, i));
    let sxy = integral(w, h, |i| px(pa, i) * px(pb, i));

    let np = (SSIM_WIN * SSIM_WIN) as f64;
    let cov_norm = np / (np - 1.0);
    let (c1, c2) = ((K1 * DATA_RANGE).powi(2), (K2 * DATA_RANGE).powi(2));
    let mut total = 0f64;
    for y in 0..=h - SSIM_WIN {
        for x in 0..=w - SSIM_WIN {
            let mean = |t: &[i64]| window_sum(t, w, x, y) as f64 / np;
            let (ux, uy) = (mean(&sx), mean(&sy));
            let vx = cov_norm * (mean(&sxx) - ux * ux);
            let vy = cov_norm * (mean(&syy) - uy * uy);
            let vxy = cov_norm * (mean(&sxy) - ux * uy);
            let num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
            let den = (ux * ux + uy * uy + c1) * (vx + vy + c2);
            total += num / den;
        }
    }
    Ok(total / ((w - SSIM_WIN + 1) * (h - SSIM_WIN + 1)) as f64)
}

/// SSIM of two `[3, H, W]` (or `[1, H, W]`) images in [0, 255], as spec §7.2.
pub fn ssim(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            "ssim",
            format!("images differ in shape: {:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    ssim_gray(&to_gray_u8(a)?, &to_gray_u8(b)?)
}
