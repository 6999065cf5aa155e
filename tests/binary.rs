//! Broadcasting binary ops: literal values (numpy), fast vs ref and vs an independent broadcast
//! in the test on the real shapes, backward vs finite differences, tie/NaN rules, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::{binary as ag, Tape};
use fdm::cpu::ops::binary::{apply_f64, binary_fast, binary_fast_new, binary_ref};
use fdm::ops::binary::{self as ops, add, div, maximum, minimum, mul, sub};
use fdm::params::binary::{BinaryOp, BinaryParams};
use fdm::shape::broadcast_shape;
use fdm::testing::{assert_close, TOL_CPU_F32};
use fdm::{Result, Tensor};

const OPS: [BinaryOp; 6] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
];

#[test]
fn binary_literal_broadcast_cpu() -> Result<()> {
    // numpy:
    //   a = np.array([[1,2,3],[4,5,6]], np.float32); b = np.array([10,-20,0.5], np.float32)
    //   a+b, a-b, a*b, a/b  (printed with .ravel().tolist())
    //   c = np.array([[2],[5]], np.float32); d = np.array([[1,3,6]], np.float32)
    //   np.maximum(c, d), np.minimum(c, d)
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[10., -20., 0.5], &[3]);
    assert_eq!(vals(&add(&a, &b)?), [11.0, -18.0, 3.5, 14.0, -15.0, 6.5]);
    assert_eq!(vals(&sub(&a, &b)?), [-9.0, 22.0, 2.5, -6.0, 25.0, 5.5]);
    assert_eq!(vals(&mul(&a, &b)?), [10.0, -40.0, 1.5, 40.0, -100.0, 3.0]);
    assert_close(
        &vals(&div(&a, &b)?),
        &[0.1, -0.1, 6.0, 0.4, -0.25, 12.0],
        TOL_CPU_F32,
        "div",
    );
    let (c, d) = (t(&[2., 5.], &[2, 1]), t(&[1., 3., 6.], &[1, 3]));
    let m = maximum(&c, &d)?;
    assert_eq!(m.shape(), &[2, 3]);
    assert_eq!(vals(&m), [2.0, 3.0, 6.0, 5.0, 5.0, 6.0]);
    assert_eq!(vals(&minimum(&c, &d)?), [1.0, 2.0, 2.0, 1.0, 3.0, 5.0]);
    // A rank-0 scalar broadcasts against anything.
    assert_eq!(
        vals(&mul(&Tensor::scalar(2.0), &a)?),
        [2., 4., 6., 8., 10., 12.]
    );
    Ok(())
}

/// Expected result by materialising both broadcasts element by element (independent of the
/// collapsed-stride machinery under test), in f64.
fn naive(op: BinaryOp, a: &Tensor, b: &Tensor) -> Vec<f32> {
    let shape = broadcast_shape("test", a.shape(), b.shape()).unwrap();
    let (av, bv) = (vals(a), vals(b));
    (0..shape.iter().product::<usize>())
        .map(|i| {
            let idx = unravel(i, &shape);
            let (x, y) = (
                av[broadcast_source(&idx, a.shape())],
                bv[broadcast_source(&idx, b.shape())],
            );
            apply_f64(op, x as f64, y as f64) as f32
        })
        .collect()
}

#[test]
fn binary_fast_matches_ref_cpu() -> Result<()> {
    // Real shapes: transformer activations 2 x 1024 x 512 with a bias row [512]; decoder feature
    // maps 2 x 256 x 32 x 32 with per-channel [1,256,1,1] and per-pixel mask [2,1,32,32] factors.
    let cases: [(&[usize], &[usize]); 8] = [
        (&[2, 1024, 512], &[2, 1024, 512]),
        (&[2, 1024, 512], &[512]),
        (&[2, 256, 32, 32], &[1, 256, 1, 1]),
        (&[2, 256, 32, 32], &[2, 1, 32, 32]),
        (&[4, 1, 5], &[1, 3, 1]),
        (&[3, 1], &[1, 7]),
        (&[], &[5, 2]),
        (&[6, 1, 4, 1, 3], &[5, 1, 2, 1]),
    ];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        let a = rand(10 + k as u64, sa, -2.0, 2.0);
        let b = rand(50 + k as u64, sb, 0.5, 2.0); // away from 0 for div
        for op in OPS {
            let got = ops::binary(op, &a, &b)?;
            let want = naive(op, &a, &b);
            assert_close(
                &vals(&got),
                &want,
                TOL_CPU_F32,
                &format!("{op:?} {sa:?} {sb:?} vs naive"),
            );
            let p = BinaryParams::new(op, got.shape(), sa, sb)?;
            let mut r = vec![0f32; got.numel()];
            binary_ref(&p, &vals(&a), &vals(&b), &mut r);
            let mut f = vec![0f32; got.numel()];
            binary_fast(&p, &vals(&a), &vals(&b), &mut f);
            assert_close(
                &f,
                &r,
                TOL_CPU_F32,
                &format!("{op:?} {sa:?} {sb:?} fast vs ref"),
            );
        }
    }
    Ok(())
}

/// The output the ops return (`binary_fast_new`: a new buffer, not zeroed) holds the bits of
/// `binary_fast` into a buffer, for outputs on one thread and split across threads, empty ones,
/// and each stride pattern of the inner loop.
#[test]
fn binary_new_buffer_matches_in_place_cpu() -> Result<()> {
    let cases: [(&[usize], &[usize]); 7] = [
        (&[0, 5], &[0, 5]),
        (&[7], &[7]),
        (&[3, 11], &[11]),
        (&[3, 11], &[3, 1]),
        (&[5, 3], &[1, 5, 1]),
        (&[2, 64, 33, 17], &[1, 64, 1, 1]),
        (&[4, 16, 128, 128], &[4, 1, 128, 128]),
    ];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        let shape = broadcast_shape("test", sa, sb)?;
        let (a, b) = (rand(300 + k as u64, sa, -2.0, 2.0), rand(400 + k as u64, sb, 0.5, 2.0));
        for op in OPS {
            let p = BinaryParams::new(op, &shape, sa, sb)?;
            let mut want = vec![f32::NAN; p.numel()];
            binary_fast(&p, &vals(&a), &vals(&b), &mut want);
            let got = binary_fast_new(&p, &vals(&a), &vals(&b));
            assert_eq!(got.len(), want.len(), "{op:?} {sa:?} {sb:?}");
            assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits()), "{op:?} {sa:?} {sb:?}");
        }
    }
    Ok(())
}

#[test]
fn binary_common_broadcasts_collapse_cpu() -> Result<()> {
    // The fast paths rely on these collapsed forms (params/binary.rs).
    let p = BinaryParams::new(
        BinaryOp::Add,
        &[2, 1024, 512],
        &[2, 1024, 512],
        &[2, 1024, 512],
    )?;
    assert_eq!(
        (p.rank, p.shape[0], p.a_strides[0], p.b_strides[0]),
        (1, 2 * 1024 * 512, 1, 1)
    );
    let p = BinaryParams::new(BinaryOp::Add, &[2, 1024, 512], &[2, 1024, 512], &[512])?;
    assert_eq!(
        (p.rank, &p.shape[..2], &p.b_strides[..2]),
        (2, &[2048u32, 512][..], &[0u32, 1][..])
    );
    let p = BinaryParams::new(
        BinaryOp::Mul,
        &[2, 256, 32, 32],
        &[2, 256, 32, 32],
        &[1, 256, 1, 1],
    )?;
    assert_eq!(
        (p.rank, &p.shape[..3], &p.b_strides[..3]),
        (3, &[2u32, 256, 1024][..], &[0u32, 1, 0][..])
    );
    let p = BinaryParams::new(
        BinaryOp::Mul,
        &[2, 256, 32, 32],
        &[2, 256, 32, 32],
        &[2, 1, 32, 32],
    )?;
    assert_eq!(
        (p.rank, &p.shape[..3], &p.b_strides[..3]),
        (3, &[2u32, 256, 1024][..], &[1024u32, 0, 1][..])
    );
    Ok(())
}

#[test]
fn binary_strided_inputs_cpu() -> Result<()> {
    // A permuted (non-contiguous) view is made dense before the op.
    let a = rand(1, &[4, 6], -1.0, 1.0);
    let at = a.transpose(0, 1)?; // [6, 4] view
    let b = rand(2, &[6, 4], -1.0, 1.0);
    let got = add(&at, &b)?;
    let want = naive(BinaryOp::Add, &at.contiguous()?, &b);
    assert_close(&vals(&got), &want, TOL_CPU_F32, "transposed + dense");
    Ok(())
}

/// f64 twin of a broadcasting binary op on flat values.
fn twin(op: BinaryOp, sa: &[usize], sb: &[usize], a: &[f64], b: &[f64]) -> Vec<f64> {
    let shape = broadcast_shape("twin", sa, sb).unwrap();
    (0..shape.iter().product::<usize>())
        .map(|i| {
            let idx = unravel(i, &shape);
            apply_f64(
                op,
                a[broadcast_source(&idx, sa)],
                b[broadcast_source(&idx, sb)],
            )
        })
        .collect()
}

#[test]
fn binary_backward_matches_finite_diff_cpu() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[2, 3, 4], &[3, 1]),
        (&[3], &[2, 3]),
        (&[2, 3], &[2, 3]),
        (&[2, 1, 4], &[]),
    ];
    for (sa, sb) in shapes {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        // a in [-2, -1.2] U ... : values spread so maximum/minimum never tie within the FD step.
        let a: Vec<f32> = (0..na).map(|i| -2.0 + 0.37 * i as f32).collect();
        let b: Vec<f32> = fdm::testing::random_vec(7, nb, 0.6, 1.9)
            .iter()
            .map(|v| v + 0.013)
            .collect();
        for op in OPS {
            let ag_op = move |tape: &Tape, v: &[fdm::autograd::Var]| match op {
                BinaryOp::Add => ag::add(tape, &v[0], &v[1]),
                BinaryOp::Sub => ag::sub(tape, &v[0], &v[1]),
                BinaryOp::Mul => ag::mul(tape, &v[0], &v[1]),
                BinaryOp::Div => ag::div(tape, &v[0], &v[1]),
                BinaryOp::Maximum => ag::maximum(tape, &v[0], &v[1]),
                _ => ag::minimum(tape, &v[0], &v[1]),
            };
            let (sa2, sb2) = (sa.to_vec(), sb.to_vec());
            check_grads(
                &format!("{op:?} {sa:?} {sb:?}"),
                &[(a.clone(), sa.to_vec()), (b.clone(), sb.to_vec())],
                ag_op,
                move |x| twin(op, &sa2, &sb2, &x[0], &x[1]),
            );
        }
    }
}

#[test]
fn binary_maximum_tie_splits_gradient_cpu() -> Result<()> {
    // PyTorch: torch.maximum backward gives each input half the gradient on a tie.
    let tape = Tape::new();
    let a = tape.var(t(&[1., 2., 3.], &[3]));
    let b = tape.var(t(&[1., 0., 5.], &[3]));
    let m = ag::maximum(&tape, &a, &b)?;
    let g = tape.backward_with(&m, t(&[1., 1., 1.], &[3]))?;
    assert_eq!(vals(g.expect(&a, "a")?), [0.5, 1.0, 0.0]);
    assert_eq!(vals(g.expect(&b, "b")?), [0.5, 0.0, 1.0]);
    let n = ag::minimum(&tape, &a, &b)?;
    let g = tape.backward_with(&n, t(&[1., 1., 1.], &[3]))?;
    assert_eq!(vals(g.expect(&a, "a")?), [0.5, 0.0, 1.0]);
    assert_eq!(vals(g.expect(&b, "b")?), [0.5, 1.0, 0.0]);
    Ok(())
}

#[test]
fn binary_maximum_propagates_nan_cpu() -> Result<()> {
    let a = t(&[f32::NAN, 1.0, 2.0], &[3]);
    let b = t(&[0.0, f32::NAN, 1.0], &[3]);
    for r in [vals(&maximum(&a, &b)?), vals(&minimum(&a, &b)?)] {
        assert!(r[0].is_nan() && r[1].is_nan(), "{r:?}");
    }
    assert_eq!(vals(&maximum(&a, &b)?)[2], 2.0);
    Ok(())
}

#[test]
fn binary_rejects_bad_inputs_cpu() -> Result<()> {
    let err = add(&t(&[0.; 6], &[2, 3]), &t(&[0.; 4], &[4]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot broadcast") && err.contains("[2, 3]"),
        "{err}"
    );
    let idx = Tensor::from_u32(vec![1, 2], &[2])?;
    let err = mul(&idx, &t(&[1., 2.], &[2])).unwrap_err().to_string();
    assert!(err.contains("U32") && err.contains("mul"), "{err}");
    Ok(())
}
