//! Images and masks in and out (through the `image` crate).
//!
//! * Read: PNG, JPEG, WebP, BMP, TIFF and GIF (its first frame), the format found from the
//!   file's content; folders are searched by `READABLE_EXTENSIONS`. Written: PNG and JPEG.
//! * Images load as `[3, H, W]` f32 CPU tensors in [0, 255] (spec §0's dataset range), any size,
//!   any mode: RGB as is; RGBA / grey+alpha drop the alpha channel (not composited; a note
//!   says so); grey is replicated to three channels; 16-bit and float images keep their precision
//!   (value * 255 / 65535, value * 255) instead of being cut to 8 bits.
//! * Images save from `[3, H, W]` in [0, 255] by **rounding to nearest and clamping** to 0..255
//!   (NaN is written as 0). The official code truncates when it writes uint8 (spec §9.16); this
//!   engine rounds its own outputs, which differs by at most one grey level.
//!   `save_png16` writes 16-bit RGB PNG (`round(v * 65535 / 255)`): `fdm inpaint` uses it for
//!   photos of more than 8 bits per channel (`LoadedImage::deep`), whose 16-bit values come
//!   back exactly, so their known pixels are not cut to 8 bits.
//! * Mask files follow the official convention (spec §6.7, §9.1): **white = hole**, black =
//!   known; the file is read as luminance (alpha ignored) and a pixel is white when its 8-bit
//!   luma is >= 128, so anti-aliased or JPEG-compressed masks binarise cleanly. `invert` swaps
//!   the convention (black = hole). The returned tensor is in the engine's polarity (spec §0):
//!   `[1, H, W]` f32 with **1 = visible, 0 = hole**.
//! * `require_hole` is the separate check `inpaint` runs: a mask with no hole is an error.
//! * Both are turned upright by their EXIF orientation (JPEG), the way viewers show them; an
//!   image's notes say so.
//! * `contact_sheet` tiles several `[3, H, W]` images into one, with a small white gap.

use super::error::ImageError;
use crate::tensor::Tensor;
use ::image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, metadata::Orientation};
use rayon::prelude::*;
use std::path::Path;

/// A loaded image and what was changed to make it `[3, H, W]`.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    /// `[3, H, W]` f32 in [0, 255].
    pub tensor: Tensor,
    pub width: usize,
    pub height: usize,
    /// Human-readable notes (alpha dropped, grey replicated, 16-bit kept), empty for plain RGB.
    pub notes: Vec<String>,
    /// More than 8 bits per channel in the file (16-bit or float): results derived from it are
    /// written with `save_png16`, so its known pixels are not cut to 8 bits.
    pub deep: bool,
}

/// File extensions (lower case) of the formats `load_image` and `load_mask` read; the folder
/// modes (`fdm inpaint --image-dir`, `fdm train --data`, `fdm eval`) list files by them.
pub const READABLE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"];

/// Whether `path` has one of `READABLE_EXTENSIONS` (any case).
pub fn has_readable_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| READABLE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The decoder's error, with the readable formats named when the format itself is the problem
/// (an AVIF or HEIC photo, say), so the user knows what to convert it to.
fn decode_err(path: &Path, e: ::image::ImageError) -> ImageError {
    match e {
        ::image::ImageError::Unsupported(_) => {
            codec_err(path, format!("{e} (readable formats: PNG, JPEG, WebP, BMP, TIFF, GIF)"))
        }
        e => codec_err(path, e),
    }
}

fn codec_err(path: &Path, e: impl std::fmt::Display) -> ImageError {
    ImageError::Codec {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// The whole file, refused as `ImageError::Truncated` when it is JPEG data cut off before its end
/// (`io::jpeg`: the decoder would fill the missing rows with grey and report nothing).
pub fn read_image_bytes(path: &Path) -> Result<Vec<u8>, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    if bytes.starts_with(&[0xFF, 0xD8]) && !super::jpeg::jpeg_is_complete(&bytes) {
        return Err(ImageError::Truncated { path: path.to_path_buf() });
    }
    Ok(bytes)
}

/// Decode a readable image (format from its content), turned upright by its EXIF orientation: phone
/// photos store the sensor's rotation there, and viewers and mask editors show the upright
/// picture, so that is the one a mask is drawn on. Returns the orientation applied, if any.
fn decode(path: &Path) -> Result<(DynamicImage, Option<Orientation>), ImageError> {
    let io = |source| ImageError::Io { path: path.to_path_buf(), source };
    let bytes = read_image_bytes(path)?;
    let reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(io)?;
    let mut decoder = reader.into_decoder().map_err(|e| decode_err(path, e))?;
    // The allocation check `ImageReader::decode` makes (default limits) before decoding.
    ::image::Limits::default().reserve(decoder.total_bytes()).map_err(|e| codec_err(path, e))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, e))?;
    if orientation == Orientation::NoTransforms {
        return Ok((img, None));
    }
    img.apply_orientation(orientation);
    Ok((img, Some(orientation)))
}

/// Planar `[3, H, W]` values from interleaved RGB.
fn planar_from_interleaved<P: Copy + Sync>(pixels: &[P], w: usize, h: usize, channel: impl Fn(P, usize) -> f32 + Sync) -> Result<Tensor, ImageError> {
    let n = w * h;
    let mut out = vec![0.0f32; 3 * n];
    if n > 0 {
        // Row by row in parallel: a 12-megapixel photo is 36 M values each way.
        let (r, gb) = out.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        r.par_chunks_mut(w).zip(g.par_chunks_mut(w)).zip(b.par_chunks_mut(w)).zip(pixels.par_chunks(w)).for_each(|(((r, g), b), row)| {
            for (i, &px) in row.iter().enumerate() {
                (r[i], g[i], b[i]) = (channel(px, 0), channel(px, 1), channel(px, 2));
            }
        });
    }
    Ok(Tensor::from_vec(out, &[3, h, w])?)
}

/// 8 bits per channel (what `to_rgb8` keeps exactly).
fn is_eight_bit(color: ColorType) -> bool {
    matches!(color, ColorType::L8 | ColorType::La8 | ColorType::Rgb8 | ColorType::Rgba8)
}

/// Convert a decoded image to `[3, H, W]` in [0, 255], with notes on what changed.
pub fn image_to_tensor(img: &DynamicImage) -> Result<(Tensor, Vec<String>), ImageError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let color = img.color();
    let mut notes = Vec::new();
    if color.has_alpha() {
        notes.push("alpha channel dropped (colour kept as stored, not composited)".to_string());
    }
    if !color.has_color() {
        notes.push("grey image replicated to three channels".to_string());
    }
    let t = if is_eight_bit(color) {
        let rgb = img.to_rgb8();
        planar_from_interleaved(rgb.as_raw().as_chunks::<3>().0, w, h, |p, c| p[c] as f32)?
    } else {
        notes.push(format!(
            "{color:?} image: values kept at full precision, scaled to [0, 255]"
        ));
        let rgb = img.to_rgb32f();
        planar_from_interleaved(rgb.as_raw().as_chunks::<3>().0, w, h, |p, c| p[c] * 255.0)?
    };
    Ok((t, notes))
}

/// Load a readable image (format from the file's content) as `[3, H, W]` f32 in [0, 255].
pub fn load_image(path: impl AsRef<Path>) -> Result<LoadedImage, ImageError> {
    let path = path.as_ref();
    let (img, turned) = decode(path)?;
    let (tensor, mut notes) = image_to_tensor(&img)?;
    if let Some(o) = turned {
        notes.push(format!("turned upright by its EXIF orientation ({o:?})"));
    }
    let deep = !is_eight_bit(img.color());
    Ok(LoadedImage {
        width: img.width() as usize,
        height: img.height() as usize,
        tensor,
        notes,
        deep,
    })
}

/// `[3, H, W]` -> (W, H, interleaved RGB values converted by `f`), checking the shape for `op`.
fn interleaved<T: Copy + Default + Send>(t: &Tensor, op: &'static str, f: impl Fn(f32) -> T + Sync) -> Result<(u32, u32, Vec<T>), ImageError> {
    let s = t.shape();
    if s.len() != 3 || s[0] != 3 || s[1] == 0 || s[2] == 0 {
        return Err(ImageError::Shape {
            op,
            detail: format!("expected a non-empty [3, H, W] image, got {s:?}"),
        });
    }
    let (h, w) = (s[1], s[2]);
    let v = t.host_f32()?;
    let (r, gb) = v.split_at(h * w);
    let (g, b) = gb.split_at(h * w);
    let mut out = vec![T::default(); 3 * h * w];
    // Row by row in parallel: a 12-megapixel photo is 36 M values each way.
    out.par_chunks_mut(3 * w).zip(r.par_chunks(w)).zip(g.par_chunks(w)).zip(b.par_chunks(w)).for_each(|(((row, r), g), b)| {
        for (px, ((&r, &g), &b)) in row.as_chunks_mut::<3>().0.iter_mut().zip(r.iter().zip(g).zip(b)) {
            *px = [f(r), f(g), f(b)];
        }
    });
    Ok((w as u32, h as u32, out))
}

/// `x.round().clamp(0.0, 255.0) as u8` (halves away from zero, NaN to 0) without `f32::round`,
/// which is a libm call on baseline x86-64: clamping first gives the same result, and the
/// fraction of a value in [0, 255] is exact.
fn round_to_u8(x: f32) -> u8 {
    let c = x.clamp(0.0, 255.0); // NaN stays NaN; `as u8` maps it to 0
    let whole = c as u8;
    whole + u8::from(c - whole as f32 >= 0.5)
}

/// `[3, H, W]` in [0, 255] -> (W, H, interleaved RGB bytes), rounding and clamping.
pub fn tensor_to_rgb8(t: &Tensor) -> Result<(u32, u32, Vec<u8>), ImageError> {
    interleaved(t, "tensor_to_rgb8", round_to_u8)
}

/// Save `[3, H, W]` in [0, 255] as PNG (rounded and clamped, see module docs).
pub fn save_png(t: &Tensor, path: impl AsRef<Path>) -> Result<(), ImageError> {
    save_image_as(t, path.as_ref(), ImageFormat::Png)
}

/// Save `[3, H, W]` in [0, 255] as a 16-bit RGB PNG: `round(v * 65535 / 255)`, clamped (NaN as
/// 0). A 16-bit input's values (`v = u * 255 / 65535` in f32) come back as exactly `u`.
pub fn save_png16(t: &Tensor, path: impl AsRef<Path>) -> Result<(), ImageError> {
    let path = path.as_ref();
    // `as u16` saturates and maps NaN to 0.
    let (w, h, words) = interleaved(t, "save_png16", |x| (x as f64 * 65535.0 / 255.0).round() as u16)?;
    let img = ::image::ImageBuffer::<::image::Rgb<u16>, Vec<u16>>::from_raw(w, h, words).expect("buffer length is 3 * W * H by construction");
    write_encoded(path, |out| img.write_to(&mut std::io::Cursor::new(out), ImageFormat::Png))
}

/// Save `[3, H, W]` in [0, 255] as PNG or JPEG (quality 95), chosen by the file extension.
pub fn save_image(t: &Tensor, path: impl AsRef<Path>) -> Result<(), ImageError> {
    let path = path.as_ref();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => save_image_as(t, path, ImageFormat::Png),
        Some("jpg") | Some("jpeg") => save_image_as(t, path, ImageFormat::Jpeg),
        _ => Err(codec_err(path, "unknown image extension: use .png, .jpg or .jpeg")),
    }
}

fn save_image_as(t: &Tensor, path: &Path, format: ImageFormat) -> Result<(), ImageError> {
    let (w, h, bytes) = tensor_to_rgb8(t)?;
    let img = ::image::RgbImage::from_raw(w, h, bytes).expect("buffer length is 3 * W * H by construction");
    write_encoded(path, |out| match format {
        ImageFormat::Jpeg => ::image::codecs::jpeg::JpegEncoder::new_with_quality(out, 95).encode_image(&img),
        _ => img.write_to(&mut std::io::Cursor::new(out), format),
    })
}

/// Encode in memory, then write atomically (`io::atomic`): an interrupted run never leaves a
/// truncated picture where a finished one is expected (folder mode resumes by the files that exist).
fn write_encoded(path: &Path, encode: impl FnOnce(&mut Vec<u8>) -> ::image::ImageResult<()>) -> Result<(), ImageError> {
    let mut encoded = Vec::new();
    encode(&mut encoded).map_err(|e| codec_err(path, e))?;
    crate::io::atomic::write_atomic(path, &encoded).map_err(ImageError::Write)
}

/// Engine mask `[1, H, W]` (1 = visible) from 8-bit luma in the file convention (white = hole).
pub fn mask_from_luma(luma: &[u8], width: usize, height: usize, invert: bool) -> Result<Tensor, ImageError> {
    if luma.len() != width * height {
        return Err(ImageError::Shape {
            op: "mask_from_luma",
            detail: format!("{} values for {width}x{height}", luma.len()),
        });
    }
    let v = luma
        .iter()
        .map(|&l| if (l >= 128) != invert { 0.0 } else { 1.0 })
        .collect();
    Ok(Tensor::from_vec(v, &[1, height, width])?)
}

/// Load a mask file: white (luma >= 128) = hole unless `invert`; returns `[1, H, W]` with
/// 1 = visible, 0 = hole (module docs).
pub fn load_mask(path: impl AsRef<Path>, invert: bool) -> Result<Tensor, ImageError> {
    let path = path.as_ref();
    let luma = decode(path)?.0.to_luma8();
    mask_from_luma(luma.as_raw(), luma.width() as usize, luma.height() as usize, invert)
}

/// Save an engine mask `[1, H, W]` (1 = visible) in the file convention: hole white, known black.
pub fn save_mask_png(mask: &Tensor, path: impl AsRef<Path>) -> Result<(), ImageError> {
    let path = path.as_ref();
    let (h, w) = mask_hw(mask, "save_mask_png")?;
    let bytes = mask
        .host_f32()?
        .iter()
        .map(|&m| if m < 0.5 { 255u8 } else { 0 })
        .collect();
    let img = ::image::GrayImage::from_raw(w as u32, h as u32, bytes).expect("W * H bytes by construction");
    write_encoded(path, |out| img.write_to(&mut std::io::Cursor::new(out), ImageFormat::Png))
}

fn mask_hw(mask: &Tensor, op: &'static str) -> Result<(usize, usize), ImageError> {
    match mask.shape() {
        [1, h, w] => Ok((*h, *w)),
        s => Err(ImageError::Shape {
            op,
            detail: format!("expected a [1, H, W] mask, got {s:?}"),
        }),
    }
}

/// Fraction of hole pixels (value < 0.5) of an engine mask.
pub fn hole_fraction(mask: &Tensor) -> Result<f32, ImageError> {
    mask_hw(mask, "hole_fraction")?;
    let v = mask.host_f32()?;
    Ok(v.par_iter().filter(|&&m| m < 0.5).count() as f32 / v.len().max(1) as f32)
}

/// `Err(ImageError::NoHole)` when the mask marks every pixel visible (nothing to inpaint).
pub fn require_hole(mask: &Tensor) -> Result<(), ImageError> {
    if hole_fraction(mask)? > 0.0 {
        Ok(())
    } else {
        Err(ImageError::NoHole)
    }
}

/// `Err(ImageError::SizeMismatch)` unless the `[1, H, W]` mask has the `[3, H, W]` image's size.
pub fn check_mask_matches(image: &Tensor, mask: &Tensor) -> Result<(), ImageError> {
    let (mh, mw) = mask_hw(mask, "check_mask_matches")?;
    match image.shape() {
        [3, h, w] if (*h, *w) == (mh, mw) => Ok(()),
        [3, h, w] => Err(ImageError::SizeMismatch {
            mask_w: mw,
            mask_h: mh,
            image_w: *w,
            image_h: *h,
        }),
        s => Err(ImageError::Shape {
            op: "check_mask_matches",
            detail: format!("expected a [3, H, W] image, got {s:?}"),
        }),
    }
}

/// Tile `[3, H, W]` images (sizes may differ) row by row, `columns` per row, with `gap` white
/// pixels between and around cells; each image sits at the top-left of a cell as large as the
/// largest image. Returns `[3, H', W']` in [0, 255].
pub fn contact_sheet(images: &[Tensor], columns: usize, gap: usize) -> Result<Tensor, ImageError> {
    if images.is_empty() || columns == 0 {
        return Err(ImageError::Shape {
            op: "contact_sheet",
            detail: "need at least one image and one column".into(),
        });
    }
    let mut cell = (0, 0);
    for (i, t) in images.iter().enumerate() {
        match t.shape() {
            [3, h, w] => cell = (cell.0.max(*h), cell.1.max(*w)),
            s => {
                return Err(ImageError::Shape {
                    op: "contact_sheet",
                    detail: format!("image {i}: expected [3, H, W], got {s:?}"),
                })
            }
        }
    }
    let cols = columns.min(images.len());
    let rows = images.len().div_ceil(cols);
    let (sh, sw) = (rows * cell.0 + (rows + 1) * gap, cols * cell.1 + (cols + 1) * gap);
    let mut out = vec![255.0f32; 3 * sh * sw];
    for (i, t) in images.iter().enumerate() {
        let (h, w) = (t.shape()[1], t.shape()[2]);
        let (y0, x0) = (gap + (i / cols) * (cell.0 + gap), gap + (i % cols) * (cell.1 + gap));
        let v = t.host_f32()?;
        for c in 0..3 {
            for y in 0..h {
                let src = &v[(c * h + y) * w..(c * h + y + 1) * w];
                let dst = (c * sh + y0 + y) * sw + x0;
                out[dst..dst + w].copy_from_slice(src);
            }
        }
    }
    Ok(Tensor::from_vec(out, &[3, sh, sw])?)
}

/// `[3, H, W]` in [0, 255] scaled down so its longer side is at most `max_side` (aspect kept;
/// the `image` crate's area-like `thumbnail` filter, 8-bit); unchanged when already small enough.
/// For previews such as contact sheets, never for results.
pub fn thumbnail(t: &Tensor, max_side: usize) -> Result<Tensor, ImageError> {
    // The size from the shape, so a picture already small enough is never converted.
    let long = match t.shape() {
        [3, h, w] => *h.max(w),
        _ => 0, // tensor_to_rgb8 below names the bad shape
    };
    if (long <= max_side || max_side == 0) && long > 0 {
        return Ok(t.clone());
    }
    let (w, h, bytes) = tensor_to_rgb8(t)?;
    let long = w.max(h) as usize;
    let scale = |x: u32| ((x as usize * max_side) / long).max(1) as u32;
    let img = ::image::RgbImage::from_raw(w, h, bytes).expect("buffer length is 3 * W * H by construction");
    let small = ::image::imageops::thumbnail(&img, scale(w), scale(h));
    let (sw, sh) = (small.width() as usize, small.height() as usize);
    planar_from_interleaved(small.as_raw().as_chunks::<3>().0, sw, sh, |p, c| p[c] as f32)
}

/// `contact_sheet` with a 4-pixel gap, saved as PNG.
pub fn save_contact_sheet(images: &[Tensor], columns: usize, path: impl AsRef<Path>) -> Result<(), ImageError> {
    save_png(&contact_sheet(images, columns, 4)?, path)
}
