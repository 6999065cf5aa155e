// optim.cu: optimiser updates on flat f32 buffers, in place (spec §6.0-§6.1; cpu/ops/optim.rs,
// codebook.rs). A kernel here writes its inputs: each element is read and written by one thread.
//   adam_step_f32(param, grad, m, v, AdamParams)
//       One Adam/AdamW update of n elements, torch.optim.Adam's single-tensor path operation by
//       operation in f32 with the step-dependent scalars folded on the host (params/optim.rs):
//         AdamW: param *= 1 - lr*wd            Adam with wd: g += wd * param
//         m = lerp(m, g, 1 - beta1)            (PyTorch's two-sided lerp)
//         v = v*beta2 + (1 - beta2)*g*g
//         param += (-lr/(1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//       Every operation is an explicitly rounded intrinsic (__fmul_rn, __fadd_rn, __fdiv_rn and
//       an IEEE sqrt), so the compiler cannot fuse a multiply-add and the GPU gives the CPU's
//       bits exactly.
//   ema_update_f32(ema, param, n, decay)     ema = decay*ema + (1 - decay)*param  (same rounding)
//   scale_f32(x, n, s)                       x *= s         accumulate_f32(acc, g, n)  acc += g
//   sq_norm_partial_f32(part, x, n) / sq_norm_finish_f32(out, part, parts)
//       sum of x^2 in f64 (gradient clipping by global norm): per-block partials in a fixed
//       shared-memory tree, then one block; out[0..2] = (hi, lo) floats of the f64 sum.
//   codebook_stats_f32(counts, sums, z, idx, n, codes, dim)          spec §2.3 (EMA quantiser)
//       counts[k] = #rows with idx == k, sums[k, :] = sum of those rows of z [n, dim], in f64 in
//       row order (one block per code scans idx in tiles, compacts the hits in row order with
//       warp ballots); no atomics. Indices >= codes are ignored (the launcher checks them).
//   codebook_ema_size_f32(cluster_size, scratch, counts, codes, decay, eps)
//       One block: cluster_size = cluster_size*decay + (1 - decay)*counts; total = sum (f64, as
//       f32); scratch = (total, total + (float)(codes*eps)).
//   codebook_ema_embed_f32(embedding, embedding_avg, sums, cluster_size, scratch, codes, dim, decay, eps)
//       embedding_avg = avg*decay + (1 - decay)*sums;
//       embedding[k] = embedding_avg[k] / ((cluster_size[k] + eps) / (total + K eps) * total).
// Launch: 256 threads per block; grid-stride element loops; the finish / size kernels one block.

#ifdef FDM_EMU
// Host twins of the rounded intrinsics (x86-64 without FMA never fuses, so plain operators are
// exactly the rounded operations).
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
#endif

#define OPT_THREADS 256
#define OPT_COLS 4

#define OPT_LOOP(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

struct AdamParams {
  unsigned n, decoupled;
  float beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt;
};

// PyTorch's lerp(start, end, w) in f32.
static __device__ __forceinline__ float torch_lerp(float start, float end, float w) {
  return fabsf(w) < 0.5f ? __fadd_rn(start, __fmul_rn(w, __fsub_rn(end, start)))
                         : __fsub_rn(end, __fmul_rn(__fsub_rn(end, start), __fsub_rn(1.0f, w)));
}

extern "C" __global__ void adam_step_f32(float* __restrict__ param, const float* __restrict__ grad,
                                         float* __restrict__ m, float* __restrict__ v, AdamParams p) {
  OPT_LOOP(i, p.n) {
    float prm = param[i], g = grad[i];
    if (p.decoupled) {
      prm = __fmul_rn(prm, p.decay_factor);
    } else if (p.weight_decay != 0.0f) {
      g = __fadd_rn(g, __fmul_rn(p.weight_decay, prm));
    }
    const float mi = torch_lerp(m[i], g, p.one_minus_beta1);
    const float vi = __fadd_rn(__fmul_rn(v[i], p.beta2), __fmul_rn(__fmul_rn(p.one_minus_beta2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(sqrtf(vi), p.bias_correction2_sqrt), p.eps);
    param[i] = __fadd_rn(prm, __fdiv_rn(__fmul_rn(-p.step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
  }
}

extern "C" __global__ void ema_update_f32(float* __restrict__ ema, const float* __restrict__ param, unsigned n,
                                          float decay) {
  const float keep = __fsub_rn(1.0f, decay);
  OPT_LOOP(i, n) ema[i] = __fadd_rn(__fmul_rn(decay, ema[i]), __fmul_rn(keep, param[i]));
}

extern "C" __global__ void scale_f32(float* __restrict__ x, unsigned n, float s) {
  OPT_LOOP(i, n) x[i] = __fmul_rn(x[i], s);
}

extern "C" __global__ void accumulate_f32(float* __restrict__ acc, const float* __restrict__ g, unsigned n) {
  OPT_LOOP(i, n) acc[i] = __fadd_rn(acc[i], g[i]);
}

// Block-wide f64 sum over OPT_THREADS threads, a fixed tree; every thread gets the result.
static __device__ double opt_block_sum(double v, double* s) {
  s[threadIdx.x] = v;
  __syncthreads();
  for (unsigned half = OPT_THREADS / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  const double r = s[0];
  __syncthreads();
  return r;
}

static __device__ __forceinline__ void store_f64_pair(float* out, double v) {
  const float hi = (float)v;
  out[0] = hi;
  out[1] = (float)(v - (double)hi);
}

extern "C" __global__ void __launch_bounds__(OPT_THREADS)
    sq_norm_partial_f32(float* __restrict__ part, const float* __restrict__ x, unsigned n) {
  __shared__ double s[OPT_THREADS];
  double acc = 0.0;
  OPT_LOOP(i, n) acc += (double)x[i] * (double)x[i];
  acc = opt_block_sum(acc, s);
  if (threadIdx.x == 0) store_f64_pair(part + 2 * blockIdx.x, acc);
}

extern "C" __global__ void __launch_bounds__(OPT_THREADS)
    sq_norm_finish_f32(float* __restrict__ out, const float* __restrict__ part, unsigned parts) {
  __shared__ double s[OPT_THREADS];
  double acc = 0.0;
  for (unsigned k = threadIdx.x; k < parts; k += OPT_THREADS) acc += (double)part[2 * k] + (double)part[2 * k + 1];
  acc = opt_block_sum(acc, s);
  if (threadIdx.x == 0) store_f64_pair(out, acc);
}

extern "C" __global__ void __launch_bounds__(OPT_THREADS)
    codebook_stats_f32(float* __restrict__ counts, float* __restrict__ sums, const float* __restrict__ z,
                       const unsigned* __restrict__ idx, unsigned n, unsigned codes, unsigned dim) {
  __shared__ unsigned hits[OPT_THREADS];
  __shared__ unsigned warp_hits[OPT_THREADS / 32];
  const unsigned t = threadIdx.x, lane = t & 31, warp = t >> 5, nwarps = blockDim.x >> 5;
  for (unsigned k = blockIdx.x; k < codes; k += gridDim.x) {
    // c0 == 0 runs once even for dim == 0, so every code gets its count.
    for (unsigned c0 = 0; c0 == 0 || c0 < dim; c0 += OPT_COLS * blockDim.x) {
      double acc[OPT_COLS];
#pragma unroll
      for (int q = 0; q < OPT_COLS; ++q) acc[q] = 0.0;
      unsigned count = 0;
      for (unsigned i0 = 0; i0 < n; i0 += blockDim.x) {
        const unsigned i = i0 + t;
        const bool hit = i < n && idx[i] == k;
        const unsigned mask = __ballot_sync(FDM_FULL_MASK, hit);
        if (lane == 0) warp_hits[warp] = __popc(mask);
        __syncthreads();
        unsigned before = 0, total = 0;
        for (unsigned w = 0; w < nwarps; ++w) {
          before += w < warp ? warp_hits[w] : 0u;
          total += warp_hits[w];
        }
        if (hit) hits[before + __popc(mask & ((1u << lane) - 1u))] = i;
        __syncthreads();
        count += total;
        for (unsigned h = 0; h < total; ++h) {
          const float* zi = z + (size_t)hits[h] * dim;
#pragma unroll
          for (int q = 0; q < OPT_COLS; ++q) {
            const unsigned c = c0 + t + q * blockDim.x;
            if (c < dim) acc[q] += (double)zi[c];
          }
        }
        __syncthreads();  // hits and warp_hits are rewritten by the next tile
      }
#pragma unroll
      for (int q = 0; q < OPT_COLS; ++q) {
        const unsigned c = c0 + t + q * blockDim.x;
        if (c < dim) sums[(size_t)k * dim + c] = (float)acc[q];
      }
      if (c0 == 0 && t == 0) counts[k] = (float)count;
    }
  }
}

extern "C" __global__ void __launch_bounds__(OPT_THREADS)
    codebook_ema_size_f32(float* __restrict__ cluster_size, float* __restrict__ scratch,
                          const float* __restrict__ counts, unsigned codes, float decay, float eps) {
  __shared__ double s[OPT_THREADS];
  const float keep = __fsub_rn(1.0f, decay);
  double total = 0.0;
  for (unsigned k = threadIdx.x; k < codes; k += OPT_THREADS) {
    const float c = __fadd_rn(__fmul_rn(cluster_size[k], decay), __fmul_rn(keep, counts[k]));
    cluster_size[k] = c;
    total += (double)c;
  }
  total = opt_block_sum(total, s);
  if (threadIdx.x == 0) {
    const float tot = (float)total;
    scratch[0] = tot;
    scratch[1] = __fadd_rn(tot, (float)((double)codes * (double)eps));
  }
}

extern "C" __global__ void codebook_ema_embed_f32(float* __restrict__ embedding, float* __restrict__ embedding_avg,
                                                  const float* __restrict__ sums,
                                                  const float* __restrict__ cluster_size,
                                                  const float* __restrict__ scratch, unsigned codes, unsigned dim,
                                                  float decay, float eps) {
  const float keep = __fsub_rn(1.0f, decay), total = scratch[0], denom = scratch[1];
  OPT_LOOP(e, codes * dim) {
    const unsigned k = e / dim;
    const float avg = __fadd_rn(__fmul_rn(embedding_avg[e], decay), __fmul_rn(keep, sums[e]));
    const float smoothed = __fmul_rn(__fdiv_rn(__fadd_rn(cluster_size[k], eps), denom), total);
    embedding_avg[e] = avg;
    embedding[e] = __fdiv_rn(avg, smoothed);
  }
}
