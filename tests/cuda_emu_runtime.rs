//! Tier 3: the CPU emulator itself. `kernels/selftest.cu` pins down warp shuffles and votes,
//! barriers with static and dynamic shared memory, atomics across blocks and 3-D coordinates
//! (the same kernels run on a real GPU in tests/cuda_runtime.rs); then the checks the emulator
//! makes that a GPU would not: deadlocks, bad shuffle masks, argument lists that do not match the
//! kernel's signature, and launch limits.

mod common;

use fdm::cuda::emu::{self, host_ptr, host_ptr_mut};
use fdm::cuda::launch::{KArg, Launch, LaunchCfg};
use fdm::cuda::ops::{elementwise, selftest};
use fdm::testing::random_vec;

fn run(l: &Launch) {
    unsafe { emu::run(l) }.unwrap_or_else(|e| panic!("{e}"));
}

fn run_err(l: &Launch) -> String {
    unsafe { emu::run(l) }.expect_err("the emulator should refuse this launch").to_string()
}

#[test]
fn warp_shuffles_and_votes_follow_cuda_rules_emu() {
    let mut out = vec![i32::MIN; 2 * 64 * 8];
    run(&selftest::warp_ops_launch(host_ptr_mut(&mut out), 2));
    for t in 0..128 {
        assert_eq!(out[t * 8..t * 8 + 8], common::warp_ops_expected(t % 64), "thread {t}");
    }
}

#[test]
fn block_sum_with_shared_memory_and_float_atomics_emu() {
    let x = random_vec(11, 100_003, -1.0, 1.0);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    for (blocks, threads) in [(1, 32), (7, 96), (40, 256), (3, 1024)] {
        let mut out = [0.0f32];
        run(&selftest::block_sum_launch(host_ptr_mut(&mut out), host_ptr(&x), x.len(), blocks, threads));
        // 100k terms of size <= 1 in f32: the partial sums stay below ~300, so |error| < 1e-2.
        assert!((out[0] as f64 - want).abs() < 1e-2, "{blocks}x{threads}: {} vs {want}", out[0]);
    }
}

#[test]
fn dynamic_shared_memory_is_per_block_emu() {
    let (blocks, threads) = (5u32, 128u32);
    let x: Vec<f32> = (0..blocks * threads).map(|i| i as f32).collect();
    let mut out = vec![f32::NAN; x.len()];
    run(&selftest::reverse_dyn_launch(host_ptr_mut(&mut out), host_ptr(&x), blocks, threads));
    for b in 0..blocks as usize {
        for t in 0..threads as usize {
            assert_eq!(out[b * 128 + t], x[b * 128 + 127 - t]);
        }
    }
}

#[test]
fn three_d_grid_and_block_coordinates_emu() {
    let (grid, block) = ((3, 2, 2), (4, 3, 2));
    let want = common::coords_expected(grid, block);
    let mut out = vec![u32::MAX; want.len()];
    run(&selftest::coords_launch(host_ptr_mut(&mut out), grid, block));
    assert_eq!(out, want);
}

#[test]
fn atomics_are_exact_across_concurrent_blocks_emu() {
    let (mut counter, mut maxv) = ([0i32], [0u32]);
    run(&selftest::atomics_launch(host_ptr_mut(&mut counter), host_ptr_mut(&mut maxv), 50, 128));
    assert_eq!(counter[0], 6400);
    assert_eq!(maxv[0], 6399);
}

#[test]
fn half_warp_shuffle_with_partial_mask_works_emu() {
    let mut out = vec![-1i32; 128];
    run(&selftest::misuse_launch(host_ptr_mut(&mut out), 0));
    for (t, &v) in out.iter().enumerate() {
        let lane = (t % 32) as i32;
        assert_eq!(v, if lane < 16 { lane ^ 1 } else { lane }, "thread {t}");
    }
}

#[test]
fn shuffle_against_a_barrier_is_reported_as_deadlock_emu() {
    let mut out = vec![0i32; 128];
    let err = run_err(&selftest::misuse_launch(host_ptr_mut(&mut out), 1));
    assert!(err.contains("deadlock") && err.contains("selftest_misuse"), "{err}");
}

#[test]
fn shuffle_mask_without_the_caller_is_reported_emu() {
    let mut out = vec![0i32; 128];
    let err = run_err(&selftest::misuse_launch(host_ptr_mut(&mut out), 2));
    assert!(err.contains("mask does not include the calling lane"), "{err}");
}

#[test]
fn argument_list_is_checked_against_the_kernel_signature_emu() {
    let mut out = vec![0.0f32; 4];
    let mut l = elementwise::fill_launch(host_ptr_mut(&mut out), 1.0, 4);
    l.args[1] = KArg::U32(1); // fill_f32(float* out, float value, unsigned n): value is a float
    let err = run_err(&l);
    assert!(err.contains("argument 1 is 'f'"), "{err}");
    l.args.truncate(2);
    let err = run_err(&l);
    assert!(err.contains("takes 3 arguments"), "{err}");
    assert_eq!(out, vec![0.0; 4], "a refused launch must not run");
}

#[test]
fn launch_limits_are_enforced_emu() {
    let mut out = vec![0.0f32; 4096];
    let mut l = elementwise::fill_launch(host_ptr_mut(&mut out), 1.0, 4096);
    l.cfg = LaunchCfg::linear(1, 2048, 0);
    assert!(run_err(&l).contains("limit is 1024"));
    l.cfg = LaunchCfg::linear(1, 256, 64 * 1024);
    assert!(run_err(&l).contains("above 48 KiB"));
    l.kernel = "no_such_kernel";
    l.cfg = LaunchCfg::linear(1, 256, 0);
    assert!(run_err(&l).contains("no emulated kernel no_such_kernel"));
}
