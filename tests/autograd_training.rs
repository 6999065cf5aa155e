//! The engine trains end to end: a 2-layer MLP and a small conv net learn toy problems with Adam
//! through the tape, and gradient accumulation over micro-batches equals one big batch.
use fdm::autograd::{losses as al, unary, Tape};
use fdm::nn::layers::{Conv2d, Init, Linear};
use fdm::nn::ParamStore;
use fdm::optim::{Adam, AdamConfig, GradAccumulator};
use fdm::rng::Rng;
use fdm::testing::{assert_close, TOL_CPU_F32};
use fdm::{Result, Tensor};

fn optimizer(store: &ParamStore, lr: f64) -> Result<Adam> {
    let mut adam = Adam::new(AdamConfig::adam(lr, (0.9, 0.999)));
    let g = adam.add_group(0.0);
    for (_, _, t) in store.iter() {
        adam.add_param(g, t.shape())?;
    }
    Ok(adam)
}

fn step(store: &mut ParamStore, adam: &mut Adam, grads: &[Option<Tensor>]) -> Result<()> {
    let mut params: Vec<Tensor> = store.iter().map(|(_, _, t)| t.clone()).collect();
    adam.step(&mut params, grads)?;
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    for (id, p) in ids.into_iter().zip(params) {
        store.set(id, p)?;
    }
    Ok(())
}

/// Inputs in [-1, 1]^2 and the target sin(2 x0) * x1 (a smooth non-linear function).
fn regression_batch(rng: &mut Rng, n: usize) -> Result<(Tensor, Tensor)> {
    let x: Vec<f32> = (0..2 * n).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    let y: Vec<f32> = (0..n).map(|i| (2.0 * x[2 * i]).sin() * x[2 * i + 1]).collect();
    Ok((Tensor::from_vec(x, &[n, 2])?, Tensor::from_vec(y, &[n, 1])?))
}

#[test]
fn mlp_learns_a_smooth_function_cpu() -> Result<()> {
    let mut rng = Rng::new(1);
    let mut store = ParamStore::new();
    let l1 = Linear::new(&mut store, &mut rng, "l1", 2, 32, Init::TorchDefault)?;
    let l2 = Linear::new(&mut store, &mut rng, "l2", 32, 1, Init::TorchDefault)?;
    let mut adam = optimizer(&store, 1e-2)?;
    let (xt, yt) = regression_batch(&mut Rng::new(99), 256)?; // held-out
    let eval = |store: &ParamStore| -> Result<f32> {
        let t = Tape::no_grad();
        let p = store.bind(&t, |_| false);
        let h = unary::tanh(&t, &l1.forward(&t, &p, &t.constant(xt.clone()))?)?;
        al::mse_mean(&t, &l2.forward(&t, &p, &h)?, &t.constant(yt.clone()))?.value().to_scalar()
    };
    let start = eval(&store)?;
    for _ in 0..400 {
        let (x, y) = regression_batch(&mut rng, 64)?;
        let t = Tape::new();
        let p = store.bind(&t, |_| true);
        let h = unary::tanh(&t, &l1.forward(&t, &p, &t.constant(x))?)?;
        let loss = al::mse_mean(&t, &l2.forward(&t, &p, &h)?, &t.constant(y))?;
        let g = t.backward(&loss)?;
        let grads = store.grads_of(&p, &g);
        step(&mut store, &mut adam, &grads)?;
    }
    let end = eval(&store)?;
    // The target has variance ~0.14; a fitted 32-unit MLP gets far below 1e-2.
    assert!(start > 0.05, "untrained loss {start}");
    assert!(end < 5e-3, "held-out MSE after 400 steps: {end} (start {start})");
    Ok(())
}

/// Images 1 x 8 x 8 and the target: a fixed 3x3 edge filter of the image, then ReLU.
fn edge_batch(rng: &mut Rng, n: usize) -> Result<(Tensor, Tensor)> {
    let x = Tensor::from_vec((0..n * 64).map(|_| rng.uniform_range(-1.0, 1.0)).collect(), &[n, 1, 8, 8])?;
    let k = Tensor::from_vec(vec![0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0], &[1, 1, 3, 3])?;
    let y = fdm::ops::unary::relu(&fdm::ops::conv::conv2d(&x, &k, None, 1, 1)?)?;
    Ok((x, y))
}

#[test]
fn conv_net_learns_an_edge_filter_cpu() -> Result<()> {
    let mut rng = Rng::new(2);
    let mut store = ParamStore::new();
    let c1 = Conv2d::new(&mut store, &mut rng, "c1", 1, 8, 3, 1, 1, true, Init::TorchDefault)?;
    let c2 = Conv2d::new(&mut store, &mut rng, "c2", 8, 1, 1, 1, 0, true, Init::TorchDefault)?;
    let mut adam = optimizer(&store, 1e-2)?;
    let mut losses = Vec::new();
    for _ in 0..300 {
        let (x, y) = edge_batch(&mut rng, 16)?;
        let t = Tape::new();
        let p = store.bind(&t, |_| true);
        let h = unary::relu(&t, &c1.forward(&t, &p, &t.constant(x))?)?;
        let loss = al::mse_mean(&t, &c2.forward(&t, &p, &h)?, &t.constant(y))?;
        losses.push(loss.value().to_scalar()?);
        let g = t.backward(&loss)?;
        let grads = store.grads_of(&p, &g);
        step(&mut store, &mut adam, &grads)?;
    }
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[290..].iter().sum::<f32>() / 10.0;
    // Target variance ~1.1; the net can represent it exactly (relu of a linear filter).
    assert!(last < 0.02 && last < first / 20.0, "loss {first} -> {last}");
    Ok(())
}

#[test]
fn gradient_accumulation_equals_one_big_batch_cpu() -> Result<()> {
    let mut rng = Rng::new(3);
    let mut store = ParamStore::new();
    let l1 = Linear::new(&mut store, &mut rng, "l1", 2, 16, Init::TorchDefault)?;
    let l2 = Linear::new(&mut store, &mut rng, "l2", 16, 1, Init::TorchDefault)?;
    let grads_of = |x: &Tensor, y: &Tensor| -> Result<Vec<Option<Tensor>>> {
        let t = Tape::new();
        let p = store.bind(&t, |_| true);
        let h = unary::relu(&t, &l1.forward(&t, &p, &t.constant(x.clone()))?)?;
        let loss = al::mse_mean(&t, &l2.forward(&t, &p, &h)?, &t.constant(y.clone()))?;
        Ok(store.grads_of(&p, &t.backward(&loss)?))
    };
    let (x, y) = regression_batch(&mut rng, 8)?;
    let big = grads_of(&x, &y)?;
    let mut acc = GradAccumulator::new(store.len());
    for half in 0..2 {
        acc.add(&grads_of(&x.narrow(0, 4 * half, 4)?.contiguous()?, &y.narrow(0, 4 * half, 4)?.contiguous()?)?)?;
    }
    let small = acc.finish()?;
    for (i, (a, b)) in big.iter().zip(&small).enumerate() {
        let (a, b) = (a.as_ref().unwrap().to_vec_f32()?, b.as_ref().unwrap().to_vec_f32()?);
        assert_close(&b, &a, TOL_CPU_F32, &format!("parameter {i}"));
    }
    Ok(())
}
