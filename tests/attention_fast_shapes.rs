//! The attention fast paths (panel products on the GEMM micro-kernel) against the f64 `_ref`
//! oracles on the shapes the panel code treats specially: the tiny preset's 1 x 1024 x 2 x 32
//! (spec §3.2, the CPU inpainting hot path), head widths that are not multiples of the 6-row or
//! 16-column register tile, query counts that leave partial 16-query panels and partial
//! 64-query blocks, and enough query blocks per head that the backward splits them into several
//! groups whose dk/dv partials are added at the end.
use fdm::cpu::ops::attention::{attention_fast, attention_ref};
use fdm::cpu::ops::attention_backward::{attention_backward_fast, attention_backward_ref};
use fdm::params::attention::AttentionParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

fn inputs(p: &AttentionParams, seed: u64) -> [Vec<f32>; 4] {
    let n = p.numel();
    [
        random_vec(seed, n, -2., 2.),
        random_vec(seed + 1, n, -2., 2.),
        random_vec(seed + 2, n, -1., 1.),
        random_vec(seed + 3, n, -1., 1.),
    ]
}

fn check(b: usize, l: usize, h: usize, dh: usize, seed: u64) {
    let p = AttentionParams::new(b, l, h, dh);
    let n = p.numel();
    let [q, k, v, dout] = inputs(&p, seed);
    let what = format!("{b}x{l}x{h}x{dh}");
    let (mut want, mut got, mut lse) = (vec![0f32; n], vec![0f32; n], vec![0f32; p.lse_numel()]);
    attention_ref(&p, &q, &k, &v, &mut want);
    attention_fast(&p, &q, &k, &v, &mut got, &mut lse);
    assert_close(&got, &want, TOL_CPU_F32, &format!("forward {what}"));

    let mut want = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let mut gotg = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let [wq, wk, wv] = &mut want;
    attention_backward_ref(&p, &q, &k, &v, &dout, wq, wk, wv);
    let [gq, gk, gv] = &mut gotg;
    attention_backward_fast(&p, &q, &k, &v, &got, &lse, &dout, gq, gk, gv);
    for (name, g, w) in [("dq", &gotg[0], &want[0]), ("dk", &gotg[1], &want[1]), ("dv", &gotg[2], &want[2])] {
        assert_close(g, w, TOL_CPU_F32, &format!("{name} {what}"));
    }
}

#[test]
fn attention_fast_matches_ref_tiny_preset_shape_cpu() {
    check(1, 1024, 2, 32, 101);
}

#[test]
fn attention_fast_matches_ref_ragged_tiles_cpu() {
    // dh 20: a 2-row A tile and a 4-column B tile; L 70: a 6-query panel in a partial block.
    check(2, 70, 3, 20, 111);
    // 300 queries in one head: 5 blocks, so the backward uses several groups (the last partial).
    check(1, 300, 1, 20, 121);
    // dh 1 and dh 17 (one column past a full 16-wide tile).
    check(1, 33, 2, 1, 131);
    check(1, 50, 1, 17, 141);
}
