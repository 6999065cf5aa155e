//! The device-level entry points of `cuda::ops` (allocation, validation and launch composition on
//! `CudaStorage`) and `Tensor` device copies, on the emulated CUDA device (`emu::*`, always) and a
//! real GPU (`cuda::*`: `SKIP (no CUDA device)` without one, a failure with FDM_REQUIRE_CUDA=1);
//! the module cache and the caching allocator exist only on a GPU. The kernels' semantics are
//! covered launch by launch in `cuda_emu_*.rs`.

mod common;

use common::reference::{
    gemm_ref, layernorm_bwd_ref, layernorm_ref, row_max_ref, select_positions_ref, softmax_bwd_ref,
    softmax_ref, sq_dists_ref, topk_sample_ref,
};
use fdm::cuda::ops::{codebook, elementwise, gemm, layernorm, sampling, softmax};
use fdm::cuda::{module, CudaDevice, CudaStorage};
use fdm::storage::CpuStorage;
use fdm::testing::{assert_close, cuda_device_or_skip, random_vec, TOL_CUDA_F32};
use fdm::{Device, Tensor};

device_tests!(
    elementwise_entry_points,
    tensor_contiguous_and_round_trip_on_device,
    softmax_and_layernorm_entry_points,
    codebook_argmin_entry_point,
    sample_step_entry_point,
    linear_entry_point,
    conv2d_and_attention_entry_points
);

fn up(dev: &CudaDevice, v: &[f32]) -> CudaStorage {
    dev.upload(&CpuStorage::F32(v.to_vec())).unwrap()
}

fn down(s: &CudaStorage) -> Vec<f32> {
    s.download().unwrap().to_f32_vec()
}

fn down_u32(s: &CudaStorage) -> Vec<u32> {
    match s.download().unwrap() {
        CpuStorage::U32(v) => v,
        other => panic!("expected u32, got {:?}", other.dtype()),
    }
}

#[test]
fn module_cache_compiles_once_per_device_cuda() {
    let Some(dev) = cuda_device_or_skip("module_cache_compiles_once_per_device_cuda") else {
        return;
    };
    let a = module::load(&dev, "elementwise").unwrap();
    let b = module::load(&dev, "elementwise").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let err = module::load(&dev, "no_such_module")
        .unwrap_err()
        .to_string();
    assert!(err.contains("kernels/no_such_module.cu"), "{err}");
    let err = module::function(&dev, "elementwise", "no_such_kernel")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no_such_kernel"), "{err}");
}

fn elementwise_entry_points(dev: CudaDevice) {
    let n = 10_007;
    assert_eq!(
        down(&elementwise::fill(&dev, 3.0, n).unwrap()),
        vec![3.0; n]
    );
    let x = random_vec(1, n, -4.0, 4.0);
    let xs = up(&dev, &x);
    let y = down(&elementwise::affine(&xs, n, 2.0, 1.0).unwrap());
    assert_close(
        &y,
        &x.iter().map(|v| 2.0 * v + 1.0).collect::<Vec<_>>(),
        TOL_CUDA_F32,
        "affine",
    );
    let g = down(&elementwise::activation_fwd(elementwise::Activation::Gelu2, &xs, n).unwrap());
    let want: Vec<f32> = x.iter().map(|&v| v / (1.0 + (-1.702 * v).exp())).collect();
    assert_close(&g, &want, TOL_CUDA_F32, "gelu2");
    // [3,1] + [1,4] broadcast to [3,4].
    let (a, b) = (
        up(&dev, &[1.0, 2.0, 3.0]),
        up(&dev, &[10.0, 20.0, 30.0, 40.0]),
    );
    let sum = elementwise::binary(
        elementwise::BinaryOp::Add,
        &[3, 4],
        (&a, &[1, 0], 0),
        (&b, &[0, 1], 0),
    )
    .unwrap();
    let want: Vec<f32> = (0..12)
        .map(|i| (i / 4 + 1) as f32 + 10.0 * (i % 4 + 1) as f32)
        .collect();
    assert_eq!(down(&sum), want);
    let u = dev.upload(&CpuStorage::U32(vec![1, 2])).unwrap();
    assert!(
        elementwise::affine(&u, 2, 1.0, 0.0).is_err(),
        "u32 input must be refused"
    );
}

fn tensor_contiguous_and_round_trip_on_device(dev: CudaDevice) {
    let t = Tensor::from_vec((0..24).map(|i| i as f32).collect(), &[2, 3, 4]).unwrap();
    let d = t.to_device(&Device::Cuda(dev)).unwrap();
    let p = d.permute(&[2, 0, 1]).unwrap().narrow(0, 1, 2).unwrap();
    let want = t
        .permute(&[2, 0, 1])
        .unwrap()
        .narrow(0, 1, 2)
        .unwrap()
        .to_vec_f32()
        .unwrap();
    assert_eq!(p.contiguous().unwrap().to_vec_f32().unwrap(), want);
}

fn softmax_and_layernorm_entry_points(dev: CudaDevice) {
    let (rows, cols) = (1024, 512);
    let x = random_vec(2, rows * cols, -5.0, 5.0);
    let dy = random_vec(3, rows * cols, -1.0, 1.0);
    let (xs, dys) = (up(&dev, &x), up(&dev, &dy));
    let y = softmax::softmax_fwd(&xs, rows, cols).unwrap();
    let yv = down(&y);
    assert_close(&yv, &softmax_ref(&x, rows, cols), TOL_CUDA_F32, "softmax");
    let dx = down(&softmax::softmax_bwd(&y, &dys, rows, cols).unwrap());
    assert_close(
        &dx,
        &softmax_bwd_ref(&yv, &dy, rows, cols),
        TOL_CUDA_F32,
        "softmax backward",
    );

    let gamma = random_vec(4, cols, 0.5, 1.5);
    let beta = random_vec(5, cols, -0.5, 0.5);
    let (gs, bs) = (up(&dev, &gamma), up(&dev, &beta));
    let out = layernorm::layernorm_fwd(&xs, Some(&gs), Some(&bs), rows, cols, 1e-5, true).unwrap();
    let (want_y, mean, rstd) = layernorm_ref(&x, Some(&gamma), Some(&beta), rows, cols, 1e-5);
    assert_close(&down(&out.y), &want_y, TOL_CUDA_F32, "layernorm");
    let (ms, rs) = out.stats.as_ref().unwrap();
    let (dxs, dgs, dbs) =
        layernorm::layernorm_bwd(&dys, &xs, (ms, rs), Some(&gs), rows, cols).unwrap();
    let (want_dx, want_dg, want_db) =
        layernorm_bwd_ref(&dy, &x, &mean, &rstd, Some(&gamma), rows, cols);
    assert_close(&down(&dxs), &want_dx, TOL_CUDA_F32, "layernorm dx");
    // dgamma/dbeta sum 1024 rows of terms ~1 in f32: allow 1e-4 relative of the column's scale.
    assert_close(&down(&dgs), &want_dg, (1e-3, 1e-4), "layernorm dgamma");
    assert_close(&down(&dbs), &want_db, (1e-3, 1e-4), "layernorm dbeta");
    assert!(
        softmax::softmax_fwd(&xs, rows + 1, cols).is_err(),
        "too short a buffer must be refused"
    );
}

fn codebook_argmin_entry_point(dev: CudaDevice) {
    let s = codebook::ArgminShape {
        n: 2048,
        k: 1024,
        d: 256,
        span: 512,
    };
    let z = random_vec(6, s.n * s.d, -2.0, 2.0);
    let cb = random_vec(7, s.k * s.d, -2.0, 2.0);
    let offsets: Vec<u32> = (0..s.n as u32)
        .map(|r| if r % 7 < 3 { 512 } else { 0 })
        .collect();
    let off = dev.upload(&CpuStorage::U32(offsets.clone())).unwrap();
    let (idx, _) = codebook::codebook_argmin(&up(&dev, &z), &up(&dev, &cb), Some(&off), s).unwrap();
    let idx = down_u32(&idx);
    for r in (0..s.n).step_by(17) {
        let lo = offsets[r] as usize;
        let d = sq_dists_ref(&z, &cb, r, s.k, s.d);
        let best = (lo..lo + 512)
            .min_by(|&a, &b| d[a].total_cmp(&d[b]))
            .unwrap();
        assert!(
            d[idx[r] as usize] <= d[best] + 1e-3,
            "row {r}: {} vs best {best}",
            idx[r]
        );
        assert!((lo..lo + 512).contains(&(idx[r] as usize)));
    }
}

fn sample_step_entry_point(dev: CudaDevice) {
    let s = sampling::SampleStep {
        b: 2,
        l: 1024,
        v: 512,
        n: 1,
        k: 50,
        temperature: 1.0,
    };
    let logits = random_vec(8, s.b * s.l * s.v, -5.0, 5.0);
    let known: Vec<u32> = (0..s.b * s.l).map(|i| (i % 5 != 0) as u32).collect();
    let uniforms = random_vec(9, s.b * s.n, 0.0, 1.0);
    let ks = dev.upload(&CpuStorage::U32(known.clone())).unwrap();
    let (pos, tok) =
        sampling::sample_step(&up(&dev, &logits), &ks, &up(&dev, &uniforms), 0, s).unwrap();
    let (pos, tok) = (down_u32(&pos), down_u32(&tok));
    assert_eq!(
        pos,
        select_positions_ref(&row_max_ref(&logits, s.b * s.l, s.v), &known, s.b, s.l, s.n)
    );
    for q in 0..s.b * s.n {
        let row = (q / s.n) * s.l + pos[q] as usize;
        let (want, margin) =
            topk_sample_ref(&logits[row * s.v..(row + 1) * s.v], s.k, 1.0, uniforms[q]);
        if margin > 1e-5 {
            assert_eq!(tok[q], want, "slot {q}");
        }
    }
}

fn linear_entry_point(dev: CudaDevice) {
    // The transformer MLP's first layer at one image: 1024 tokens, 512 -> 2048.
    let (m, out, inp) = (1024, 2048, 512);
    let x = random_vec(10, m * inp, -1.0, 1.0);
    let w = random_vec(11, out * inp, -0.05, 0.05);
    let bias = random_vec(12, out, -0.1, 0.1);
    let y = down(
        &gemm::linear_fwd(
            &up(&dev, &x),
            &up(&dev, &w),
            Some(&up(&dev, &bias)),
            m,
            out,
            inp,
        )
        .unwrap(),
    );
    for r in (0..m).step_by(97) {
        let want = gemm_ref(1, out, inp, |_, k| x[r * inp + k], |o, k| w[o * inp + k]);
        let want: Vec<f32> = want
            .iter()
            .zip(&bias)
            .map(|(v, b)| (*v + *b as f64) as f32)
            .collect();
        assert_close(
            &y[r * out..(r + 1) * out],
            &want,
            TOL_CUDA_F32,
            &format!("linear row {r}"),
        );
    }
    assert!(gemm::linear_fwd(&up(&dev, &x[..10]), &up(&dev, &w), None, m, out, inp).is_err());
}

#[test]
fn caching_allocator_reuses_freed_buffers_cuda() {
    let Some(dev) = cuda_device_or_skip("caching_allocator_reuses_freed_buffers_cuda") else {
        return;
    };
    dev.allocator().expect("a GPU has an allocator").empty_cache();
    let before = dev.allocator().expect("a GPU has an allocator").stats();
    for _ in 0..10 {
        let a = dev.alloc(fdm::DType::F32, 1024 * 512).unwrap();
        let b = dev.alloc(fdm::DType::F32, 1000).unwrap();
        assert_eq!(
            (a.len(), b.len()),
            (1024 * 512, 1000),
            "logical lengths, not bucket sizes"
        );
    }
    let after = dev.allocator().expect("a GPU has an allocator").stats();
    assert_eq!(
        after.misses - before.misses,
        2,
        "only the first pass goes to the driver"
    );
    assert_eq!(after.hits - before.hits, 18);
    // Round trip through a pooled buffer larger than its contents.
    let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    assert_eq!(down(&up(&dev, &v)), v);
}

fn conv2d_and_attention_entry_points(dev: CudaDevice) {
    use common::reference::{attention_row_ref, conv2d_ref};
    use fdm::cuda::ops::{attention, conv2d};
    let p =
        conv2d::Conv2dParams::new([2, 16, 20, 20], [24, 16, 3, 3], (1, 1), (1, 1), (1, 1)).unwrap();
    let x = random_vec(13, p.input_len(), -1.0, 1.0);
    let w = random_vec(14, p.weight_len(), -0.2, 0.2);
    let y = down(&conv2d::conv2d_fwd(&up(&dev, &x), &up(&dev, &w), None, &p).unwrap());
    let want = conv2d_ref(
        &x,
        &w,
        None,
        [2, 16, 20, 20],
        [24, 16, 3, 3],
        (20, 20),
        (1, 1),
        (1, 1),
        (1, 1),
        1,
    );
    assert_close(&y, &want, TOL_CUDA_F32, "conv2d");

    let (b, l, h) = (2, 300, 8);
    let n = b * l * h * attention::HEAD_DIM;
    let (q, k, v) = (
        random_vec(15, n, -1.0, 1.0),
        random_vec(16, n, -1.0, 1.0),
        random_vec(17, n, -1.0, 1.0),
    );
    let (o, _) =
        attention::attention_fwd(&up(&dev, &q), &up(&dev, &k), &up(&dev, &v), b, l, h).unwrap();
    let o = down(&o);
    for (bi, hi, qi) in [(0, 0, 0), (1, 7, 299), (1, 3, 150)] {
        let (want, _) = attention_row_ref(&q, &k, &v, l, h, 64, bi, hi, qi);
        let start = (bi * l + qi) * h * 64 + hi * 64;
        assert_close(&o[start..start + 64], &want, TOL_CUDA_F32, "attention row");
    }
    assert!(
        attention::attention_fwd(&up(&dev, &q[..10]), &up(&dev, &k), &up(&dev, &v), b, l, h)
            .is_err()
    );
}
