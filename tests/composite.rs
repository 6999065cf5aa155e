//! Mask compositing (`ops::composite`, `cpu/ops/composite.rs`): the fused CPU pass gives the
//! bits of its oracle and of the three element-wise ops it replaces, on image and batch shapes
//! (planes larger than one parallel piece included), and the exact input / output where the
//! mask is binary; shapes it does not take run the element-wise ops.
use fdm::cpu::ops::composite::{composite_fast, composite_ref};
use fdm::ops::{binary, composite::mask_composite, unary};
use fdm::testing::random_vec;
use fdm::Tensor;

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// What the pipeline computed before the fused pass.
fn by_elementwise_ops(out: &Tensor, input: &Tensor, mask: &Tensor) -> Vec<f32> {
    let one_minus = unary::add_scalar(&unary::mul_scalar(mask, -1.0).unwrap(), 1.0).unwrap();
    let y = binary::add(&binary::mul(out, &one_minus).unwrap(), &binary::mul(input, mask).unwrap()).unwrap();
    y.to_vec_f32().unwrap()
}

#[test]
fn composite_fast_matches_oracle_and_elementwise_ops_cpu() {
    // [C, H, W] with [1, H, W] (a photo; 300 x 300 planes span two parallel pieces), and a batch.
    for (shape, mask_shape) in [(vec![3, 300, 300], vec![1, 300, 300]), (vec![2, 3, 17, 9], vec![2, 1, 17, 9]), (vec![1, 1, 1, 1], vec![1, 1, 1, 1])] {
        let n: usize = shape.iter().product();
        let nm: usize = mask_shape.iter().product();
        let (o, i) = (random_vec(1, n, 0.0, 255.0), random_vec(2, n, 0.0, 255.0));
        let m = random_vec(3, nm, 0.0, 1.0); // soft mask: every rounding step shows
        let channels = shape[shape.len() - 3];
        let plane = shape[shape.len() - 2] * shape[shape.len() - 1];
        let mut want = vec![0.0; n];
        composite_ref(channels, plane, &o, &i, &m, &mut want);
        assert!(same_bits(&composite_fast(channels, plane, &o, &i, &m), &want), "{shape:?}");
        let t = |v: &[f32], s: &[usize]| Tensor::from_vec(v.to_vec(), s).unwrap();
        let (to, ti, tm) = (t(&o, &shape), t(&i, &shape), t(&m, &mask_shape));
        let got = mask_composite(&to, &ti, &tm).unwrap();
        assert_eq!(got.shape(), &shape[..]);
        assert!(same_bits(&got.to_vec_f32().unwrap(), &want), "{shape:?}: op");
        assert!(same_bits(&by_elementwise_ops(&to, &ti, &tm), &want), "{shape:?}: element-wise ops");
    }
}

#[test]
fn composite_is_exact_at_binary_masks_cpu() {
    let (h, w) = (40, 70);
    let (o, i) = (random_vec(4, 3 * h * w, 0.0, 255.0), random_vec(5, 3 * h * w, 0.0, 255.0));
    let m: Vec<f32> = (0..h * w).map(|q| ((q * 7) % 3 == 0) as u8 as f32).collect();
    let y = composite_fast(3, h * w, &o, &i, &m);
    for (k, &v) in y.iter().enumerate() {
        let expect = if m[k % (h * w)] == 1.0 { i[k] } else { o[k] };
        assert_eq!(v.to_bits(), expect.to_bits(), "element {k}");
    }
}

#[test]
fn composite_other_shapes_use_the_elementwise_ops_cpu() {
    // One mask for a whole batch broadcasts, which the fused pass does not take.
    let shape = [2, 3, 5, 6];
    let (o, i) = (random_vec(6, 180, 0.0, 255.0), random_vec(7, 180, 0.0, 255.0));
    let m = random_vec(8, 30, 0.0, 1.0);
    let (to, ti, tm) = (Tensor::from_vec(o, &shape).unwrap(), Tensor::from_vec(i, &shape).unwrap(), Tensor::from_vec(m, &[1, 1, 5, 6]).unwrap());
    let got = mask_composite(&to, &ti, &tm).unwrap();
    assert!(same_bits(&got.to_vec_f32().unwrap(), &by_elementwise_ops(&to, &ti, &tm)));
    // Shapes that do not broadcast are an error naming the op, not a panic.
    let bad = Tensor::from_vec(vec![0.0; 7], &[7]).unwrap();
    assert!(mask_composite(&to, &ti, &bad).is_err());
}
