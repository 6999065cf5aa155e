//! Launchers for `kernels/selftest.cu`: the execution-model checks run both on the CPU emulator
//! and on a real GPU, so the GPU run confirms that the emulator models the hardware.

use crate::cuda::launch::{KArg, Launch, LaunchCfg};

const MODULE: &str = "selftest";

/// `blocks` blocks of 64 threads (two warps); `out` holds 8 ints per thread.
pub fn warp_ops_launch(out: u64, blocks: u32) -> Launch {
    Launch {
        module: MODULE,
        kernel: "selftest_warp_ops",
        cfg: LaunchCfg::linear(blocks, 64, 0),
        args: vec![KArg::Ptr(out)],
    }
}

/// `*out += sum(x[0..n])` with `blocks` blocks of `threads` threads (a multiple of 32).
pub fn block_sum_launch(out: u64, x: u64, n: usize, blocks: u32, threads: u32) -> Launch {
    let args = vec![KArg::Ptr(out), KArg::Ptr(x), KArg::U32(n as u32)];
    Launch {
        module: MODULE,
        kernel: "selftest_block_sum",
        cfg: LaunchCfg::linear(blocks, threads, 0),
        args,
    }
}

/// Reverse each `threads`-element slice of x (`blocks` slices) through dynamic shared memory.
pub fn reverse_dyn_launch(out: u64, x: u64, blocks: u32, threads: u32) -> Launch {
    let cfg = LaunchCfg::linear(blocks, threads, threads * 4);
    Launch {
        module: MODULE,
        kernel: "selftest_reverse_dyn",
        cfg,
        args: vec![KArg::Ptr(out), KArg::Ptr(x)],
    }
}

/// Two words per thread of a 3-D grid of 3-D blocks.
pub fn coords_launch(out: u64, grid: (u32, u32, u32), block: (u32, u32, u32)) -> Launch {
    let cfg = LaunchCfg {
        grid,
        block,
        smem_bytes: 0,
    };
    Launch {
        module: MODULE,
        kernel: "selftest_coords",
        cfg,
        args: vec![KArg::Ptr(out)],
    }
}

pub fn atomics_launch(counter: u64, maxv: u64, blocks: u32, threads: u32) -> Launch {
    let cfg = LaunchCfg::linear(blocks, threads, 0);
    Launch {
        module: MODULE,
        kernel: "selftest_atomics",
        cfg,
        args: vec![KArg::Ptr(counter), KArg::Ptr(maxv)],
    }
}

/// Mode 0 is correct code; modes 1 and 2 are misuse for the emulator to report (never on a GPU).
pub fn misuse_launch(out: u64, mode: i32) -> Launch {
    let cfg = LaunchCfg::linear(2, 64, 0);
    Launch {
        module: MODULE,
        kernel: "selftest_misuse",
        cfg,
        args: vec![KArg::Ptr(out), KArg::I32(mode)],
    }
}
