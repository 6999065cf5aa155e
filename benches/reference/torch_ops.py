#!/usr/bin/env python3
"""The shapes of `cargo bench --bench cuda_ops` timed in PyTorch (eager) on the same GPU, for the
ratios in BENCHMARKS.md (issue targets: GEMM and conv >= 0.8x cuBLAS/cuDNN, attention >= 1x SDPA,
codebook argmin and top-K sampling >= 3x the unfused PyTorch versions).

  torch_gemm_f32_MxNxK           a @ b (cuBLAS), TF32 off unless --tf32
  torch_linear_bf16_MxNxK        F.linear(x, w) with x and w in bf16 (cuBLAS tensor cores)
  torch_conv2d_f32_CxHxW_k3      F.conv2d 3x3 s1 p1 C->C (cuDNN, benchmark mode on); _b10_ at batch 10
  torch_attention_f32_HxLxD      F.scaled_dot_product_attention (flash / memory-efficient kernel)
  torch_attention_bf16_HxLxD     the same in bf16 (flash attention on tensor cores)
  torch_codebook_argmin_f32_NxKxD torch.cdist + argmin (the official quantizer's way)
  torch_topk_sample_f32_RxV      topk(50) + softmax + multinomial (the official sampler's way)

Each: best of N timed runs (CUDA events, after a warm-up), GFLOP/s = 2 x MACs / time (rows/s for
the sampler). Prints one line per op; --json FILE also writes them.
Run: python3 benches/reference/torch_ops.py [--runs N] [--tf32] [--device cuda|cpu] [--json FILE]
(--device cpu only checks the script; its numbers are not the reference.)"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def timer(device, runs):
    def best(f):
        f()
        if device == "cuda":
            torch.cuda.synchronize()
        times = []
        for _ in range(runs):
            if device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                f()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t = time.perf_counter()
                f()
                times.append(time.perf_counter() - t)
        return min(times)

    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in matmul and conv (PyTorch's default for cuDNN conv)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    best = timer(dev, args.runs)
    g = torch.Generator(device=dev).manual_seed(0)
    rand = lambda *shape, lo=-1.0, hi=1.0: torch.rand(*shape, generator=g, device=dev) * (hi - lo) + lo
    results = []

    def report(name, units, secs, unit="GFLOP/s"):
        rate = units / secs / (1e9 if unit == "GFLOP/s" else 1e3)
        results.append({"name": name, "ms": secs * 1e3, unit: rate})
        print(f"{name:44s} {secs * 1e3:9.3f} ms {rate:10.1f} {unit}")

    with torch.no_grad():
        for m, n, k in [(1024, 1024, 1024), (1024, 2048, 512), (1024, 1536, 512)]:
            a, b = rand(m, k), rand(k, n)
            report(f"torch_gemm_f32_{m}x{n}x{k}", 2 * m * n * k, best(lambda: a @ b))
        for m, n, k in [(1024, 1024, 1024), (1024, 2048, 512), (1024, 1536, 512)]:
            x, w = rand(m, k).bfloat16(), rand(n, k).bfloat16()
            report(f"torch_linear_bf16_{m}x{n}x{k}", 2 * m * n * k, best(lambda: F.linear(x, w)))
        for ch, hw in [(256, 32), (64, 256)]:
            x, w = rand(1, ch, hw, hw), rand(ch, ch, 3, 3, lo=-0.1, hi=0.1)
            report(f"torch_conv2d_f32_{ch}x{hw}x{hw}_k3", 2 * ch * ch * 9 * hw * hw, best(lambda: F.conv2d(x, w, padding=1)))
        # Batch 10 (phase 1a's batch; ours: cuda_conv2d_{,wide_}f32_b10_*).
        x10, w64 = rand(10, 64, 256, 256), rand(64, 64, 3, 3, lo=-0.1, hi=0.1)
        report("torch_conv2d_f32_b10_64x256x256_k3", 10 * 2 * 64 * 64 * 9 * 256 * 256, best(lambda: F.conv2d(x10, w64, padding=1)))
        h, l, d = 8, 1024, 64
        q, k_, v = (rand(1, h, l, d) for _ in range(3))
        report(f"torch_attention_f32_{h}x{l}x{d}", 2 * 2 * h * l * l * d, best(lambda: F.scaled_dot_product_attention(q, k_, v)))
        qb, kb, vb = q.bfloat16(), k_.bfloat16(), v.bfloat16()
        report(f"torch_attention_bf16_{h}x{l}x{d}", 2 * 2 * h * l * l * d, best(lambda: F.scaled_dot_product_attention(qb, kb, vb)))
        # Batch 4: the `-n 4` sampler's shape (ours: cuda_attention_tc_bf16_b4_*).
        q4, k4, v4 = (rand(4, h, l, d).bfloat16() for _ in range(3))
        report(f"torch_attention_bf16_b4_{h}x{l}x{d}", 4 * 2 * 2 * h * l * l * d, best(lambda: F.scaled_dot_product_attention(q4, k4, v4)))
        n, codes, dim = 1024, 512, 256
        z, cb = rand(n, dim), rand(codes, dim)
        report(f"torch_codebook_argmin_f32_{n}x{codes}x{dim}", 2 * n * codes * dim, best(lambda: torch.cdist(z, cb).argmin(dim=1)))
        rows, vocab = 1024, 512
        logits = rand(rows, vocab, lo=-5.0, hi=5.0)

        def topk_sample():
            val, idx = logits.topk(50, dim=-1)
            pick = torch.multinomial(F.softmax(val, dim=-1), 1, generator=g)
            return idx.gather(-1, pick)

        report(f"torch_topk_sample_f32_{rows}x{vocab}", rows, best(topk_sample), unit="krows/s")
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; tf32 {'on' if args.tf32 else 'off'}; best of {args.runs}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "tf32": args.tf32, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
