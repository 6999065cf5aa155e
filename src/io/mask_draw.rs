//! Drawing simple hole masks by hand: filled rectangles and round-brush strokes along a
//! polyline, on a canvas in the mask-file convention (255 = hole, 0 = known). Used to make the
//! test masks in `assets/masks/` (regenerated and compared by `tests/image_io.rs`) and for
//! quick demo masks. The random mask generators of spec §6.7 belong to the data pipeline.
//!
//! Everything is deterministic integer/float geometry: a pixel (x, y) is covered by a stroke
//! when its centre (x + 0.5, y + 0.5) lies within `width / 2` of a segment.

use super::error::ImageError;
use crate::tensor::Tensor;
use std::path::Path;

/// A `width x height` 8-bit mask canvas, row-major, 255 = hole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskCanvas {
    pub width: usize,
    pub height: usize,
    pub luma: Vec<u8>,
}

/// Squared distance from point p to segment ab.
pub fn dist2_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let (px, py) = (p.0 - a.0, p.1 - a.1);
    let t = if len2 > 0.0 {
        ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (px - t * dx, py - t * dy);
    ex * ex + ey * ey
}

impl MaskCanvas {
    /// An all-known (black) canvas.
    pub fn new(width: usize, height: usize) -> Self {
        MaskCanvas {
            width,
            height,
            luma: vec![0; width * height],
        }
    }

    /// Mark the pixels with x0 <= x < x1, y0 <= y < y1 as hole (clipped to the canvas).
    pub fn fill_rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize) -> &mut Self {
        for y in y0.min(self.height)..y1.min(self.height) {
            let row = y * self.width;
            self.luma[row + x0.min(self.width)..row + x1.min(self.width)].fill(255);
        }
        self
    }

    /// Mark as hole every pixel whose centre is within `width / 2` of the polyline `points`.
    pub fn stroke(&mut self, points: &[(f32, f32)], width: f32) -> &mut Self {
        let r = width / 2.0;
        let segs: Vec<((f32, f32), (f32, f32))> = match points {
            [] => return self,
            [p] => vec![(*p, *p)],
            _ => points.windows(2).map(|w| (w[0], w[1])).collect(),
        };
        for (a, b) in segs {
            // Only visit the segment's bounding box grown by the radius.
            let xs = (
                (a.0.min(b.0) - r).floor().max(0.0) as usize,
                ((a.0.max(b.0) + r).ceil().max(0.0) as usize).min(self.width),
            );
            let ys = (
                (a.1.min(b.1) - r).floor().max(0.0) as usize,
                ((a.1.max(b.1) + r).ceil().max(0.0) as usize).min(self.height),
            );
            for y in ys.0..ys.1 {
                for x in xs.0..xs.1 {
                    if dist2_to_segment((x as f32 + 0.5, y as f32 + 0.5), a, b) <= r * r {
                        self.luma[y * self.width + x] = 255;
                    }
                }
            }
        }
        self
    }

    /// Number of hole pixels.
    pub fn hole_pixels(&self) -> usize {
        self.luma.iter().filter(|&&v| v >= 128).count()
    }

    /// The engine mask `[1, H, W]`, 1 = visible (spec §0).
    pub fn to_engine_mask(&self) -> Result<Tensor, ImageError> {
        super::image::mask_from_luma(&self.luma, self.width, self.height, false)
    }

    /// Save as an 8-bit grey PNG (white = hole).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), ImageError> {
        let path = path.as_ref();
        let img = ::image::GrayImage::from_raw(self.width as u32, self.height as u32, self.luma.clone())
            .expect("W * H bytes by construction");
        img.save_with_format(path, ::image::ImageFormat::Png)
            .map_err(|e| ImageError::Codec {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
    }
}

/// The test masks shipped in `assets/masks/` (256 x 256): (file name, canvas).
pub fn test_masks() -> Vec<(&'static str, MaskCanvas)> {
    let mut rect = MaskCanvas::new(256, 256);
    // A 96 x 64 box, deliberately not aligned to the 8-pixel patch grid on two sides so that
    // partially hidden patches occur (spec §1.2).
    rect.fill_rect(84, 100, 180, 164);
    let mut stroke = MaskCanvas::new(256, 256);
    // A free-form brush stroke of width 18 across the image, plus a short second stroke.
    stroke.stroke(
        &[
            (30.0, 60.0),
            (90.0, 40.0),
            (150.0, 110.0),
            (200.0, 90.0),
            (225.0, 170.0),
        ],
        18.0,
    );
    stroke.stroke(&[(60.0, 200.0), (120.0, 225.0)], 12.0);
    vec![("rect.png", rect), ("stroke.png", stroke)]
}
