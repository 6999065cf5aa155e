//! Softmax / log-softmax over the last dim: literal values (numpy) including a huge logit
//! (stability), fast vs ref on the real shapes (1024 x 512 logits; 8 heads x 1024 x 1024
//! attention scores, once), backward vs finite differences, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::softmax as ag;
use fdm::cpu::ops::softmax::{softmax_bwd_fast, softmax_bwd_ref, softmax_fast, softmax_ref};
use fdm::ops::softmax::{log_softmax, softmax, softmax_backward};
use fdm::params::softmax::SoftmaxParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

#[test]
fn softmax_literal_and_stable_cpu() -> Result<()> {
    // numpy: s = np.array([[1,2,3],[-1,0,1000]]); e = np.exp(s - s.max(-1, keepdims=True))
    //        e / e.sum(-1, keepdims=True);  s - s.max(-1, keepdims=True) - np.log(e.sum(-1, keepdims=True))
    let s = t(&[1., 2., 3., -1., 0., 1000.], &[2, 3]);
    let sm = [
        0.09003057317038046,
        0.24472847105479764,
        0.6652409557748218,
        0.0,
        0.0,
        1.0,
    ];
    let lsm = [
        -2.4076059644443806,
        -1.4076059644443804,
        -0.4076059644443804,
        -1001.0,
        -1000.0,
        0.0,
    ];
    assert_close(
        &vals(&softmax(&s)?),
        &sm.map(|v| v as f32),
        TOL_CPU_F32,
        "softmax",
    );
    assert_close(
        &vals(&log_softmax(&s)?),
        &lsm.map(|v| v as f32),
        TOL_CPU_F32,
        "log_softmax",
    );
    Ok(())
}

fn check_fast_vs_ref(rows: usize, len: usize, seed: u64, log: bool) {
    let p = SoftmaxParams::new(rows, len, log);
    // Scores of the size attention sees (|q.k| / 8 up to ~10).
    let x = random_vec(seed, rows * len, -10.0, 10.0);
    let g = random_vec(seed + 1, rows * len, -1.0, 1.0);
    let (mut yr, mut yf) = (vec![0f32; rows * len], vec![0f32; rows * len]);
    softmax_ref(&p, &x, &mut yr);
    softmax_fast(&p, &x, &mut yf);
    assert_close(
        &yf,
        &yr,
        TOL_CPU_F32,
        &format!("forward {rows}x{len} log={log}"),
    );
    let (mut dr, mut df) = (vec![0f32; rows * len], vec![0f32; rows * len]);
    softmax_bwd_ref(&p, &yr, &g, &mut dr);
    softmax_bwd_fast(&p, &yr, &g, &mut df);
    assert_close(
        &df,
        &dr,
        TOL_CPU_F32,
        &format!("backward {rows}x{len} log={log}"),
    );
}

#[test]
fn softmax_fast_matches_ref_cpu() {
    for log in [false, true] {
        check_fast_vs_ref(1024, 512, 1, log);
        check_fast_vs_ref(5, 3, 2, log);
    }
}

#[test]
fn softmax_attention_shape_fast_matches_ref_cpu() {
    // 8 heads x 1024 queries x 1024 keys (spec §3.2), once.
    check_fast_vs_ref(8 * 1024, 1024, 3, false);
}

#[test]
fn softmax_rows_sum_to_one_cpu() -> Result<()> {
    let y = softmax(&rand(4, &[16, 100], -30.0, 30.0))?;
    let sums = fdm::ops::reduce::sum(&y, &[1], false)?;
    assert_close(&vals(&sums), &[1.0; 16], TOL_CPU_F32, "row sums");
    Ok(())
}

fn twin(len: usize, log: bool, x: &[f64]) -> Vec<f64> {
    x.chunks(len)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = r.iter().map(|v| (v - m).exp()).sum();
            r.iter()
                .map(move |v| {
                    if log {
                        v - m - z.ln()
                    } else {
                        (v - m).exp() / z
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_backward_matches_finite_diff_cpu() {
    let x = random_vec(5, 12, -3.0, 3.0);
    check_grads(
        "softmax",
        &[(x.clone(), vec![3, 4])],
        |tape, v| ag::softmax(tape, &v[0]),
        |xs| twin(4, false, &xs[0]),
    );
    check_grads(
        "log_softmax",
        &[(x, vec![3, 4])],
        |tape, v| ag::log_softmax(tape, &v[0]),
        |xs| twin(4, true, &xs[0]),
    );
}

#[test]
fn softmax_rejects_bad_inputs_cpu() -> Result<()> {
    let err = softmax(&Tensor::scalar(1.0)).unwrap_err().to_string();
    assert!(err.contains("rank >= 1"), "{err}");
    let y = rand(1, &[2, 3], 0.0, 1.0);
    let err = softmax_backward(&y, &rand(2, &[3, 2], 0.0, 1.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("gradient") && err.contains("[3, 2]"), "{err}");
    Ok(())
}
