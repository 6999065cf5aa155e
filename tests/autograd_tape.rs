//! The tape itself: gradient routing, accumulation where paths meet, constants get nothing.
use fdm::autograd::{Tape, Var};
use fdm::ops::binary::add;
use fdm::{Result, Tensor};

fn add_var(t: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = add(a.value(), b.value())?;
    Ok(t.record(out, &[a, b], Box::new(|g| Ok(vec![Some(g.clone()), Some(g.clone())]))))
}

#[test]
fn tape_accumulates_where_paths_meet_cpu() -> Result<()> {
    let t = Tape::new();
    let a = t.var(Tensor::from_vec(vec![1.0, 2.0], &[2])?);
    let b = t.var(Tensor::from_vec(vec![3.0, 4.0], &[2])?);
    let k = t.constant(Tensor::from_vec(vec![9.0, 9.0], &[2])?);
    let c = add_var(&t, &a, &b)?; // a + b
    let d = add_var(&t, &c, &a)?; // (a + b) + a
    let e = add_var(&t, &d, &k)?;
    assert_eq!(e.value().to_vec_f32()?, vec![14.0, 17.0]);
    let g = t.backward_with(&e, Tensor::from_vec(vec![1.0, 10.0], &[2])?)?;
    assert_eq!(g.expect(&a, "a")?.to_vec_f32()?, vec![2.0, 20.0]);
    assert_eq!(g.expect(&b, "b")?.to_vec_f32()?, vec![1.0, 10.0]);
    assert!(g.get(&k).is_none(), "constants receive no gradient");
    Ok(())
}

#[test]
fn tape_records_nothing_without_trainable_inputs_cpu() -> Result<()> {
    let t = Tape::new();
    let a = t.constant(Tensor::from_vec(vec![1.0], &[1])?);
    let b = t.constant(Tensor::from_vec(vec![2.0], &[1])?);
    let c = add_var(&t, &a, &b)?;
    assert_eq!(t.num_nodes(), 0);
    assert!(!c.requires_grad());
    assert!(t.backward(&c)?.is_empty());
    Ok(())
}

#[test]
fn tape_rejects_non_scalar_loss_cpu() -> Result<()> {
    let t = Tape::new();
    let a = t.var(Tensor::from_vec(vec![1.0, 2.0], &[2])?);
    let err = t.backward(&a).unwrap_err().to_string();
    assert!(err.contains("scalar"), "{err}");
    Ok(())
}

#[test]
fn no_grad_tape_records_nothing_cpu() -> Result<()> {
    let t = Tape::no_grad();
    let a = t.var(Tensor::from_vec(vec![1.0], &[1])?);
    let b = t.var(Tensor::from_vec(vec![2.0], &[1])?);
    let c = add_var(&t, &a, &b)?;
    assert_eq!(c.value().to_vec_f32()?, vec![3.0]);
    assert_eq!(t.num_nodes(), 0);
    assert!(!a.requires_grad() && !c.requires_grad());
    Ok(())
}
