//! Per-op timing of one tiny-preset transformer pass (4 layers, 1024 tokens, 64 channels,
//! 2 heads x 32) on the CPU, plus the attention core at the tiny and paper head shapes.
//!
//! Run: `cargo run --release --example pass_timing [reps]`. Every line prints the minimum and
//! the median over `reps` runs (default 20) after two warm-up runs: on a shared machine the
//! minimum is the steadier number. The "pass breakdown" times each op at the shape the pass
//! uses and multiplies by how often one pass runs it, so the big costs show at a glance.
use fdm::autograd::Tape;
use fdm::model::inpainting::InpaintingModel;
use fdm::model::presets::ModelConfig;
use fdm::ops::{attention as attn, binary, layernorm, matmul, unary};
use fdm::testing::random_vec;
use fdm::Tensor;
use std::time::Instant;

/// (min, median) milliseconds of `f` over `reps` runs after two warm-up runs.
fn time_ms(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    f();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[0], ms[ms.len() / 2])
}

fn report(name: &str, (min, med): (f64, f64)) {
    println!("{name:<34} min {min:8.3} ms   median {med:8.3} ms");
}

fn rand(seed: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(random_vec(seed, n, -1.0, 1.0), shape).expect("shape")
}

fn main() -> fdm::Result<()> {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let cfg = ModelConfig::tiny();
    let m = InpaintingModel::new(&cfg, 1)?;
    let t = Tape::no_grad();
    let p = m.store.bind(&t, |_| false);
    let x = t.constant(rand(1, &[1, 1024, 64]));
    let pass = time_ms(reps, || {
        m.transformer.forward(&t, &p, &x).expect("pass");
    });
    report("tiny transformer pass", pass);

    println!("-- attention core (forward; backward) --");
    let mut tiny_attention = (0.0, 0.0);
    for (heads, dh) in [(2usize, 32usize), (8, 64)] {
        let w = heads * dh;
        let (q, k, v) = (rand(2, &[1, 1024, w]), rand(3, &[1, 1024, w]), rand(4, &[1, 1024, w]));
        let fwd = time_ms(reps, || {
            attn::attention(&q, &k, &v, heads).expect("attention");
        });
        report(&format!("attention 1x1024x({heads}x{dh})"), fwd);
        if heads == 2 {
            tiny_attention = fwd;
        }
        let (out, lse) = attn::attention_with_lse(&q, &k, &v, heads)?;
        let dout = rand(5, &[1, 1024, w]);
        let bwd = time_ms(reps.div_ceil(2), || {
            attn::attention_backward(&q, &k, &v, &out, &lse, &dout, heads).expect("backward");
        });
        report(&format!("attention bwd 1x1024x({heads}x{dh})"), bwd);
    }

    println!("-- pass breakdown (op at its pass shape x count per pass) --");
    let layers = cfg.transformer.n_layer;
    let (x64, x256) = (rand(6, &[1, 1024, 64]), rand(7, &[1, 1024, 256]));
    let (w64, w256, w256t) = (rand(8, &[64, 64]), rand(9, &[256, 64]), rand(10, &[64, 256]));
    let (b64, b256) = (rand(11, &[64]), rand(12, &[256]));
    let (ln_w, ln_b) = (Tensor::full(1.0, &[64]), Tensor::zeros(&[64]));
    let rows: Vec<(&str, usize, (f64, f64))> = vec![
        ("attention 2x32", layers, tiny_attention),
        ("linear 64->64 +b", 4 * layers + 1, time_ms(reps, || {
            matmul::linear(&x64, &w64, Some(&b64)).expect("linear");
        })),
        ("linear 64->256 +b", layers + 1, time_ms(reps, || {
            matmul::linear(&x64, &w256, Some(&b256)).expect("linear");
        })),
        ("linear 256->64 +b", layers, time_ms(reps, || {
            matmul::linear(&x256, &w256t, Some(&b64)).expect("linear");
        })),
        ("layernorm 1024x64", 2 * layers + 1, time_ms(reps, || {
            layernorm::layer_norm(&x64, &ln_w, &ln_b, 1e-5).expect("layernorm");
        })),
        ("gelu2 1024x256", layers, time_ms(reps, || {
            unary::gelu2(&x256).expect("gelu2");
        })),
        ("add 1024x64", 2 * layers + 1, time_ms(reps, || {
            binary::add(&x64, &x64).expect("add");
        })),
    ];
    let mut total = 0.0;
    for (name, count, (min, med)) in rows {
        total += count as f64 * min;
        println!("{name:<20} x{count:<3} min {min:8.3} ms   median {med:8.3} ms   per pass {:8.3} ms", count as f64 * min);
    }
    println!("sum of per-op minima: {total:.2} ms (measured pass min {:.2} ms)", pass.0);
    Ok(())
}
