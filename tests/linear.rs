//! Linear (x [.., in], W [out, in], b [out]) and matmul ([.., M, K] x [.., K, N]): a numpy literal
//! case, fast vs the f64 loops at odd and real sizes (1024 tokens x 512 -> 512, spec §3.2),
//! transposed-view and shared operands, backward vs f64 finite differences, autograd through a
//! two-layer MLP on the tape, and shape errors.
use fdm::autograd::{linear as ag, Tape};
use fdm::cpu::ops::linear::*;
use fdm::ops::matmul::{linear, linear_backward, matmul, matmul_backward};
use fdm::params::linear::LinearParams;
use fdm::testing::{assert_close, assert_grad_close, finite_diff, random_vec, TOL_CPU_F32};
use fdm::Tensor;

// Literal values from numpy:
//   x = (np.arange(6).reshape(2, 3) - 2) / 2
//   w = (np.arange(12).reshape(4, 3) % 5 - 2) / 4
//   b = np.array([0.5, -0.25, 0.0, 1.0])
//   print((x @ w.T + b).ravel().tolist())
#[test]
fn linear_literal_cpu() -> fdm::Result<()> {
    let x: Vec<f32> = (0..6).map(|v| (v as f32 - 2.0) / 2.0).collect();
    let w: Vec<f32> = (0..12).map(|v| ((v % 5) as f32 - 2.0) / 4.0).collect();
    let b = vec![0.5, -0.25, 0.0, 1.0];
    let want = [1.125, -0.75, 0.25, 0.75, 0.0, -0.375, 0.25, 0.375];
    let y = linear(&Tensor::from_vec(x.clone(), &[2, 3])?, &Tensor::from_vec(w.clone(), &[4, 3])?, Some(&Tensor::from_vec(b.clone(), &[4])?))?;
    assert_eq!(y.shape(), &[2, 4]);
    assert_close(&y.to_vec_f32()?, &want, TOL_CPU_F32, "linear literal (fast)");
    let mut r = vec![0.0; 8];
    linear_ref(&LinearParams::new(2, 3, 4, true), &x, &w, Some(&b), &mut r);
    assert_close(&r, &want, TOL_CPU_F32, "linear literal (ref)");
    Ok(())
}

/// x in [-1, 1], W in +-1/sqrt(in) (outputs O(1)), b in [-1, 1], g in +-1/sqrt(rows) (dW O(1)).
fn data(p: &LinearParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, inf, outf) = p.dims();
    let (s, gs) = (1.0 / (inf as f32).sqrt(), 1.0 / (rows as f32).sqrt());
    (random_vec(seed, rows * inf, -1.0, 1.0), random_vec(seed + 1, outf * inf, -s, s), random_vec(seed + 2, outf, -1.0, 1.0), random_vec(seed + 3, rows * outf, -gs, gs))
}

fn check_fast_vs_ref(p: &LinearParams, seed: u64, with_backward: bool) {
    let (rows, _, outf) = p.dims();
    let (x, w, b, g) = data(p, seed);
    let (mut want, mut got) = (vec![0.0; rows * outf], vec![f32::NAN; rows * outf]);
    linear_ref(p, &x, &w, Some(&b), &mut want);
    linear_fast(p, &x, &w, Some(&b), &mut got);
    assert_close(&got, &want, TOL_CPU_F32, &format!("linear {p:?}"));
    let mut no_bias = vec![f32::NAN; rows * outf];
    linear_fast(p, &x, &w, None, &mut no_bias);
    linear_ref(p, &x, &w, None, &mut want);
    assert_close(&no_bias, &want, TOL_CPU_F32, &format!("linear without bias {p:?}"));
    // The op's new-buffer form (bias rows as the first write, no zeroing) has the same bits.
    let same = |u: &[f32], v: &[f32]| u.len() == v.len() && u.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same(&linear_fast_new(p, &x, &w, Some(&b)), &got), "linear_fast_new {p:?}");
    assert!(same(&linear_fast_new(p, &x, &w, None), &no_bias), "linear_fast_new without bias {p:?}");
    if !with_backward {
        return;
    }
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; outf]);
    linear_backward_ref(p, &x, &w, &g, &mut dx, &mut dw, &mut db);
    let (mut fdx, mut fdw, mut fdb) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; outf]);
    linear_backward_input_fast(p, &w, &g, &mut fdx);
    linear_backward_weight_fast(p, &x, &g, &mut fdw);
    linear_backward_bias_fast(p, &g, &mut fdb);
    assert_close(&fdx, &dx, TOL_CPU_F32, &format!("dx {p:?}"));
    assert_close(&fdw, &dw, TOL_CPU_F32, &format!("dw {p:?}"));
    assert_close(&fdb, &db, TOL_CPU_F32, &format!("db {p:?}"));
}

#[test]
fn linear_fast_matches_ref_cpu() {
    for (i, &(rows, inf, outf)) in [(1, 1, 1), (7, 13, 5), (37, 19, 300), (300, 65, 17), (256, 512, 512), (3, 4, 0), (0, 4, 3)].iter().enumerate() {
        check_fast_vs_ref(&LinearParams::new(rows, inf, outf, true), 10 * i as u64, true);
    }
    // The transformer's q/k/v/proj at 1024 tokens (the MLP shapes are covered in tests/gemm.rs).
    check_fast_vs_ref(&LinearParams::new(1024, 512, 512, true), 99, false);
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&e| e as f64).collect()
}

/// f64 twin of `y = x W^T + b` for finite differences.
fn linear64(rows: usize, inf: usize, outf: usize, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    (0..rows * outf).map(|k| b[k % outf] + (0..inf).map(|i| x[k / outf * inf + i] * w[k % outf * inf + i]).sum::<f64>()).collect()
}

#[test]
fn linear_backward_matches_finite_differences_cpu() -> fdm::Result<()> {
    // x [2, 3, 4] (two leading dims), W [5, 4], b [5]; L = sum(y * r).
    let p = LinearParams::new(6, 4, 5, true);
    let (x, w, b, _) = data(&p, 40);
    let r = random_vec(44, 30, -1.0, 1.0);
    let (x64, w64, b64, r64) = (to64(&x), to64(&w), to64(&b), to64(&r));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| linear64(6, 4, 5, x, w, b).iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>();
    let (dx, dw, db) = linear_backward(&Tensor::from_vec(x, &[2, 3, 4])?, &Tensor::from_vec(w, &[5, 4])?, &Tensor::from_vec(r, &[2, 3, 5])?)?;
    assert_eq!((dx.shape(), dw.shape(), db.shape()), (&[2, 3, 4][..], &[5, 4][..], &[5][..]));
    assert_grad_close(&to64(&dx.to_vec_f32()?), &finite_diff(&x64, 1e-3, |x| loss(x, &w64, &b64)), 1e-5, "dx");
    assert_grad_close(&to64(&dw.to_vec_f32()?), &finite_diff(&w64, 1e-3, |w| loss(&x64, w, &b64)), 1e-5, "dw");
    assert_grad_close(&to64(&db.to_vec_f32()?), &finite_diff(&b64, 1e-3, |b| loss(&x64, &w64, b)), 1e-5, "db");
    Ok(())
}

/// f64 twin of a batched matmul (`b_shared`: one [k, n] matrix for every batch item).
fn matmul64(batch: usize, m: usize, k: usize, n: usize, a: &[f64], b: &[f64], b_shared: bool) -> Vec<f64> {
    let bs = if b_shared { 0 } else { k * n };
    (0..batch * m * n).map(|idx| (idx / (m * n), idx / n % m, idx % n)).map(|(t, i, j)| (0..k).map(|q| a[t * m * k + i * k + q] * b[t * bs + q * n + j]).sum()).collect()
}

#[test]
fn matmul_matches_f64_twin_with_views_and_shared_b_cpu() -> fdm::Result<()> {
    let (batch, m, k, n) = (3, 5, 7, 4);
    let a = random_vec(1, batch * m * k, -1.0, 1.0);
    let b = random_vec(2, batch * k * n, -1.0, 1.0);
    let want = matmul64(batch, m, k, n, &to64(&a), &to64(&b), false);
    let (at, bt) = (Tensor::from_vec(a.clone(), &[batch, m, k])?, Tensor::from_vec(b.clone(), &[batch, k, n])?);
    let got = matmul(&at, &bt)?;
    assert_eq!(got.shape(), &[batch, m, n]);
    let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_close(&got.to_vec_f32()?, &want32, TOL_CPU_F32, "batched matmul");
    // Operands handed over as transposed views of dense [.., K, M] / [.., N, K] data.
    let a_view = at.transpose(1, 2)?.contiguous()?.transpose(1, 2)?;
    let b_view = bt.transpose(1, 2)?.contiguous()?.transpose(1, 2)?;
    assert!(!a_view.is_contiguous() && !b_view.is_contiguous());
    assert_close(&matmul(&a_view, &b_view)?.to_vec_f32()?, &want32, TOL_CPU_F32, "matmul of transposed views");
    // 2-D x 2-D and a 2-D b shared by the batch.
    let b2 = Tensor::from_vec(b[..k * n].to_vec(), &[k, n])?;
    let shared = matmul64(batch, m, k, n, &to64(&a), &to64(&b[..k * n]), true);
    assert_close(&matmul(&at, &b2)?.to_vec_f32()?, &shared.iter().map(|&v| v as f32).collect::<Vec<_>>(), TOL_CPU_F32, "shared b");
    let a2 = Tensor::from_vec(a[..m * k].to_vec(), &[m, k])?;
    assert_close(&matmul(&a2, &b2)?.to_vec_f32()?, &shared[..m * n].iter().map(|&v| v as f32).collect::<Vec<_>>(), TOL_CPU_F32, "2-D");
    Ok(())
}

#[test]
fn matmul_backward_matches_finite_differences_cpu() -> fdm::Result<()> {
    let (batch, m, k, n) = (2, 3, 4, 5);
    let a = random_vec(3, batch * m * k, -1.0, 1.0);
    let r = random_vec(5, batch * m * n, -1.0, 1.0);
    let (a64, r64) = (to64(&a), to64(&r));
    for shared in [false, true] {
        let b = random_vec(4, if shared { k * n } else { batch * k * n }, -1.0, 1.0);
        let b64 = to64(&b);
        let b_shape: &[usize] = if shared { &[k, n] } else { &[batch, k, n] };
        let loss = |a: &[f64], b: &[f64]| matmul64(batch, m, k, n, a, b, shared).iter().zip(&r64).map(|(x, y)| x * y).sum::<f64>();
        let (da, db) = matmul_backward(&Tensor::from_vec(a.clone(), &[batch, m, k])?, &Tensor::from_vec(b.clone(), b_shape)?, &Tensor::from_vec(r.clone(), &[batch, m, n])?)?;
        assert_eq!(db.shape(), b_shape);
        assert_grad_close(&to64(&da.to_vec_f32()?), &finite_diff(&a64, 1e-3, |a| loss(a, &b64)), 1e-5, "da");
        assert_grad_close(&to64(&db.to_vec_f32()?), &finite_diff(&b64, 1e-3, |b| loss(&a64, b)), 1e-5, &format!("db shared={shared}"));
    }
    Ok(())
}

#[test]
fn linear_autograd_mlp_gradients_match_finite_differences_cpu() -> fdm::Result<()> {
    // y = matmul(linear(linear(x, W1, b1), W2), M): x [2, 3, 4], W1 [6, 4], W2 [5, 6] (no bias),
    // M [5, 2]; gradients of sum(y * r) through the tape for every leaf.
    let (x, w1, b1) = (random_vec(1, 24, -1.0, 1.0), random_vec(2, 24, -0.5, 0.5), random_vec(3, 6, -1.0, 1.0));
    let (w2, mm) = (random_vec(4, 30, -0.4, 0.4), random_vec(5, 10, -1.0, 1.0));
    let r = random_vec(6, 12, -1.0, 1.0);
    let tape = Tape::new();
    let xv = tape.var(Tensor::from_vec(x.clone(), &[2, 3, 4])?);
    let w1v = tape.var(Tensor::from_vec(w1.clone(), &[6, 4])?);
    let b1v = tape.var(Tensor::from_vec(b1.clone(), &[6])?);
    let w2v = tape.var(Tensor::from_vec(w2.clone(), &[5, 6])?);
    let mv = tape.var(Tensor::from_vec(mm.clone(), &[5, 2])?);
    let h = ag::linear(&tape, &xv, &w1v, Some(&b1v))?;
    let z = ag::linear(&tape, &h, &w2v, None)?;
    let y = ag::matmul(&tape, &z, &mv)?;
    assert_eq!(y.shape(), &[2, 3, 2]);
    let grads = tape.backward_with(&y, Tensor::from_vec(r.clone(), &[2, 3, 2])?)?;

    let leaves = [to64(&x), to64(&w1), to64(&b1), to64(&w2), to64(&mm)];
    let r64 = to64(&r);
    let loss = |l: &[Vec<f64>]| {
        let h = linear64(6, 4, 6, &l[0], &l[1], &l[2]);
        let z = linear64(6, 6, 5, &h, &l[3], &[0.0; 5]);
        matmul64(1, 6, 5, 2, &z, &l[4], true).iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>()
    };
    for (i, (var, name)) in [(&xv, "x"), (&w1v, "w1"), (&b1v, "b1"), (&w2v, "w2"), (&mv, "m")].into_iter().enumerate() {
        let numeric = finite_diff(&leaves[i], 1e-3, |v| {
            let mut l = leaves.clone();
            l[i] = v.to_vec();
            loss(&l)
        });
        assert_grad_close(&to64(&grads.expect(var, name)?.to_vec_f32()?), &numeric, 1e-5, name);
    }
    Ok(())
}

#[test]
fn linear_and_matmul_reject_bad_shapes_cpu() {
    let e = linear(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[4, 5]), None).unwrap_err().to_string();
    assert!(e.contains("last dim 3") && e.contains("in_features 5"), "{e}");
    let e = linear(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[4, 3]), Some(&Tensor::zeros(&[3]))).unwrap_err().to_string();
    assert!(e.contains("bias must be [4]"), "{e}");
    let e = matmul(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[4, 5])).unwrap_err().to_string();
    assert!(e.contains("inner dims differ"), "{e}");
    let e = matmul(&Tensor::zeros(&[2, 2, 3]), &Tensor::zeros(&[3, 3, 5])).unwrap_err().to_string();
    assert!(e.contains("batch dims differ"), "{e}");
    let e = matmul(&Tensor::zeros(&[3]), &Tensor::zeros(&[3, 5])).unwrap_err().to_string();
    assert!(e.contains("at least 2 dims"), "{e}");
}
