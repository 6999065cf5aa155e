//! Milliseconds per call of the CPU convolutions' forward, input gradient and weight gradient at
//! the tiny preset's training shapes (batch 4: the decoder's and FDM's 3x3 convs at 64, 32 and
//! 16 channels, the reference branch's 4x4 stride-2 convs, the decoder's 4x4 stride-2 transposed
//! convs), best of the runs and their median, so that two builds can be compared by alternating
//! short runs on a shared machine.
//!
//! Run: cargo run --release --example conv_backward_timing -- [runs per op, default 20]
use fdm::cpu::ops::conv2d::{conv2d_backward_input_fast, conv2d_backward_weight_fast, conv2d_fast};
use fdm::cpu::ops::conv_transpose2d::{conv_transpose2d_backward_input_fast, conv_transpose2d_backward_weight_fast, conv_transpose2d_fast};
use fdm::params::conv2d::Conv2dParams;
use fdm::params::conv_transpose2d::ConvTranspose2dParams;
use fdm::testing::random_vec;
use std::time::Instant;

/// Best and median milliseconds of `runs` calls of `f` (after one warm-up call).
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[runs / 2])
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20).max(1);
    // (label, batch, channels in, (h, w), channels out, kernel, stride, pad)
    let shapes = [
        ("decoder 64ch 64x64 k3", 4, 64, (64, 64), 64, 3, 1, 1),
        ("decoder 32ch 128x128 k3", 4, 32, (128, 128), 32, 3, 1, 1),
        ("decoder 16ch 256x256 k3", 4, 16, (256, 256), 16, 3, 1, 1),
        ("reference 16->32 k4 s2", 4, 16, (256, 256), 32, 4, 2, 1),
        ("reference 32->64 k4 s2", 4, 32, (128, 128), 64, 4, 2, 1),
    ];
    println!("{:<28} {:>22} {:>22} {:>22}", "shape (batch 4)", "forward best/median", "input grad", "weight grad");
    for (label, n, c, hw, o, k, s, pad) in shapes {
        let p = Conv2dParams::new(n, c, hw, o, (k, k), s, pad, true);
        let x = random_vec(1, n * p.in_image_len(), -1.0, 1.0);
        let w = random_vec(2, p.weight_len(), -0.1, 0.1);
        let b = random_vec(3, o, -0.1, 0.1);
        let g = random_vec(4, n * p.out_image_len(), -1e-3, 1e-3);
        let (mut y, mut dx, mut dw) = (vec![0f32; g.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let fwd = time(runs, || conv2d_fast(&p, &x, &w, Some(&b), &mut y));
        let din = time(runs, || conv2d_backward_input_fast(&p, &w, &g, &mut dx));
        let dwt = time(runs, || conv2d_backward_weight_fast(&p, &x, &g, &mut dw));
        println!("{label:<28} {:>22} {:>22} {:>22}", cell(fwd), cell(din), cell(dwt));
    }
    // The decoder's up-steps: (label, batch, channels in, (h, w), channels out)
    let transposed = [("up 64->64 32->64 k4 s2 (T)", 4, 64, (32, 32), 64), ("up 64->32 64->128 k4 s2 (T)", 4, 64, (64, 64), 32), ("up 32->16 128->256 k4 s2 (T)", 4, 32, (128, 128), 16)];
    for (label, n, c, hw, o) in transposed {
        let p = ConvTranspose2dParams::new(n, c, hw, o, (4, 4), 2, 1, true);
        let x = random_vec(1, n * p.in_image_len(), -1.0, 1.0);
        let w = random_vec(2, c * o * 16, -0.1, 0.1);
        let b = random_vec(3, o, -0.1, 0.1);
        let g = random_vec(4, n * p.out_image_len(), -1e-3, 1e-3);
        let (mut y, mut dx, mut dw) = (vec![0f32; g.len()], vec![0f32; x.len()], vec![0f32; w.len()]);
        let fwd = time(runs, || conv_transpose2d_fast(&p, &x, &w, Some(&b), &mut y));
        let din = time(runs, || conv_transpose2d_backward_input_fast(&p, &w, &g, &mut dx));
        let dwt = time(runs, || conv_transpose2d_backward_weight_fast(&p, &x, &g, &mut dw));
        println!("{label:<28} {:>22} {:>22} {:>22}", cell(fwd), cell(din), cell(dwt));
    }
}

fn cell((best, median): (f64, f64)) -> String {
    format!("{best:.2} / {median:.2} ms")
}
