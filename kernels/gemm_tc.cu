// gemm_tc.cu: tensor-core GEMM for the Linear layout with bf16 weights and f32 accumulation
// (spec §3.2: the transformer's q/k/v/proj and MLP linears, which hold nearly all of its weights
// and MACs; inference only):
//   gemm_bf16_tc(c, a, b, bias, m, n, k)  /  gemm_bf16_tc_pipe(same; k % 8 == 0, a and b 16-byte aligned)
//       C[m, n] = sum_k bf16(A[m, k]) * B[n, k] + bias[n]        (f32 accumulation)
//   A = activations [M, K] f32 row-major, rounded to bf16 (round to nearest even, NaN kept) when
//   staged into shared memory; B = weight [N, K] bf16 row-major (PyTorch Linear `[out, in]`);
//   bias [N] f32 or null; C [M, N] f32 row-major. Any M, N, K (partial tiles are zero-padded).
//   cast_f32_to_bf16(y, x, n) / cast_bf16_to_f32(y, x, n): the element-wise conversions behind
//   `Tensor::to_dtype` (same rounding as `half::bf16::from_f32`).
//   linear_prep_bf16(xb, y, x, bias, n_x, n_y, out, gelu2): the cast of a Linear's input (after
//   GELU2 when asked) and the bias rows of its output, the preparations of the cuBLAS bf16
//   linear, in one launch.
//   gemm_tc_selftest_mma(d, a, b, c): one warp, one mma on a 16x16 x 16x8 problem, fragments
//   loaded straight from the PTX ISA formulas below; pins the fragment layout in the tests.
//   bf16x2_selftest(y, x, pairs): y[i] = fdm_bf16x2_bits(x[2i], x[2i + 1]), the paired conversion
//   of the tensor-core kernels (one cvt instruction on a GPU), checked against the host's rounding.
// Why bf16: the weights are read once per pass for all 1024 tokens; bf16 halves their memory and
// lets the tensor cores do the MACs (8 significant bits per product, exact in f32), while the
// sums stay f32.
//
// Tiling: a block of 4 warps (128 threads) computes a 64 x 64 tile of C; k advances in slices of
// 32 staged through shared memory as bf16 pairs (one 32-bit word = two consecutive k). Warp w owns
// the 32 x 32 sub-tile at rows 32 (w / 2), cols 32 (w % 2): 2 x 4 mma tiles of 16 x 8, i.e.
// 32 f32 accumulators per thread. Shared rows are 16 words + 4 padding, so the fragment reads of
// a warp (8 rows x 4 words) hit 32 different banks.
//
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 fragments (PTX ISA 9.7.14.5.8, "Matrix
// Fragments for mma.m16n8k16 with floating point type"), with g = lane >> 2, t = lane & 3 and the
// element of smaller index in the low 16 bits of each register:
//   A (16 x 16, row-major): a[0] = (row g,   k 2t, 2t+1)   a[1] = (row g+8, k 2t, 2t+1)
//                           a[2] = (row g,   k 2t+8, +9)   a[3] = (row g+8, k 2t+8, +9)
//   B (16 x 8, "col" = B^T row-major, i.e. the weight rows): b[0] = (k 2t, 2t+1; col g)
//                                                            b[1] = (k 2t+8, 2t+9; col g)
//   C/D (16 x 8 f32): d[0], d[1] = (row g, cols 2t, 2t+1); d[2], d[3] = (row g+8, cols 2t, 2t+1)
// On the CPU emulator the inline PTX is replaced by a twin that gathers the warp's fragments with
// __shfl_sync using exactly these formulas; a GPU run of the same tests confirms them.

#define TC_BM 64
#define TC_BN 64
#define TC_BK 32
#define TC_THREADS 128
#define TC_LDS (TC_BK / 2 + 4)  // 32-bit words per shared row: 16 bf16 pairs + 4 of padding

// fdm_bf16_bits, fdm_bf16x2_bits, fdm_bf16_to_f32 and fdm_mma_bf16_16816 (with its emulated twin) live in
// common.cuh: kernels/attention_tc.cu uses the same instruction.

// Stage A[m0 .. m0+64, k0 .. k0+32] into as[row][pair] as bf16 pairs, zero outside m x k.
// Consecutive threads take consecutive pairs of one row, so a warp reads 2 rows x 128 bytes.
static __device__ __forceinline__ void tc_stage_a(unsigned (*as)[TC_LDS], const float* __restrict__ a, unsigned m0,
                                                  unsigned k0, unsigned m, unsigned k) {
#pragma unroll
  for (int q = 0; q < TC_BM * (TC_BK / 2) / TC_THREADS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, r = e / (TC_BK / 2), p = e % (TC_BK / 2);
    const unsigned row = m0 + r, kk = k0 + 2 * p;
    float x0 = 0.0f, x1 = 0.0f;
    if (row < m) {
      const float* src = a + (size_t)row * k + kk;
      if (kk < k) x0 = src[0];
      if (kk + 1 < k) x1 = src[1];
    }
    as[r][p] = fdm_bf16x2_bits(x0, x1);
  }
}

// Stage B[n0 .. n0+64, k0 .. k0+32] (bf16, [N, K]) into bs[n][pair], zero outside n x k.
static __device__ __forceinline__ void tc_stage_b(unsigned (*bs)[TC_LDS], const unsigned short* __restrict__ b,
                                                  unsigned n0, unsigned k0, unsigned n, unsigned k) {
#pragma unroll
  for (int q = 0; q < TC_BN * (TC_BK / 2) / TC_THREADS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, r = e / (TC_BK / 2), p = e % (TC_BK / 2);
    const unsigned col = n0 + r, kk = k0 + 2 * p;
    unsigned lo = 0, hi = 0;
    if (col < n) {
      const unsigned short* src = b + (size_t)col * k + kk;
      if (kk < k) lo = src[0];
      if (kk + 1 < k) hi = src[1];
    }
    bs[r][p] = lo | (hi << 16);
  }
}

// One 32-wide k slice of the block's tile from shared memory: warp (wm, wn) multiplies its
// 32 x 32 sub-tile, 2 k16 steps x 2 x 4 mma tiles.
static __device__ __forceinline__ void tc_mma_slice(float (&acc)[2][4][4], const unsigned (*as)[TC_LDS],
                                                    const unsigned (*bs)[TC_LDS], unsigned wm, unsigned wn,
                                                    unsigned g, unsigned t) {
#pragma unroll
  for (int kw = 0; kw < TC_BK / 2; kw += 8) {  // two k16 steps, 8 words each
    unsigned af[2][4], bf[4][2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const unsigned r = wm + 16 * i + g;
      af[i][0] = as[r][kw + t];
      af[i][1] = as[r + 8][kw + t];
      af[i][2] = as[r][kw + 4 + t];
      af[i][3] = as[r + 8][kw + 4 + t];
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned col = wn + 8 * j + g;
      bf[j][0] = bs[col][kw + t];
      bf[j][1] = bs[col][kw + 4 + t];
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) fdm_mma_bf16_16816(acc[i][j], af[i], bf[j]);
  }
}

static __device__ __forceinline__ void tc_zero(float (&acc)[2][4][4]) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
}

// C (+ bias) from the accumulators of warp (wm, wn) of the tile at (m0, n0).
static __device__ __forceinline__ void tc_store_c(float* __restrict__ c, const float* __restrict__ bias,
                                                  const float (&acc)[2][4][4], unsigned m0, unsigned n0,
                                                  unsigned wm, unsigned wn, unsigned g, unsigned t, unsigned m,
                                                  unsigned n) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const unsigned row = m0 + wm + 16 * i + g + 8 * h;
      if (row >= m) continue;
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const unsigned col = n0 + wn + 8 * j + 2 * t + e;
          if (col < n) c[(size_t)row * n + col] = acc[i][j][2 * h + e] + (bias ? bias[col] : 0.0f);
        }
    }
}

// The plain kernel: any m, n, k and alignment; the reference for gemm_bf16_tc_pipe.
extern "C" __global__ void __launch_bounds__(TC_THREADS)
    gemm_bf16_tc(float* __restrict__ c, const float* __restrict__ a, const unsigned short* __restrict__ b,
                 const float* __restrict__ bias, unsigned m, unsigned n, unsigned k) {
  __shared__ unsigned as[TC_BM][TC_LDS];
  __shared__ unsigned bs[TC_BN][TC_LDS];
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const unsigned wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  const unsigned m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN;
  float acc[2][4][4];
  tc_zero(acc);
  for (unsigned k0 = 0; k0 < k; k0 += TC_BK) {
    tc_stage_a(as, a, m0, k0, m, k);
    tc_stage_b(bs, b, n0, k0, n, k);
    __syncthreads();
    tc_mma_slice(acc, as, bs, wm, wn, g, t);
    __syncthreads();
  }
  tc_store_c(c, bias, acc, m0, n0, wm, wn, g, t, m, n);
}

// ---- Pipelined variant: k % 8 == 0 and 16-byte aligned a and b (the launcher checks) ----
// Same tile, warps and fragments as gemm_bf16_tc; two changes for the latency-bound shapes of the
// transformer (few 64 x 64 tiles per SM, e.g. 128 tiles for 1024 x 512 on 132 SMs):
//  * vector global loads: each thread reads 4 float4 of A (4 consecutive k of one row) and 2 uint4
//    of B (8 consecutive bf16 k of one weight row) per slice instead of 24 scalars; k % 8 == 0
//    means no vector straddles the end of k, so only whole vectors are zero-filled at the edges;
//  * double-buffered shared memory: slice s + 1 is read from global memory into registers before
//    slice s is multiplied, and stored into the other buffer after it, with one barrier per slice.
//    (The buffer written in step s was last read in step s - 1, which every warp left through
//    that step's barrier.)
#define TC_A_VECS (TC_BM * TC_BK / 4 / TC_THREADS)  // float4 of A per thread per slice (4)
#define TC_B_VECS (TC_BN * TC_BK / 8 / TC_THREADS)  // uint4 of B per thread per slice (2)

struct TcSliceRegs {
  float4 a[TC_A_VECS];
  uint4 b[TC_B_VECS];
};

static __device__ __forceinline__ void tc_load_slice(TcSliceRegs& r, const float* __restrict__ a,
                                                     const unsigned short* __restrict__ b, unsigned m0, unsigned n0,
                                                     unsigned k0, unsigned m, unsigned n, unsigned k) {
#pragma unroll
  for (int q = 0; q < TC_A_VECS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, row = m0 + e / (TC_BK / 4), kk = k0 + 4 * (e % (TC_BK / 4));
    r.a[q] = (row < m && kk < k) ? *reinterpret_cast<const float4*>(a + (size_t)row * k + kk) : float4{0.f, 0.f, 0.f, 0.f};
  }
#pragma unroll
  for (int q = 0; q < TC_B_VECS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, col = n0 + e / (TC_BK / 8), kk = k0 + 8 * (e % (TC_BK / 8));
    r.b[q] = (col < n && kk < k) ? *reinterpret_cast<const uint4*>(b + (size_t)col * k + kk) : uint4{0u, 0u, 0u, 0u};
  }
}

static __device__ __forceinline__ void tc_store_slice(const TcSliceRegs& r, unsigned (*as)[TC_LDS], unsigned (*bs)[TC_LDS]) {
#pragma unroll
  for (int q = 0; q < TC_A_VECS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, row = e / (TC_BK / 4), w = 2 * (e % (TC_BK / 4));
    as[row][w] = fdm_bf16x2_bits(r.a[q].x, r.a[q].y);
    as[row][w + 1] = fdm_bf16x2_bits(r.a[q].z, r.a[q].w);
  }
#pragma unroll
  for (int q = 0; q < TC_B_VECS; ++q) {
    const unsigned e = threadIdx.x + TC_THREADS * q, col = e / (TC_BK / 8), w = 4 * (e % (TC_BK / 8));
    bs[col][w] = r.b[q].x;
    bs[col][w + 1] = r.b[q].y;
    bs[col][w + 2] = r.b[q].z;
    bs[col][w + 3] = r.b[q].w;
  }
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    gemm_bf16_tc_pipe(float* __restrict__ c, const float* __restrict__ a, const unsigned short* __restrict__ b,
                      const float* __restrict__ bias, unsigned m, unsigned n, unsigned k) {
  __shared__ unsigned as[2][TC_BM][TC_LDS];
  __shared__ unsigned bs[2][TC_BN][TC_LDS];
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const unsigned wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  const unsigned m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN;
  float acc[2][4][4];
  tc_zero(acc);
  TcSliceRegs next;
  tc_load_slice(next, a, b, m0, n0, 0, m, n, k);
  tc_store_slice(next, as[0], bs[0]);
  __syncthreads();
  const unsigned slices = (k + TC_BK - 1) / TC_BK;
  for (unsigned s = 0; s < slices; ++s) {
    const bool more = s + 1 < slices;
    if (more) tc_load_slice(next, a, b, m0, n0, (s + 1) * TC_BK, m, n, k);
    tc_mma_slice(acc, as[s & 1], bs[s & 1], wm, wn, g, t);
    if (more) tc_store_slice(next, as[(s + 1) & 1], bs[(s + 1) & 1]);
    __syncthreads();
  }
  tc_store_c(c, bias, acc, m0, n0, wm, wn, g, t, m, n);
}

extern "C" __global__ void cast_f32_to_bf16(unsigned short* __restrict__ y, const float* __restrict__ x, unsigned n) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    y[i] = (unsigned short)fdm_bf16_bits(x[i]);
}

// The operands of the cuBLAS bf16 linear (src/cuda/blas.rs) in one launch: xb = bf16(x) for the
// n_x inputs (bf16(gelu2(x)) when gelu2 != 0: the MLP's activation fused into the cast) and, when
// bias is set, y[i] = bias[i % out] for the n_y outputs (the GEMM then adds with beta = 1).
static __device__ __forceinline__ unsigned prep_bits(float v, unsigned gelu2) {
  return fdm_bf16_bits(gelu2 ? fdm_gelu2(v) : v);
}

// Where x is 16-byte and xb 8-byte aligned (every buffer of the allocator), the cast reads four
// floats and writes four bf16 per step; the same bits as one at a time, which the tail and
// unaligned pointers use.
extern "C" __global__ void linear_prep_bf16(unsigned short* __restrict__ xb, float* __restrict__ y,
                                            const float* __restrict__ x, const float* __restrict__ bias, unsigned n_x,
                                            unsigned n_y, unsigned out, unsigned gelu2) {
  const unsigned first = blockIdx.x * blockDim.x + threadIdx.x, stride = blockDim.x * gridDim.x;
  const bool aligned = (reinterpret_cast<size_t>(x) & 15) == 0 && (reinterpret_cast<size_t>(xb) & 7) == 0;
  const unsigned vec_end = aligned ? n_x / 4 * 4 : 0;
  for (unsigned q = first; 4 * q < vec_end; q += stride) {
    const float4 v = reinterpret_cast<const float4*>(x)[q];
    reinterpret_cast<uint2*>(xb)[q] = uint2{prep_bits(v.x, gelu2) | (prep_bits(v.y, gelu2) << 16),
                                            prep_bits(v.z, gelu2) | (prep_bits(v.w, gelu2) << 16)};
  }
  for (unsigned i = vec_end + first; i < n_x; i += stride) xb[i] = (unsigned short)prep_bits(x[i], gelu2);
  if (bias)
    for (unsigned i = first; i < n_y; i += stride) y[i] = bias[i % out];
}

extern "C" __global__ void cast_bf16_to_f32(float* __restrict__ y, const unsigned short* __restrict__ x, unsigned n) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    y[i] = fdm_bf16_to_f32(x[i]);
}

// One warp: D [16, 8] = A [16, 16] * B + C with A row-major bf16, B given as its transpose
// bt [8, 16] (weight layout) bf16, C and D row-major f32. Fragments come from the formulas in the
// header, written out here independently of the GEMM's shared-memory indexing.
extern "C" __global__ void gemm_tc_selftest_mma(float* __restrict__ d, const unsigned short* __restrict__ a,
                                                const unsigned short* __restrict__ bt, const float* __restrict__ c) {
  const unsigned lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const auto pair = [](const unsigned short* p) { return (unsigned)p[0] | ((unsigned)p[1] << 16); };
  const unsigned af[4] = {pair(a + g * 16 + 2 * t), pair(a + (g + 8) * 16 + 2 * t), pair(a + g * 16 + 2 * t + 8),
                          pair(a + (g + 8) * 16 + 2 * t + 8)};
  const unsigned bf[2] = {pair(bt + g * 16 + 2 * t), pair(bt + g * 16 + 2 * t + 8)};
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t], c[(g + 8) * 8 + 2 * t + 1]};
  fdm_mma_bf16_16816(acc, af, bf);
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// y[i] = fdm_bf16x2_bits(x[2i], x[2i + 1]) (grid-stride): pins the operand order and the rounding of
// the cvt.rn.bf16x2.f32 instruction on a GPU (the emulator runs its integer twin).
extern "C" __global__ void bf16x2_selftest(unsigned* __restrict__ y, const float* __restrict__ x, unsigned pairs) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += blockDim.x * gridDim.x)
    y[i] = fdm_bf16x2_bits(x[2 * i], x[2 * i + 1]);
}
