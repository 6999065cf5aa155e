//! Tier 3: `kernels/elementwise.cu` on the CPU emulator, launched by the GPU launchers of
//! `cuda::ops::elementwise` (same grid and argument order), against plain reference loops.

use fdm::cuda::emu::{self, host_ptr, host_ptr_mut};
use fdm::cuda::ops::elementwise::{self as ew, Activation, BinaryOp, StridedIndex};
use fdm::shape::{contiguous_strides, Layout};
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

fn run(l: &fdm::cuda::launch::Launch) {
    unsafe { emu::run(l) }.unwrap_or_else(|e| panic!("{e}"));
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn act_ref(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu => x.max(0.0),
        Activation::Gelu2 => x * sigmoid(1.702 * x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
    }
}

/// d act / dx written with the forward input x (relu, gelu2) or output y (sigmoid, tanh).
fn act_grad_ref(act: Activation, x: f32, y: f32) -> f32 {
    match act {
        Activation::Relu => (x > 0.0) as i32 as f32,
        Activation::Gelu2 => {
            let s = sigmoid(1.702 * x);
            s + 1.702 * x * s * (1.0 - s)
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
    }
}

const ACTS: [Activation; 4] = [Activation::Relu, Activation::Gelu2, Activation::Sigmoid, Activation::Tanh];

#[test]
fn fill_covers_every_element_past_the_grid_cap_emu() {
    // 4096 blocks x 256 threads = 1,048,576 threads, so the grid-stride loop must take a second lap.
    let n = 1_100_003;
    let mut out = vec![0.0f32; n + 1];
    out[n] = -7.0; // sentinel: one past the end must stay untouched
    run(&ew::fill_launch(host_ptr_mut(&mut out), 2.5, n));
    assert!(out[..n].iter().all(|&v| v == 2.5));
    assert_eq!(out[n], -7.0);
}

#[test]
fn affine_matches_reference_emu() {
    let x = random_vec(1, 70_001, -3.0, 3.0);
    let mut out = vec![0.0f32; x.len()];
    run(&ew::affine_launch(host_ptr_mut(&mut out), host_ptr(&x), x.len(), 0.5, -1.25));
    let want: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.25).collect();
    assert_close(&out, &want, TOL_CPU_F32, "affine");
}

#[test]
fn activations_forward_match_reference_emu() {
    let mut x = random_vec(2, 5_000, -8.0, 8.0);
    x.extend_from_slice(&[0.0, -0.0, 60.0, -60.0, 1e-8]);
    for act in ACTS {
        let mut out = vec![f32::NAN; x.len()];
        run(&ew::activation_fwd_launch(act, host_ptr_mut(&mut out), host_ptr(&x), x.len()));
        let want: Vec<f32> = x.iter().map(|&v| act_ref(act, v)).collect();
        assert_close(&out, &want, TOL_CPU_F32, &format!("{act:?} forward"));
    }
}

#[test]
fn activations_backward_match_reference_emu() {
    let x = random_vec(3, 4_099, -6.0, 6.0);
    let dy = random_vec(4, x.len(), -1.0, 1.0);
    for act in ACTS {
        let y: Vec<f32> = x.iter().map(|&v| act_ref(act, v)).collect();
        let saved = if act.bwd_uses_input() { &x } else { &y };
        let mut dx = vec![f32::NAN; x.len()];
        run(&ew::activation_bwd_launch(act, host_ptr_mut(&mut dx), host_ptr(saved), host_ptr(&dy), x.len()));
        let want: Vec<f32> = (0..x.len()).map(|i| dy[i] * act_grad_ref(act, x[i], y[i])).collect();
        assert_close(&dx, &want, TOL_CPU_F32, &format!("{act:?} backward"));
    }
}

fn binary_ref(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
    }
}

const OPS: [BinaryOp; 6] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min];

#[test]
fn binary_broadcast_matches_reference_emu() {
    // a: [4,1,5] broadcast to [4,3,5]; b: [3,1] broadcast to [4,3,5].
    let out_shape = [4usize, 3, 5];
    let a = random_vec(5, 20, -2.0, 2.0);
    let b = random_vec(6, 3, 0.5, 2.0);
    let la = Layout::contiguous(&[4, 1, 5]).broadcast_as(&out_shape).unwrap();
    let lb = Layout::contiguous(&[3, 1]).broadcast_as(&out_shape).unwrap();
    let idx = StridedIndex::new(&out_shape, [&la.strides, &lb.strides]).unwrap();
    for op in OPS {
        let mut out = vec![f32::NAN; 60];
        run(&ew::binary_launch(op, host_ptr_mut(&mut out), host_ptr(&a), host_ptr(&b), &idx));
        let mut want = Vec::new();
        for i in 0..4 {
            for j in 0..3 {
                for k in 0..5 {
                    want.push(binary_ref(op, a[i * 5 + k], b[j]));
                }
            }
        }
        assert_close(&out, &want, TOL_CPU_F32, &format!("{op:?} broadcast"));
    }
}

#[test]
fn binary_reads_transposed_and_offset_views_emu() {
    // a is the transpose of a [6,7] matrix; b is rows 1..4 of a [5,6] matrix (element offset 6).
    let base_a = random_vec(7, 42, -1.0, 1.0);
    let base_b = random_vec(8, 30, -1.0, 1.0);
    let la = Layout::contiguous(&[6, 7]).permute(&[1, 0]).unwrap(); // [7,6]
    let lb = Layout::contiguous(&[5, 6]).narrow(0, 1, 3).unwrap(); // [3,6]
    let lb = lb.broadcast_as(&[7, 3, 6]).unwrap();
    let la = Layout { shape: vec![7, 1, 6], strides: vec![la.strides[0], 0, la.strides[1]], offset: 0 }.broadcast_as(&[7, 3, 6]).unwrap();
    let idx = StridedIndex::new(&[7, 3, 6], [&la.strides, &lb.strides]).unwrap();
    let mut out = vec![f32::NAN; 7 * 3 * 6];
    let pb = host_ptr(&base_b) + (lb.offset * 4) as u64;
    run(&ew::binary_launch(BinaryOp::Mul, host_ptr_mut(&mut out), host_ptr(&base_a), pb, &idx));
    let mut want = Vec::new();
    for i in 0..7 {
        for j in 0..3 {
            for k in 0..6 {
                want.push(base_a[k * 7 + i] * base_b[(j + 1) * 6 + k]);
            }
        }
    }
    assert_close(&out, &want, TOL_CPU_F32, "mul of transposed and narrowed views");
}

#[test]
fn binary_contig_matches_reference_emu() {
    let a = random_vec(9, 3_001, -2.0, 2.0);
    let b = random_vec(10, 3_001, 0.5, 2.0);
    for op in OPS {
        let mut out = vec![f32::NAN; a.len()];
        run(&ew::binary_contig_launch(op, host_ptr_mut(&mut out), host_ptr(&a), host_ptr(&b), a.len()));
        let want: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| binary_ref(op, x, y)).collect();
        assert_close(&out, &want, TOL_CPU_F32, &format!("{op:?} contiguous"));
    }
}

#[test]
fn strided_copy_makes_permuted_u32_view_dense_emu() {
    // A [2,3,4] u32 tensor permuted to [4,2,3]: the copy must walk the view in row-major order.
    let src: Vec<u32> = (0..24).collect();
    let view = Layout::contiguous(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
    let idx = StridedIndex::new(&view.shape, [&view.strides, &view.strides]).unwrap();
    let mut out = vec![u32::MAX; 24];
    run(&ew::strided_copy_launch(host_ptr_mut(&mut out), host_ptr(&src), &idx));
    let want: Vec<u32> = view.indices().map(|i| src[i] ).collect();
    assert_eq!(out, want);
    assert_eq!(contiguous_strides(&view.shape), vec![6, 3, 1]);
}

#[test]
fn strided_index_rejects_rank_above_six() {
    let shape = [1usize; 7];
    let err = StridedIndex::new(&shape, [&shape, &shape]).unwrap_err().to_string();
    assert!(err.contains("rank at most 6"), "{err}");
}
