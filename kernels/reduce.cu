// reduce.cu: reductions of a dense row-major f32 x [outer, reduce, inner] -> [outer, inner]
// (params/reduce.rs; the Tensor-level op in ops/reduce.rs brings every reduction over a set of
// dims, every full reduction and argmax/argmin over the last dim to this form).
//   op: 0 sum, 1 mean, 2 max, 3 min (ReduceOp).
//   reduce_f32(out, out_idx, part, x, op, outer, reduce, inner, chunk_len)
//       Pass 1. Block (TX, TY), TX * TY = 256, TX a power of two <= 32: threadIdx.x walks TX
//       adjacent output columns (coalesced when inner > 1), threadIdx.y walks the reduced dim
//       with stride TY (coalesced when inner == 1, TX = 1). blockIdx.x enumerates (outer, column
//       tile) pairs grid-stride; blockIdx.y is the chunk [y * chunk_len, (y+1) * chunk_len) of the
//       reduced dim. With one chunk (part == null) the block writes the result: out[o*inner+i]
//       (may be null) and out_idx[o*inner+i] = r of the chosen element for max/min (may be null).
//       With several chunks each block writes a partial of two words to
//       part[((o*inner+i) * gridDim.y + chunk) * 2 + {0,1}]: a sum as the float pair (hi, lo)
//       with hi + lo = the f64 partial to ~2^-48; max/min as (value bits, index r).
//   reduce_finish_f32(out, out_idx, part, op, outputs, reduce, chunks)
//       Pass 2: one block of 256 threads per output (grid-stride) combines its `chunks` partials.
//   extreme_scatter_f32(dx, idx, g, outer, reduce, inner)
//       Backward of max/min: dx[o,r,i] = (r == idx[o*inner+i]) ? g[o*inner+i] : 0, where idx comes
//       from reduce_f32's out_idx. A gather over dx, so every element is written once; no atomics.
// Semantics (cpu/ops/reduce.rs): sums accumulate in f64 like the CPU oracle (on an H100 the f64
// add rate is far above the rate at which memory delivers the f32 inputs, so this costs no time
// and keeps the f32 result within one rounding of the oracle for any length). Max/min pick the
// first extreme in order of r, and a NaN beats every number (the first NaN wins): each candidate
// carries its index and ties go to the lower index, so the tree's combination order cannot change
// the answer and the value is bit-identical to the sequential oracle's (-0.0 vs +0.0 included).
// Deterministic: fixed summation order in the shared-memory trees, no atomics.

#define RED_THREADS 256
#define RED_NONE 0xffffffffu

// A running reduction: an f64 sum, or the best (value, index) so far.
struct RedAcc {
  double s;
  float v;
  unsigned i;
};

static __device__ __forceinline__ bool red_is_sum(unsigned op) { return op < 2; }

static __device__ __forceinline__ RedAcc red_empty(unsigned op) {
  RedAcc a;
  a.s = 0.0;
  a.v = op == 2 ? -FDM_INF : FDM_INF;  // never beats a real element: its index is RED_NONE
  a.i = RED_NONE;
  return a;
}

// Whether (a, ai) beats (b, bi): NaN first, then the larger (max) or smaller (min) value, then
// the lower index. A strict order, so any combination tree gives the sequential result.
static __device__ __forceinline__ bool red_beats(float a, unsigned ai, float b, unsigned bi, bool is_max) {
  const bool an = a != a, bn = b != b;
  if (an || bn) return an && (!bn || ai < bi);
  if (a == b) return ai < bi;
  return is_max ? a > b : a < b;
}

static __device__ __forceinline__ void red_push(RedAcc& acc, float x, unsigned r, unsigned op) {
  if (red_is_sum(op)) {
    acc.s += (double)x;
  } else if (red_beats(x, r, acc.v, acc.i, op == 2)) {
    acc.v = x;
    acc.i = r;
  }
}

// acc := acc (+) other, where `other` covers elements after acc's (sums keep a fixed order).
static __device__ __forceinline__ void red_merge(RedAcc& acc, const RedAcc& other, unsigned op) {
  if (red_is_sum(op)) {
    acc.s += other.s;
  } else if (red_beats(other.v, other.i, acc.v, acc.i, op == 2)) {
    acc.v = other.v;
    acc.i = other.i;
  }
}

// Tree over threadIdx.y in shared memory (TY a power of two): thread (x, 0) ends with the
// combination of (x, 0..TY-1) in order. Every thread of the block must call it.
static __device__ RedAcc red_tree_y(RedAcc acc, unsigned op, double* ss, float* sv, unsigned* si) {
  const unsigned tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x;
  const unsigned me = ty * TX + tx;
  ss[me] = acc.s;
  sv[me] = acc.v;
  si[me] = acc.i;
  __syncthreads();
  for (unsigned half = blockDim.y >> 1; half > 0; half >>= 1) {
    if (ty < half) {
      const unsigned other = (ty + half) * TX + tx;
      RedAcc o;
      o.s = ss[other];
      o.v = sv[other];
      o.i = si[other];
      red_merge(acc, o, op);
      ss[me] = acc.s;
      sv[me] = acc.v;
      si[me] = acc.i;
    }
    __syncthreads();
  }
  return acc;
}

static __device__ __forceinline__ void red_write(float* out, unsigned* out_idx, unsigned at, const RedAcc& acc,
                                                 unsigned op, unsigned reduce) {
  if (red_is_sum(op)) {
    if (out) out[at] = (float)(op == 1 ? acc.s / (double)reduce : acc.s);
  } else {
    if (out) out[at] = acc.v;
    if (out_idx) out_idx[at] = acc.i;
  }
}

extern "C" __global__ void __launch_bounds__(RED_THREADS)
    reduce_f32(float* __restrict__ out, unsigned* __restrict__ out_idx, unsigned* __restrict__ part,
               const float* __restrict__ x, unsigned op, unsigned outer, unsigned reduce, unsigned inner,
               unsigned chunk_len) {
  __shared__ double ss[RED_THREADS];
  __shared__ float sv[RED_THREADS];
  __shared__ unsigned si[RED_THREADS];
  const unsigned TX = blockDim.x, TY = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
  const unsigned tiles = (inner + TX - 1) / TX;
  const unsigned chunk = blockIdx.y, chunks = gridDim.y;
  const unsigned r0 = chunk * chunk_len;
  const unsigned r1 = r0 >= reduce ? r0 : (reduce - r0 > chunk_len ? r0 + chunk_len : reduce);
  for (unsigned t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
    const unsigned o = t / tiles, i = (t % tiles) * TX + tx;
    RedAcc acc = red_empty(op);
    if (i < inner) {
      const float* xo = x + (size_t)o * reduce * inner + i;
      for (unsigned r = r0 + ty; r < r1; r += TY) red_push(acc, xo[(size_t)r * inner], r, op);
    }
    acc = red_tree_y(acc, op, ss, sv, si);
    if (ty == 0 && i < inner) {
      const unsigned at = o * inner + i;
      if (!part) {
        red_write(out, out_idx, at, acc, op, reduce);
      } else {
        unsigned* p = part + ((size_t)at * chunks + chunk) * 2;
        if (red_is_sum(op)) {
          const float hi = (float)acc.s;
          p[0] = __float_as_uint(hi);
          p[1] = __float_as_uint((float)(acc.s - (double)hi));
        } else {
          p[0] = __float_as_uint(acc.v);
          p[1] = acc.i;
        }
      }
    }
  }
}

extern "C" __global__ void __launch_bounds__(RED_THREADS)
    reduce_finish_f32(float* __restrict__ out, unsigned* __restrict__ out_idx, const unsigned* __restrict__ part,
                      unsigned op, unsigned outputs, unsigned reduce, unsigned chunks) {
  __shared__ double ss[RED_THREADS];
  __shared__ float sv[RED_THREADS];
  __shared__ unsigned si[RED_THREADS];
  for (unsigned at = blockIdx.x; at < outputs; at += gridDim.x) {
    const unsigned* p = part + (size_t)at * chunks * 2;
    RedAcc acc = red_empty(op);
    for (unsigned c = threadIdx.y; c < chunks; c += blockDim.y) {
      RedAcc q;
      if (red_is_sum(op)) {
        q.s = (double)__uint_as_float(p[2 * c]) + (double)__uint_as_float(p[2 * c + 1]);
      } else {
        q.v = __uint_as_float(p[2 * c]);
        q.i = p[2 * c + 1];
      }
      red_merge(acc, q, op);
    }
    acc = red_tree_y(acc, op, ss, sv, si);
    if (threadIdx.y == 0) red_write(out, out_idx, at, acc, op, reduce);
  }
}

extern "C" __global__ void extreme_scatter_f32(float* __restrict__ dx, const unsigned* __restrict__ idx,
                                               const float* __restrict__ g, unsigned outer, unsigned reduce,
                                               unsigned inner) {
  const unsigned n = outer * reduce * inner;
  for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += blockDim.x * gridDim.x) {
    const unsigned i = e % inner, r = (e / inner) % reduce, o = e / (inner * reduce);
    const unsigned at = o * inner + i;
    dx[e] = idx[at] == r ? g[at] : 0.0f;
  }
}
