// losses.cu: the training losses (spec §3.5, §6.5; cpu/ops/losses.rs, cross_entropy.rs).
// Element-wise mean losses over flat f32 slices of n elements (kind):
//   0 L1 |y - x|   1 MSE (y - x)^2   2 BCE -(t ln p + (1 - t) ln(1 - p)), each log >= -100
//   3 hinge relu(1 + sign * x)   4 scaled mean c * x   5 hole fraction (1 - mask)
//   loss_sum_f32(part, a, b, n, kind, sign)
//       Pass 1: block k sums the f64 terms of its grid-stride share (a shared-memory tree in a
//       fixed order) and writes part[2k], part[2k+1] = (hi, lo) floats, hi + lo = the f64 sum.
//       b is unused by kinds 3-5. The launcher's grid depends on n only: deterministic.
//   loss_finish_f32(out, part, parts, n, scale)
//       Pass 2, one block: out[0] = (float)(scale * sum(parts) / n), scale = c for kind 4, else 1;
//       n = 0 gives NaN (0/0), as PyTorch and the CPU do.
//   loss_bwd_f32(da, db, a, b, g, n, kind, sign, c)      g: the output gradient, one f32 on the device
//       L1:    da = +-g/n by sign(y - x) (0 at 0), db = -da      MSE: da = 2g/n (y - x), db = -da
//       BCE:   da = g/n (p - t) / max(p (1 - p), 1e-12)         hinge: da = g sign/n where 1 + sign x > 0
//       scaled mean: da = g c / n.  db may be null (only L1 and MSE write it).
//   The scale factors are formed in f32 exactly as the CPU forms them, so the backward kernels
//   give the CPU's values to the rounding of one operation.
// Cross-entropy over the last dim of logits [rows, classes] with u32 targets [rows]:
//   ce_rows_f32(row_ce, logits, targets, rows, classes, ignore)
//       One block per row (grid-stride): row_ce[i] = lse(logits[i]) - logits[i, t_i] in f32
//       (max-subtracted exp sum), 0 where t_i == ignore.
//   ce_finish_f32(loss, den, row_ce, targets, weights, rows, ignore)
//       One block, f64 sums in a fixed order: den = #(t_i != ignore) (weights null) or
//       sum w_i + 1e-18 (spec §3.5); loss[0] = sum w_i ce_i / den (w = 1 when null); den[0..2] =
//       (hi, lo) floats of den for the backward. loss and row_ce may be null (den only).
//   ce_bwd_f32(dlogits, logits, targets, weights, g, den, rows, classes, ignore)
//       One block per row: dlogits = share (softmax - onehot(t_i)), share = g w_i / den (0 for
//       ignored rows), softmax from the row's own max and exp sum.
//   ce_target_check_u32(bad, targets, rows, classes, ignore)
//       *bad = min(*bad, first row whose target is neither < classes nor ignore) (launcher sets
//       *bad = 0xffffffff first).
// Launch: loss_sum_f32 and loss_bwd_f32 with 256 threads per block; ce row kernels with a
// multiple of 32 threads (<= 1024); every finish kernel with exactly LOSS_THREADS threads.

#define LOSS_THREADS 256
#define CE_EPS 1e-18

#define LOSS_LOOP(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// Block-wide f64 sum over a 1-D block of LOSS_THREADS threads, a fixed tree; every thread gets it.
static __device__ double block_sum_f64(double v, double* s) {
  s[threadIdx.x] = v;
  __syncthreads();
  for (unsigned half = LOSS_THREADS / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  const double r = s[0];
  __syncthreads();
  return r;
}

static __device__ __forceinline__ double loss_term(int kind, float a, float b, float sign) {
  switch (kind) {
    case 0: return fabs((double)a - (double)b);
    case 1: {
      const double d = (double)a - (double)b;
      return d * d;
    }
    case 2: {
      const double p = a, t = b;
      const double log_p = fmax(log(p), -100.0), log_1mp = fmax(log1p(-p), -100.0);
      return (t - 1.0) * log_1mp - t * log_p;
    }
    case 3: return fmax(1.0 + (double)sign * (double)a, 0.0);
    case 4: return (double)a;
    default: return 1.0 - (double)a;
  }
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_sum_f32(float* __restrict__ part, const float* __restrict__ a, const float* __restrict__ b, unsigned n,
                 int kind, float sign) {
  __shared__ double s[LOSS_THREADS];
  double acc = 0.0;
  LOSS_LOOP(i, n) acc += loss_term(kind, a[i], b ? b[i] : 0.0f, sign);
  acc = block_sum_f64(acc, s);
  if (threadIdx.x == 0) {
    const float hi = (float)acc;
    part[2 * blockIdx.x] = hi;
    part[2 * blockIdx.x + 1] = (float)(acc - (double)hi);
  }
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    loss_finish_f32(float* __restrict__ out, const float* __restrict__ part, unsigned parts, unsigned n, float scale) {
  __shared__ double s[LOSS_THREADS];
  double acc = 0.0;
  for (unsigned k = threadIdx.x; k < parts; k += LOSS_THREADS) acc += (double)part[2 * k] + (double)part[2 * k + 1];
  acc = block_sum_f64(acc, s);
  if (threadIdx.x == 0) out[0] = (float)((double)scale * acc / (double)n);
}

extern "C" __global__ void loss_bwd_f32(float* __restrict__ da, float* __restrict__ db, const float* __restrict__ a,
                                        const float* __restrict__ b, const float* __restrict__ g, unsigned n, int kind,
                                        float sign, float c) {
  const float gv = g[0], nf = (float)n;
  LOSS_LOOP(i, n) {
    float d = 0.0f;
    switch (kind) {
      case 0: {
        const float k = gv / nf, diff = a[i] - b[i];
        d = diff > 0.0f ? k : (diff < 0.0f ? -k : 0.0f);
        break;
      }
      case 1: d = (2.0f * gv / nf) * (a[i] - b[i]); break;
      case 2: {
        const float p = a[i];
        d = (gv / nf) * (p - b[i]) / fmaxf((1.0f - p) * p, 1e-12f);
        break;
      }
      case 3: d = 1.0f + sign * a[i] > 0.0f ? gv * sign / nf : 0.0f; break;
      default: d = gv * c / nf; break;
    }
    da[i] = d;
    if (db) db[i] = -d;
  }
}

// ---- cross-entropy ----

// (max, sum of exp(x - max)) of one row, every thread of the block gets both.
static __device__ void ce_row_stats(const float* row, unsigned classes, float* scratch, float& m, float& s) {
  float v = -FDM_INF;
  for (unsigned j = threadIdx.x; j < classes; j += blockDim.x) v = fmaxf(v, row[j]);
  m = block_max(v, scratch);
  float e = 0.0f;
  for (unsigned j = threadIdx.x; j < classes; j += blockDim.x) e += expf(row[j] - m);
  s = block_sum(e, scratch);
}

extern "C" __global__ void ce_rows_f32(float* __restrict__ row_ce, const float* __restrict__ logits,
                                       const unsigned* __restrict__ targets, unsigned rows, unsigned classes,
                                       unsigned ignore) {
  __shared__ float scratch[32];
  for (unsigned i = blockIdx.x; i < rows; i += gridDim.x) {
    const unsigned t = targets[i];
    if (t == ignore || t >= classes) {  // block-uniform: the whole block skips the row
      if (threadIdx.x == 0) row_ce[i] = 0.0f;
      continue;
    }
    const float* row = logits + (size_t)i * classes;
    float m, s;
    ce_row_stats(row, classes, scratch, m, s);
    if (threadIdx.x == 0) row_ce[i] = (m - row[t]) + logf(s);
  }
}

extern "C" __global__ void __launch_bounds__(LOSS_THREADS)
    ce_finish_f32(float* __restrict__ loss, float* __restrict__ den, const float* __restrict__ row_ce,
                  const unsigned* __restrict__ targets, const float* __restrict__ weights, unsigned rows,
                  unsigned ignore) {
  __shared__ double s[LOSS_THREADS];
  double num = 0.0, cnt = 0.0;
  for (unsigned i = threadIdx.x; i < rows; i += LOSS_THREADS) {
    const bool live = targets[i] != ignore;
    const double w = weights ? (double)weights[i] : (live ? 1.0 : 0.0);
    cnt += w;
    if (live && row_ce) num += w * (double)row_ce[i];
  }
  num = block_sum_f64(num, s);
  cnt = block_sum_f64(cnt, s);
  const double d = weights ? cnt + CE_EPS : cnt;
  if (threadIdx.x == 0) {
    if (loss) loss[0] = (float)(num / d);
    const float hi = (float)d;
    den[0] = hi;
    den[1] = (float)(d - (double)hi);
  }
}

extern "C" __global__ void ce_bwd_f32(float* __restrict__ dlogits, const float* __restrict__ logits,
                                      const unsigned* __restrict__ targets, const float* __restrict__ weights,
                                      const float* __restrict__ g, const float* __restrict__ den, unsigned rows,
                                      unsigned classes, unsigned ignore) {
  __shared__ float scratch[32];
  const double scale = (double)g[0] / ((double)den[0] + (double)den[1]);
  for (unsigned i = blockIdx.x; i < rows; i += gridDim.x) {
    const unsigned t = targets[i];
    const float* row = logits + (size_t)i * classes;
    float* drow = dlogits + (size_t)i * classes;
    const float share = t == ignore ? 0.0f : (float)(scale * (weights ? (double)weights[i] : 1.0));
    if (share == 0.0f) {  // block-uniform
      for (unsigned j = threadIdx.x; j < classes; j += blockDim.x) drow[j] = 0.0f;
      continue;
    }
    float m, s;
    ce_row_stats(row, classes, scratch, m, s);
    const float inv = 1.0f / s;
    for (unsigned j = threadIdx.x; j < classes; j += blockDim.x) {
      const float p = expf(row[j] - m) * inv;
      drow[j] = share * (p - (j == t ? 1.0f : 0.0f));
    }
  }
}

extern "C" __global__ void ce_target_check_u32(unsigned* __restrict__ bad, const unsigned* __restrict__ targets,
                                               unsigned rows, unsigned classes, unsigned ignore) {
  LOSS_LOOP(i, rows) {
    const unsigned t = targets[i];
    if (t >= classes && t != ignore) atomicMin(bad, i);
  }
}
