//! `kernels/sampling.cu` (spec §5.2: confidence = max raw logit, the most confident unknown
//! positions, top-K inverse-CDF draw with host uniforms), launched by its launchers, against
//! reference loops, on the CPU emulator (`emu::*`) and a real GPU (`cuda::*`, skipped without one). Integer outputs are exact; ties are forced and must go to
//! the lowest index. A draw may differ from the f64 reference only when the uniform lands within
//! f32 rounding (1e-5 of the total) of a boundary between two candidates.

mod common;

use common::backend::Backend;
use common::reference::{row_max_ref, select_positions_ref, topk_sample_ref, NONE};
use fdm::cuda::ops::sampling::{
    row_max_launch, select_positions_launch, topk_sample_launch, TopkParams,
};
use fdm::rng::Rng;
use fdm::testing::random_vec;

backend_tests!(
    row_max_matches_reference,
    select_positions_with_forced_ties_and_padding,
    topk_draws_match_reference_at_the_model_shape,
    tied_logits_rank_by_lowest_class,
    top1_is_greedy_and_masked_logits_are_never_drawn,
    sampling_at_selected_positions,
);

fn sample_rows<B: Backend>(
    be: &B,
    logits: &[f32],
    uniforms: &[f32],
    v: usize,
    k: usize,
    temperature: f32,
) -> Vec<u32> {
    let rows = uniforms.len();
    let p = TopkParams {
        rows: rows as u32,
        vocab: v as u32,
        k: k as u32,
        seq_len: 0,
        per_image: 0,
        temperature,
    };
    let (lb, ub, tokens) = (
        be.f32s(logits),
        be.f32s(uniforms),
        be.u32s(&vec![0xdead_beef; rows]),
    );
    be.run(&topk_sample_launch(
        be.ptr(&tokens),
        be.ptr(&lb),
        be.ptr(&ub),
        0,
        &p,
    ));
    be.get_u32(&tokens)
}

fn check_draws(logits: &[f32], uniforms: &[f32], v: usize, k: usize, temperature: f32, tokens: &[u32]) {
    for (q, &tok) in tokens.iter().enumerate() {
        let row = &logits[q * v..(q + 1) * v];
        let (want, margin) = topk_sample_ref(row, k, temperature, uniforms[q]);
        if margin > 1e-5 {
            assert_eq!(tok, want, "row {q}: u = {}", uniforms[q]);
        } else {
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            assert!(
                order[..k].contains(&(tok as usize)),
                "row {q}: {tok} is not in the top {k}"
            );
        }
    }
}

fn row_max_matches_reference<B: Backend>(be: &B) {
    let (rows, cols) = (2 * 1024 + 3, 512);
    let x = random_vec(1, rows * cols, -10.0, 10.0);
    let (xb, out) = (be.f32s(&x), be.f32s(&vec![f32::NAN; rows]));
    be.run(&row_max_launch(be.ptr(&out), be.ptr(&xb), rows, cols));
    assert_eq!(be.get_f32(&out), row_max_ref(&x, rows, cols));
}

fn select_positions_with_forced_ties_and_padding<B: Backend>(be: &B) {
    let (b, l) = (4usize, 1024usize);
    let mut rng = Rng::new(2);
    // Scores on a coarse grid (many exact ties); about 70% of positions known.
    let score: Vec<f32> = (0..b * l).map(|_| (rng.uniform() * 8.0).floor()).collect();
    let mut known: Vec<u32> = (0..b * l).map(|_| (rng.uniform() < 0.7) as u32).collect();
    // Image 2 has exactly two unknown positions, image 3 none at all.
    for p in 0..l {
        known[2 * l + p] = (p != 5 && p != 900) as u32;
        known[3 * l + p] = 1;
    }
    let (sb, kb) = (be.f32s(&score), be.u32s(&known));
    for n in [1usize, 5, 40] {
        let pb = be.u32s(&vec![0xdead_beef; b * n]);
        be.run(&select_positions_launch(
            be.ptr(&pb),
            be.ptr(&sb),
            be.ptr(&kb),
            b,
            l,
            n,
        ));
        let positions = be.get_u32(&pb);
        assert_eq!(
            positions,
            select_positions_ref(&score, &known, b, l, n),
            "n = {n}"
        );
        assert_eq!(positions[3 * n], NONE);
    }
    // A length that is not a power of two (the kernel sorts it padded to one).
    let (b, l, n) = (2usize, 300usize, 7usize);
    let score: Vec<f32> = (0..b * l).map(|_| (rng.uniform() * 8.0).floor()).collect();
    let known: Vec<u32> = (0..b * l).map(|_| (rng.uniform() < 0.5) as u32).collect();
    let (sb, kb, pb) = (be.f32s(&score), be.u32s(&known), be.u32s(&vec![0xdead_beef; b * n]));
    be.run(&select_positions_launch(be.ptr(&pb), be.ptr(&sb), be.ptr(&kb), b, l, n));
    assert_eq!(be.get_u32(&pb), select_positions_ref(&score, &known, b, l, n), "L = {l}");
}

fn topk_draws_match_reference_at_the_model_shape<B: Backend>(be: &B) {
    // 512 classes, top-50, temperature 1 (the paper's defaults), 64 rows.
    let (rows, v, k) = (64, 512, 50);
    let logits = random_vec(3, rows * v, -6.0, 6.0);
    let uniforms = random_vec(4, rows, 0.0, 1.0);
    let tokens = sample_rows(be, &logits, &uniforms, v, k, 1.0);
    check_draws(&logits, &uniforms, v, k, 1.0, &tokens);
    // A sharper temperature (0.5) and a wider top-K.
    let tokens = sample_rows(be, &logits, &uniforms, v, 200, 0.5);
    check_draws(&logits, &uniforms, v, 200, 0.5, &tokens);
    // Vocabularies that are not a power of two (the kernel sorts the row padded to one): every
    // class kept (k = V), and V just past a power of two.
    for (v, k) in [(300, 300), (513, 50)] {
        let logits = random_vec(5, rows * v, -6.0, 6.0);
        let tokens = sample_rows(be, &logits, &uniforms, v, k, 1.0);
        check_draws(&logits, &uniforms, v, k, 1.0, &tokens);
        assert!(tokens.iter().all(|&t| (t as usize) < v), "V = {v}: a padding slot was drawn");
    }
}

fn tied_logits_rank_by_lowest_class<B: Backend>(be: &B) {
    // All 512 logits equal: the top 50 are classes 0..49 with equal weight, so u picks rank
    // floor(50 u): u = 0 -> class 0, 0.5 -> 25, 0.999 -> 49 (exact in f32).
    let v = 512;
    let logits = vec![0.0f32; 3 * v];
    let tokens = sample_rows(be, &logits, &[0.0, 0.5, 0.999], v, 50, 1.0);
    assert_eq!(tokens, vec![0, 25, 49]);
}

fn top1_is_greedy_and_masked_logits_are_never_drawn<B: Backend>(be: &B) {
    let v = 512;
    let mut logits = random_vec(5, 2 * v, -1.0, 1.0);
    logits[300] = 5.0; // row 0: the argmax, twice (the lower index wins)
    logits[301] = 5.0;
    // Row 1: only classes 7, 8, 9 are finite.
    for c in 0..v {
        if !(7..10).contains(&c) {
            logits[v + c] = f32::NEG_INFINITY;
        }
    }
    assert_eq!(
        sample_rows(be, &logits[..v], &[0.999], v, 1, 1.0),
        vec![300]
    );
    let uniforms = random_vec(6, 200, 0.0, 1.0);
    let many: Vec<f32> = (0..200).flat_map(|_| logits[v..].to_vec()).collect();
    let tokens = sample_rows(be, &many, &uniforms, v, 50, 1.0);
    assert!(tokens.iter().all(|t| (7..10).contains(t)), "{tokens:?}");
    assert!(
        (7..10).all(|c| tokens.contains(&c)),
        "200 draws should reach all three classes"
    );
}

fn sampling_at_selected_positions<B: Backend>(be: &B) {
    // The full step: confidence per position, the 3 most confident unknown positions per image,
    // a draw at each; one image has only 2 unknown positions (its third slot stays empty).
    let (b, l, v, n, k) = (2usize, 64usize, 40usize, 3usize, 5usize);
    let logits = random_vec(7, b * l * v, -4.0, 4.0);
    let mut known: Vec<u32> = (0..b * l).map(|i| (i % 3 == 0) as u32).collect();
    for p in 0..l {
        known[l + p] = (p != 10 && p != 20) as u32;
    }
    let uniforms = random_vec(8, b * n, 0.0, 1.0);
    let (lb, kb, ub) = (be.f32s(&logits), be.u32s(&known), be.f32s(&uniforms));
    let score = be.f32s(&vec![f32::NAN; b * l]);
    be.run(&row_max_launch(be.ptr(&score), be.ptr(&lb), b * l, v));
    let pb = be.u32s(&vec![0; b * n]);
    be.run(&select_positions_launch(
        be.ptr(&pb),
        be.ptr(&score),
        be.ptr(&kb),
        b,
        l,
        n,
    ));
    let p = TopkParams {
        rows: (b * n) as u32,
        vocab: v as u32,
        k: k as u32,
        seq_len: l as u32,
        per_image: n as u32,
        temperature: 1.0,
    };
    let tb = be.u32s(&vec![0; b * n]);
    be.run(&topk_sample_launch(
        be.ptr(&tb),
        be.ptr(&lb),
        be.ptr(&ub),
        be.ptr(&pb),
        &p,
    ));
    let (positions, tokens) = (be.get_u32(&pb), be.get_u32(&tb));

    let want_pos = select_positions_ref(&row_max_ref(&logits, b * l, v), &known, b, l, n);
    assert_eq!(positions, want_pos);
    assert_eq!(positions[n + 2], NONE);
    for q in 0..b * n {
        if positions[q] == NONE {
            assert_eq!(tokens[q], NONE);
            continue;
        }
        let row = (q / n) * l + positions[q] as usize;
        let (want, margin) = topk_sample_ref(&logits[row * v..(row + 1) * v], k, 1.0, uniforms[q]);
        assert!(margin > 1e-5, "pick another seed: u on a boundary");
        assert_eq!(tokens[q], want, "slot {q}");
    }
}
