//! GFLOP/s of the 1024^3 GEMM and the two benchmarked 3x3 convs (256->256 at 32x32, 64->64 at
//! 256x256; `benches/ops.rs`), reported three ways so that runs on a shared machine can be
//! compared: the best single call, the mean over the run, and FLOPs per second of process CPU
//! time (user + system from /proc/self/stat, all threads; Linux only, NaN elsewhere), which other
//! processes' load inflates far less than wall time. BENCHMARKS.md's interleaved comparisons with
//! numpy alternate short runs of this example with the same product in numpy.
//!
//! Run: cargo run --release --example gemm_conv_timing -- [seconds per op, default 3] [ops]
//! where ops picks any of g (GEMM), a (64-channel conv), b (256-channel conv); default all.
use fdm::cpu::ops::conv2d::conv2d_fast;
use fdm::cpu::ops::gemm::gemm_fast;
use fdm::params::conv2d::Conv2dParams;
use fdm::params::gemm::GemmParams;
use fdm::testing::random_vec;
use std::time::Instant;

/// User + system CPU seconds of this process (clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (tick(11) + tick(12)) / 100.0
}

/// Calls `f` (after one warm-up call) for about `secs` seconds and prints the three rates.
fn time(name: &str, flops: f64, secs: f64, mut f: impl FnMut()) {
    f();
    let (mut best, mut runs) = (f64::MAX, 0);
    let (t0, c0) = (Instant::now(), cpu_secs());
    while t0.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
    let total = flops * runs as f64;
    println!("{name:28} best {:7.1} GF/s  mean {:7.1} GF/s  cpu {:7.1} GF/s/core-sec  ({runs} runs)", flops / best / 1e9, total / wall / 1e9, total / cpu / 1e9);
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let ops = std::env::args().nth(2).unwrap_or_else(|| "gab".into());
    if ops.contains('g') {
        let p = GemmParams::new(1024, 1024, 1024);
        let (a, b) = (random_vec(1, 1 << 20, -1.0, 1.0), random_vec(2, 1 << 20, -1.0, 1.0));
        let mut c = vec![0f32; 1 << 20];
        time("gemm 1024^3", p.flops(), secs, || gemm_fast(&p, &a, &b, &mut c));
    }
    for (ch, hw, tag) in [(64, 256, 'a'), (256, 32, 'b')] {
        if !ops.contains(tag) {
            continue;
        }
        let p = Conv2dParams::new(1, ch, (hw, hw), ch, (3, 3), 1, 1, true);
        let (x, w, b) = (random_vec(1, p.in_image_len(), -1.0, 1.0), random_vec(2, p.weight_len(), -0.02, 0.02), random_vec(3, ch, -1.0, 1.0));
        let mut y = vec![0f32; p.out_image_len()];
        time(&format!("conv {ch}x{hw}x{hw} k3"), 2.0 * p.macs(), secs, || conv2d_fast(&p, &x, &w, Some(&b), &mut y));
    }
}
