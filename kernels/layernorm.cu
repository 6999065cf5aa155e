// layernorm.cu: LayerNorm over the last dim of a dense row-major [rows, cols] f32 matrix
// (spec §3.2: eps 1e-5, affine weight and bias of [cols]; the transformer's LN1/LN2/final LN).
//   layernorm_fwd_f32(y, mean, rstd, x, gamma, beta, rows, cols, eps)
//       mean[r] = mean(x[r,:]); rstd[r] = 1/sqrt(var(x[r,:]) + eps) (biased variance, two passes)
//       y[r,c] = (x[r,c] - mean[r]) * rstd[r] * gamma[c] + beta[c]
//       mean/rstd may be null (inference); gamma/beta may be null (no affine).
//   add_layernorm_fwd_f32(s, y, x, a, gamma, beta, rows, cols, eps)
//       s = x + a; y = layernorm(s) as above (no statistics: inference), bit-identical to the two
//       kernels one after the other.
//   add_layernorm_fwd_bf16(s, yb, x, a, gamma, beta, rows, cols, eps)
//       the same with y written rounded to bf16 (unsigned short bits, round to nearest even: the
//       cast a bf16 Linear applies to its input), for LayerNorms whose only reader is such a
//       Linear (`--precision bf16` inference): the Linear then skips its cast.
//   layernorm_bwd_dx_f32(dx, dy, x, mean, rstd, gamma, rows, cols)
//       xhat = (x - mean) * rstd, g = dy * gamma,
//       dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   layernorm_bwd_params_f32(dgamma, dbeta, dy, x, mean, rstd, rows, cols)
//       dgamma[c] = sum_r dy[r,c] * xhat[r,c], dbeta[c] = sum_r dy[r,c]; overwritten, not accumulated;
//       either may be null. Deterministic (fixed summation order, no atomics).
// Row kernels: one block per row (grid-stride), block size a multiple of 32. The parameter kernel:
// blocks of 32 x 32 threads own 32 columns; threadIdx.y strides over rows; partial sums are
// combined in shared memory in a fixed order.

// Where a LayerNorm output goes: f32 as computed, or its bf16 bits.
static __device__ __forceinline__ void ln_store(float* y, float h) { *y = h; }
static __device__ __forceinline__ void ln_store(unsigned short* y, float h) { *y = (unsigned short)fdm_bf16_bits(h); }

// LayerNorm of one row xr into yr by the whole block, given this thread's partial sum of xr over
// its columns (c = threadIdx.x, + blockDim.x, ...); each thread reads only the columns it summed.
template <typename Out>
static __device__ __forceinline__ void ln_row(Out* __restrict__ yr, const float* xr, const float* __restrict__ gamma,
                                              const float* __restrict__ beta, unsigned cols, float eps,
                                              float partial_sum, float* scratch, float& mean, float& rstd) {
  const float inv_cols = 1.0f / (float)cols;
  mean = block_sum(partial_sum, scratch) * inv_cols;
  float v = 0.0f;
  for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
    const float d = xr[c] - mean;
    v += d * d;
  }
  rstd = rsqrtf(block_sum(v, scratch) * inv_cols + eps);
  for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
    float h = (xr[c] - mean) * rstd;
    if (gamma) h *= gamma[c];
    if (beta) h += beta[c];
    ln_store(yr + c, h);
  }
}

extern "C" __global__ void layernorm_fwd_f32(float* __restrict__ y, float* __restrict__ mean_out,
                                             float* __restrict__ rstd_out, const float* __restrict__ x,
                                             const float* __restrict__ gamma, const float* __restrict__ beta,
                                             unsigned rows, unsigned cols, float eps) {
  __shared__ float scratch[32];
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + (size_t)r * cols;
    float s = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    float mean, rstd;
    ln_row(y + (size_t)r * cols, xr, gamma, beta, cols, eps, s, scratch, mean, rstd);
    if (threadIdx.x == 0) {
      if (mean_out) mean_out[r] = mean;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }
}

// Sums per thread that add_layernorm_rows keeps in registers (the row launch gives a thread at
// most 4 columns up to 1024 columns: `row_block_threads`).
#define LN_REG_COLS 4

// add_layernorm_rows for rows of at most LN_REG_COLS columns per thread: each thread keeps its
// sums in registers instead of reading them back from s, with the same arithmetic in the same
// order (columns c = threadIdx.x + blockDim.x q, q ascending), so the same bits.
template <typename Out>
static __device__ __forceinline__ void add_layernorm_rows_in_registers(
    float* __restrict__ s, Out* __restrict__ y, const float* __restrict__ x, const float* __restrict__ a,
    const float* __restrict__ gamma, const float* __restrict__ beta, unsigned rows, unsigned cols, float eps,
    float* scratch) {
  const float inv_cols = 1.0f / (float)cols;
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    float v[LN_REG_COLS];
    float sum = 0.0f;
#pragma unroll
    for (int q = 0; q < LN_REG_COLS; ++q) {
      const unsigned c = threadIdx.x + q * blockDim.x;
      v[q] = 0.0f;
      if (c < cols) {
        v[q] = x[base + c] + a[base + c];
        s[base + c] = v[q];
        sum += v[q];
      }
    }
    const float mean = block_sum(sum, scratch) * inv_cols;
    float var = 0.0f;
#pragma unroll
    for (int q = 0; q < LN_REG_COLS; ++q) {
      const float d = v[q] - mean;
      if (threadIdx.x + q * blockDim.x < cols) var += d * d;
    }
    const float rstd = rsqrtf(block_sum(var, scratch) * inv_cols + eps);
#pragma unroll
    for (int q = 0; q < LN_REG_COLS; ++q) {
      const unsigned c = threadIdx.x + q * blockDim.x;
      if (c >= cols) continue;
      float h = (v[q] - mean) * rstd;
      if (gamma) h *= gamma[c];
      if (beta) h += beta[c];
      ln_store(y + base + c, h);
    }
  }
}

// The transformer's residual add and the LayerNorm after it in one pass (inference):
// s = x + a (written), y = LayerNorm(s); the same arithmetic as binary add + layernorm_fwd_f32
// with the same block size, so the same bits. Each thread re-reads only the sums it wrote (or
// keeps them in registers where it has at most LN_REG_COLS of them).
template <typename Out>
static __device__ __forceinline__ void add_layernorm_rows(float* __restrict__ s, Out* __restrict__ y,
                                                          const float* __restrict__ x, const float* __restrict__ a,
                                                          const float* __restrict__ gamma, const float* __restrict__ beta,
                                                          unsigned rows, unsigned cols, float eps, float* scratch) {
  if (cols <= LN_REG_COLS * blockDim.x) {
    add_layernorm_rows_in_registers(s, y, x, a, gamma, beta, rows, cols, eps, scratch);
    return;
  }
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    float sum = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = x[base + c] + a[base + c];
      s[base + c] = v;
      sum += v;
    }
    float mean, rstd;
    ln_row(y + base, s + base, gamma, beta, cols, eps, sum, scratch, mean, rstd);
  }
}

extern "C" __global__ void add_layernorm_fwd_f32(float* __restrict__ s, float* __restrict__ y,
                                                 const float* __restrict__ x, const float* __restrict__ a,
                                                 const float* __restrict__ gamma, const float* __restrict__ beta,
                                                 unsigned rows, unsigned cols, float eps) {
  __shared__ float scratch[32];
  add_layernorm_rows(s, y, x, a, gamma, beta, rows, cols, eps, scratch);
}

extern "C" __global__ void add_layernorm_fwd_bf16(float* __restrict__ s, unsigned short* __restrict__ yb,
                                                  const float* __restrict__ x, const float* __restrict__ a,
                                                  const float* __restrict__ gamma, const float* __restrict__ beta,
                                                  unsigned rows, unsigned cols, float eps) {
  __shared__ float scratch[32];
  add_layernorm_rows(s, yb, x, a, gamma, beta, rows, cols, eps, scratch);
}

extern "C" __global__ void layernorm_bwd_dx_f32(float* __restrict__ dx, const float* __restrict__ dy,
                                                const float* __restrict__ x, const float* __restrict__ mean,
                                                const float* __restrict__ rstd, const float* __restrict__ gamma,
                                                unsigned rows, unsigned cols) {
  __shared__ float scratch[32];
  const float inv_cols = 1.0f / (float)cols;
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    const float mu = mean[r], rs = rstd[r];
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
      const float g = dy[base + c] * (gamma ? gamma[c] : 1.0f);
      sum_g += g;
      sum_gx += g * (x[base + c] - mu) * rs;
    }
    const float mean_g = block_sum(sum_g, scratch) * inv_cols;
    const float mean_gx = block_sum(sum_gx, scratch) * inv_cols;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) {
      const float g = dy[base + c] * (gamma ? gamma[c] : 1.0f);
      const float xhat = (x[base + c] - mu) * rs;
      dx[base + c] = rs * (g - mean_g - xhat * mean_gx);
    }
  }
}

extern "C" __global__ void layernorm_bwd_params_f32(float* __restrict__ dgamma, float* __restrict__ dbeta,
                                                    const float* __restrict__ dy, const float* __restrict__ x,
                                                    const float* __restrict__ mean, const float* __restrict__ rstd,
                                                    unsigned rows, unsigned cols) {
  __shared__ float part_g[32][33];
  __shared__ float part_b[32][33];
  const unsigned c = blockIdx.x * 32 + threadIdx.x;
  float sg = 0.0f, sb = 0.0f;
  if (c < cols) {
    for (unsigned r = threadIdx.y; r < rows; r += blockDim.y) {
      const float g = dy[(size_t)r * cols + c];
      sg += g * (x[(size_t)r * cols + c] - mean[r]) * rstd[r];
      sb += g;
    }
  }
  part_g[threadIdx.y][threadIdx.x] = sg;
  part_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float tg = 0.0f, tb = 0.0f;
    for (unsigned k = 0; k < blockDim.y; ++k) {
      tg += part_g[k][threadIdx.x];
      tb += part_b[k][threadIdx.x];
    }
    if (dgamma) dgamma[c] = tg;
    if (dbeta) dbeta[c] = tb;
  }
}
