//! Per-op timing of one transformer pass of a preset (tiny: 4 layers x 64 channels, 2 heads x 32;
//! paper: 35 x 512, 8 x 64; 1024 tokens) on the CPU, plus the attention core at both head shapes.
//!
//! Run: `cargo run --release --example pass_timing [reps] [tiny|paper]`. Every line prints the minimum and
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
    let preset = std::env::args().nth(2).unwrap_or_else(|| "tiny".into());
    let cfg = ModelConfig::by_name(&preset)?;
    let mut m = InpaintingModel::new(&cfg, 1)?;
    let t = Tape::no_grad();
    let tc = &cfg.transformer;
    let (c, h, heads) = (tc.n_embd, tc.mlp_hidden(), tc.n_head);
    let x = t.constant(rand(1, &[1, 1024, cfg.codec.e_dim]));
    let mut pass = (0.0, 0.0);
    // As built (separate q/k/v projections, what runs on the CPU), then with q/k/v as one
    // stacked projection (`Transformer::set_inference`, what CUDA inference runs), alternating.
    for round in 0..2 {
        for stacked in [false, true] {
            m.transformer.set_inference(&m.store, stacked)?;
            let p = m.store.bind(&t, |_| false);
            let timed = time_ms(reps, || {
                m.transformer.forward(&t, &p, &x).expect("pass");
            });
            let how = if stacked { "stacked q/k/v" } else { "separate q/k/v" };
            report(&format!("{preset} transformer pass, {how} ({})", round + 1), timed);
            if !stacked {
                pass = timed;
            }
        }
    }

    println!("-- attention core (forward; backward) --");
    let mut pass_attention = (0.0, 0.0);
    for (nh, dh) in [(2usize, 32usize), (8, 64)] {
        let w = nh * dh;
        let (q, k, v) = (rand(2, &[1, 1024, w]), rand(3, &[1, 1024, w]), rand(4, &[1, 1024, w]));
        let fwd = time_ms(reps, || {
            attn::attention(&q, &k, &v, nh).expect("attention");
        });
        report(&format!("attention 1x1024x({nh}x{dh})"), fwd);
        if (nh, w) == (heads, c) {
            pass_attention = fwd;
        }
        let (out, lse) = attn::attention_with_lse(&q, &k, &v, nh)?;
        let dout = rand(5, &[1, 1024, w]);
        let bwd = time_ms(reps.div_ceil(2), || {
            attn::attention_backward(&q, &k, &v, &out, &lse, &dout, nh).expect("backward");
        });
        report(&format!("attention bwd 1x1024x({nh}x{dh})"), bwd);
    }

    println!("-- pass breakdown (op at its pass shape x count per pass) --");
    let layers = tc.n_layer;
    let (xc, xh) = (rand(6, &[1, 1024, c]), rand(7, &[1, 1024, h]));
    let (wcc, whc, wch) = (rand(8, &[c, c]), rand(9, &[h, c]), rand(10, &[c, h]));
    let (bc, bh) = (rand(11, &[c]), rand(12, &[h]));
    let (ln_w, ln_b) = (Tensor::full(1.0, &[c]), Tensor::zeros(&[c]));
    let rows: Vec<(String, usize, (f64, f64))> = vec![
        (format!("attention {heads}x{}", c / heads), layers, pass_attention),
        (format!("linear {c}->{c} +b"), 4 * layers, time_ms(reps, || {
            matmul::linear(&xc, &wcc, Some(&bc)).expect("linear");
        })),
        (format!("linear {c}->{h} +b"), layers, time_ms(reps, || {
            matmul::linear(&xc, &whc, Some(&bh)).expect("linear");
        })),
        (format!("linear {h}->{c} +b"), layers, time_ms(reps, || {
            matmul::linear(&xh, &wch, Some(&bc)).expect("linear");
        })),
        (format!("layernorm 1024x{c}"), 2 * layers + 1, time_ms(reps, || {
            layernorm::layer_norm(&xc, &ln_w, &ln_b, 1e-5).expect("layernorm");
        })),
        (format!("gelu2 1024x{h}"), layers, time_ms(reps, || {
            unary::gelu2(&xh).expect("gelu2");
        })),
        (format!("add 1024x{c}"), 2 * layers + 1, time_ms(reps, || {
            binary::add(&xc, &xc).expect("add");
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
