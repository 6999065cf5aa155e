// softmax.cu: softmax over the last dim of a dense row-major [rows, cols] f32 matrix (attention
// scores over keys, spec §3.2; token probabilities, spec §5.2).
//   softmax_fwd_f32(y, x, rows, cols)      y[r,:] = exp(x[r,:] - max) / sum(exp(x[r,:] - max))
//   softmax_bwd_f32(dx, y, dy, rows, cols) dx[r,:] = y * (dy - sum(dy * y))   (from the output y)
// One block per row (grid-stride over rows), block size a multiple of 32; the row max and sums are
// block reductions (warp shuffles, then 32 floats of shared memory). A row of all -inf gives NaN,
// as in PyTorch.

extern "C" __global__ void softmax_fwd_f32(float* __restrict__ y, const float* __restrict__ x, unsigned rows,
                                           unsigned cols) {
  __shared__ float scratch[32];
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    float m = -FDM_INF;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
    const float inv = 1.0f / block_sum(s, scratch);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = expf(xr[c] - m) * inv;
  }
}

extern "C" __global__ void softmax_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                           const float* __restrict__ dy, unsigned rows, unsigned cols) {
  __shared__ float scratch[32];
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    float dot = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) dot += dy[base + c] * y[base + c];
    dot = block_sum(dot, scratch);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) dx[base + c] = y[base + c] * (dy[base + c] - dot);
  }
}

// Log-softmax (the cross-entropy loss over the 512 logits, spec §3.3), same launch:
//   log_softmax_fwd_f32(y, x, rows, cols)      y[r,:] = x - max - log(sum(exp(x - max)))
//   log_softmax_bwd_f32(dx, y, dy, rows, cols) dx[r,:] = dy - exp(y) * sum(dy)   (from the output y)
extern "C" __global__ void log_softmax_fwd_f32(float* __restrict__ y, const float* __restrict__ x, unsigned rows,
                                               unsigned cols) {
  __shared__ float scratch[32];
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    float m = -FDM_INF;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - m);
    const float shift = m + logf(block_sum(s, scratch));
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] - shift;
  }
}

extern "C" __global__ void log_softmax_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                               const float* __restrict__ dy, unsigned rows, unsigned cols) {
  __shared__ float scratch[32];
  for (unsigned r = blockIdx.x; r < rows; r += gridDim.x) {
    const size_t base = (size_t)r * cols;
    float total = 0.0f;
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) total += dy[base + c];
    total = block_sum(total, scratch);
    for (unsigned c = threadIdx.x; c < cols; c += blockDim.x) dx[base + c] = dy[base + c] - expf(y[base + c]) * total;
  }
}
