//! Mask generators (spec §6.7), seeded. Masks here are H x W `Vec<f32>` in the engine's polarity
//! (1 = visible, 0 = hole). Generators:
//! * free-form strokes (`stroke_mask`): the official generator draws the VISIBLE strokes
//!   (keep ratio 0-0.5, so the hole ratio is 0.5-1.0), then fills enclosed holes < 64 px;
//! * rectangles (`rect_mask`): one or more axis-aligned holes;
//! * `low_to_high`: patch-align a mask (nearest down to the token grid, top-left pixel, and back);
//! * `bucketed_mask`: a mask whose hole ratio falls in a requested bucket (the PConv buckets of
//!   spec §6.7), drawn from stroke/rectangle mixtures by rejection; it stands in for the PConv
//!   mask files when none are given.

use crate::io::mask_draw::dist2_to_segment;
use crate::rng::Rng;

/// The official stroke settings (spec §6.7).
#[derive(Clone, Copy, Debug)]
pub struct StrokeConfig {
    pub min_vertex: u64,
    pub max_vertex: u64,
    pub max_length: u64,
    pub min_brush: u64,
    pub max_brush: u64,
    pub keep_ratio: (f32, f32),
    pub min_area: usize,
}

impl Default for StrokeConfig {
    fn default() -> Self {
        StrokeConfig { min_vertex: 5, max_vertex: 10, max_length: 100, min_brush: 10, max_brush: 30, keep_ratio: (0.0, 0.5), min_area: 64 }
    }
}

fn int_in(rng: &mut Rng, lo: u64, hi_inclusive: u64) -> u64 {
    lo + rng.below(hi_inclusive - lo + 1)
}

/// Paint a capsule (thick line with round caps) of radius `r` from (x0, y0) to (x1, y1).
fn draw_capsule(canvas: &mut [f32], size: usize, (x0, y0): (f32, f32), (x1, y1): (f32, f32), r: f32) {
    let (lo_x, hi_x) = ((x0.min(x1) - r).floor().max(0.0) as usize, ((x0.max(x1) + r).ceil() as usize).min(size - 1));
    let (lo_y, hi_y) = ((y0.min(y1) - r).floor().max(0.0) as usize, ((y0.max(y1) + r).ceil() as usize).min(size - 1));
    for y in lo_y..=hi_y {
        for x in lo_x..=hi_x {
            if dist2_to_segment((x as f32, y as f32), (x0, y0), (x1, y1)) <= r * r {
                canvas[y * size + x] = 1.0;
            }
        }
    }
}

/// Paint a one-pixel circle outline of radius `r` centred at (cx, cy).
fn draw_ring(canvas: &mut [f32], size: usize, (cx, cy): (f32, f32), r: f32) {
    let steps = (8.0 * r).max(8.0) as usize;
    for i in 0..steps {
        let a = i as f32 / steps as f32 * std::f32::consts::TAU;
        let (x, y) = ((cx + r * a.cos()).round(), (cy + r * a.sin()).round());
        if x >= 0.0 && y >= 0.0 && (x as usize) < size && (y as usize) < size {
            canvas[y as usize * size + x as usize] = 1.0;
        }
    }
}

/// One random stroke (spec §6.7 `stroke()`), painted as 1s onto `canvas`.
fn stroke(rng: &mut Rng, canvas: &mut [f32], size: usize, c: &StrokeConfig) {
    let n_vertex = int_in(rng, c.min_vertex, c.max_vertex);
    let max = (size - 1) as f32;
    let (mut x0, mut y0) = (int_in(rng, 0, size as u64 - 1) as f32, int_in(rng, 0, size as u64 - 1) as f32);
    for i in 0..n_vertex {
        let mut a = int_in(rng, 0, 360) as f32 * std::f32::consts::TAU / 360.0;
        if i % 2 == 0 {
            a = std::f32::consts::TAU - a;
        }
        let len = int_in(rng, 0, c.max_length) as f32;
        let w = 2 * (int_in(rng, c.min_brush, c.max_brush) / 2);
        let y1 = (y0 + len * a.cos()).clamp(0.0, max).trunc();
        let x1 = (x0 + len * a.sin()).clamp(0.0, max).trunc();
        draw_capsule(canvas, size, (x0, y0), (x1, y1), w as f32 / 2.0);
        draw_ring(canvas, size, (x0, y0), w as f32 / 2.0);
        (x0, y0) = (x1, y1);
    }
}

/// Fill hole components (0s, 4-connected) that do not touch the border and have fewer than
/// `min_area` pixels: the connected-component form of the official `fill_small_holes`.
pub fn fill_small_holes(mask: &mut [f32], size: usize, min_area: usize) {
    let mut seen = vec![false; mask.len()];
    let mut stack = Vec::new();
    let mut component = Vec::new();
    for start in 0..mask.len() {
        if seen[start] || mask[start] != 0.0 {
            continue;
        }
        let mut touches_border = false;
        component.clear();
        stack.push(start);
        seen[start] = true;
        while let Some(i) = stack.pop() {
            component.push(i);
            let (y, x) = (i / size, i % size);
            touches_border |= y == 0 || x == 0 || y == size - 1 || x == size - 1;
            let neighbours = [(y > 0).then(|| i - size), (y + 1 < size).then(|| i + size), (x > 0).then(|| i - 1), (x + 1 < size).then(|| i + 1)];
            for j in neighbours.into_iter().flatten() {
                if !seen[j] && mask[j] == 0.0 {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        if !touches_border && component.len() < min_area {
            component.iter().for_each(|&i| mask[i] = 1.0);
        }
    }
}

pub fn visible_fraction(mask: &[f32]) -> f32 {
    mask.iter().filter(|&&v| v > 0.0).count() as f32 / mask.len() as f32
}

pub fn hole_ratio(mask: &[f32]) -> f32 {
    1.0 - visible_fraction(mask)
}

/// Free-form stroke mask (spec §6.7): strokes are the visible pixels, drawn until the visible
/// fraction reaches a target drawn from `keep_ratio`.
pub fn stroke_mask(rng: &mut Rng, size: usize, c: &StrokeConfig) -> Vec<f32> {
    let mut canvas = vec![0.0; size * size];
    let target = rng.uniform_range(c.keep_ratio.0, c.keep_ratio.1);
    while visible_fraction(&canvas) < target {
        stroke(rng, &mut canvas, size, c);
    }
    fill_small_holes(&mut canvas, size, c.min_area);
    canvas
}

/// A mask with `count` random rectangular holes, each side between `min_side` and `max_side`.
pub fn rect_mask(rng: &mut Rng, size: usize, count: usize, min_side: usize, max_side: usize) -> Vec<f32> {
    let mut m = vec![1.0; size * size];
    for _ in 0..count {
        let h = int_in(rng, min_side as u64, max_side.min(size) as u64) as usize;
        let w = int_in(rng, min_side as u64, max_side.min(size) as u64) as usize;
        let (y0, x0) = (rng.below((size - h + 1) as u64) as usize, rng.below((size - w + 1) as u64) as usize);
        for y in y0..y0 + h {
            m[y * size + x0..y * size + x0 + w].iter_mut().for_each(|v| *v = 0.0);
        }
    }
    m
}

/// Patch-align a mask: nearest resize to the token grid (top-left pixel of each patch) and
/// nearest back up (spec §6.7 `mask_low_to_high`).
pub fn low_to_high(mask: &[f32], size: usize, patch: usize) -> Vec<f32> {
    (0..size * size).map(|i| mask[(i / size / patch * patch) * size + (i % size) / patch * patch]).collect()
}

/// A mask whose hole ratio lies in [lo, hi): the inverse of a stroke mask (holes drawn as
/// strokes) or a set of rectangles, by rejection. `None` after `max_tries` misses.
pub fn bucketed_mask(rng: &mut Rng, size: usize, lo: f32, hi: f32, max_tries: usize) -> Option<Vec<f32>> {
    let strokes = StrokeConfig { keep_ratio: (lo, hi), ..StrokeConfig::default() };
    for _ in 0..max_tries {
        let m = if rng.bernoulli(0.7) {
            // Strokes drawn as holes: invert a stroke canvas whose coverage targets the bucket.
            stroke_mask(rng, size, &strokes).iter().map(|v| 1.0 - v).collect()
        } else {
            let n = 1 + rng.below(4) as usize;
            rect_mask(rng, size, n, size / 8, size / 2)
        };
        let r = hole_ratio(&m);
        if r >= lo && r < hi {
            return Some(m);
        }
    }
    None
}
