//! The CUDA execution model as the kernels rely on it. `kernels/selftest.cu` pins down warp
//! shuffles and votes, barriers with static and dynamic shared memory, atomics across blocks and
//! 3-D coordinates, on the CPU emulator (`emu::*`) and on a real GPU (`cuda::*`, skipped without
//! one), so a GPU run confirms the emulator models the hardware. Then the checks only the emulator
//! makes (a GPU would hang or corrupt memory instead): deadlocks, bad shuffle masks, argument
//! lists that do not match the kernel's signature, launch limits.

mod common;

use common::backend::{Backend, Emu};
use fdm::cuda::launch::{KArg, LaunchCfg};
use fdm::cuda::ops::{elementwise, selftest};
use fdm::testing::random_vec;

backend_tests!(
    warp_shuffles_and_votes_follow_cuda_rules,
    block_sum_with_shared_memory_and_float_atomics,
    dynamic_shared_memory_is_per_block,
    three_d_grid_and_block_coordinates,
    atomics_are_exact_across_concurrent_blocks,
    half_warp_shuffle_with_partial_mask,
);

fn warp_shuffles_and_votes_follow_cuda_rules<B: Backend>(be: &B) {
    let out = be.u32s(&vec![0x8000_0000; 2 * 64 * 8]);
    be.run(&selftest::warp_ops_launch(be.ptr(&out), 2));
    let out: Vec<i32> = be.get_u32(&out).into_iter().map(|v| v as i32).collect();
    for t in 0..128 {
        assert_eq!(
            out[t * 8..t * 8 + 8],
            common::warp_ops_expected(t % 64),
            "thread {t}"
        );
    }
}

fn block_sum_with_shared_memory_and_float_atomics<B: Backend>(be: &B) {
    let x = random_vec(11, 100_003, -1.0, 1.0);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    let xb = be.f32s(&x);
    for (blocks, threads) in [(1, 32), (7, 96), (40, 256), (3, 1024)] {
        let out = be.f32s(&[0.0]);
        be.run(&selftest::block_sum_launch(
            be.ptr(&out),
            be.ptr(&xb),
            x.len(),
            blocks,
            threads,
        ));
        let got = be.get_f32(&out)[0] as f64;
        // 100k terms of size <= 1 in f32: the partial sums stay below ~300, so |error| < 1e-2.
        assert!(
            (got - want).abs() < 1e-2,
            "{blocks}x{threads}: {got} vs {want}"
        );
    }
}

fn dynamic_shared_memory_is_per_block<B: Backend>(be: &B) {
    let (blocks, threads) = (5u32, 128usize);
    let x: Vec<f32> = (0..blocks as usize * threads).map(|i| i as f32).collect();
    let (xb, out) = (be.f32s(&x), be.f32s(&vec![f32::NAN; x.len()]));
    be.run(&selftest::reverse_dyn_launch(
        be.ptr(&out),
        be.ptr(&xb),
        blocks,
        threads as u32,
    ));
    let out = be.get_f32(&out);
    for b in 0..blocks as usize {
        for t in 0..threads {
            assert_eq!(out[b * threads + t], x[b * threads + threads - 1 - t]);
        }
    }
}

fn three_d_grid_and_block_coordinates<B: Backend>(be: &B) {
    let (grid, block) = ((3, 2, 2), (4, 3, 2));
    let want = common::coords_expected(grid, block);
    let out = be.u32s(&vec![u32::MAX; want.len()]);
    be.run(&selftest::coords_launch(be.ptr(&out), grid, block));
    assert_eq!(be.get_u32(&out), want);
}

fn atomics_are_exact_across_concurrent_blocks<B: Backend>(be: &B) {
    let (counter, maxv) = (be.u32s(&[0]), be.u32s(&[0]));
    be.run(&selftest::atomics_launch(
        be.ptr(&counter),
        be.ptr(&maxv),
        50,
        128,
    ));
    assert_eq!(be.get_u32(&counter), vec![6400]);
    assert_eq!(be.get_u32(&maxv), vec![6399]);
}

fn half_warp_shuffle_with_partial_mask<B: Backend>(be: &B) {
    let out = be.u32s(&[u32::MAX; 128]);
    be.run(&selftest::misuse_launch(be.ptr(&out), 0));
    for (t, &v) in be.get_u32(&out).iter().enumerate() {
        let lane = (t % 32) as u32;
        assert_eq!(v, if lane < 16 { lane ^ 1 } else { lane }, "thread {t}");
    }
}

fn run_err(l: &fdm::cuda::launch::Launch) -> String {
    Emu.try_run(l)
        .expect_err("the emulator should refuse this launch")
        .to_string()
}

#[test]
fn shuffle_against_a_barrier_is_reported_as_deadlock_emu() {
    let out = Emu.u32s(&[0; 128]);
    let err = run_err(&selftest::misuse_launch(Emu.ptr(&out), 1));
    assert!(
        err.contains("deadlock") && err.contains("selftest_misuse"),
        "{err}"
    );
}

#[test]
fn shuffle_mask_without_the_caller_is_reported_emu() {
    let out = Emu.u32s(&[0; 128]);
    let err = run_err(&selftest::misuse_launch(Emu.ptr(&out), 2));
    assert!(
        err.contains("mask does not include the calling lane"),
        "{err}"
    );
}

#[test]
fn argument_list_is_checked_against_the_kernel_signature_emu() {
    let out = Emu.f32s(&[0.0; 4]);
    let mut l = elementwise::fill_launch(Emu.ptr(&out), 1.0, 4);
    l.args[1] = KArg::U32(1); // fill_f32(float* out, float value, unsigned n): value is a float
    let err = run_err(&l);
    assert!(err.contains("argument 1 is 'f'"), "{err}");
    l.args.truncate(2);
    let err = run_err(&l);
    assert!(err.contains("takes 3 arguments"), "{err}");
    assert_eq!(
        Emu.get_f32(&out),
        vec![0.0; 4],
        "a refused launch must not run"
    );
}

#[test]
fn launch_limits_are_enforced_emu() {
    let out = Emu.f32s(&[0.0; 4096]);
    let mut l = elementwise::fill_launch(Emu.ptr(&out), 1.0, 4096);
    l.cfg = LaunchCfg::linear(1, 2048, 0);
    assert!(run_err(&l).contains("limit is 1024"));
    l.cfg = LaunchCfg::linear(1, 256, 64 * 1024);
    assert!(run_err(&l).contains("above 48 KiB"));
    l.kernel = "no_such_kernel";
    l.cfg = LaunchCfg::linear(1, 256, 0);
    assert!(run_err(&l).contains("no emulated kernel no_such_kernel"));
}
