//! Multi-head self-attention core (spec §3.2): literal case, fast vs ref (including the real
//! 1 x 1024 x 8 x 64 shape), backward vs f64 finite differences, autograd wiring, bad input.
// Expected values are pasted from numpy at full precision.
#![allow(clippy::excessive_precision)]
use fdm::autograd::{self, Tape};
use fdm::cpu::ops::attention::{attention_fast, attention_ref};
use fdm::cpu::ops::attention_backward::{attention_backward_fast, attention_backward_ref};
use fdm::ops::attention as ops;
use fdm::params::attention::AttentionParams;
use fdm::testing::{assert_close, assert_grad_close, finite_diff, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

/// Literal: B=1, L=2, H=1, Dh=4 (scale 1/2), by hand:
/// query 0 scores (2*1/2, 0) = (1, 0) -> p = (e/(e+1), 1/(e+1)) = (0.7310586, 0.2689414);
/// query 1 is zero -> p = (1/2, 1/2). numpy check:
/// ```text
/// q=np.array([[2,0,0,0],[0,0,0,0.]]); k=np.array([[1,0,0,0],[0,0,0,0.]])
/// v=np.array([[1,2,3,4],[-1,0,1,0.]]); s=q@k.T/2; p=np.exp(s)/np.exp(s).sum(1,keepdims=True)
/// p@v -> [[0.46211716 1.46211716 2.46211716 2.92423431] [0 1 2 2]]
/// np.log(np.exp(s).sum(1)) -> [1.31326169 0.69314718]
/// ```
#[test]
fn attention_two_tokens_by_hand_cpu() -> Result<()> {
    let q = Tensor::from_vec(vec![2., 0., 0., 0., 0., 0., 0., 0.], &[1, 2, 4])?;
    let k = Tensor::from_vec(vec![1., 0., 0., 0., 0., 0., 0., 0.], &[1, 2, 4])?;
    let v = Tensor::from_vec(vec![1., 2., 3., 4., -1., 0., 1., 0.], &[1, 2, 4])?;
    let expected = [
        0.46211716, 1.46211716, 2.46211716, 2.92423431, 0., 1., 2., 2.,
    ];
    let (out, lse) = ops::attention_with_lse(&q, &k, &v, 1)?;
    assert_close(&out.to_vec_f32()?, &expected, TOL_CPU_F32, "fast output");
    assert_close(
        &lse.to_vec_f32()?,
        &[1.31326169, std::f32::consts::LN_2],
        TOL_CPU_F32,
        "lse",
    );
    let mut r = vec![0f32; 8];
    attention_ref(
        &AttentionParams::new(1, 2, 1, 4),
        q.cpu_f32()?,
        k.cpu_f32()?,
        v.cpu_f32()?,
        &mut r,
    );
    assert_close(&r, &expected, TOL_CPU_F32, "ref output");
    Ok(())
}

fn fast_vs_ref(b: usize, l: usize, h: usize, dh: usize, seed: u64) {
    let p = AttentionParams::new(b, l, h, dh);
    let n = p.numel();
    // q, k in [-3, 3] make the softmax peaked, not near-uniform, so the test has teeth.
    let (q, k, v) = (
        random_vec(seed, n, -3., 3.),
        random_vec(seed + 1, n, -3., 3.),
        random_vec(seed + 2, n, -1., 1.),
    );
    let (mut want, mut got, mut lse) = (vec![0f32; n], vec![0f32; n], vec![0f32; p.lse_numel()]);
    attention_ref(&p, &q, &k, &v, &mut want);
    attention_fast(&p, &q, &k, &v, &mut got, &mut lse);
    assert_close(
        &got,
        &want,
        TOL_CPU_F32,
        &format!("attention {b}x{l}x{h}x{dh}"),
    );
}

#[test]
fn attention_fast_matches_ref_real_shape_cpu() {
    fast_vs_ref(1, 1024, 8, 64, 11);
}

#[test]
fn attention_fast_matches_ref_odd_shapes_cpu() {
    // Partial query and key blocks, several batches and heads, L = 1.
    fast_vs_ref(2, 37, 3, 5, 21);
    fast_vs_ref(2, 100, 2, 16, 31);
    fast_vs_ref(1, 1, 2, 4, 41);
}

fn backward_fast_vs_ref(b: usize, l: usize, h: usize, dh: usize, seed: u64) {
    let p = AttentionParams::new(b, l, h, dh);
    let n = p.numel();
    let (q, k, v) = (
        random_vec(seed, n, -2., 2.),
        random_vec(seed + 1, n, -2., 2.),
        random_vec(seed + 2, n, -1., 1.),
    );
    let dout = random_vec(seed + 3, n, -1., 1.);
    let (mut out, mut lse) = (vec![0f32; n], vec![0f32; p.lse_numel()]);
    attention_fast(&p, &q, &k, &v, &mut out, &mut lse);
    let mut want = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let mut got = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let [wq, wk, wv] = &mut want;
    attention_backward_ref(&p, &q, &k, &v, &dout, wq, wk, wv);
    let [gq, gk, gv] = &mut got;
    attention_backward_fast(&p, &q, &k, &v, &out, &lse, &dout, gq, gk, gv);
    for (name, g, w) in [
        ("dq", &got[0], &want[0]),
        ("dk", &got[1], &want[1]),
        ("dv", &got[2], &want[2]),
    ] {
        assert_close(g, w, TOL_CPU_F32, &format!("{name} {b}x{l}x{h}x{dh}"));
    }
}

#[test]
fn attention_backward_fast_matches_ref_cpu() {
    backward_fast_vs_ref(2, 37, 3, 5, 51);
    backward_fast_vs_ref(1, 130, 2, 16, 61);
}

#[test]
fn attention_backward_fast_matches_ref_real_shape_cpu() {
    backward_fast_vs_ref(1, 1024, 8, 64, 71);
}

/// f64 twin of the forward, for finite differences: x = [q | k | v], returns sum(out * w).
fn weighted_output_f64(p: &AttentionParams, x: &[f64], w: &[f32]) -> f64 {
    let (b, l, h, dh) = (
        p.batch as usize,
        p.seq_len as usize,
        p.heads as usize,
        p.head_dim as usize,
    );
    let n = p.numel();
    let (q, k, v) = (&x[..n], &x[n..2 * n], &x[2 * n..]);
    let at = |bb: usize, i: usize, hh: usize| (bb * l + i) * h * dh + hh * dh;
    let scale = 1.0 / (dh as f64).sqrt();
    let mut total = 0.0;
    for bb in 0..b {
        for hh in 0..h {
            for i in 0..l {
                let s: Vec<f64> = (0..l)
                    .map(|j| {
                        scale
                            * (0..dh)
                                .map(|c| q[at(bb, i, hh) + c] * k[at(bb, j, hh) + c])
                                .sum::<f64>()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..dh {
                    let o: f64 = (0..l).map(|j| e[j] / z * v[at(bb, j, hh) + c]).sum();
                    total += o * w[at(bb, i, hh) + c] as f64;
                }
            }
        }
    }
    total
}

#[test]
fn attention_backward_matches_finite_differences_cpu() -> Result<()> {
    let p = AttentionParams::new(1, 5, 2, 3);
    let n = p.numel();
    let (q, k, v) = (
        random_vec(81, n, -1.5, 1.5),
        random_vec(82, n, -1.5, 1.5),
        random_vec(83, n, -1., 1.),
    );
    let w = random_vec(84, n, -1., 1.);
    let x: Vec<f64> = q.iter().chain(&k).chain(&v).map(|&a| a as f64).collect();
    let numeric = finite_diff(&x, 1e-6, |x| weighted_output_f64(&p, x, &w));

    // Through the tape (fast path), seeded with w as the output gradient.
    let tape = Tape::new();
    let shape = [1, 5, 6];
    let (qv, kv, vv) = (
        tape.var(Tensor::from_vec(q.clone(), &shape)?),
        tape.var(Tensor::from_vec(k.clone(), &shape)?),
        tape.var(Tensor::from_vec(v.clone(), &shape)?),
    );
    let out = autograd::attention::attention(&tape, &qv, &kv, &vv, 2)?;
    let grads = tape.backward_with(&out, Tensor::from_vec(w.clone(), &shape)?)?;
    let mut analytic = Vec::new();
    for (var, name) in [(&qv, "q"), (&kv, "k"), (&vv, "v")] {
        analytic.extend(
            grads
                .expect(var, name)?
                .to_vec_f32()?
                .iter()
                .map(|&g| g as f64),
        );
    }
    assert_grad_close(&analytic, &numeric, 1e-5, "attention fast backward");

    let mut r = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let [rq, rk, rv] = &mut r;
    attention_backward_ref(&p, &q, &k, &v, &w, rq, rk, rv);
    let analytic_ref: Vec<f64> = r.concat().iter().map(|&g| g as f64).collect();
    assert_grad_close(&analytic_ref, &numeric, 1e-5, "attention ref backward");
    Ok(())
}

#[test]
fn attention_rejects_bad_input_cpu() -> Result<()> {
    let q = Tensor::zeros(&[1, 4, 6]);
    let err = ops::attention(&q, &q, &q, 4).unwrap_err().to_string();
    assert!(err.contains("multiple of heads"), "{err}");
    let k = Tensor::zeros(&[1, 5, 6]);
    let err = ops::attention(&q, &k, &q, 2).unwrap_err().to_string();
    assert!(err.contains("k [1, 5, 6]"), "{err}");
    let flat = Tensor::zeros(&[4, 6]);
    let err = ops::attention(&flat, &flat, &flat, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 3"), "{err}");
    let idx = Tensor::from_u32(vec![0; 24], &[1, 4, 6])?;
    assert!(ops::attention(&idx, &idx, &idx, 2).is_err());
    Ok(())
}
