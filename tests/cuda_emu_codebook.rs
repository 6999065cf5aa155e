//! `kernels/codebook.cu` (fused distance + argmin with per-row code ranges, spec §2.3), launched by
//! its launchers, against f64 reference distances, on the CPU emulator (`emu::*`) and a real GPU
//! (`cuda::*`, skipped without one).
//!
//! The kernel works in f32 (|e|^2 - 2 z.e), the reference in f64 on the exact differences, so an
//! index may legitimately differ when two codes are within f32 rounding of each other. The check:
//! the chosen code is in the row's range and its true distance is within 1e-3 (relative 1e-5 of
//! distances ~ 512) of the true minimum, and the index is exactly the reference's whenever the
//! runner-up is further than that. Forced ties (duplicated codebook rows) must be exact.

mod common;

use common::backend::Backend;
use common::reference::sq_dists_ref;
use fdm::cuda::ops::codebook::{argmin_splits, codebook_argmin_launch, codebook_argmin_split_launches, codebook_sqnorm_launch, ArgminShape};
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    codebook_sqnorm_matches_reference,
    dual_codebook_halves_at_the_model_shape,
    full_search_with_odd_sizes,
    ties_go_to_the_lowest_index,
);

#[test]
fn argmin_splits_fill_a_large_gpu_at_batch_1_only() {
    // 1024 rows (the model at batch 1): 32 blocks, so 4 ranges of the 512-code span; batch 4: 1.
    assert_eq!(argmin_splits(1024, 512), 4);
    assert_eq!(argmin_splits(4096, 512), 1);
    // Never more ranges than 64-code tiles, never 0.
    assert_eq!(argmin_splits(10, 70), 2);
    assert_eq!(argmin_splits(1, 1), 1);
}

/// Runs the norms and the search with the codes unsplit and in 2 and 4 ranges (split kernel +
/// merge); the split runs must give the unsplit indices exactly (a code's score does not depend
/// on its range) and its distances within rounding (|z|^2 is summed in another order). Returns
/// the unsplit (indices, distances).
fn argmin<B: Backend>(
    be: &B,
    z: &[f32],
    cb: &[f32],
    offsets: Option<&[u32]>,
    s: ArgminShape,
) -> (Vec<u32>, Vec<f32>) {
    let (zb, cbb, norms) = (be.f32s(z), be.f32s(cb), be.f32s(&vec![f32::NAN; s.k]));
    be.run(&codebook_sqnorm_launch(
        be.ptr(&norms),
        be.ptr(&cbb),
        s.k,
        s.d,
    ));
    let off = offsets.map(|o| be.u32s(o));
    let poff = off.as_ref().map_or(0, |o| be.ptr(o));
    let run = |splits: usize| {
        let (idx, dist) = (
            be.u32s(&vec![0xdead_beef; s.n]),
            be.f32s(&vec![f32::NAN; s.n]),
        );
        let (pi, pd, pz, pcb, pn) = (be.ptr(&idx), be.ptr(&dist), be.ptr(&zb), be.ptr(&cbb), be.ptr(&norms));
        if splits == 1 {
            be.run(&codebook_argmin_launch(pi, pd, pz, pcb, pn, poff, s));
        } else {
            let (score, index) = (be.f32s(&vec![f32::NAN; splits * s.n]), be.u32s(&vec![0xdead_beef; splits * s.n]));
            let part = [be.ptr(&score), be.ptr(&index)];
            for launch in codebook_argmin_split_launches(part, pi, pd, pz, pcb, pn, poff, s, splits) {
                be.run(&launch);
            }
        }
        (be.get_u32(&idx), be.get_f32(&dist))
    };
    let (idx, dist) = run(1);
    for splits in [2, 4] {
        let (si, sd) = run(splits);
        assert_eq!(si, idx, "indices with the codes in {splits} ranges");
        assert_close(&sd, &dist, be.tol(), &format!("distances with the codes in {splits} ranges"));
    }
    (idx, dist)
}

fn check_rows(
    z: &[f32],
    cb: &[f32],
    offsets: Option<&[u32]>,
    s: ArgminShape,
    idx: &[u32],
    dist: &[f32],
) {
    const TOL: f64 = 1e-3;
    for r in 0..s.n {
        let lo = offsets.map_or(0, |o| o[r] as usize);
        let hi = (lo + s.span).min(s.k);
        let d = sq_dists_ref(z, cb, r, s.k, s.d);
        let mut order: Vec<usize> = (lo..hi).collect();
        order.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b)));
        let (best, got) = (order[0], idx[r] as usize);
        assert!(
            (lo..hi).contains(&got),
            "row {r}: index {got} outside [{lo}, {hi})"
        );
        assert!(
            d[got] <= d[best] + TOL,
            "row {r}: chose {got} at {}, best {best} at {}",
            d[got],
            d[best]
        );
        if order.len() > 1 && d[order[1]] - d[best] > TOL {
            assert_eq!(got, best, "row {r}: clear winner missed");
        }
        assert!(
            (dist[r] as f64 - d[best]).abs() <= TOL * (1.0 + d[best]),
            "row {r}: distance {} vs {}",
            dist[r],
            d[best]
        );
    }
}

fn codebook_sqnorm_matches_reference<B: Backend>(be: &B) {
    let (k, d) = (37, 100);
    let cb = random_vec(1, k * d, -1.0, 1.0);
    let (cbb, norms) = (be.f32s(&cb), be.f32s(&vec![f32::NAN; k]));
    be.run(&codebook_sqnorm_launch(be.ptr(&norms), be.ptr(&cbb), k, d));
    let want: Vec<f32> = (0..k)
        .map(|c| {
            cb[c * d..(c + 1) * d]
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>() as f32
        })
        .collect();
    assert_close(&be.get_f32(&norms), &want, be.tol(), "codebook norms");
}

fn dual_codebook_halves_at_the_model_shape<B: Backend>(be: &B) {
    // The model's shape: 1024 positions (32x32) x 256 dims, a 1024 x 256 codebook, N(0,1) init;
    // visible positions search 0..511, masked ones 512..1023, in runs as a real mask gives.
    let s = ArgminShape {
        n: 1024,
        k: 1024,
        d: 256,
        span: 512,
    };
    let z = random_vec(2, s.n * s.d, -2.0, 2.0);
    let cb = random_vec(3, s.k * s.d, -2.0, 2.0);
    let offsets: Vec<u32> = (0..s.n)
        .map(|r| if (r / 40) % 3 == 1 { 512 } else { 0 })
        .collect();
    let (idx, dist) = argmin(be, &z, &cb, Some(&offsets), s);
    check_rows(&z, &cb, Some(&offsets), s, &idx, &dist);
    assert!(idx
        .iter()
        .zip(&offsets)
        .all(|(&i, &o)| (i >= 512) == (o == 512)));
}

fn full_search_with_odd_sizes<B: Backend>(be: &B) {
    // Rows, codes and dims not multiples of the tiles (32 rows, 64 codes, 32 dims).
    let s = ArgminShape {
        n: 45,
        k: 70,
        d: 37,
        span: 70,
    };
    let z = random_vec(4, s.n * s.d, -1.0, 1.0);
    let cb = random_vec(5, s.k * s.d, -1.0, 1.0);
    let (idx, dist) = argmin(be, &z, &cb, None, s);
    check_rows(&z, &cb, None, s, &idx, &dist);
}

fn ties_go_to_the_lowest_index<B: Backend>(be: &B) {
    // Every code duplicated 4 times at indices c, c+16, c+32, c+48 (different tiles' threads and
    // different tiles): the lowest copy must win, exactly.
    let (k, d) = (128, 64);
    let base = random_vec(6, 16 * d, -1.0, 1.0);
    let cb: Vec<f32> = (0..k)
        .flat_map(|c| base[(c % 16) * d..(c % 16 + 1) * d].to_vec())
        .collect();
    let s = ArgminShape {
        n: 64,
        k,
        d,
        span: 64,
    };
    let z = random_vec(7, s.n * d, -1.0, 1.0);
    // Rows alternate between the two halves: ranges [0, 64) and [64, 128).
    let offsets: Vec<u32> = (0..s.n as u32).map(|r| (r % 2) * 64).collect();
    let (idx, _) = argmin(be, &z, &cb, Some(&offsets), s);
    for r in 0..s.n {
        let d2 = sq_dists_ref(&z, &cb, r, 16, d);
        let best = (0..16).min_by(|&a, &b| d2[a].total_cmp(&d2[b])).unwrap();
        assert_eq!(idx[r] as usize, best + offsets[r] as usize, "row {r}");
    }
    // A row equidistant from everything (z = 0, all codes with the same norm) takes its first code.
    let unit: Vec<f32> = (0..k * d)
        .map(|i| if i % d == (i / d) % d { 1.0 } else { 0.0 })
        .collect();
    let zero = vec![0.0f32; 2 * d];
    let s2 = ArgminShape {
        n: 2,
        k,
        d,
        span: 64,
    };
    let (idx, dist) = argmin(be, &zero, &unit, Some(&[0, 64]), s2);
    assert_eq!(idx, vec![0, 64]);
    assert_eq!(dist, vec![1.0, 1.0]);
}
