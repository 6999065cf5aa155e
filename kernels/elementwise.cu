// elementwise.cu: element-wise f32 kernels, all memory-bound, grid-stride loops over flat indices.
//   fill_f32            out[i] = value
//   affine_f32          out[i] = x[i] * mul + add
//   strided_copy_b32    out[i] = x[offset of i]  (any 4-byte dtype: f32 and u32 alike; makes a
//                       strided view dense; StridedIndex stride[0] gives x's strides)
//   binary_f32          out[i] = a[off_a(i)] (op) b[off_b(i)] with numpy broadcasting: the launcher
//                       passes each input's element strides per output dim (0 where broadcast)
//   binary_contig_f32   the same for two dense inputs of the output's shape (no index arithmetic)
//   {relu,gelu2,sigmoid,tanh}_fwd_f32  out = f(x)
//   {relu,gelu2}_bwd_f32               dx = dy * f'(x)      (from the input x)
//   {sigmoid,tanh}_bwd_f32             dx = dy * f'(y)      (from the forward output y)
// GELU2(x) = x * sigmoid(1.702 x), the activation of the transformer MLP (spec §3.2).
// All tensors are flat f32 arrays of n elements unless stated; n < 2^32.

#define BINARY_ADD 0
#define BINARY_SUB 1
#define BINARY_MUL 2
#define BINARY_DIV 3
#define BINARY_MAX 4
#define BINARY_MIN 5
#define BINARY_MAX_GRAD_SHARE 6

#define GRID_STRIDE_LOOP(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

static __device__ __forceinline__ float apply_binary(int op, float a, float b) {
  switch (op) {
    case BINARY_ADD: return a + b;
    case BINARY_SUB: return a - b;
    case BINARY_MUL: return a * b;
    case BINARY_DIV: return a / b;
    // A NaN in either input gives NaN, as on the CPU and in torch.maximum (fmaxf would drop it).
    case BINARY_MAX: return (a > b || a != a) ? a : b;
    case BINARY_MIN: return (a < b || a != a) ? a : b;
    // The share of maximum(a, b)'s gradient that flows to a: ties split evenly (PyTorch).
    default: return a > b ? 1.0f : (a == b ? 0.5f : 0.0f);
  }
}

static __device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

extern "C" __global__ void fill_f32(float* __restrict__ out, float value, unsigned n) {
  GRID_STRIDE_LOOP(i, n) out[i] = value;
}

extern "C" __global__ void affine_f32(float* __restrict__ out, const float* __restrict__ x, unsigned n, float mul,
                                      float add) {
  GRID_STRIDE_LOOP(i, n) out[i] = x[i] * mul + add;
}

extern "C" __global__ void strided_copy_b32(unsigned* __restrict__ out, const unsigned* __restrict__ x,
                                            StridedIndex p) {
  GRID_STRIDE_LOOP(i, p.numel) {
    unsigned off, unused;
    strided_offsets(p, i, off, unused);
    out[i] = x[off];
  }
}

extern "C" __global__ void binary_f32(float* __restrict__ out, const float* __restrict__ a,
                                      const float* __restrict__ b, StridedIndex p, int op) {
  GRID_STRIDE_LOOP(i, p.numel) {
    unsigned oa, ob;
    strided_offsets(p, i, oa, ob);
    out[i] = apply_binary(op, a[oa], b[ob]);
  }
}

extern "C" __global__ void binary_contig_f32(float* __restrict__ out, const float* __restrict__ a,
                                             const float* __restrict__ b, unsigned n, int op) {
  GRID_STRIDE_LOOP(i, n) out[i] = apply_binary(op, a[i], b[i]);
}

extern "C" __global__ void relu_fwd_f32(float* __restrict__ out, const float* __restrict__ x, unsigned n) {
  GRID_STRIDE_LOOP(i, n) out[i] = fmaxf(x[i], 0.0f);
}

extern "C" __global__ void gelu2_fwd_f32(float* __restrict__ out, const float* __restrict__ x, unsigned n) {
  GRID_STRIDE_LOOP(i, n) {
    float v = x[i];
    out[i] = v * sigmoidf(1.702f * v);
  }
}

extern "C" __global__ void sigmoid_fwd_f32(float* __restrict__ out, const float* __restrict__ x, unsigned n) {
  GRID_STRIDE_LOOP(i, n) out[i] = sigmoidf(x[i]);
}

extern "C" __global__ void tanh_fwd_f32(float* __restrict__ out, const float* __restrict__ x, unsigned n) {
  GRID_STRIDE_LOOP(i, n) out[i] = tanhf(x[i]);
}

// relu'(x) = 1 for x > 0, else 0 (PyTorch's choice at x = 0).
extern "C" __global__ void relu_bwd_f32(float* __restrict__ dx, const float* __restrict__ x,
                                        const float* __restrict__ dy, unsigned n) {
  GRID_STRIDE_LOOP(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// d/dx [x s(kx)] = s + k x s (1 - s), s = sigmoid(kx), k = 1.702.
extern "C" __global__ void gelu2_bwd_f32(float* __restrict__ dx, const float* __restrict__ x,
                                         const float* __restrict__ dy, unsigned n) {
  GRID_STRIDE_LOOP(i, n) {
    float v = x[i], s = sigmoidf(1.702f * v);
    dx[i] = dy[i] * (s + 1.702f * v * s * (1.0f - s));
  }
}

extern "C" __global__ void sigmoid_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                           const float* __restrict__ dy, unsigned n) {
  GRID_STRIDE_LOOP(i, n) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

extern "C" __global__ void tanh_bwd_f32(float* __restrict__ dx, const float* __restrict__ y,
                                        const float* __restrict__ dy, unsigned n) {
  GRID_STRIDE_LOOP(i, n) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}
