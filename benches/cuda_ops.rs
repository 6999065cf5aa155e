//! CUDA op benchmarks, named `cuda_{op}_{dtype}_{shape}` like the CPU ones in `ops.rs` (same
//! shapes), through the Tensor-level ops a model uses (so the caching allocator is in the loop,
//! as it is in inference). Each iteration ends with a device synchronisation, so criterion times
//! the kernels, not the launch queue. Throughput is in floating-point operations (2 per MAC) where
//! the op has a MAC count; the sampler steps report rows.
//!   cuda_gemm_f32_MxNxK: C[M,N] = A[M,K] * B[K,N] (hand-written tiled kernel, f32).
//!   cuda_linear_f32_MxNxK: y[M,N] = x[M,K] W[N,K]^T, f32, on the hand-written kernel;
//!     cuda_linear_cublas_f32_MxNxK: the same on cuBLAS (what `linear` runs where cuBLAS is usable).
//!   cuda_linear_bf16_MxNxK: y[M,N] = x[M,K] W[N,K]^T with a bf16 W on the tensor-core kernel
//!     (x f32, rounded to bf16 on load; f32 sums; the pipelined kernel);
//!     cuda_linear_bf16_plain_MxNxK: the same on the plain kernel; cuda_linear_cublas_bf16_MxNxK:
//!     x rounded to bf16 by the cast kernel, then cuBLAS (the transformer's linears at
//!     `--precision bf16` where cuBLAS is usable). The cuBLAS rows are left out without cuBLAS.
//!     cuda_linear_{cublas,cublaslt}_bf16_bias_MxNxK: with a bias, added by bias rows and beta = 1
//!     (cuBLAS, `FDM_CUBLASLT=0`) or in cuBLASLt's epilogue (the default).
//!   cuda_conv2d_f32_CxHxW_k3: 3x3 s1 p1 conv C->C at HxW (FDM / decoder res blocks);
//!     cuda_conv2d_wide_f32_CxHxW_k3: the 128 x 64 tile kernel alone (`FDM_CONV_WIDE=1` picks it
//!     for large grids), at the 64-channel shape and at batch 10 (phase 1a's batch);
//!     cuda_conv2d_bwd_input{,_wide}_f32_b10_*: its input gradient on the gather kernel, or as the
//!     flipped-weight forward on the wide kernel (weight flip included).
//!   cuda_attention_f32_HxLxD: fused attention forward, the paper's 8 heads x 1024 x 64 (the
//!     split-keys kernel); cuda_attention_perquery_f32_HxLxD: the one-thread-per-query kernel;
//!     cuda_attention_tc_bf16_HxLxD: the bf16 tensor-core kernel (`--precision bf16`; one pass
//!     over the keys at this shape), `_split2_` with the keys in 2 ranges, `_b4_` one pass at
//!     batch 4 (`attention_bf16` picks `_wide_` there),
//!     `_kg2_` two key groups per block, `_wide_` 8 warps and 128 queries per block;
//!     `cuda_attention_tc_bf16_inputs_b4_`: q, k, v cast to bf16, then the bf16-input kernel
//!     (`TcPlan::Bf16Inputs`), and `cuda_attention_fa_kernel_bf16_b4_` that kernel alone.
//!   cuda_codebook_argmin_f32_NxKxD: nearest of K = 512 codes (one half of the dual codebook),
//!     the op as the quantizer calls it with host selectors, every row in the unmasked half (its
//!     rows start at code 0: no offsets uploaded); `_mixed_` a third of the rows in the masked
//!     half, as under a hole (the rows' first codes found on the host and uploaded); `_kernels_`
//!     the launches alone (norms, search, merge) on offsets already on the device.
//!   cuda_topk_sample_f32_RxV: top-50 draw on R rows of V = 512 logits.
//! Without a CUDA device every bench prints `SKIP (no CUDA device)` and nothing is timed.
//! Run: cargo bench --bench cuda_ops; PyTorch on the same GPU: python3 benches/reference/torch_ops.py

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fdm::cuda::launch::{device_ptr, run_on_device};
use fdm::cuda::ops::conv2d::{conv2d_fwd_wide_launch, Conv2dParams};
use fdm::cuda::ops::conv2d_backward::{conv2d_bwd_input_as_forward, conv2d_bwd_input_launch, conv2d_flip_weight_launch};
use fdm::cuda::ops::attention::{self as tc, attention_fwd_kernel_launch, AttentionKernel, AttentionParams};
use fdm::cuda::ops::gemm::linear_fwd_kernel;
use fdm::cuda::ops::gemm_tc::{linear_bf16_fwd_with, InputAct, TcKernel};
use fdm::cuda::ops::sampling::{topk_sample_rows, RowSource};
use fdm::cuda::blas::BiasPath;
use fdm::cuda::{blas, CudaDevice, CudaStorage};
use fdm::params::codebook::{CODEBOOK_HALF_MASKED, CODEBOOK_HALF_UNMASKED};
use fdm::testing::random_vec;
use fdm::{ops, Device, Tensor};

fn device() -> Option<CudaDevice> {
    match fdm::cuda::probe() {
        Ok(d) => Some(d),
        Err(why) => {
            println!("cuda_ops: SKIP (no CUDA device): {why}");
            None
        }
    }
}

fn on(dev: &CudaDevice, seed: u64, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(random_vec(seed, n, lo, hi), shape).unwrap().to_device(&Device::Cuda(dev.clone())).unwrap()
}

/// Time `f` (one op on the device) with a synchronisation after each call.
fn time(c: &mut Criterion, group: &str, name: String, units: u64, dev: &CudaDevice, mut f: impl FnMut() -> Tensor) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(units));
    g.bench_function(name, |b| {
        b.iter(|| {
            let out = f();
            dev.synchronize().unwrap();
            out
        })
    });
    g.finish();
}

fn gemm(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    for (m, n, k) in [(1024, 1024, 1024), (1024, 2048, 512), (1024, 1536, 512)] {
        let (a, b) = (on(&dev, 1, &[m, k], -1.0, 1.0), on(&dev, 2, &[k, n], -1.0, 1.0));
        time(c, "gemm", format!("cuda_gemm_f32_{m}x{n}x{k}"), (2 * m * n * k) as u64, &dev, || ops::matmul::matmul(&a, &b).unwrap());
    }
}

/// `y = x W^T` with `W [n, k]` through `f(y, x, w)` into a new `[m, n]` buffer.
fn linear_into(dev: &CudaDevice, x: &Tensor, w: &Tensor, (m, n): (usize, usize), f: impl Fn(&mut CudaStorage, &CudaStorage, &CudaStorage) -> fdm::Result<()>) -> Tensor {
    let mut y = dev.alloc(fdm::DType::F32, m * n).unwrap();
    f(&mut y, x.cuda_dense().unwrap(), w.cuda_dense().unwrap()).unwrap();
    Tensor::from_cuda(y, &[m, n]).unwrap()
}

/// Whether cuBLAS runs on `dev`; prints why not (its rows are then left out).
fn cublas_on(dev: &CudaDevice) -> bool {
    if let Some(why) = blas::unavailable_reason(dev) {
        println!("cuda_linear_cublas_*: SKIP ({why})");
    }
    blas::available(dev)
}

fn linear_f32(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    for (m, n, k) in [(1024, 1024, 1024), (1024, 2048, 512), (1024, 1536, 512)] {
        let (x, w) = (on(&dev, 1, &[m, k], -1.0, 1.0), on(&dev, 2, &[n, k], -1.0, 1.0));
        let flops = (2 * m * n * k) as u64;
        time(c, "gemm", format!("cuda_linear_f32_{m}x{n}x{k}"), flops, &dev, || {
            Tensor::from_cuda(linear_fwd_kernel(x.cuda_dense().unwrap(), w.cuda_dense().unwrap(), None, m, n, k).unwrap(), &[m, n]).unwrap()
        });
        if cublas_on(&dev) {
            time(c, "gemm", format!("cuda_linear_cublas_f32_{m}x{n}x{k}"), flops, &dev, || {
                linear_into(&dev, &x, &w, (m, n), |y, x, w| blas::sgemm_linear(y, x, w, None, m, n, k))
            });
        }
    }
}

fn linear_bf16(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    for (m, n, k) in [(1024, 1024, 1024), (1024, 2048, 512), (1024, 1536, 512)] {
        let x = on(&dev, 1, &[m, k], -1.0, 1.0);
        let w = on(&dev, 2, &[n, k], -1.0, 1.0).to_dtype(fdm::DType::BF16).unwrap();
        let flops = (2 * m * n * k) as u64;
        // The hand-written kernels: the pipelined one (picked for these shapes), then the plain
        // one (its reference).
        for (name, kernel) in [("", None), ("_plain", Some(TcKernel::Plain))] {
            time(c, "gemm", format!("cuda_linear_bf16{name}_{m}x{n}x{k}"), flops, &dev, || {
                let y = linear_bf16_fwd_with(kernel, x.cuda_dense().unwrap(), w.cuda_dense().unwrap(), None, m, n, k).unwrap();
                Tensor::from_cuda(y, &[m, n]).unwrap()
            });
        }
        // cuBLAS, the rounding of x to bf16 included (what `linear` runs when cuBLAS is there).
        if cublas_on(&dev) {
            time(c, "gemm", format!("cuda_linear_cublas_bf16_{m}x{n}x{k}"), flops, &dev, || {
                linear_into(&dev, &x, &w, (m, n), |y, x, w| blas::bf16_linear(y, x, w, None, m, n, k))
            });
        }
    }
    linear_bf16_bias(c, &dev);
}

/// The transformer's Linears with their bias, both ways of adding it on cuBLAS: bias rows + beta
/// = 1 (`_cublas_bf16_bias_`, `FDM_CUBLASLT=0`) and cuBLASLt's epilogue (`_cublaslt_bf16_bias_`,
/// the default); one image (1024 rows) and four (4096).
fn linear_bf16_bias(c: &mut Criterion, dev: &CudaDevice) {
    if !cublas_on(dev) {
        return;
    }
    for (m, n, k) in [(1024, 1536, 512), (1024, 2048, 512), (1024, 512, 2048), (4096, 1536, 512), (4096, 512, 2048)] {
        let x = on(dev, 1, &[m, k], -1.0, 1.0);
        let w = on(dev, 2, &[n, k], -1.0, 1.0).to_dtype(fdm::DType::BF16).unwrap();
        let b = on(dev, 3, &[n], -1.0, 1.0);
        let flops = (2 * m * n * k) as u64;
        for (name, path) in [("cublas", BiasPath::Rows), ("cublaslt", BiasPath::Epilogue)] {
            time(c, "gemm", format!("cuda_linear_{name}_bf16_bias_{m}x{n}x{k}"), flops, dev, || {
                let bias = Some(b.cuda_dense().unwrap());
                linear_into(dev, &x, &w, (m, n), |y, x, w| blas::bf16_linear_on(path, InputAct::Identity, y, x, w, bias, m, n, k))
            });
        }
    }
}

fn conv(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    for (ch, hw) in [(256, 32), (64, 256)] {
        let x = on(&dev, 3, &[1, ch, hw, hw], -1.0, 1.0);
        let w = on(&dev, 4, &[ch, ch, 3, 3], -0.1, 0.1);
        let flops = (2 * ch * ch * 9 * hw * hw) as u64;
        time(c, "conv2d", format!("cuda_conv2d_f32_{ch}x{hw}x{hw}_k3"), flops, &dev, || ops::conv::conv2d(&x, &w, None, 1, 1).unwrap());
    }
    for batch in [1, 10] {
        let (ch, hw) = (64, 256);
        let x = on(&dev, 3, &[batch, ch, hw, hw], -1.0, 1.0);
        let w = on(&dev, 4, &[ch, ch, 3, 3], -0.1, 0.1);
        let p = Conv2dParams::new([batch, ch, hw, hw], [ch, ch, 3, 3], (1, 1), (1, 1), (1, 1)).unwrap();
        let flops = (2 * batch * ch * ch * 9 * hw * hw) as u64;
        let b = if batch == 1 { String::new() } else { format!("b{batch}_") };
        let y = dev.alloc(fdm::DType::F32, p.output_len()).unwrap();
        let (yp, xp, wp) = (device_ptr(&y, 0), device_ptr(x.cuda_dense().unwrap(), 0), device_ptr(w.cuda_dense().unwrap(), 0));
        time(c, "conv2d", format!("cuda_conv2d_wide_f32_{b}{ch}x{hw}x{hw}_k3"), flops, &dev, || {
            run_on_device(&dev, &conv2d_fwd_wide_launch(yp, xp, wp, 0, &p)).unwrap();
            x.clone()
        });
        if batch > 1 {
            time(c, "conv2d", format!("cuda_conv2d_f32_{b}{ch}x{hw}x{hw}_k3"), flops, &dev, || ops::conv::conv2d(&x, &w, None, 1, 1).unwrap());
            // The input gradient: the gather kernel, and (FDM_CONV_WIDE=1) the flipped-weight
            // forward on the wide kernel, flip included.
            let wt = dev.alloc(fdm::DType::F32, p.weight_len()).unwrap();
            let wtp = device_ptr(&wt, 0);
            let dual = conv2d_bwd_input_as_forward(&p).unwrap();
            time(c, "conv2d", format!("cuda_conv2d_bwd_input_f32_{b}{ch}x{hw}x{hw}_k3"), flops, &dev, || {
                run_on_device(&dev, &conv2d_bwd_input_launch(xp, yp, wp, 0, &p)).unwrap();
                x.clone()
            });
            time(c, "conv2d", format!("cuda_conv2d_bwd_input_wide_f32_{b}{ch}x{hw}x{hw}_k3"), flops, &dev, || {
                run_on_device(&dev, &conv2d_flip_weight_launch(wtp, wp, &p)).unwrap();
                run_on_device(&dev, &conv2d_fwd_wide_launch(xp, yp, wtp, 0, &dual)).unwrap();
                x.clone()
            });
        }
    }
}

/// The bf16-input kernel (`TcPlan::Bf16Inputs`, opt-in) at batch 4: the op as the model would
/// run it (q, k, v cast to bf16, then the kernel), and the kernel alone on inputs already in bf16
/// (what a projection writing bf16 would give it).
fn attention_bf16_inputs(c: &mut Criterion, dev: &CudaDevice, qkv4: &[Tensor], (h, l, d): (usize, usize, usize), flops: u64) {
    let [qs4, ks4, vs4] = [0, 1, 2].map(|i| qkv4[i].cuda_dense().unwrap());
    time(c, "attention", format!("cuda_attention_tc_bf16_inputs_b4_{h}x{l}x{d}"), flops, dev, || {
        tc::attention_fwd_tc_plan(qs4, ks4, vs4, (4, l, h, d), tc::TcPlan::Bf16Inputs).unwrap();
        qkv4[0].clone()
    });
    let rounded = [qs4, ks4, vs4].map(|x| fdm::cuda::ops::gemm_tc::convert(x, fdm::DType::BF16).unwrap());
    let ptrs = [0, 1, 2].map(|i| device_ptr(&rounded[i], 0));
    let o = dev.alloc(fdm::DType::BF16, 4 * l * h * d).unwrap();
    let p = AttentionParams::dense_dim(4, l, h, d);
    let launch = fdm::cuda::ops::attention_fa::attention_fa_launch(device_ptr(&o, 0), true, 0, ptrs, &p);
    time(c, "attention", format!("cuda_attention_fa_kernel_bf16_b4_{h}x{l}x{d}"), flops, dev, || {
        run_on_device(dev, &launch).unwrap();
        qkv4[0].clone()
    });
}

fn attention(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let (h, l, d) = (8, 1024, 64);
    let qkv: Vec<Tensor> = (0..3).map(|i| on(&dev, 5 + i, &[1, l, h * d], -1.0, 1.0)).collect();
    let flops = (2 * 2 * h * l * l * d) as u64;
    time(c, "attention", format!("cuda_attention_f32_{h}x{l}x{d}"), flops, &dev, || ops::attention::attention(&qkv[0], &qkv[1], &qkv[2], h).unwrap());
    // The bf16 tensor-core kernel of `--precision bf16` (f32 tensors in and out, as in the model).
    time(c, "attention", format!("cuda_attention_tc_bf16_{h}x{l}x{d}"), flops, &dev, || ops::attention::attention_bf16(&qkv[0], &qkv[1], &qkv[2], h).unwrap());
    // The same kernel with the keys in 2 ranges (`attention_bf16` runs one pass at this shape:
    // `tc_splits`), and batch 4 (the `-n 4` sampler).
    let [qs, ks, vs] = [0, 1, 2].map(|i| qkv[i].cuda_dense().unwrap());
    time(c, "attention", format!("cuda_attention_tc_bf16_split2_{h}x{l}x{d}"), flops, &dev, || {
        tc::attention_fwd_tc_plan(qs, ks, vs, (1, l, h, d), tc::TcPlan::Split(2)).unwrap();
        qkv[0].clone()
    });
    // Two key groups in one block of 256 threads (`TensorCoreBf16KeyGroups`, not a default yet).
    time(c, "attention", format!("cuda_attention_tc_bf16_kg2_{h}x{l}x{d}"), flops, &dev, || {
        tc::attention_fwd_tc_plan(qs, ks, vs, (1, l, h, d), tc::TcPlan::KeyGroups).unwrap();
        qkv[0].clone()
    });
    let qkv4: Vec<Tensor> = (0..3).map(|i| on(&dev, 15 + i, &[4, l, h * d], -1.0, 1.0)).collect();
    let [qs4, ks4, vs4] = [0, 1, 2].map(|i| qkv4[i].cuda_dense().unwrap());
    time(c, "attention", format!("cuda_attention_tc_bf16_b4_{h}x{l}x{d}"), 4 * flops, &dev, || {
        tc::attention_fwd_tc_plan(qs4, ks4, vs4, (4, l, h, d), tc::TcPlan::OnePass).unwrap();
        qkv4[0].clone()
    });
    time(c, "attention", format!("cuda_attention_tc_bf16_kg2_b4_{h}x{l}x{d}"), 4 * flops, &dev, || {
        tc::attention_fwd_tc_plan(qs4, ks4, vs4, (4, l, h, d), tc::TcPlan::KeyGroups).unwrap();
        qkv4[0].clone()
    });
    // 8 warps and 128 queries per block (`TcPlan::Wide`, the default at batch 4), at batch 4 and 1.
    time(c, "attention", format!("cuda_attention_tc_bf16_wide_b4_{h}x{l}x{d}"), 4 * flops, &dev, || {
        tc::attention_fwd_tc_plan(qs4, ks4, vs4, (4, l, h, d), tc::TcPlan::Wide).unwrap();
        qkv4[0].clone()
    });
    time(c, "attention", format!("cuda_attention_tc_bf16_wide_{h}x{l}x{d}"), flops, &dev, || {
        tc::attention_fwd_tc_plan(qs, ks, vs, (1, l, h, d), tc::TcPlan::Wide).unwrap();
        qkv[0].clone()
    });
    attention_bf16_inputs(c, &dev, &qkv4, (h, l, d), 4 * flops);
    // The one-thread-per-query kernel (reference of the split-keys one that `attention` runs).
    let (o, lse) = (dev.alloc(fdm::DType::F32, l * h * d).unwrap(), dev.alloc(fdm::DType::F32, h * l).unwrap());
    let ptr = |t: &Tensor| device_ptr(t.cuda_dense().unwrap(), 0);
    let launch = attention_fwd_kernel_launch(
        AttentionKernel::PerQuery,
        d,
        device_ptr(&o, 0),
        device_ptr(&lse, 0),
        ptr(&qkv[0]),
        ptr(&qkv[1]),
        ptr(&qkv[2]),
        &AttentionParams::dense_dim(1, l, h, d),
    );
    time(c, "attention", format!("cuda_attention_perquery_f32_{h}x{l}x{d}"), flops, &dev, || {
        run_on_device(&dev, &launch).unwrap();
        qkv[0].clone()
    });
}

fn codebook(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let (n, codes, dim) = (1024, 1024, 256);
    let z = on(&dev, 8, &[n, dim], -1.0, 1.0);
    let cb = on(&dev, 9, &[codes, dim], -1.0, 1.0);
    // Host selectors, as the quantizer passes them (no read-back before the search).
    let half = vec![CODEBOOK_HALF_UNMASKED; n];
    let flops = (2 * n * (codes / 2) * dim) as u64;
    time(c, "codebook", format!("cuda_codebook_argmin_f32_{n}x{}x{dim}", codes / 2), flops, &dev, || ops::codebook::codebook_argmin_halves(&z, &cb, &half).unwrap());
    let mixed: Vec<u32> = (0..n).map(|i| if i % 3 == 0 { CODEBOOK_HALF_MASKED } else { CODEBOOK_HALF_UNMASKED }).collect();
    time(c, "codebook", format!("cuda_codebook_argmin_mixed_f32_{n}x{}x{dim}", codes / 2), flops, &dev, || ops::codebook::codebook_argmin_halves(&z, &cb, &mixed).unwrap());
    let offsets = Tensor::from_u32(vec![0; n], &[n]).unwrap().to_device(&Device::Cuda(dev.clone())).unwrap();
    let shape = fdm::cuda::ops::codebook::ArgminShape { n, k: codes, d: dim, span: codes / 2 };
    let (zs, cbs, offs) = (z.cuda_dense().unwrap(), cb.cuda_dense().unwrap(), offsets.cuda_dense().unwrap());
    time(c, "codebook", format!("cuda_codebook_argmin_kernels_f32_{n}x{}x{dim}", codes / 2), flops, &dev, || {
        fdm::cuda::ops::codebook::codebook_argmin(zs, cbs, Some(offs), shape).unwrap();
        z.clone()
    });
}

fn sampling(c: &mut Criterion) {
    let Some(dev) = device() else { return };
    let (rows, v, k) = (1024, 512, 50);
    let logits = on(&dev, 10, &[rows, v], -5.0, 5.0);
    let u = on(&dev, 11, &[rows], 0.0, 0.999);
    time(c, "sampling", format!("cuda_topk_sample_f32_{rows}x{v}"), rows as u64, &dev, || {
        let s = topk_sample_rows(logits.cuda_dense().unwrap(), u.cuda_dense().unwrap(), 0, RowSource::All, rows, (v, k), 1.0).unwrap();
        Tensor::from_cuda(s, &[rows]).unwrap()
    });
}

criterion_group!(benches, gemm, linear_f32, linear_bf16, conv, attention, codebook, sampling);
criterion_main!(benches);
