//! CPU op benchmarks, named `{device}_{op}_{dtype}_{shape}` (design §9). Throughput is reported
//! in floating-point operations (2 per multiply-add), so criterion's "elem/s" reads as FLOP/s.
//!   cpu_gemm_f32_MxNxK: C[M,N] = A[M,K] * B[K,N], the transformer's linear layers at 1024 tokens.
//!   cpu_conv2d_f32_CxHxW_k3: 3x3 s1 p1 conv C->C at HxW (decoder / FDM res blocks).
//!   cpu_conv_transpose2d_f32_CxHxW_k4s2: 4x4 s2 p1 ConvTranspose C->C/2 (decoder up_layers.2).
//!   cpu_attention_f32_HxLxD: the attention core (2 x H x L x L x D MACs), the paper's 8x1024x64.
//! Run: cargo bench --bench ops; the same shapes in numpy: python3 benches/reference/cpu_reference.py

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fdm::cpu::ops::attention::attention_fast;
use fdm::cpu::ops::conv2d::conv2d_fast;
use fdm::cpu::ops::conv_transpose2d::conv_transpose2d_fast;
use fdm::cpu::ops::gemm::gemm_fast;
use fdm::params::attention::AttentionParams;
use fdm::params::conv2d::Conv2dParams;
use fdm::params::conv_transpose2d::ConvTranspose2dParams;
use fdm::params::gemm::GemmParams;
use fdm::testing::random_vec;
use std::hint::black_box;

fn bench_gemm(c: &mut Criterion, m: usize, n: usize, k: usize) {
    let p = GemmParams::new(m, n, k);
    let (a, b) = (random_vec(1, m * k, -1.0, 1.0), random_vec(2, k * n, -1.0, 1.0));
    let mut out = vec![0f32; m * n];
    let mut g = c.benchmark_group("gemm");
    g.throughput(Throughput::Elements(p.flops() as u64));
    g.bench_function(format!("cpu_gemm_f32_{m}x{n}x{k}"), |bch| bch.iter(|| gemm_fast(&p, black_box(&a), black_box(&b), &mut out)));
    g.finish();
}

fn gemm(c: &mut Criterion) {
    bench_gemm(c, 1024, 1024, 1024);
    bench_gemm(c, 1024, 512, 512);
    bench_gemm(c, 1024, 2048, 512); // MLP up-projection
    bench_gemm(c, 1024, 512, 2048); // MLP down-projection
    bench_gemm(c, 1024, 1536, 512); // fused Q, K, V
}

fn attention(c: &mut Criterion) {
    let p = AttentionParams::new(1, 1024, 8, 64);
    let n = 1024 * 512;
    let (q, k, v) = (random_vec(1, n, -1.0, 1.0), random_vec(2, n, -1.0, 1.0), random_vec(3, n, -1.0, 1.0));
    let (mut out, mut lse) = (vec![0f32; n], vec![0f32; 8 * 1024]);
    let mut g = c.benchmark_group("attention");
    g.throughput(Throughput::Elements(2 * 2 * 8 * 1024 * 1024 * 64));
    g.bench_function("cpu_attention_f32_8x1024x64", |bch| bch.iter(|| attention_fast(&p, black_box(&q), black_box(&k), black_box(&v), &mut out, &mut lse)));
    g.finish();
}

fn conv(c: &mut Criterion) {
    let p = Conv2dParams::new(1, 256, (32, 32), 256, (3, 3), 1, 1, true);
    let (x, w, b) = (random_vec(1, p.in_image_len(), -1.0, 1.0), random_vec(2, p.weight_len(), -0.02, 0.02), random_vec(3, 256, -1.0, 1.0));
    let mut y = vec![0f32; p.out_image_len()];
    let mut g = c.benchmark_group("conv2d");
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.bench_function("cpu_conv2d_f32_256x32x32_k3", |bch| bch.iter(|| conv2d_fast(&p, black_box(&x), black_box(&w), Some(&b), &mut y)));
    g.finish();

    // The decoder's 64-channel 3x3 conv at full resolution (reference encoder / last blend).
    let p = Conv2dParams::new(1, 64, (256, 256), 64, (3, 3), 1, 1, true);
    let (x, w, b) = (random_vec(1, p.in_image_len(), -1.0, 1.0), random_vec(2, p.weight_len(), -0.02, 0.02), random_vec(3, 64, -1.0, 1.0));
    let mut y = vec![0f32; p.out_image_len()];
    let mut g = c.benchmark_group("conv2d");
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.sample_size(20);
    g.bench_function("cpu_conv2d_f32_64x256x256_k3", |bch| bch.iter(|| conv2d_fast(&p, black_box(&x), black_box(&w), Some(&b), &mut y)));
    g.finish();

    let p = ConvTranspose2dParams::new(1, 128, (128, 128), 64, (4, 4), 2, 1, true);
    let (x, w, b) = (random_vec(1, p.in_image_len(), -1.0, 1.0), random_vec(2, p.weight_len(), -0.02, 0.02), random_vec(3, 64, -1.0, 1.0));
    let mut y = vec![0f32; p.out_image_len()];
    let mut g = c.benchmark_group("conv_transpose2d");
    g.throughput(Throughput::Elements(2 * p.macs() as u64));
    g.sample_size(20);
    g.bench_function("cpu_conv_transpose2d_f32_128x128x128_k4s2", |bch| bch.iter(|| conv_transpose2d_fast(&p, black_box(&x), black_box(&w), Some(&b), &mut y)));
    g.finish();
}

criterion_group!(benches, gemm, conv, attention);
criterion_main!(benches);
