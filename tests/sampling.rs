//! Sampling references (spec §5.2): position choice by max raw logit with ties, top-K with
//! the tie rule at the K-th value, temperature, inverse-CDF draws with given uniforms,
//! fast vs ref at the real 1024 x 512 shape with K = 50, frequencies, bad input.
use fdm::cpu::ops::sampling::{
    choose_positions_fast, choose_positions_ref, topk_sample_ref, topk_sample_rows_fast,
    topk_sample_rows_ref,
};
use fdm::ops::sampling as ops;
use fdm::params::sampling::{ChoosePositionsParams, TopkSampleParams};
use fdm::rng::Rng;
use fdm::testing::random_vec;
use fdm::{Result, Tensor};

#[test]
fn choose_positions_by_max_logit_with_ties_cpu() -> Result<()> {
    // Row maxima: 0.5, 2.0 (known), 1.5, 1.5 (tie: row 2 first), -inf, 0.7 (NaN ignored).
    let ninf = f32::NEG_INFINITY;
    let logits = vec![
        0.1,
        0.5,
        0.2,
        2.0,
        -1.,
        0.,
        0.3,
        1.5,
        1.5,
        1.5,
        0.,
        0.,
        ninf,
        ninf,
        ninf,
        f32::NAN,
        0.7,
        0.1,
    ];
    let known = [false, true, false, false, false, false];
    let t = Tensor::from_vec(logits.clone(), &[6, 3])?;
    assert_eq!(ops::choose_positions(&t, &known, 1)?, vec![vec![2]]);
    assert_eq!(ops::choose_positions(&t, &known, 3)?, vec![vec![2, 3, 5]]);
    // More than the unknown count: every unknown position, best first.
    assert_eq!(
        ops::choose_positions(&t, &known, 10)?,
        vec![vec![2, 3, 5, 0, 4]]
    );
    let p = ChoosePositionsParams {
        seq_len: 6,
        classes: 3,
        k: 4,
    };
    assert_eq!(choose_positions_ref(&p, &logits, &known), vec![2, 3, 5, 0]);
    // Batched: the second item knows everything but position 0.
    let two = Tensor::from_vec([logits.clone(), logits].concat(), &[2, 6, 3])?;
    let known2 = [known.to_vec(), vec![false, true, true, true, true, true]].concat();
    assert_eq!(
        ops::choose_positions(&two, &known2, 2)?,
        vec![vec![2, 3], vec![0]]
    );
    Ok(())
}

#[test]
fn choose_positions_fast_matches_ref_real_shape_cpu() {
    // 1024 positions x 512 classes; logits rounded to 1/4 so many row maxima tie.
    let (l, c) = (1024usize, 512usize);
    let logits: Vec<f32> = random_vec(1, l * c, -4., 4.)
        .iter()
        .map(|x| (x * 4.).round() / 4.)
        .collect();
    let known: Vec<bool> = random_vec(2, l, 0., 1.).iter().map(|&u| u < 0.7).collect();
    for k in [1, 4, 50, 1024] {
        let p = ChoosePositionsParams {
            seq_len: l as u32,
            classes: c as u32,
            k,
        };
        assert_eq!(
            choose_positions_fast(&p, &logits, &known),
            choose_positions_ref(&p, &logits, &known),
            "k = {k}"
        );
    }
}

#[test]
fn topk_sample_literal_draws_cpu() {
    // logits [1, 3, 2, 3, 0], K = 3: kept 1, 3 (value 3) and 2 (value 2); weights in index
    // order (1: 1, 2: e^-1, 3: 1), total 2.36787944: u < 0.42231 -> 1, u < 0.57769 -> 2, else 3.
    let l = [1., 3., 2., 3., 0.];
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.0), Some(1));
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.4223), Some(1));
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.4224), Some(2));
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.5776), Some(2));
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.5778), Some(3));
    assert_eq!(topk_sample_ref(&l, 3, 1.0, 0.999_999), Some(3));
    // K = 1 is greedy: the first maximum.
    assert_eq!(topk_sample_ref(&l, 1, 1.0, 0.9), Some(1));
    // K larger than C keeps everything.
    assert_eq!(topk_sample_ref(&l, 50, 1.0, 0.0), Some(0));
}

#[test]
fn topk_sample_tie_at_kth_value_keeps_lowest_index_cpu() {
    // logits [2, 5, 2, 2], K = 2: 5 and the first 2 (index 0) are kept, indices 2, 3 never.
    // P(0) = e^-3 / (1 + e^-3) = 0.047426.
    let l = [2., 5., 2., 2.];
    assert_eq!(topk_sample_ref(&l, 2, 1.0, 0.0474), Some(0));
    assert_eq!(topk_sample_ref(&l, 2, 1.0, 0.0475), Some(1));
    assert_eq!(topk_sample_ref(&l, 2, 1.0, 0.999_999), Some(1));
    // K = 3 keeps indices 0 and 2 of the tied value.
    let mut seen = [false; 4];
    for i in 0..1000 {
        seen[topk_sample_ref(&l, 3, 1.0, i as f32 / 1000.).unwrap() as usize] = true;
    }
    assert_eq!(seen, [true, true, true, false]);
}

#[test]
fn topk_sample_temperature_divides_logits_cpu() {
    // logits [0, ln 4], K = 2: T = 1 gives P(0) = 0.25/1.25 = 0.2; T = 2 gives 0.5/1.5 = 1/3.
    let l = [0., 4f32.ln()];
    assert_eq!(topk_sample_ref(&l, 2, 1.0, 0.3), Some(1));
    assert_eq!(topk_sample_ref(&l, 2, 2.0, 0.3), Some(0));
    assert_eq!(topk_sample_ref(&l, 2, 2.0, 0.34), Some(1));
}

#[test]
fn topk_sample_fast_matches_ref_real_shape_cpu() {
    // 1024 rows x 512 classes, K = 50, one uniform per row; a second pass with rounded logits
    // (many ties at the 50th value) and a third at temperature 0.7.
    let (rows, c) = (1024usize, 512usize);
    let u = random_vec(3, rows, 0., 1.);
    let smooth = random_vec(4, rows * c, -6., 6.);
    let rounded: Vec<f32> = smooth.iter().map(|x| x.round()).collect();
    for (logits, t) in [(&smooth, 1.0), (&rounded, 1.0), (&smooth, 0.7)] {
        let p = TopkSampleParams {
            rows: rows as u32,
            classes: c as u32,
            k: 50,
            temperature: t,
        };
        let (fast, reference) = (
            topk_sample_rows_fast(&p, logits, &u),
            topk_sample_rows_ref(&p, logits, &u),
        );
        assert!(fast.iter().all(|x| x.is_some()));
        assert_eq!(fast, reference);
    }
}

#[test]
fn topk_sample_frequencies_follow_topk_softmax_cpu() -> Result<()> {
    // logits [0, 1, 2, -1, 0.5], K = 3: kept 2, 1, 4 with probabilities softmax([1, 2, 0.5])
    // over indices [1, 2, 4]; 0 and 3 are never drawn.
    let l = Tensor::from_vec(vec![0., 1., 2., -1., 0.5], &[1, 5])?;
    let z: f64 = [1f64, 2., 0.5].iter().map(|x| x.exp()).sum();
    let want = [0., 1f64.exp() / z, 2f64.exp() / z, 0., 0.5f64.exp() / z];
    let mut rng = Rng::new(9);
    let n = 40_000;
    let mut counts = [0usize; 5];
    for _ in 0..n {
        counts[ops::topk_sample(&l, &[rng.uniform()], 3, 1.0)?[0] as usize] += 1;
    }
    for (i, (&c, &w)) in counts.iter().zip(&want).enumerate() {
        let f = c as f64 / n as f64;
        assert!(
            (f - w).abs() < 0.01,
            "index {i}: frequency {f}, probability {w}"
        );
    }
    assert_eq!((counts[0], counts[3]), (0, 0));
    Ok(())
}

#[test]
fn sampling_rejects_bad_input_cpu() -> Result<()> {
    let l = Tensor::zeros(&[2, 4]);
    assert!(ops::topk_sample(&l, &[0.5, 0.5], 0, 1.0)
        .unwrap_err()
        .to_string()
        .contains("k >= 1"));
    assert!(ops::topk_sample(&l, &[0.5, 0.5], 2, 0.0)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
    assert!(ops::topk_sample(&l, &[0.5], 2, 1.0)
        .unwrap_err()
        .to_string()
        .contains("1 uniforms for 2 rows"));
    assert!(ops::topk_sample(&l, &[0.5, 1.0], 2, 1.0)
        .unwrap_err()
        .to_string()
        .contains("outside [0, 1)"));
    let all_ninf = Tensor::full(f32::NEG_INFINITY, &[1, 4]);
    assert!(ops::topk_sample(&all_ninf, &[0.5], 2, 1.0)
        .unwrap_err()
        .to_string()
        .contains("no finite logit"));
    assert!(ops::choose_positions(&l, &[false], 1)
        .unwrap_err()
        .to_string()
        .contains("1 known flags"));
    assert!(ops::choose_positions(&Tensor::zeros(&[4]), &[false; 4], 1).is_err());
    Ok(())
}
