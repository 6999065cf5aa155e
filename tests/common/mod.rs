//! Expected results shared by the emulator tests (`cuda_emu_*.rs`) and the real-GPU tests
//! (`cuda_*.rs`), so both tiers check the kernels against the same reference loops.
#![allow(dead_code)]

pub mod backend;
pub mod device;
pub mod reference;

/// What `selftest_warp_ops` must write for thread `t` of a 64-thread block, by the CUDA rules:
/// xor 5 of lane*10; down 3 / up 2 keep their own value past the warp's edge; a broadcast from
/// lane 7 (+100 per warp); a width-8 broadcast from lane 3 of each group of 8; the ballot of
/// lane % 3 == 0; any(lane == 31); all(lane < 31).
pub fn warp_ops_expected(t: usize) -> [i32; 8] {
    let lane = (t % 32) as i32;
    let warp = (t / 32) as i32;
    let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |b, l| b | 1 << l) as i32;
    [
        (lane ^ 5) * 10,
        if lane + 3 < 32 { lane + 3 } else { lane },
        if lane >= 2 { lane - 2 } else { lane },
        7 + 100 * warp,
        (lane & !7) + 3,
        ballot,
        1,
        0,
    ]
}

/// The two words `selftest_coords` writes for every thread, in global linear order.
pub fn coords_expected(grid: (u32, u32, u32), block: (u32, u32, u32)) -> Vec<u32> {
    let mut out = Vec::new();
    for bz in 0..grid.2 {
        for by in 0..grid.1 {
            for bx in 0..grid.0 {
                for tz in 0..block.2 {
                    for ty in 0..block.1 {
                        for tx in 0..block.0 {
                            out.push(tx | ty << 8 | tz << 16);
                            out.push(bx | by << 8 | bz << 16);
                        }
                    }
                }
            }
        }
    }
    out
}
