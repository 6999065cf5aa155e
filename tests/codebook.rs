//! Dual-codebook nearest neighbour and EMA update (spec §2.3): literal halves, forced ties
//! (lowest index wins), fast vs ref at the real 1024 x 256 against 1024 x 256 shape, the EMA
//! step against numpy, bad input.
// Expected values are pasted from numpy at full precision.
#![allow(clippy::excessive_precision)]
use fdm::cpu::ops::codebook::codebook_argmin_ref;
use fdm::ops::codebook::{self as ops, CodebookEma};
use fdm::params::codebook::{
    half_for_token_type, CodebookParams, CODEBOOK_ALL as ALL, CODEBOOK_HALF_MASKED as MASKED,
    CODEBOOK_HALF_UNMASKED as UNMASKED,
};
use fdm::rng::Rng;
use fdm::testing::{assert_close, TOL_CPU_F32};
use fdm::{Result, Tensor};

fn argmin_both(codebook: &[f32], k: usize, d: usize, z: &[f32], half: &[u32]) -> Result<Vec<u32>> {
    let n = half.len();
    let p = CodebookParams {
        n: n as u32,
        codes: k as u32,
        dim: d as u32,
    };
    let mut r = vec![0u32; n];
    codebook_argmin_ref(&p, z, codebook, half, &mut r)?;
    let got = ops::codebook_argmin(
        &Tensor::from_vec(z.to_vec(), &[n, d])?,
        &Tensor::from_vec(codebook.to_vec(), &[k, d])?,
        &Tensor::from_u32(half.to_vec(), &[n])?,
    )?
    .to_vec_u32()?;
    assert_eq!(got, r, "fast vs ref");
    Ok(got)
}

#[test]
fn codebook_argmin_respects_halves_cpu() -> Result<()> {
    // Codes: 0 = (0,0), 1 = (1,0) | 2 = (0,1), 3 = (1,1). By hand:
    // (0.9,0.1) over all -> 1; in the masked half (0,1) is 1.62 away, (1,1) 0.82 -> 3;
    // (0.2,0.2) in the unmasked half -> 0; (0.2,0.9) unmasked -> 0 (0.85 vs 1.45).
    let cb = [0., 0., 1., 0., 0., 1., 1., 1.];
    let z = [0.9, 0.1, 0.9, 0.1, 0.2, 0.2, 0.2, 0.9];
    assert_eq!(
        argmin_both(&cb, 4, 2, &z, &[ALL, MASKED, UNMASKED, UNMASKED])?,
        vec![1, 3, 0, 0]
    );
    assert_eq!(half_for_token_type(1), UNMASKED);
    assert_eq!(
        (half_for_token_type(0), half_for_token_type(2)),
        (MASKED, MASKED)
    );
    Ok(())
}

#[test]
fn codebook_argmin_ties_pick_lowest_index_cpu() -> Result<()> {
    // Duplicated rows: (1,1) at 0 and 2, (0,0) at 1 and 3.
    let cb = [1., 1., 0., 0., 1., 1., 0., 0.];
    let z = [1., 1., 0., 0., 1., 1., 0., 0., 0.5, 0.5];
    let got = argmin_both(&cb, 4, 2, &z, &[ALL, ALL, MASKED, MASKED, ALL])?;
    // (0.5, 0.5) is equidistant (0.5) from (1,1) and (0,0): the lowest index, 0.
    assert_eq!(got, vec![0, 1, 2, 3, 0]);
    // Equidistant between distinct codes: (0.5, 0) from (0,0) and (1,0), exactly 0.25 each.
    let cb = [0., 0., 1., 0.];
    assert_eq!(argmin_both(&cb, 2, 2, &[0.5, 0.], &[ALL])?, vec![0]);
    // A 256-dim codebook whose rows repeat every 8 codes: every answer is < 8.
    let mut rng = Rng::new(5);
    let base: Vec<f32> = (0..8 * 256).map(|_| rng.normal()).collect();
    let cb: Vec<f32> = (0..64)
        .flat_map(|k| base[(k % 8) * 256..][..256].to_vec())
        .collect();
    let z: Vec<f32> = (0..40 * 256).map(|_| rng.normal()).collect();
    let got = argmin_both(&cb, 64, 256, &z, &[ALL; 40])?;
    assert!(got.iter().all(|&i| i < 8), "{got:?}");
    Ok(())
}

#[test]
fn codebook_argmin_fast_matches_ref_real_shape_cpu() -> Result<()> {
    // 1024 positions x 256 dims against the 1024 x 256 codebook (init N(0, 1)), halves mixed
    // in runs as a mask would make them.
    let (n, k, d) = (1024, 1024, 256);
    let mut rng = Rng::new(17);
    let cb: Vec<f32> = (0..k * d).map(|_| rng.normal()).collect();
    let z: Vec<f32> = (0..n * d).map(|_| rng.normal()).collect();
    let half: Vec<u32> = (0..n)
        .map(|i| [UNMASKED, MASKED, ALL][(i / 50) % 3])
        .collect();
    let got = argmin_both(&cb, k, d, &z, &half)?;
    for (i, &c) in got.iter().enumerate() {
        let (lo, hi) = CodebookParams {
            n: 0,
            codes: k as u32,
            dim: 0,
        }
        .range(half[i])
        .unwrap();
        assert!(
            (lo..hi).contains(&(c as usize)),
            "row {i}: code {c} outside its half"
        );
    }
    Ok(())
}

#[test]
fn codebook_ema_update_matches_numpy_cpu() -> Result<()> {
    // numpy (f32), decay 0.99, eps 1e-5, K = 4:
    // O=np.eye(4)[idx]; n=O.sum(0); s=O.T@z; cs=cs*0.99+0.01*n; avg=avg*0.99+0.01*s
    // N=cs.sum(); c=(cs+1e-5)/(N+4*1e-5)*N; embedding=avg/c[:,None]
    let z = Tensor::from_vec(
        vec![0.1, 0.0, 0.9, 1.2, 1.1, 0.8, 2.2, 0.1, 0.0, -0.1],
        &[5, 2],
    )?;
    let idx = Tensor::from_u32(vec![0, 1, 1, 2, 0], &[5])?;
    let (counts, sums) = ops::codebook_assignment_stats(&z, &idx, 4)?;
    assert_eq!(counts.to_vec_f32()?, vec![2., 2., 1., 0.]);
    assert_close(
        &sums.to_vec_f32()?,
        &[0.1, -0.1, 2.0, 2.0, 2.2, 0.1, 0.0, 0.0],
        TOL_CPU_F32,
        "sums",
    );
    let state = CodebookEma {
        cluster_size: Tensor::from_vec(vec![0.5, 0., 2., 1.], &[4])?,
        embedding_avg: Tensor::from_vec(vec![0.1, 0.2, 1., 1., 3., 0.5, -1., 2.], &[4, 2])?,
        embedding: Tensor::from_vec(vec![0., 0., 1., 1., 2., 0., -1., 3.], &[4, 2])?,
    };
    let next = ops::codebook_ema_apply(&state, &counts, &sums, 0.99, 1e-5)?;
    let cs = [
        0.5149999856948853,
        0.019999999552965164,
        1.9900000095367432,
        0.9900000095367432,
    ];
    assert_close(
        &next.cluster_size.to_vec_f32()?,
        &cs,
        TOL_CPU_F32,
        "cluster_size",
    );
    let avg = [
        0.1,
        0.19699999690055847,
        1.0099999904632568,
        1.0099999904632568,
        2.992000102996826,
        0.4959999918937683,
        -0.99,
        1.98,
    ];
    assert_close(
        &next.embedding_avg.to_vec_f32()?,
        &avg,
        TOL_CPU_F32,
        "embedding_avg",
    );
    let emb = [
        0.19417321681976318,
        0.38252121210098267,
        50.47533416748047,
        50.47533416748047,
        1.5035271644592285,
        0.24924780428409576,
        -1.000001311302185,
        2.00000262260437,
    ];
    assert_close(
        &next.embedding.to_vec_f32()?,
        &emb,
        TOL_CPU_F32,
        "embedding",
    );
    Ok(())
}

#[test]
fn codebook_rejects_bad_input_cpu() -> Result<()> {
    let (z, cb) = (Tensor::zeros(&[3, 4]), Tensor::zeros(&[6, 4]));
    let err = ops::codebook_argmin(&z, &cb, &Tensor::from_u32(vec![0, 7, 1], &[3])?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 1: unknown half selector 7"), "{err}");
    let err = ops::codebook_argmin(
        &z,
        &Tensor::zeros(&[6, 5]),
        &Tensor::from_u32(vec![0; 3], &[3])?,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("differ in dim"), "{err}");
    let err = ops::codebook_argmin(
        &z,
        &Tensor::zeros(&[1, 4]),
        &Tensor::from_u32(vec![0; 3], &[3])?,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("names no code"), "{err}");
    let err = ops::codebook_argmin_halves(&z, &cb, &[0, 1]).unwrap_err().to_string();
    assert!(err.contains("2 half selectors for 3 rows"), "{err}");
    let err = ops::codebook_argmin(&z, &cb, &Tensor::from_u32(vec![0; 2], &[2])?).unwrap_err().to_string();
    assert!(err.contains("2 half selectors for 3 rows"), "{err}");
    let err = ops::codebook_assignment_stats(&z, &Tensor::from_u32(vec![0, 1, 6], &[3])?, 6)
        .unwrap_err()
        .to_string();
    assert!(err.contains("index 6 at row 2"), "{err}");
    assert_eq!(
        ops::codebook_argmin_all(&Tensor::zeros(&[2, 4]), &cb)?.to_vec_u32()?,
        vec![0, 0]
    );
    Ok(())
}
