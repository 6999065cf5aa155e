//! `kernels/elementwise.cu`, launched by `cuda::ops::elementwise`, against plain reference loops:
//! on the CPU emulator (`emu::*`, tier 3) and on a real GPU (`cuda::*`, tier 4, skipped without
//! one). Tolerance `be.tol()`: TOL_CPU_F32 on the emulator, TOL_CUDA_F32 on a GPU.

mod common;

use common::backend::Backend;
use fdm::cuda::ops::elementwise::{self as ew, Activation, BinaryOp, StridedIndex};
use fdm::shape::Layout;
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    fill_covers_every_element_past_the_grid_cap,
    affine_matches_reference,
    activations_forward_match_reference,
    activations_backward_match_reference,
    binary_broadcast_matches_reference,
    binary_reads_transposed_and_offset_views,
    binary_contig_matches_reference,
    strided_copy_makes_permuted_u32_view_dense,
);

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

const ACTS: [Activation; 4] = [
    Activation::Relu,
    Activation::Gelu2,
    Activation::Sigmoid,
    Activation::Tanh,
];

fn fill_covers_every_element_past_the_grid_cap<B: Backend>(be: &B) {
    // 4096 blocks x 256 threads = 1,048,576 threads, so the grid-stride loop must take a second lap.
    let n = 1_100_003;
    let mut init = vec![0.0f32; n + 1];
    init[n] = -7.0; // sentinel: one past the end must stay untouched
    let out = be.f32s(&init);
    be.run(&ew::fill_launch(be.ptr(&out), 2.5, n));
    let out = be.get_f32(&out);
    assert!(out[..n].iter().all(|&v| v == 2.5));
    assert_eq!(out[n], -7.0);
}

fn affine_matches_reference<B: Backend>(be: &B) {
    let x = random_vec(1, 70_001, -3.0, 3.0);
    let (xb, out) = (be.f32s(&x), be.f32s(&vec![f32::NAN; x.len()]));
    be.run(&ew::affine_launch(
        be.ptr(&out),
        be.ptr(&xb),
        x.len(),
        0.5,
        -1.25,
    ));
    let want: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.25).collect();
    assert_close(&be.get_f32(&out), &want, be.tol(), "affine");
}

fn activations_forward_match_reference<B: Backend>(be: &B) {
    let mut x = random_vec(2, 5_000, -8.0, 8.0);
    x.extend_from_slice(&[0.0, -0.0, 60.0, -60.0, 1e-8]);
    let xb = be.f32s(&x);
    for act in ACTS {
        let out = be.f32s(&vec![f32::NAN; x.len()]);
        be.run(&ew::activation_fwd_launch(
            act,
            be.ptr(&out),
            be.ptr(&xb),
            x.len(),
        ));
        let want: Vec<f32> = x.iter().map(|&v| act_ref(act, v)).collect();
        assert_close(
            &be.get_f32(&out),
            &want,
            be.tol(),
            &format!("{act:?} forward"),
        );
    }
}

fn activations_backward_match_reference<B: Backend>(be: &B) {
    let x = random_vec(3, 4_099, -6.0, 6.0);
    let dy = random_vec(4, x.len(), -1.0, 1.0);
    let dyb = be.f32s(&dy);
    for act in ACTS {
        let y: Vec<f32> = x.iter().map(|&v| act_ref(act, v)).collect();
        let saved = be.f32s(if act.bwd_uses_input() { &x } else { &y });
        let dx = be.f32s(&vec![f32::NAN; x.len()]);
        be.run(&ew::activation_bwd_launch(
            act,
            be.ptr(&dx),
            be.ptr(&saved),
            be.ptr(&dyb),
            x.len(),
        ));
        let want: Vec<f32> = (0..x.len())
            .map(|i| dy[i] * act_grad_ref(act, x[i], y[i]))
            .collect();
        assert_close(
            &be.get_f32(&dx),
            &want,
            be.tol(),
            &format!("{act:?} backward"),
        );
    }
}

/// The CPU backend's oracle (`cpu::ops::binary::apply_f64`) for the kernel's op code.
fn binary_ref(op: BinaryOp, a: f32, b: f32) -> f32 {
    use fdm::params::binary::BinaryOp as Cpu;
    let cpu = match op {
        BinaryOp::Add => Cpu::Add,
        BinaryOp::Sub => Cpu::Sub,
        BinaryOp::Mul => Cpu::Mul,
        BinaryOp::Div => Cpu::Div,
        BinaryOp::Max => Cpu::Maximum,
        BinaryOp::Min => Cpu::Minimum,
        BinaryOp::MaxGradShare => Cpu::MaxGradShare,
    };
    fdm::cpu::ops::binary::apply_f64(cpu, a as f64, b as f64) as f32
}

const OPS: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::MaxGradShare,
];

fn binary_broadcast_matches_reference<B: Backend>(be: &B) {
    // a: [4,1,5] broadcast to [4,3,5]; b: [3,1] broadcast to [4,3,5].
    let out_shape = [4usize, 3, 5];
    let a = random_vec(5, 20, -2.0, 2.0);
    let b = random_vec(6, 3, 0.5, 2.0);
    let la = Layout::contiguous(&[4, 1, 5])
        .broadcast_as(&out_shape)
        .unwrap();
    let lb = Layout::contiguous(&[3, 1])
        .broadcast_as(&out_shape)
        .unwrap();
    let idx = StridedIndex::new(&out_shape, [&la.strides, &lb.strides]).unwrap();
    let (ab, bb) = (be.f32s(&a), be.f32s(&b));
    for op in OPS {
        let out = be.f32s(&[f32::NAN; 60]);
        be.run(&ew::binary_launch(
            op,
            be.ptr(&out),
            be.ptr(&ab),
            be.ptr(&bb),
            &idx,
        ));
        let mut want = Vec::new();
        for i in 0..4 {
            for &bj in &b {
                for k in 0..5 {
                    want.push(binary_ref(op, a[i * 5 + k], bj));
                }
            }
        }
        assert_close(
            &be.get_f32(&out),
            &want,
            be.tol(),
            &format!("{op:?} broadcast"),
        );
    }
}

fn binary_reads_transposed_and_offset_views<B: Backend>(be: &B) {
    // a is the transpose of a [6,7] matrix, broadcast over a middle dim; b is rows 1..4 of a
    // [5,6] matrix (element offset 6) broadcast over a leading dim.
    let base_a = random_vec(7, 42, -1.0, 1.0);
    let base_b = random_vec(8, 30, -1.0, 1.0);
    let at = Layout::contiguous(&[6, 7]).permute(&[1, 0]).unwrap(); // [7,6]
    let la = Layout {
        shape: vec![7, 1, 6],
        strides: vec![at.strides[0], 0, at.strides[1]],
        offset: 0,
    };
    let la = la.broadcast_as(&[7, 3, 6]).unwrap();
    let lb = Layout::contiguous(&[5, 6])
        .narrow(0, 1, 3)
        .unwrap()
        .broadcast_as(&[7, 3, 6])
        .unwrap();
    let idx = StridedIndex::new(&[7, 3, 6], [&la.strides, &lb.strides]).unwrap();
    let (ab, bb, out) = (
        be.f32s(&base_a),
        be.f32s(&base_b),
        be.f32s(&[f32::NAN; 126]),
    );
    let pb = be.ptr(&bb) + (lb.offset * 4) as u64;
    be.run(&ew::binary_launch(
        BinaryOp::Mul,
        be.ptr(&out),
        be.ptr(&ab),
        pb,
        &idx,
    ));
    let mut want = Vec::new();
    for i in 0..7 {
        for j in 0..3 {
            for k in 0..6 {
                want.push(base_a[k * 7 + i] * base_b[(j + 1) * 6 + k]);
            }
        }
    }
    assert_close(
        &be.get_f32(&out),
        &want,
        be.tol(),
        "mul of transposed and narrowed views",
    );
}

fn binary_contig_matches_reference<B: Backend>(be: &B) {
    let a = random_vec(9, 3_001, -2.0, 2.0);
    let b = random_vec(10, 3_001, 0.5, 2.0);
    let (ab, bb) = (be.f32s(&a), be.f32s(&b));
    for op in OPS {
        let out = be.f32s(&vec![f32::NAN; a.len()]);
        be.run(&ew::binary_contig_launch(
            op,
            be.ptr(&out),
            be.ptr(&ab),
            be.ptr(&bb),
            a.len(),
        ));
        let want: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| binary_ref(op, x, y))
            .collect();
        assert_close(
            &be.get_f32(&out),
            &want,
            be.tol(),
            &format!("{op:?} contiguous"),
        );
    }
}

fn strided_copy_makes_permuted_u32_view_dense<B: Backend>(be: &B) {
    // A [2,3,4] u32 tensor permuted to [4,2,3]: the copy must walk the view in row-major order.
    let src: Vec<u32> = (0..24).collect();
    let view = Layout::contiguous(&[2, 3, 4]).permute(&[2, 0, 1]).unwrap();
    let idx = StridedIndex::new(&view.shape, [&view.strides, &view.strides]).unwrap();
    let (sb, out) = (be.u32s(&src), be.u32s(&[u32::MAX; 24]));
    be.run(&ew::strided_copy_launch(be.ptr(&out), be.ptr(&sb), &idx));
    let want: Vec<u32> = view.indices().map(|i| src[i]).collect();
    assert_eq!(be.get_u32(&out), want);
}

#[test]
fn strided_index_rejects_rank_above_six() {
    let shape = [1usize; 7];
    let err = StridedIndex::new(&shape, [&shape, &shape])
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank at most 6"), "{err}");
}
