//! Mask generators of spec §6.7: seeded, binary, the stroke generator's hole ratio in
//! [0.5, 1.0], small enclosed holes filled, buckets respected, patch alignment.
use fdm::data::masks::*;
use fdm::rng::Rng;

fn is_binary(m: &[f32]) -> bool {
    m.iter().all(|&v| v == 0.0 || v == 1.0)
}

#[test]
fn stroke_mask_is_seeded_binary_and_mostly_hole_cpu() {
    let c = StrokeConfig::default();
    for seed in 0..12 {
        let a = stroke_mask(&mut Rng::new(seed), 256, &c);
        let b = stroke_mask(&mut Rng::new(seed), 256, &c);
        assert_eq!(a, b, "same seed, same mask");
        assert!(is_binary(&a));
        let r = hole_ratio(&a);
        // keep ratio target < 0.5, overshoot by one stroke at most (a stroke covers < 40 %).
        assert!((0.15..=1.0).contains(&r), "seed {seed}: hole ratio {r}");
    }
    assert_ne!(stroke_mask(&mut Rng::new(1), 256, &c), stroke_mask(&mut Rng::new(2), 256, &c));
}

#[test]
fn fill_small_holes_fills_enclosed_small_components_only_cpu() {
    let n = 16;
    let mut m = vec![1.0; n * n];
    // 2x2 enclosed hole (area 4 < 64): filled.
    for (y, x) in [(3, 3), (3, 4), (4, 3), (4, 4)] {
        m[y * n + x] = 0.0;
    }
    // Hole touching the border: kept.
    m[10] = 0.0; // row 0
    fill_small_holes(&mut m, n, 64);
    assert_eq!(m[3 * n + 3], 1.0);
    assert_eq!(m[4 * n + 4], 1.0);
    assert_eq!(m[10], 0.0);
    // A large enclosed hole (area 100 >= 64): kept.
    let mut big = vec![1.0; 16 * 16];
    for y in 3..13 {
        for x in 3..13 {
            big[y * 16 + x] = 0.0;
        }
    }
    fill_small_holes(&mut big, 16, 64);
    assert_eq!(big.iter().filter(|&&v| v == 0.0).count(), 100);
}

#[test]
fn rect_mask_has_holes_of_requested_size_cpu() {
    let m = rect_mask(&mut Rng::new(3), 64, 1, 10, 10);
    assert!(is_binary(&m));
    assert_eq!(m.iter().filter(|&&v| v == 0.0).count(), 100);
}

#[test]
fn low_to_high_uses_top_left_pixel_cpu() {
    let size = 16;
    let mut m = vec![1.0; size * size];
    m[8 * size + 8] = 0.0; // top-left pixel of patch (1, 1): the whole patch becomes a hole
    m[3 * size + 5] = 0.0; // inside patch (0, 0) but not its top-left: ignored
    let a = low_to_high(&m, size, 8);
    for y in 0..size {
        for x in 0..size {
            let expect = if y >= 8 && x >= 8 { 0.0 } else { 1.0 };
            assert_eq!(a[y * size + x], expect, "({y}, {x})");
        }
    }
}

#[test]
fn bucketed_masks_fall_in_their_bucket_cpu() {
    let mut rng = Rng::new(11);
    for (lo, hi) in [(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6)] {
        let m = bucketed_mask(&mut rng, 256, lo, hi, 200).expect("a mask in the bucket");
        let r = hole_ratio(&m);
        assert!(r >= lo && r < hi, "bucket [{lo}, {hi}): ratio {r}");
        assert!(is_binary(&m));
    }
}
