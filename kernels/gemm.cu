// gemm.cu: tiled f32 matrix multiply in the Linear layout (weight [out, in], spec §0):
//   gemm_f32(c, a, b, bias, p)
//       C[m, n] = alpha * sum_k A[m, k] * B[n, k] + bias[n] + beta * C[m, n]
//   for m < M, n < N, over a two-level batch (blockIdx.z = outer * batch_inner + inner).
// Every operand is addressed by element strides, so one kernel serves
//   Linear forward  Y = X W^T + b   A = X [M, in] (lda_m = in, lda_k = 1), B = W [out, in]
//   Linear dX = dY W               A = dY (lda_m = out, lda_k = 1), B[n = in][k = out] = W[k][n]
//   Linear dW += dY^T X            A[o][m] = dY[m][o], B[i][m] = X[m][i], beta = 1
//   attention Q K^T and P V per (batch, head) without permuting copies (outer = batch, inner = head).
// bias may be null; beta = 0 never reads C (C may hold garbage). C is row-major-ish: C[m, n] at
// c[m * ldc_m + n].
// Tiling: 64 x 64 output tile per block of 256 threads, k in slices of 16 through shared memory;
// each thread owns 4 x 4 outputs at rows ty + 16 i, cols tx + 16 j (i, j < 4), so its shared-memory
// reads are conflict-free (consecutive tx -> consecutive banks; the two ty of a warp broadcast).
// Tile loads take the contiguous direction of each operand (k when lda_k == 1, else m) so global
// reads coalesce for both the plain and the transposed layouts.

#define GEMM_BM FDM_TILE  // the 4 x 4 register tiles of tile_fma_4x4 (common.cuh) cover 64 x 64
#define GEMM_BN FDM_TILE
#define GEMM_BK 16
#define GEMM_THREADS 256

// Mirrors `GemmParams` in src/cuda/ops/gemm.rs.
struct GemmParams {
  unsigned m, n, k;
  unsigned batch_inner;
  unsigned lda_m, lda_k, ldb_n, ldb_k, ldc_m;
  unsigned a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
};

// Load a 64 (rows) x 16 (k) tile of an operand whose element (r, k) is at src[r * ld_r + k * ld_k]
// into tile[k][r], zero outside rows_left x k_left.
static __device__ __forceinline__ void gemm_load_tile(float (*tile)[GEMM_BM + 1], const float* __restrict__ src,
                                                      unsigned ld_r, unsigned ld_k, unsigned rows_left,
                                                      unsigned k_left) {
  const unsigned t = threadIdx.x;
#pragma unroll
  for (int q = 0; q < GEMM_BM * GEMM_BK / GEMM_THREADS; ++q) {
    const unsigned e = t + GEMM_THREADS * q;
    // Walk k fastest when k is the contiguous direction, else rows fastest: coalesced either way.
    const unsigned r = ld_k == 1 ? e / GEMM_BK : e % GEMM_BM;
    const unsigned k = ld_k == 1 ? e % GEMM_BK : e / GEMM_BM;
    tile[k][r] = (r < rows_left && k < k_left) ? src[(size_t)r * ld_r + (size_t)k * ld_k] : 0.0f;
  }
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    gemm_f32(float* __restrict__ c, const float* __restrict__ a, const float* __restrict__ b,
             const float* __restrict__ bias, GemmParams p) {
  __shared__ float as[GEMM_BK][GEMM_BM + 1];
  __shared__ float bs[GEMM_BK][GEMM_BN + 1];
  const unsigned tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const unsigned outer = blockIdx.z / p.batch_inner, inner = blockIdx.z % p.batch_inner;
  a += (size_t)outer * p.a_outer + (size_t)inner * p.a_inner;
  b += (size_t)outer * p.b_outer + (size_t)inner * p.b_inner;
  c += (size_t)outer * p.c_outer + (size_t)inner * p.c_inner;
  const unsigned m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
  const float* a_tile = a + (size_t)m0 * p.lda_m;
  const float* b_tile = b + (size_t)n0 * p.ldb_n;

  float acc[4][4];
  zero_tile_4x4(acc);

  for (unsigned k0 = 0; k0 < p.k; k0 += GEMM_BK) {
    gemm_load_tile(as, a_tile + (size_t)k0 * p.lda_k, p.lda_m, p.lda_k, p.m - m0, p.k - k0);
    gemm_load_tile(bs, b_tile + (size_t)k0 * p.ldb_k, p.ldb_n, p.ldb_k, p.n - n0, p.k - k0);
    __syncthreads();
    tile_fma_4x4<GEMM_BK>(acc, as, bs, ty, tx);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const unsigned row = m0 + ty + 16 * i;
    if (row >= p.m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned col = n0 + tx + 16 * j;
      if (col >= p.n) continue;
      float v = p.alpha * acc[i][j];
      if (bias) v += bias[col];
      float* out = c + (size_t)row * p.ldc_m + col;
      if (p.beta != 0.0f) v += p.beta * *out;
      *out = v;
    }
  }
}
