//! Times `linear_fast` (y = x W^T + b on the CPU) at the transformer's Linear shapes of the tiny
//! preset (width 64, MLP 256; 1024 tokens per sample, one or two samples), best of five rounds.
//!
//! `cargo run --release --example linear_timing [ROUNDS_OF_CALLS]` (default 400 calls a round).
use fdm::cpu::ops::linear::linear_fast;
use fdm::params::linear::LinearParams;
use fdm::testing::random_vec;
use std::time::Instant;

fn main() {
    let calls: usize = std::env::args().nth(1).map_or(400, |s| s.parse().expect("calls per round: a number"));
    println!("rows x in -> out: best time per call, GFLOP/s (2 x MACs / time)");
    for &(rows, inf, outf) in &[(1024, 64, 64), (1024, 64, 192), (1024, 64, 256), (1024, 256, 64), (2048, 64, 64), (2048, 64, 256), (2048, 256, 64)] {
        let (x, w, b) = (random_vec(1, rows * inf, -1.0, 1.0), random_vec(2, outf * inf, -1.0, 1.0), random_vec(3, outf, -1.0, 1.0));
        let p = LinearParams::new(rows, inf, outf, true);
        let mut y = vec![0f32; rows * outf];
        for _ in 0..calls / 8 {
            linear_fast(&p, &x, &w, Some(&b), &mut y);
        }
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..calls {
                    linear_fast(&p, &x, &w, Some(&b), &mut y);
                }
                t.elapsed().as_secs_f64() / calls as f64
            })
            .fold(f64::MAX, f64::min);
        let gflops = 2.0 * (rows * inf * outf) as f64 / best / 1e9;
        println!("{rows:>5} x {inf:>3} -> {outf:>3}: {:7.1} us  {gflops:6.1} GFLOP/s", best * 1e6);
    }
}
