use fdm::autograd::Tape;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::Tensor;
use std::time::Instant;
fn main() -> fdm::Result<()> {
    let m = InpaintingModel::new(&ModelConfig::tiny(), 1)?;
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let x = t.constant(Tensor::from_vec(fdm::testing::random_vec(1, 1024 * 64, -1.0, 1.0), &[1, 1024, 64])?);
    for _ in 0..2 { m.transformer.forward(&t, &p, &x)?; }
    let n = 10; let t0 = Instant::now();
    for _ in 0..n { m.transformer.forward(&t, &p, &x)?; }
    println!("tiny transformer pass: {:.1} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let q = Tensor::from_vec(fdm::testing::random_vec(2, 1024 * 64, -1.0, 1.0), &[1, 1024, 64])?;
    let t0 = Instant::now();
    for _ in 0..n { fdm::ops::attention::attention(&q, &q, &q, 2)?; }
    println!("attention 1x1024x(2x32): {:.1} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let w = Tensor::from_vec(fdm::testing::random_vec(3, 256 * 64, -1.0, 1.0), &[256, 64])?;
    let t0 = Instant::now();
    for _ in 0..n { fdm::ops::matmul::linear(&q, &w, None)?; }
    println!("linear 1024x64->256: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let t0 = Instant::now();
    for _ in 0..n { fdm::ops::unary::gelu2(&q)?; }
    println!("gelu2 65k: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let lw = Tensor::full(1.0, &[64]); let lb = Tensor::zeros(&[64]);
    let t0 = Instant::now();
    for _ in 0..n { fdm::ops::layernorm::layer_norm(&q, &lw, &lb, 1e-5)?; }
    println!("layernorm 1024x64: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    let t0 = Instant::now();
    for _ in 0..n { fdm::ops::binary::add(&q, &q)?; }
    println!("add 65k: {:.2} ms", t0.elapsed().as_secs_f64() * 1e3 / n as f64);
    Ok(())
}
