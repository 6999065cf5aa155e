// conv2d_backward.cu: gradients of the 2-D convolution of conv2d.cu (NCHW, weight [O, C, KH, KW],
// stride / zero padding / dilation, one group; spec §2 codec, §4 FDM), without atomics, so every
// result is bit-reproducible from run to run. With the forward
//     y[n, o, oh, ow] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, oh sh - ph + i dh, ow sw - pw + j dw]
// and the output gradient g [N, O, OH, OW]:
//   conv2d_bwd_input_f32(dx, g, w, bias, p)      dx [N, C, H, W]
//       dx[n, c, ih, iw] = bias[c] + sum_{o, i, j} w[o, c, i, j] g[n, o, oh, ow]
//       over the taps with oh sh = ih + ph - i dh (and likewise w) inside the output.
//       Implicit GEMM (gather form), split by stride phase: a tap reaches an input row ih only when
//       the stride divides ih + ph - i dh, which depends only on ih mod sh, so the input pixels
//       with one (ih mod sh, iw mod sw) share one tap set (about KH/sh x KW/sw taps). blockIdx.z
//       is the phase; rows = that phase's pixels (n, ih, iw), columns = input channels c,
//       reduction k = (o, tap) over the phase's taps only, so a stride-2 4x4 kernel costs 2x2 taps
//       per pixel, not 4x4 mostly-zero ones. Taps that fall outside the output read 0. bias may be
//       null; it exists so that the transposed convolution's forward (conv_transpose2d: y = this
//       with x as g) can add its own. Launch: grid (ceil(N ceil(H/sh) ceil(W/sw) / 64),
//       ceil(C / 64), sh sw), 256 threads; blocks past their phase's pixels exit at once.
//   conv2d_bwd_weight_f32(part, x, g, p, chunk)   part [splits, O, C KH KW]
//       part[z, o, (c, i, j)] = sum over output positions m = (n, oh, ow) in
//       [z chunk, (z + 1) chunk) of g[n, o, oh, ow] x[n, c, oh sh - ph + i dh, ow sw - pw + j dw].
//       GEMM [O x M] . [M x K] with the reduction over M = N OH OW; each block owns one 64 x 64
//       tile of dw and loops over its chunk of M in slices of 16 (split-K over blockIdx.z so that
//       small weights still fill the GPU). Launch: grid (ceil(K / 64), ceil(O / 64), splits).
//   conv2d_bwd_weight_sum_f32(dw, part, len, splits)
//       dw[e] = sum_{z = 0 .. splits-1} part[z len + e] in z order (the fixed-order second pass of
//       the split-K; skipped by the launcher when splits == 1). Grid-stride, 256 threads.
//   conv2d_bwd_bias_f32(db, g, n, channels, plane)
//       db[o] = sum_{n, pixel} g[n, o, pixel]: one block of 256 threads per channel, a fixed
//       per-thread order then block_sum (fixed order too). Grid (channels), 256 threads.
//   conv2d_flip_weight_f32(wt, w, o, c, kh, kw)   wt [C, O, KH, KW]
//       wt[c, o, i, j] = w[o, c, KH-1-i, KW-1-j]: with it, the input gradient of a stride-1
//       convolution is the forward convolution of g with wt, padding dil (K-1) - pad (same
//       dilation), which the launcher runs on conv2d.cu's 128 x 64 tile kernel when that is asked
//       for (`conv2d_bwd_input_as_forward`). Grid-stride over the weight, 256 threads.
// The tiled kernels share the register tiling of conv2d.cu / gemm.cu (tile_fma_4x4, common.cuh):
// 4 x 4 outputs per thread, reduction slices of 16 through 2 x 4.2 KB of static shared memory.

#define CBW_TILE FDM_TILE
#define CBW_BK 16
#define CBW_THREADS 256

// Mirrors `Conv2dParams` in src/cuda/ops/conv2d.rs (the same struct as conv2d.cu's).
struct Conv2dParams {
  unsigned n, c, h, w;
  unsigned o, kh, kw;
  unsigned oh, ow;
  unsigned stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// One axis of a stride phase of the input gradient: the input positions i = residue + stride a
// (a < count) and the kernel taps that reach them, tap = first + step b (b < taps). A tap reaches
// input position i from some output position exactly when tap dil = i + pad (mod stride), which
// depends only on i mod stride, so all positions of one residue share their taps.
struct PhaseAxis {
  unsigned residue, count, first, step, taps;
};

static __device__ __forceinline__ PhaseAxis phase_axis(unsigned residue, unsigned len, unsigned stride, unsigned pad,
                                                       unsigned dil, unsigned k) {
  PhaseAxis a;
  a.residue = residue;
  a.count = residue < len ? (len - residue + stride - 1) / stride : 0;
  const unsigned target = (residue + pad) % stride;
  // tap dil mod stride repeats with period step = stride / gcd(dil, stride); search one period.
  a.step = 1;
  while ((a.step * dil) % stride != 0) ++a.step;
  a.first = k;  // no tap reaches this residue (possible when gcd(dil, stride) > 1): taps = 0
  for (unsigned i = 0; i < a.step; ++i)
    if ((i * dil) % stride == target) {
      a.first = i;
      break;
    }
  a.taps = a.first < k ? (k - a.first + a.step - 1) / a.step : 0;
  return a;
}

extern "C" __global__ void __launch_bounds__(CBW_THREADS)
    conv2d_bwd_input_f32(float* __restrict__ dx, const float* __restrict__ g, const float* __restrict__ w,
                         const float* __restrict__ bias, Conv2dParams p) {
  __shared__ float as[CBW_BK][CBW_TILE + 1];  // g gathered: [k][pixel]
  __shared__ float bs[CBW_BK][CBW_TILE + 1];  // w: [k][input channel]
  const unsigned t = threadIdx.x, tx = t % 16, ty = t / 16;
  // This block's stride phase: input pixels with (ih mod stride_h, iw mod stride_w) fixed.
  const PhaseAxis ah = phase_axis(blockIdx.z / p.stride_w, p.h, p.stride_h, p.pad_h, p.dil_h, p.kh);
  const PhaseAxis aw = phase_axis(blockIdx.z % p.stride_w, p.w, p.stride_w, p.pad_w, p.dil_w, p.kw);
  const unsigned plane = ah.count * aw.count, M = p.n * plane;  // pixels of the phase
  const unsigned taps = ah.taps * aw.taps, K = p.o * taps;     // reduction of the phase
  const unsigned hw = p.h * p.w, ohw = p.oh * p.ow;
  const unsigned m0 = blockIdx.x * CBW_TILE, c0 = blockIdx.y * CBW_TILE;
  if (m0 >= M) return;  // the grid covers the largest phase; the whole block leaves together

  // This thread always loads pixel column t % 64 of the A tile: decode it once.
  const unsigned lm = m0 + t % CBW_TILE;
  const bool m_ok = lm < M;
  const unsigned ln = m_ok ? lm / plane : 0, lrem = m_ok ? lm % plane : 0;
  const int th0 = (int)(ah.residue + p.stride_h * (lrem / aw.count) + p.pad_h);
  const int tw0 = (int)(aw.residue + p.stride_w * (lrem % aw.count) + p.pad_w);
  const float* g_img = g + (size_t)ln * p.o * ohw;
  // The output row of tap i is (th0 - i dil_h) / stride_h, and th0 and i dil_h leave the same
  // remainder mod stride_h (that is what puts i in this phase's tap set), so it equals
  // th0 / stride_h - (i dil_h) / stride_h exactly: one division per thread here and one per tap
  // below (likewise for columns).
  const int oh0 = th0 / (int)p.stride_h, ow0 = tw0 / (int)p.stride_w;
  // Each warp loads the A rows kk = t / 64 + 4 q (q = 0..3): lane q decodes k0 + that kk into
  // (output channel, tap row and column offsets) once per slice and the warp shares them.
  const unsigned lane = t & 31;

  float acc[4][4];
  zero_tile_4x4(acc);
  for (unsigned k0 = 0; k0 < K; k0 += CBW_BK) {
    unsigned my_o = 0xffffffffu;  // past the reduction: zeros
    int my_dh = 0, my_dw = 0;
    {
      const unsigned k = k0 + t / CBW_TILE + 4 * (lane & 3);
      if (k < K) {
        const unsigned r = k % taps;
        my_o = k / taps;
        my_dh = (int)(((ah.first + ah.step * (r / aw.taps)) * p.dil_h) / p.stride_h);
        my_dw = (int)(((aw.first + aw.step * (r % aw.taps)) * p.dil_w) / p.stride_w);
      }
    }
#pragma unroll
    for (int q = 0; q < CBW_TILE * CBW_BK / CBW_THREADS; ++q) {
      const unsigned kk = t / CBW_TILE + 4 * q;
      const unsigned o = __shfl_sync(FDM_FULL_MASK, my_o, q);
      const int oh = oh0 - __shfl_sync(FDM_FULL_MASK, my_dh, q), ow = ow0 - __shfl_sync(FDM_FULL_MASK, my_dw, q);
      float v = 0.0f;
      if (m_ok && o != 0xffffffffu && oh >= 0 && ow >= 0 && oh < (int)p.oh && ow < (int)p.ow)
        v = g_img[(size_t)o * ohw + (unsigned)oh * p.ow + (unsigned)ow];
      as[kk][t % CBW_TILE] = v;
    }
#pragma unroll
    for (int q = 0; q < CBW_TILE * CBW_BK / CBW_THREADS; ++q) {
      const unsigned e = t + CBW_THREADS * q, cc = e / CBW_BK, kk = e % CBW_BK;
      const unsigned c = c0 + cc, k = k0 + kk;
      float v = 0.0f;
      if (c < p.c && k < K) {
        const unsigned o = k / taps, r = k % taps;
        const unsigned i = ah.first + ah.step * (r / aw.taps), j = aw.first + aw.step * (r % aw.taps);
        v = w[(((size_t)o * p.c + c) * p.kh + i) * p.kw + j];
      }
      bs[kk][cc] = v;
    }
    __syncthreads();
    tile_fma_4x4<CBW_BK>(acc, as, bs, tx, ty);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const unsigned m = m0 + tx + 16 * i;
    if (m >= M) continue;
    const unsigned n = m / plane, rem = m % plane;
    const unsigned pix = (ah.residue + p.stride_h * (rem / aw.count)) * p.w + aw.residue + p.stride_w * (rem % aw.count);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned c = c0 + ty + 16 * j;
      if (c >= p.c) continue;
      dx[((size_t)n * p.c + c) * hw + pix] = acc[i][j] + (bias ? bias[c] : 0.0f);
    }
  }
}

extern "C" __global__ void __launch_bounds__(CBW_THREADS)
    conv2d_bwd_weight_f32(float* __restrict__ part, const float* __restrict__ x, const float* __restrict__ g,
                          Conv2dParams p, unsigned chunk) {
  __shared__ float as[CBW_BK][CBW_TILE + 1];  // g: [m][output channel]
  __shared__ float bs[CBW_BK][CBW_TILE + 1];  // x gathered: [m][k = (c, i, j)]
  const unsigned t = threadIdx.x, tx = t % 16, ty = t / 16;
  const unsigned khw = p.kh * p.kw, K = p.c * khw;
  const unsigned ohw = p.oh * p.ow, M = p.n * ohw;
  const unsigned k_tile = blockIdx.x * CBW_TILE, o_tile = blockIdx.y * CBW_TILE;
  const unsigned m_begin = blockIdx.z * chunk, m_end = min(M, m_begin + chunk);

  // The reduction column this thread loads is t % 16 of every slice; its 4 rows of each tile are
  // t / 16 + 16 q. Decode the weight taps (c, i dil, j dil) of its B rows once.
  const unsigned mm = t % CBW_BK;
  unsigned tap_c[4];
  int tap_dh[4], tap_dw[4];
  bool tap_ok[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const unsigned k = k_tile + t / CBW_BK + 16 * q, r = k % khw;
    tap_ok[q] = k < K;
    tap_c[q] = tap_ok[q] ? k / khw : 0;
    tap_dh[q] = (int)((r / p.kw) * p.dil_h) - (int)p.pad_h;
    tap_dw[q] = (int)((r % p.kw) * p.dil_w) - (int)p.pad_w;
  }

  float acc[4][4];
  zero_tile_4x4(acc);
  for (unsigned m0 = m_begin; m0 < m_end; m0 += CBW_BK) {
    const unsigned m = m0 + mm;
    const bool m_ok = m < m_end;
    const unsigned n = m_ok ? m / ohw : 0, pix = m_ok ? m % ohw : 0;
    const int ih0 = (int)((pix / p.ow) * p.stride_h), iw0 = (int)((pix % p.ow) * p.stride_w);
    const float* x_img = x + (size_t)n * p.c * p.h * p.w;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const unsigned o = o_tile + t / CBW_BK + 16 * q;
      as[mm][t / CBW_BK + 16 * q] = (m_ok && o < p.o) ? g[((size_t)n * p.o + o) * ohw + pix] : 0.0f;
      const int ih = ih0 + tap_dh[q], iw = iw0 + tap_dw[q];
      const bool in = m_ok && tap_ok[q] && ih >= 0 && ih < (int)p.h && iw >= 0 && iw < (int)p.w;
      bs[mm][t / CBW_BK + 16 * q] = in ? x_img[((size_t)tap_c[q] * p.h + ih) * p.w + iw] : 0.0f;
    }
    __syncthreads();
    tile_fma_4x4<CBW_BK>(acc, as, bs, ty, tx);
    __syncthreads();
  }

  float* out = part + (size_t)blockIdx.z * p.o * K;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const unsigned o = o_tile + ty + 16 * i;
    if (o >= p.o) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned k = k_tile + tx + 16 * j;
      if (k < K) out[(size_t)o * K + k] = acc[i][j];
    }
  }
}

extern "C" __global__ void __launch_bounds__(CBW_THREADS)
    conv2d_bwd_weight_sum_f32(float* __restrict__ dw, const float* __restrict__ part, unsigned len,
                              unsigned splits) {
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (unsigned z = 0; z < splits; ++z) s += part[(size_t)z * len + e];
    dw[e] = s;
  }
}

extern "C" __global__ void __launch_bounds__(CBW_THREADS)
    conv2d_bwd_bias_f32(float* __restrict__ db, const float* __restrict__ g, unsigned n, unsigned channels,
                        unsigned plane) {
  __shared__ float scratch[32];
  const unsigned o = blockIdx.x;
  float s = 0.0f;
  for (unsigned b = 0; b < n; ++b) {
    const float* row = g + ((size_t)b * channels + o) * plane;
    for (unsigned e = threadIdx.x; e < plane; e += blockDim.x) s += row[e];
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) db[o] = s;
}

extern "C" __global__ void conv2d_flip_weight_f32(float* __restrict__ wt, const float* __restrict__ w, unsigned o,
                                                  unsigned c, unsigned kh, unsigned kw) {
  const unsigned taps = kh * kw, len = o * c * taps;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x) {
    // e indexes w = [o, c, i, j]; its value goes to wt[c, o, kh-1-i, kw-1-j].
    const unsigned tap = e % taps, oc = e / taps, oi = oc / c, ci = oc % c;
    const unsigned i = tap / kw, j = tap % kw;
    wt[((size_t)ci * o + oi) * taps + (kh - 1 - i) * kw + (kw - 1 - j)] = w[e];
  }
}
