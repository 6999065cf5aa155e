// unary.cu: element-wise unary ops and activations on dense f32 buffers, forward and backward,
// with the ops, constants and kink conventions of src/cpu/ops/unary.rs (GELU2 = x sigmoid(1.702 x),
// spec §3.2; GELU = the exact erf form; relu'(0) = 0, leaky'(0) = slope, clamp passes the gradient
// on its closed interval, abs'(0) = 0).
//   unary_fwd_f32(y, x, p)          y[i] = f(x[i])                          i < p.n
//   unary_bwd_f32(dx, x, y, g, p)   dx[i] = g[i] * f'(x[i]), from y = f(x) where it is cheaper
//                                   (exp, sqrt, sigmoid, tanh); x or y may be read, both passed
// p mirrors `UnaryParams` (src/params/unary.rs): op code (UnaryOp), n, alpha, beta.
// Launch: 1-D grid-stride loop, 256 threads, up to 4096 blocks (src/cuda/ops/unary.rs).

struct UnaryParams {
  unsigned op, n;
  float alpha, beta;
};

#define UN_NEG 0
#define UN_ABS 1
#define UN_EXP 2
#define UN_LOG 3
#define UN_SQRT 4
#define UN_SQUARE 5
#define UN_RELU 6
#define UN_LEAKY 7
#define UN_SIGMOID 8
#define UN_TANH 9
#define UN_GELU 10
#define UN_GELU2 11
#define UN_CLAMP 12
#define UN_ADD 13
#define UN_MUL 14
#define UN_POW 15

#define UN_GELU2_K 1.702f
#define UN_FRAC_1_SQRT_2 0.70710678118654752f
#define UN_INV_SQRT_2PI 0.39894228040143268f

static __device__ __forceinline__ float unary_f(const UnaryParams& p, float x) {
  switch (p.op) {
    case UN_NEG: return -x;
    case UN_ABS: return fabsf(x);
    case UN_EXP: return expf(x);
    case UN_LOG: return logf(x);
    case UN_SQRT: return sqrtf(x);
    case UN_SQUARE: return x * x;
    case UN_RELU: return x <= 0.0f ? 0.0f : x;
    case UN_LEAKY: return x > 0.0f ? x : p.alpha * x;
    case UN_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case UN_TANH: return tanhf(x);
    case UN_GELU: return 0.5f * x * erfcf(-x * UN_FRAC_1_SQRT_2);
    case UN_GELU2: return fdm_gelu2(x);
    // NaN passes through (both comparisons are false), as on the CPU.
    case UN_CLAMP: return x < p.alpha ? p.alpha : (x > p.beta ? p.beta : x);
    case UN_ADD: return x + p.alpha;
    case UN_MUL: return x * p.alpha;
    default: return powf(x, p.alpha);
  }
}

static __device__ __forceinline__ float unary_df(const UnaryParams& p, float x, float y, float g) {
  switch (p.op) {
    case UN_NEG: return -g;
    case UN_ABS: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case UN_EXP: return g * y;
    case UN_LOG: return g / x;
    case UN_SQRT: return g * 0.5f / y;
    case UN_SQUARE: return 2.0f * x * g;
    case UN_RELU: return x > 0.0f ? g : 0.0f;
    case UN_LEAKY: return x > 0.0f ? g : p.alpha * g;
    case UN_SIGMOID: return g * y * (1.0f - y);
    case UN_TANH: return g * (1.0f - y * y);
    case UN_GELU: {
      const float cdf = 0.5f * erfcf(-x * UN_FRAC_1_SQRT_2);
      return g * (cdf + x * UN_INV_SQRT_2PI * expf(-0.5f * x * x));
    }
    case UN_GELU2: {
      const float s = 1.0f / (1.0f + expf(-UN_GELU2_K * x));
      return g * (s + UN_GELU2_K * x * s * (1.0f - s));
    }
    case UN_CLAMP: return (x >= p.alpha && x <= p.beta) ? g : 0.0f;
    case UN_ADD: return g;
    case UN_MUL: return p.alpha * g;
    default: return p.alpha == 0.0f ? 0.0f : g * p.alpha * powf(x, p.alpha - 1.0f);
  }
}

extern "C" __global__ void unary_fwd_f32(float* __restrict__ y, const float* __restrict__ x, UnaryParams p) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += blockDim.x * gridDim.x)
    y[i] = unary_f(p, x[i]);
}

extern "C" __global__ void unary_bwd_f32(float* __restrict__ dx, const float* __restrict__ x,
                                         const float* __restrict__ y, const float* __restrict__ g, UnaryParams p) {
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += blockDim.x * gridDim.x)
    dx[i] = unary_df(p, x[i], y[i], g[i]);
}
