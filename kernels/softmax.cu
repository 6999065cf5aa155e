// softmax.cu: softmax over the last dim of a dense row-major [rows, cols] f32 matrix (attention
// scores over keys, spec §3.2; token probabilities, spec §5.2).
//   softmax_fwd_f32(y, x, rows, cols)      y[r,:] = exp(x[r,:] - max) / sum(exp(x[r,:] - max))
//   softmax_bwd_f32(dx, y, dy, rows, cols) dx[r,:] = y * (dy - sum(dy * y))   (from the output y)
// One block per row (grid-stride over rows), block size a multiple of 32; the row max and sums are
// block reductions (warp shuffles, then 32 floats of shared memory). A row of all -inf gives NaN,
// as in PyTorch.

// Forward of softmax (LOG = false) or log-softmax (LOG = true) over every row; the entry points
// own the shared scratch of the block reductions.
template <bool LOG>
static __device__ __forceinline__ void softmax_rows_fwd(float* __restrict__ y, const float* __restrict__ x,
                                                        unsigned rows, unsigned cols, float* scratch) {
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    float m = -FDM_INF;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
    s = block_sum(s, scratch);
    if (LOG) {
      const float shift = m + logf(s);
      for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] - shift;
    } else {
      const float inv = 1.0f / s;
      for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = expf(xr[c] - m) * inv;
    }
  }
}

// Backward from the forward output y: softmax dx = y * (dy - sum(dy * y)); log-softmax
// dx = dy - exp(y) * sum(dy).
template <bool LOG>
static __device__ __forceinline__ void softmax_rows_bwd(float* __restrict__ dx, const float* __restrict__ y,
                                                        const float* __restrict__ dy, unsigned rows, unsigned cols,
                                                        float* scratch) {
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    float acc = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) acc += LOG ? dy[base + c] : dy[base + c] * y[base + c];
    acc = block_sum(acc, scratch);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x)
      dx[base + c] = LOG ? dy[base + c] - expf(y[base + c]) * acc : y[base + c] * (dy[base + c] - acc);
  }
}

extern "C" __global__ void softmax_fwd_f32(float* __restrict__ y, const float* __restrict__ x, unsigned rows,
                                           unsigned cols) {
  __shared__ float scratch[32];
  softmax_rows_fwd<false>(y, x, rows, cols, scratch);
}

extern "C" __global__ void softmax_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                           const float* __restrict__ dy, unsigned rows, unsigned cols) {
  __shared__ float scratch[32];
  softmax_rows_bwd<false>(dx, y, dy, rows, cols, scratch);
}

// Log-softmax (the cross-entropy loss over the 512 logits, spec §3.3), same launch:
//   log_softmax_fwd_f32(y, x, rows, cols)      y[r,:] = x - max - log(sum(exp(x - max)))
//   log_softmax_bwd_f32(dx, y, dy, rows, cols) dx[r,:] = dy - exp(y) * sum(dy)   (from the output y)
extern "C" __global__ void log_softmax_fwd_f32(float* __restrict__ y, const float* __restrict__ x, unsigned rows,
                                               unsigned cols) {
  __shared__ float scratch[32];
  softmax_rows_fwd<true>(y, x, rows, cols, scratch);
}

extern "C" __global__ void log_softmax_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                               const float* __restrict__ dy, unsigned rows, unsigned cols) {
  __shared__ float scratch[32];
  softmax_rows_bwd<true>(dx, y, dy, rows, cols, scratch);
}
