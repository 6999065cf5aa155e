//! Concat along any dim and the shape-moving autograd ops (narrow, reshape, permute, transpose,
//! broadcast_as): literal values, the block copy fast vs ref, gradients vs finite differences,
//! errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::{reduce as agr, shape as ag, Tape, Var};
use fdm::cpu::ops::concat::{copy_block_fast, copy_block_ref};
use fdm::ops::concat::{concat, narrow_backward};
use fdm::params::concat::BlockCopyParams;
use fdm::testing::random_vec;
use fdm::{Result, Tensor};

#[test]
fn concat_literal_cpu() -> Result<()> {
    let a = t(&[1., 2., 3., 4.], &[2, 2]);
    let b = t(&[5., 6.], &[2, 1]);
    let c = t(&[7., 8., 9., 10., 11., 12.], &[2, 3]);
    let along1 = concat(&[&a, &b, &c], 1)?;
    assert_eq!(along1.shape(), &[2, 6]);
    assert_eq!(
        vals(&along1),
        [1., 2., 5., 7., 8., 9., 3., 4., 6., 10., 11., 12.]
    );
    let along0 = concat(&[&a, &t(&[9., 9.], &[1, 2])], 0)?;
    assert_eq!(
        (along0.shape(), vals(&along0)),
        (&[3usize, 2][..], vec![1., 2., 3., 4., 9., 9.])
    );
    // A strided (transposed) input is read in its logical order.
    let at = a.transpose(0, 1)?;
    assert_eq!(vals(&concat(&[&at, &b], 1)?), [1., 3., 5., 2., 4., 6.]);
    // narrow backward: the slice's gradient in place, zeros elsewhere.
    let pad = narrow_backward(&t(&[1., 2., 3., 4.], &[2, 2]), &[2, 5], 1, 2)?;
    assert_eq!(vals(&pad), [0., 0., 1., 2., 0., 0., 0., 3., 4., 0.]);
    Ok(())
}

#[test]
fn concat_copy_fast_matches_ref_cpu() {
    // Real shape: joining two 2 x 256 x 32 x 32 feature maps along channels (outer 2, inner
    // 256*1024 each) and a small odd case.
    for (outer, si, di, off) in [(2, 256 * 1024, 512 * 1024, 256 * 1024), (5, 3, 11, 4)] {
        let p = BlockCopyParams::new(outer, si, di, off);
        let src = random_vec(1, outer * si, -1.0, 1.0);
        let base = random_vec(2, outer * di, -1.0, 1.0);
        let (mut a, mut b) = (base.clone(), base);
        copy_block_ref(&p, &src, &mut a);
        copy_block_fast(&p, &src, &mut b);
        assert_eq!(a, b);
    }
}

#[test]
fn concat_and_narrow_gradients_match_finite_diff_cpu() {
    let s = [
        (random_vec(1, 6, -1.0, 1.0), vec![2, 1, 3]),
        (random_vec(2, 12, -1.0, 1.0), vec![2, 2, 3]),
    ];
    check_grads(
        "concat dim 1",
        &s,
        |tape: &Tape, v: &[Var]| ag::concat(tape, &[&v[0], &v[1]], 1),
        |xs| {
            // [2,1,3] ++ [2,2,3] along dim 1, by hand.
            (0..2)
                .flat_map(|b| {
                    xs[0][b * 3..b * 3 + 3]
                        .iter()
                        .chain(&xs[1][b * 6..b * 6 + 6])
                        .copied()
                        .collect::<Vec<_>>()
                })
                .collect()
        },
    );
    check_grads(
        "narrow dim 1 [1, 3)",
        &[(random_vec(3, 8, -1.0, 1.0), vec![2, 4])],
        |tape: &Tape, v: &[Var]| ag::narrow(tape, &v[0], 1, 1, 2),
        |xs| vec![xs[0][1], xs[0][2], xs[0][5], xs[0][6]],
    );
}

#[test]
fn concat_view_op_gradients_cpu() -> Result<()> {
    // reshape / permute / transpose / broadcast_as: the gradient of sum(w * op(x)) is w moved back.
    let tape = Tape::new();
    let x = tape.var(rand(1, &[2, 3, 4], -1.0, 1.0));
    let w = rand(2, &[4, 2, 3], -1.0, 1.0);
    let p = ag::permute(&tape, &x, &[2, 0, 1])?;
    let g = tape.backward_with(&p, w.clone())?;
    assert_eq!(
        vals(g.expect(&x, "x")?),
        vals(&w.permute(&[1, 2, 0])?.contiguous()?)
    );

    let r = ag::reshape(&tape, &x, &[6, 4])?;
    let w2 = rand(3, &[6, 4], -1.0, 1.0);
    let g = tape.backward_with(&r, w2.clone())?;
    assert_eq!(vals(g.expect(&x, "x")?), vals(&w2));

    let tr = ag::transpose(&tape, &x, 0, 2)?;
    let w3 = rand(4, &[4, 3, 2], -1.0, 1.0);
    let g = tape.backward_with(&tr, w3.clone())?;
    assert_eq!(
        vals(g.expect(&x, "x")?),
        vals(&w3.transpose(0, 2)?.contiguous()?)
    );

    // broadcast_as [3, 1] -> [2, 3, 4]: gradient summed over dims 0 and 2.
    let b = tape.var(t(&[1., 2., 3.], &[3, 1]));
    let bb = ag::broadcast_as(&tape, &b, &[2, 3, 4])?;
    let s = agr::sum_all(&tape, &bb)?;
    let g = tape.backward(&s)?;
    assert_eq!(vals(g.expect(&b, "b")?), [8., 8., 8.]);
    Ok(())
}

#[test]
fn concat_rejects_bad_inputs_cpu() -> Result<()> {
    let a = rand(1, &[2, 3], 0.0, 1.0);
    let b = rand(2, &[3, 3], 0.0, 1.0);
    let err = concat(&[&a, &b], 1).unwrap_err().to_string();
    assert!(
        err.contains("input 1") && err.contains("[3, 3]") && err.contains("dim 1"),
        "{err}"
    );
    assert!(concat(&[&a, &b], 0).is_ok());
    let err = concat(&[&a], 2).unwrap_err().to_string();
    assert!(err.contains("dim 2 out of range"), "{err}");
    let none: [&Tensor; 0] = [];
    assert!(concat(&none, 0)
        .unwrap_err()
        .to_string()
        .contains("no tensors"));
    let err = narrow_backward(&a, &[2, 4], 1, 2).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
    Ok(())
}

/// `contiguous` of CPU views copies unit-stride rows as slices (`CpuStorage::gather_layout`):
/// the same elements as the element-by-element walk of the layout, for narrowed last and middle
/// dims, permutes that keep or move the last dim, broadcasts (stride 0) and offsets, in f32, bf16
/// and u32.
#[test]
fn contiguous_views_equal_the_element_walk_cpu() -> Result<()> {
    let views = |dtype: fdm::DType| -> Result<Vec<Tensor>> {
        let base = Tensor::from_vec(random_vec(3, 2 * 3 * 4 * 5, 0.0, 100.0), &[2, 3, 4, 5])?.to_dtype(dtype)?;
        let small = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])?.to_dtype(dtype)?;
        Ok(vec![
            base.narrow(3, 1, 3)?,
            base.narrow(3, 4, 1)?,
            base.narrow(1, 1, 2)?.narrow(3, 2, 2)?,
            base.permute(&[0, 2, 1, 3])?,
            base.permute(&[3, 1, 0, 2])?,
            base.narrow(0, 1, 1)?.broadcast_as(&[3, 3, 4, 5])?,
            small.reshape(&[3, 1])?.broadcast_as(&[3, 4])?,
            small.reshape(&[1, 3])?.broadcast_as(&[4, 3])?,
            base.reshape(&[120])?.narrow(0, 7, 50)?,
        ])
    };
    for dtype in [fdm::DType::F32, fdm::DType::BF16, fdm::DType::U32] {
        for (i, v) in views(dtype)?.iter().enumerate() {
            let fdm::storage::Storage::Cpu(s) = v.storage() else { unreachable!() };
            let want = s.gather(v.layout().indices());
            let got = s.gather_layout(v.layout());
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "view {i} in {dtype:?}");
            assert_eq!(v.contiguous()?.shape(), v.shape());
        }
    }
    Ok(())
}
