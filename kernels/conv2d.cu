// conv2d.cu: 2-D convolution forward as an implicit GEMM (no im2col buffer in memory).
//   conv2d_fwd_f32(y, x, w, bias, p)
//       x: [N, C, H, W] (NCHW), w: [O, C, KH, KW] (spec §0), bias: [O] or null,
//       y: [N, O, OH, OW] with OH = (H + 2 pad_h - dil_h (KH - 1) - 1) / stride_h + 1 (same for W)
//       y[n, o, oh, ow] = bias[o] + sum_{c, kh, kw} w[o, c, kh, kw] *
//                          x[n, c, oh stride_h - pad_h + kh dil_h, ow stride_w - pad_w + kw dil_w]
//       (zero outside the image: zero padding). One group (groups = 1), as every conv of the
//       codec and FDM (spec §2, §4).
// As a GEMM: rows m = (n, oh, ow) output pixels, columns = output channels o, reduction
// k = (c, kh, kw) of length C KH KW; the weight is already the [O, K] row-major "B" of C = A B^T,
// and A[m, k] is read from x on the fly. Tiles as in gemm.cu: a 64-pixel x 64-channel output tile
// per block of 256 threads, k in slices of 16 through shared memory, 4 x 4 outputs per thread at
// pixels tx + 16 i and channels ty + 16 j (consecutive threads -> consecutive pixels, so loads of
// x and stores of y coalesce along ow). Launch: grid (ceil(N OH OW / 64), ceil(O / 64)), 256 threads.
// conv2d_fwd_splitk_f32 + conv2d_splitk_sum_f32 (below): the reduction split over grid z into
// partial outputs, then summed in split order with the bias: for grids too small to fill the GPU
// (FDM's and the decoder's 256-channel convolutions at 32 x 32 and batch 1: 64 blocks, each over
// K = 2304; the launcher's `conv2d_fwd_k_splits`).

#define CONV_BM FDM_TILE  // covered by the 4 x 4 register tiles of tile_fma_4x4 (common.cuh)
#define CONV_BN FDM_TILE
#define CONV_BK 16
#define CONV_THREADS 256

// Mirrors `Conv2dParams` in src/cuda/ops/conv2d.rs.
struct Conv2dParams {
  unsigned n, c, h, w;
  unsigned o, kh, kw;
  unsigned oh, ow;
  unsigned stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// Where output pixel m (of N OH OW) reads its input: its image, and the input row and column
// under its kernel's top-left tap; ok is false past the last pixel (its loads read zeros).
struct ConvPixel {
  const float* img;
  int ih0, iw0;
  bool ok;
};

static __device__ __forceinline__ ConvPixel conv_pixel(const float* __restrict__ x, const Conv2dParams& p, unsigned m) {
  const unsigned ohw = p.oh * p.ow;
  ConvPixel px;
  px.ok = m < p.n * ohw;
  const unsigned n = px.ok ? m / ohw : 0, rem = px.ok ? m % ohw : 0;
  px.ih0 = (int)((rem / p.ow) * p.stride_h) - (int)p.pad_h;
  px.iw0 = (int)((rem % p.ow) * p.stride_w) - (int)p.pad_w;
  px.img = x + (size_t)n * p.c * p.h * p.w;
  return px;
}

// The output tile (blockIdx.x, blockIdx.y) summed over the reduction range k_beg .. k_end - 1
// (k_beg a multiple of CONV_BK), plus bias[o] where bias is not null.
// as, bs: the kernel's shared tiles [CONV_BK][CONV_BM + 1] and [CONV_BK][CONV_BN + 1].
static __device__ __forceinline__ void conv2d_fwd_body(float (*as)[CONV_BM + 1], float (*bs)[CONV_BN + 1],
                                                       float* __restrict__ y, const float* __restrict__ x,
                                                       const float* __restrict__ w, const float* __restrict__ bias,
                                                       const Conv2dParams& p, unsigned k_beg, unsigned k_end) {
  const unsigned t = threadIdx.x, tx = t % 16, ty = t / 16;
  const unsigned khw = p.kh * p.kw, K = p.c * khw;
  const unsigned M = p.n * p.oh * p.ow, ohw = p.oh * p.ow;
  const unsigned m0 = blockIdx.x * CONV_BM, o0 = blockIdx.y * CONV_BN;

  // The pixel this thread loads for the A tile is fixed: column t % 64 of the tile, rows
  // (k) t / 64 + 4 q. Decode it once.
  const ConvPixel px = conv_pixel(x, p, m0 + t % CONV_BM);

  float acc[4][4];
  zero_tile_4x4(acc);

  // Each warp loads the A rows kk = t / 64 + 4 q (q = 0..3): lane q decodes k0 + that kk into
  // (channel, kernel row, kernel column) once per slice, and the warp shares the four results by
  // shuffles, so a slice costs one integer division chain per warp instead of four.
  const unsigned lane = t & 31;
  for (unsigned k0 = k_beg; k0 < k_end; k0 += CONV_BK) {
    unsigned my_c = 0, my_dh = 0, my_dw = 0;
    {
      const unsigned k = k0 + t / CONV_BM + 4 * (lane & 3);
      if (k < k_end) {
        const unsigned r = k % khw;
        my_c = k / khw;
        my_dh = (r / p.kw) * p.dil_h;
        my_dw = (r % p.kw) * p.dil_w;
      } else {
        my_c = 0xffffffffu;  // past the reduction: zeros
      }
    }
#pragma unroll
    for (int q = 0; q < CONV_BM * CONV_BK / CONV_THREADS; ++q) {
      const unsigned kk = t / CONV_BM + 4 * q;
      const unsigned c = __shfl_sync(FDM_FULL_MASK, my_c, q);
      const int ih = px.ih0 + (int)__shfl_sync(FDM_FULL_MASK, my_dh, q);
      const int iw = px.iw0 + (int)__shfl_sync(FDM_FULL_MASK, my_dw, q);
      float v = 0.0f;
      if (px.ok && c != 0xffffffffu && ih >= 0 && ih < (int)p.h && iw >= 0 && iw < (int)p.w)
        v = px.img[((size_t)c * p.h + ih) * p.w + iw];
      as[kk][t % CONV_BM] = v;
    }
#pragma unroll
    for (int q = 0; q < CONV_BN * CONV_BK / CONV_THREADS; ++q) {
      const unsigned e = t + CONV_THREADS * q, oc = e / CONV_BK, kk = e % CONV_BK;
      const unsigned o = o0 + oc, k = k0 + kk;
      bs[kk][oc] = (o < p.o && k < k_end) ? w[(size_t)o * K + k] : 0.0f;
    }
    __syncthreads();
    tile_fma_4x4<CONV_BK>(acc, as, bs, tx, ty);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const unsigned m = m0 + tx + 16 * i;
    if (m >= M) continue;
    const unsigned n = m / ohw, pix = m % ohw;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned o = o0 + ty + 16 * j;
      if (o >= p.o) continue;
      y[((size_t)n * p.o + o) * ohw + pix] = acc[i][j] + (bias ? bias[o] : 0.0f);
    }
  }
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS)
    conv2d_fwd_f32(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
                   const float* __restrict__ bias, Conv2dParams p) {
  __shared__ float as[CONV_BK][CONV_BM + 1];
  __shared__ float bs[CONV_BK][CONV_BN + 1];
  conv2d_fwd_body(as, bs, y, x, w, bias, p, 0, p.c * p.kh * p.kw);
}

// Split-K: grid z = splits; split s sums the reduction slices s * S / splits .. (s + 1) * S /
// splits - 1 (S = ceil(K / CONV_BK) slices of CONV_BK) into part + s * N O OH OW, without bias.
extern "C" __global__ void __launch_bounds__(CONV_THREADS)
    conv2d_fwd_splitk_f32(float* __restrict__ part, const float* __restrict__ x, const float* __restrict__ w,
                          Conv2dParams p, unsigned splits) {
  const unsigned K = p.c * p.kh * p.kw, slices = (K + CONV_BK - 1) / CONV_BK, s = blockIdx.z;
  const unsigned k_beg = CONV_BK * (s * slices / splits), k_end = min(K, CONV_BK * ((s + 1) * slices / splits));
  const size_t total = (size_t)p.n * p.o * p.oh * p.ow;
  __shared__ float as[CONV_BK][CONV_BM + 1];
  __shared__ float bs[CONV_BK][CONV_BN + 1];
  conv2d_fwd_body(as, bs, part + s * total, x, w, nullptr, p, k_beg, k_end);
}

// y = sum of the splits' partials in split order (deterministic), plus bias[o] (null: none).
// Grid-stride over the N O OH OW outputs.
extern "C" __global__ void conv2d_splitk_sum_f32(float* __restrict__ y, const float* __restrict__ part,
                                                 const float* __restrict__ bias, Conv2dParams p, unsigned splits) {
  const unsigned ohw = p.oh * p.ow, total = p.n * p.o * ohw;
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
    float acc = 0.0f;
    for (unsigned s = 0; s < splits; ++s) acc += part[(size_t)s * total + i];
    y[i] = acc + (bias ? bias[(i / ohw) % p.o] : 0.0f);
  }
}

// ---- conv2d_fwd_wide_f32: the same convolution with a 128-pixel x 64-channel tile ----
// For grids with many pixel tiles (the codec's 64-channel 3 x 3 convolutions at 256 x 256: 512
// tiles at batch 1). 128 threads, each owning 8 pixels x 8 channels: pixels tx 4 + {0..3} and
// 64 + tx 4 + {0..3}, channels ty 4 + {0..3} and 32 + ty 4 + {0..3} (tx = t % 16, ty = t / 16),
// so each k step is four 16-byte shared loads for 64 FMAs (the 64 x 64 kernel: eight 4-byte
// loads for 16), and a warp's A loads are 64 consecutive floats, its B loads two broadcasts.
// Two shared stages: the next slice is read from global memory into registers while the current
// one is multiplied, then stored to the other stage, so each slice costs one barrier.
// Every output is the same fmaf chain over k = 0 .. K-1 as in conv2d_fwd_body, plus the bias:
// the two kernels give identical bits. A tap's offsets dil (k - 1) must fit 16 bits each (the
// launcher's `conv2d_fwd_suits_wide` checks). Launch: grid (ceil(N OH OW / 128), ceil(O / 64)), 128
// threads (src/cuda/ops/conv2d.rs `conv2d_fwd_wide_launch`).

#define CW_BM 128
#define CW_BN 64
#define CW_BK 16
#define CW_THREADS 128
#define CW_BS_LD (CW_BN + 4)  // padded rows: the transposing B stores hit 2-way bank conflicts, not 16

// One slice of A (16 k x this thread's pixel) and B (8 weights) in registers.
struct ConvWideStage {
  float a[CW_BK];
  float b[CW_BN * CW_BK / CW_THREADS];
};

// Reads reduction slice k0 .. k0 + 15 (zeros past k_end, outside the image or past the last
// pixel / channel). Lane q < 16 of each warp decodes k0 + q into its channel and its kernel
// offsets (dh in the low, dw in the high 16 bits), shared with the warp by shuffles.
static __device__ __forceinline__ void conv_wide_load(ConvWideStage& st, const ConvPixel& px,
                                                      const float* __restrict__ w, const Conv2dParams& p,
                                                      unsigned k0, unsigned k_end, unsigned o0) {
  const unsigned t = threadIdx.x, lane = t & 31, khw = p.kh * p.kw, K = p.c * khw;
  unsigned my_c = 0xffffffffu, my_off = 0;
  {
    const unsigned k = k0 + (lane & (CW_BK - 1));
    if (k < k_end) {
      const unsigned r = k % khw;
      my_c = k / khw;
      my_off = ((r / p.kw) * p.dil_h) | (((r % p.kw) * p.dil_w) << 16);
    }
  }
#pragma unroll
  for (int q = 0; q < CW_BK; ++q) {
    const unsigned c = __shfl_sync(FDM_FULL_MASK, my_c, q);
    const unsigned off = __shfl_sync(FDM_FULL_MASK, my_off, q);
    const int ih = px.ih0 + (int)(off & 0xffffu), iw = px.iw0 + (int)(off >> 16);
    float v = 0.0f;
    if (px.ok && c != 0xffffffffu && ih >= 0 && ih < (int)p.h && iw >= 0 && iw < (int)p.w)
      v = px.img[((size_t)c * p.h + ih) * p.w + iw];
    st.a[q] = v;
  }
#pragma unroll
  for (int q = 0; q < CW_BN * CW_BK / CW_THREADS; ++q) {
    const unsigned oc = t / CW_BK + (CW_THREADS / CW_BK) * q, k = k0 + t % CW_BK, o = o0 + oc;
    st.b[q] = (o < p.o && k < k_end) ? w[(size_t)o * K + k] : 0.0f;
  }
}

static __device__ __forceinline__ void conv_wide_store(const ConvWideStage& st, float (*as)[CW_BM],
                                                       float (*bs)[CW_BS_LD]) {
  const unsigned t = threadIdx.x;
#pragma unroll
  for (int q = 0; q < CW_BK; ++q) as[q][t] = st.a[q];
#pragma unroll
  for (int q = 0; q < CW_BN * CW_BK / CW_THREADS; ++q) bs[t % CW_BK][t / CW_BK + (CW_THREADS / CW_BK) * q] = st.b[q];
}

// acc[i][j] += sum over the slice's k (in order) of A[k][pixel i] B[k][channel j].
static __device__ __forceinline__ void conv_wide_fma(float (&acc)[8][8], const float (*as)[CW_BM],
                                                     const float (*bs)[CW_BS_LD], unsigned tx, unsigned ty) {
#pragma unroll
  for (int k = 0; k < CW_BK; ++k) {
    const float4 a0 = *reinterpret_cast<const float4*>(&as[k][4 * tx]);
    const float4 a1 = *reinterpret_cast<const float4*>(&as[k][64 + 4 * tx]);
    const float4 b0 = *reinterpret_cast<const float4*>(&bs[k][4 * ty]);
    const float4 b1 = *reinterpret_cast<const float4*>(&bs[k][32 + 4 * ty]);
    const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

extern "C" __global__ void __launch_bounds__(CW_THREADS)
    conv2d_fwd_wide_f32(float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
                        const float* __restrict__ bias, Conv2dParams p) {
  __shared__ __align__(16) float as[2][CW_BK][CW_BM];
  __shared__ __align__(16) float bs[2][CW_BK][CW_BS_LD];
  const unsigned t = threadIdx.x, tx = t % 16, ty = t / 16;
  const unsigned K = p.c * p.kh * p.kw, M = p.n * p.oh * p.ow, ohw = p.oh * p.ow;
  const unsigned m0 = blockIdx.x * CW_BM, o0 = blockIdx.y * CW_BN;

  const ConvPixel px = conv_pixel(x, p, m0 + t);  // the pixel this thread loads: column t of the tile

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

  ConvWideStage st;
  conv_wide_load(st, px, w, p, 0, K, o0);
  conv_wide_store(st, as[0], bs[0]);
  __syncthreads();
  unsigned cur = 0;
  for (unsigned k0 = 0; k0 < K; k0 += CW_BK) {
    const bool more = k0 + CW_BK < K;
    if (more) conv_wide_load(st, px, w, p, k0 + CW_BK, K, o0);
    conv_wide_fma(acc, as[cur], bs[cur], tx, ty);
    if (more) conv_wide_store(st, as[cur ^ 1], bs[cur ^ 1]);
    __syncthreads();
    cur ^= 1;
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const unsigned m = m0 + 4 * tx + (i & 3) + 64 * (i >> 2);
    if (m >= M) continue;
    const unsigned n = m / ohw, pix = m % ohw;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const unsigned o = o0 + 4 * ty + (j & 3) + 32 * (j >> 2);
      if (o >= p.o) continue;
      y[((size_t)n * p.o + o) * ohw + pix] = acc[i][j] + (bias ? bias[o] : 0.0f);
    }
  }
}
