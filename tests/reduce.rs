//! Reductions: literal values (numpy), fast vs ref (and vs an f64 sum) on the real shapes, the
//! non-adjacent-dims path, argmax/argmin with forced ties and NaN, sum_to_shape, backward vs
//! finite differences, first-max gradient routing, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::{reduce as ag, Tape};
use fdm::cpu::ops::reduce::{argreduce_fast, argreduce_ref, reduce_fast, reduce_ref};
use fdm::ops::reduce::{
    argmax, argmin, max, max_all, mean, mean_all, min, sum, sum_all, sum_to_shape,
};
use fdm::params::reduce::{ArgReduceOp, ArgReduceParams, ReduceOp, ReduceParams};
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

/// x = (np.arange(24, dtype=np.float32).reshape(2,3,4) * 0.5 - 3.0) ** 2 - 4.0
fn literal_x() -> Tensor {
    let v: Vec<f32> = (0..24)
        .map(|i| (i as f32 * 0.5 - 3.0).powi(2) - 4.0)
        .collect();
    t(&v, &[2, 3, 4])
}

#[test]
fn reduce_literal_cpu() -> Result<()> {
    // numpy: x.sum(axis=1); x.sum(axis=(0,2)); x.mean(axis=2, keepdims=True); x.max(axis=(0,2));
    //        x.min(axis=0); x.sum(); x.mean(); x.argmax(-1); x.argmin(-1)
    let x = literal_x();
    let s1 = sum(&x, &[1], false)?;
    assert_eq!(s1.shape(), &[2, 4]);
    assert_eq!(
        vals(&s1),
        [-1.0, -3.25, -4.0, -3.25, 71.0, 86.75, 104.0, 122.75]
    );
    assert_eq!(vals(&sum(&x, &[0, 2], false)?), [47.0, 103.0, 223.0]);
    let m2 = mean(&x, &[2], true)?;
    assert_eq!(m2.shape(), &[2, 3, 1]);
    assert_eq!(vals(&m2), [1.375, -3.625, -0.625, 10.375, 29.375, 56.375]);
    assert_eq!(vals(&max(&x, &[2, 0], false)?), [16.25, 38.25, 68.25]);
    assert_eq!(
        vals(&min(&x, &[0], false)?),
        [5.0, 2.25, 0.0, -1.75, -3.0, -3.75, -4.0, -3.75, -3.0, -1.75, 0.0, 2.25]
    );
    let s = sum_all(&x)?;
    assert_eq!(s.shape(), &[] as &[usize]);
    assert_eq!(s.to_scalar()?, 373.0);
    assert_close(
        &[mean_all(&x)?.to_scalar()?],
        &[15.541667],
        TOL_CPU_F32,
        "mean_all",
    );
    assert_eq!(max_all(&x)?.to_scalar()?, 68.25);
    assert_eq!(argmax(&x)?.to_vec_u32()?, [0, 0, 3, 3, 3, 3]);
    assert_eq!(argmin(&x)?.to_vec_u32()?, [3, 2, 0, 0, 0, 0]);
    // No dims: nothing reduced.
    assert_eq!(vals(&sum(&x, &[], false)?), vals(&x));
    Ok(())
}

/// Independent reduction in f64 over any dim set (multi-index walk), keepdim shape.
fn naive(op: ReduceOp, x: &Tensor, dims: &[usize]) -> Vec<f32> {
    let shape = x.shape();
    let keep: Vec<usize> = (0..shape.len())
        .map(|d| if dims.contains(&d) { 1 } else { shape[d] })
        .collect();
    let n_out: usize = keep.iter().product();
    let mut acc: Vec<Option<f64>> = vec![None; n_out];
    let xv = vals(x);
    for (i, &v) in xv.iter().enumerate() {
        let idx = unravel(i, shape);
        let o = broadcast_source(&idx, &keep);
        let v = v as f64;
        acc[o] = Some(match (acc[o], op) {
            (None, _) => v,
            (Some(a), ReduceOp::Sum | ReduceOp::Mean) => a + v,
            (Some(a), ReduceOp::Max) => a.max(v),
            (Some(a), ReduceOp::Min) => a.min(v),
        });
    }
    let count: usize = dims.iter().map(|&d| shape[d]).product();
    acc.iter()
        .map(|a| {
            (if op == ReduceOp::Mean {
                a.unwrap() / count as f64
            } else {
                a.unwrap()
            }) as f32
        })
        .collect()
}

#[test]
fn reduce_ops_match_naive_on_real_shapes_cpu() -> Result<()> {
    // Real shapes: 1024 x 512 transformer rows (over tokens: bias gradients; over channels);
    // 2 x 256 x 32 x 32 feature maps over (N, H, W) = [0, 2, 3] (non-adjacent: the permute path).
    let cases: [(&[usize], &[usize]); 6] = [
        (&[1024, 512], &[1]),
        (&[1024, 512], &[0]),
        (&[2, 256, 32, 32], &[0, 2, 3]),
        (&[2, 256, 32, 32], &[2, 3]),
        (&[3, 4, 5, 6], &[1, 3]),
        (&[7], &[0]),
    ];
    for (k, (shape, dims)) in cases.iter().enumerate() {
        let x = rand(k as u64 + 3, shape, -3.0, 3.0);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let got = match op {
                ReduceOp::Sum => sum(&x, dims, true)?,
                ReduceOp::Mean => mean(&x, dims, true)?,
                ReduceOp::Max => max(&x, dims, true)?,
                ReduceOp::Min => min(&x, dims, true)?,
            };
            assert_close(
                &vals(&got),
                &naive(op, &x, dims),
                TOL_CPU_F32,
                &format!("{op:?} {shape:?} over {dims:?}"),
            );
        }
    }
    Ok(())
}

#[test]
fn reduce_fast_matches_ref_cpu() {
    // [outer, reduce, inner] forms: rows (inner 1), middle dims, one long row split across threads
    // (8 x 1024 x 1024 = 8M elements: the size of the attention probabilities of one layer).
    let forms = [
        (1024, 512, 1),
        (1, 1024, 512),
        (2, 256, 1024),
        (1, 8 * 1024 * 1024, 1),
        (3, 5, 7),
        (64, 3, 300),
    ];
    for (k, &(o, r, i)) in forms.iter().enumerate() {
        let x = random_vec(k as u64 + 11, o * r * i, -1.0, 1.0);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            let p = ReduceParams::new(op, o, r, i);
            let (mut a, mut b) = (vec![0f32; o * i], vec![0f32; o * i]);
            reduce_ref(&p, &x, &mut a);
            reduce_fast(&p, &x, &mut b);
            assert_close(&b, &a, TOL_CPU_F32, &format!("{op:?} [{o}, {r}, {i}]"));
        }
    }
}

#[test]
fn reduce_long_sum_is_f64_accurate_cpu() -> Result<()> {
    // 8M values of 0.1: an f32 running sum drifts by percents; the f64 accumulation must give
    // 838860.8 (as f32: 838860.8125) to f32 rounding.
    let n = 8 * 1024 * 1024;
    let x = Tensor::full(0.1, &[n]);
    let want = (0.1f32 as f64 * n as f64) as f32;
    assert_eq!(sum_all(&x)?.to_scalar()?, want);
    Ok(())
}

#[test]
fn reduce_argmax_argmin_ties_and_nan_cpu() -> Result<()> {
    // Forced ties: the lowest index wins.
    let x = t(&[3., 1., 3., 3., 0., 0., 0., 0., -2., 5., -2., 5.], &[3, 4]);
    assert_eq!(argmax(&x)?.to_vec_u32()?, [0, 0, 1]);
    assert_eq!(argmin(&x)?.to_vec_u32()?, [1, 0, 0]);
    // NaN counts as the extreme (first NaN wins), as numpy/PyTorch.
    let y = t(&[1., f32::NAN, 9., f32::NAN], &[1, 4]);
    assert_eq!(argmax(&y)?.to_vec_u32()?, [1]);
    assert_eq!(argmin(&y)?.to_vec_u32()?, [1]);
    assert!(max(&y, &[1], false)?.to_scalar()?.is_nan());
    // Shape: [2, 3, 4] -> [2, 3], u32.
    let z = argmax(&rand(1, &[2, 3, 4], 0.0, 1.0))?;
    assert_eq!((z.shape(), z.dtype()), (&[2usize, 3][..], fdm::DType::U32));
    Ok(())
}

#[test]
fn reduce_argmax_fast_matches_ref_cpu() {
    // Real shape: 1024 tokens x 512 logits; values quantised to force many ties.
    for op in [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin] {
        let x: Vec<f32> = random_vec(5, 1024 * 512, 0.0, 8.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        let p = ArgReduceParams::new(op, 1024, 512);
        let (mut a, mut b) = (vec![0u32; 1024], vec![0u32; 1024]);
        argreduce_ref(&p, &x, &mut a);
        argreduce_fast(&p, &x, &mut b);
        assert_eq!(a, b, "{op:?}");
        // And the index really is the first extreme.
        for r in 0..1024 {
            let row = &x[r * 512..][..512];
            let best = if op == ArgReduceOp::ArgMax { 7.0 } else { 0.0 };
            assert_eq!(row.iter().position(|&v| v == best).unwrap() as u32, a[r]);
        }
    }
}

#[test]
fn reduce_sum_to_shape_cpu() -> Result<()> {
    let g = rand(9, &[2, 3, 4], -1.0, 1.0);
    let to = |shape: &[usize]| -> Result<Tensor> { sum_to_shape(&g, shape) };
    assert_close(
        &vals(&to(&[3, 1])?),
        &naive(ReduceOp::Sum, &g, &[0, 2]),
        TOL_CPU_F32,
        "[3,1]",
    );
    assert_close(
        &vals(&to(&[4])?),
        &naive(ReduceOp::Sum, &g, &[0, 1]),
        TOL_CPU_F32,
        "[4]",
    );
    assert_close(
        &vals(&to(&[2, 1, 4])?),
        &naive(ReduceOp::Sum, &g, &[1]),
        TOL_CPU_F32,
        "[2,1,4]",
    );
    assert_eq!(to(&[])?.shape(), &[] as &[usize]);
    assert_close(
        &vals(&to(&[1, 1, 1])?),
        &naive(ReduceOp::Sum, &g, &[0, 1, 2]),
        TOL_CPU_F32,
        "[1,1,1]",
    );
    assert_eq!(vals(&to(&[2, 3, 4])?), vals(&g));
    let err = to(&[5]).unwrap_err().to_string();
    assert!(err.contains("[5]") && err.contains("[2, 3, 4]"), "{err}");
    assert!(to(&[1, 2, 3, 4, 1]).is_err());
    Ok(())
}

/// f64 twin: reduce flat `x` of `shape` over `dims` (keepdim order).
fn twin(op: ReduceOp, shape: &[usize], dims: &[usize], x: &[f64]) -> Vec<f64> {
    let keep: Vec<usize> = (0..shape.len())
        .map(|d| if dims.contains(&d) { 1 } else { shape[d] })
        .collect();
    let mut acc: Vec<Option<f64>> = vec![None; keep.iter().product()];
    for (i, &v) in x.iter().enumerate() {
        let o = broadcast_source(&unravel(i, shape), &keep);
        acc[o] = Some(match (acc[o], op) {
            (None, _) => v,
            (Some(a), ReduceOp::Max) => a.max(v),
            (Some(a), ReduceOp::Min) => a.min(v),
            (Some(a), _) => a + v,
        });
    }
    let count: usize = dims.iter().map(|&d| shape[d]).product();
    acc.into_iter()
        .map(|a| {
            if op == ReduceOp::Mean {
                a.unwrap() / count as f64
            } else {
                a.unwrap()
            }
        })
        .collect()
}

#[test]
fn reduce_backward_matches_finite_diff_cpu() {
    let shape = vec![2, 3, 4];
    // Distinct values spaced 0.05 apart (shuffled): no max/min tie within the FD step.
    let mut x: Vec<f32> = (0..24).map(|i| i as f32 * 0.05 - 0.6).collect();
    fdm::rng::Rng::new(4).shuffle(&mut x);
    for dims in [vec![1], vec![0, 2], vec![0, 1, 2], vec![2]] {
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            for keepdim in [false, true] {
                let (d2, s2) = (dims.clone(), shape.clone());
                let d3 = dims.clone();
                check_grads(
                    &format!("{op:?} over {dims:?} keepdim {keepdim}"),
                    &[(x.clone(), shape.clone())],
                    move |tape: &Tape, v| match op {
                        ReduceOp::Sum => ag::sum(tape, &v[0], &d3, keepdim),
                        ReduceOp::Mean => ag::mean(tape, &v[0], &d3, keepdim),
                        ReduceOp::Max => ag::max(tape, &v[0], &d3, keepdim),
                        ReduceOp::Min => ag::min(tape, &v[0], &d3, keepdim),
                    },
                    move |xs| twin(op, &s2, &d2, &xs[0]),
                );
            }
        }
    }
}

#[test]
fn reduce_max_gradient_goes_to_first_max_cpu() -> Result<()> {
    let tape = Tape::new();
    let x = tape.var(t(&[1., 3., 3., 2., 2., 0.], &[2, 3]));
    let m = ag::max(&tape, &x, &[1], false)?;
    let g = tape.backward_with(&m, t(&[1., 10.], &[2]))?;
    assert_eq!(vals(g.expect(&x, "x")?), [0., 1., 0., 10., 0., 0.]);
    // Over a non-adjacent dim pair, "first" is row-major over the reduced dims.
    let y = tape.var(t(&[5., 1., 5., 2., 0., 5., 1., 5.], &[2, 2, 2]));
    let m = ag::max(&tape, &y, &[0, 2], false)?; // groups: dim 1 = 0 -> {5,1,0,5}, 1 -> {5,2,1,5}
    let g = tape.backward_with(&m, t(&[1., 1.], &[2]))?;
    assert_eq!(vals(g.expect(&y, "y")?), [1., 0., 1., 0., 0., 0., 0., 0.]);
    Ok(())
}

#[test]
fn reduce_rejects_bad_dims_cpu() -> Result<()> {
    let x = rand(1, &[2, 3], 0.0, 1.0);
    let err = sum(&x, &[2], false).unwrap_err().to_string();
    assert!(err.contains("dim 2 out of range for rank 2"), "{err}");
    let err = mean(&x, &[1, 1], false).unwrap_err().to_string();
    assert!(err.contains("repeat"), "{err}");
    let err = argmax(&Tensor::scalar(1.0)).unwrap_err().to_string();
    assert!(err.contains("argmax") && err.contains("rank >= 1"), "{err}");
    let err = max(&Tensor::zeros(&[2, 0]), &[1], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    assert_eq!(
        vals(&sum(&Tensor::zeros(&[2, 0]), &[1], false)?),
        [0.0, 0.0]
    );
    Ok(())
}
