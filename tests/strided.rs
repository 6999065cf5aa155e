//! `cpu::ops::strided`: the strided row moves of im2col / col2im give the bits of plain loops
//! at every stride, length and alignment, the vector stride-2 kernels' groups and tails alike,
//! and leave the elements between the strided ones untouched (-0.0 and NaN included).
use fdm::cpu::ops::strided::{add_strided, copy_strided};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| match (i as u32 * 7 + seed) % 11 {
            0 => -0.0,
            1 => f32::NAN,
            k => (k as f32 - 5.5) * 0.37 + i as f32 * 1e-3,
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn copy_strided_matches_plain_loop_cpu() {
    for stride in 1..=3 {
        for n in 0..=41 {
            for extra in 0..3 {
                let src_len = if n == 0 { extra } else { (n - 1) * stride + 1 + extra };
                let src = values(src_len, stride as u32);
                let mut dst = vec![9.0f32; n];
                copy_strided(&mut dst, &src, stride);
                let want: Vec<f32> = (0..n).map(|t| src[t * stride]).collect();
                assert!(same_bits(&dst, &want), "stride {stride}, n {n}, extra {extra}");
            }
        }
    }
}

#[test]
fn add_strided_matches_plain_loop_cpu() {
    for stride in 1..=3 {
        for n in 0..=41 {
            for extra in 0..3 {
                let dst_len = if n == 0 { extra } else { (n - 1) * stride + 1 + extra };
                let src = values(n, 3);
                let mut dst = values(dst_len, 5);
                let mut want = dst.clone();
                for t in 0..n {
                    want[t * stride] += src[t];
                }
                add_strided(&mut dst, &src, stride);
                assert!(same_bits(&dst, &want), "stride {stride}, n {n}, extra {extra}");
            }
        }
    }
}
