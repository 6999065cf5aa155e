// attention_backward.cu: gradients of the multi-head attention of attention.cu (spec §3.2: 8 heads
// of 64, scores scale q.k with scale = 1 / sqrt(D), softmax over all keys, no mask), flash-attention
// style: the probabilities are rebuilt from the forward's log-sum-exp, so no L x L matrix is ever
// stored, and every sum runs in a fixed order with no atomics (bit-reproducible).
// Layout as attention.cu: q, k, v, o, dout, dq, dk, dv are [B, L, heads * D], head h in columns
// h*D .. h*D+D-1, element (b, l, h, d) at b * p.batch_stride + l * p.row_stride + h * D + d;
// lse and delta are [B, heads, L] (index (b * heads + h) * L + l).
// With p_ij = exp(scale q_i.k_j - lse_i), dp_ij = dout_i.v_j, delta_i = dout_i.o_i = sum_j p_ij dp_ij
// and ds_ij = p_ij (dp_ij - delta_i):
//   dv_j = sum_i p_ij dout_i,  dk_j = scale sum_i ds_ij q_i,  dq_i = scale sum_j ds_ij k_j.
// Kernels (run in this order; described for D = 64, see below for 32):
//   attention_bwd_delta_f32(delta, o, dout, p)
//       delta_i = dout_i . o_i; one warp per row (D / 32 columns a lane, then warp_sum).
//       Launch: grid (ceil(L / 8), heads, B), 256 threads.
//   attention_bwd_dkdv_f32(dk, dv, q, k, v, dout, lse, delta, p)
//       One block per 64 keys of one (b, h). Each key has two threads, lanes l and l ^ 16 of one
//       warp, each owning the interleaved half d = 2 dd + half (dd < 32) of the head dim: each
//       forms its half of q_i.k_j and dout_i.v_j, one shuffle adds the halves (both lanes get the
//       same sum), and it keeps 32 + 32 accumulators of dk_j and dv_j in registers. (One thread
//       per key with 128 accumulators spilled: the compiler also keeps the 2 x 64 values of the
//       current query row in registers.) The k_j, v_j rows sit in shared memory with a pitch of
//       66 floats, so the 32 lanes (16 keys x 2 halves) read 32 different banks. Queries stream
//       through shared memory 16 at a time with their lse and delta (read as broadcasts).
//       Launch: grid (ceil(L / 64), heads, B), 128 threads, 42112 B static shared memory.
//   attention_bwd_dq_f32(dq, q, k, v, dout, lse, delta, p)
//       One block per 64 queries, two threads per query split the same way, each with its half of
//       q_i and of the dq_i accumulator in registers and its dout_i row in shared memory (pitch 66);
//       keys and values stream through shared memory 32 at a time (broadcast reads).
//       Launch: grid (ceil(L / 64), heads, B), 128 threads, 33280 B static shared memory.
// Head dim D = 64 (the paper model: the entry points above) or 32 (the tiny preset: the same
// kernels with a `_d32` suffix, e.g. attention_bwd_dkdv_d32_f32), as the forward; the launcher
// refuses others. The bodies are templates on D; for D = 32 every thread owns D / 2 = 16 elements
// of the head dim, the shared pitch is D + 2 = 34 (again 32 different banks for the 16 x 2 lanes),
// and the blocks use 128 threads and the same tiles (static shared memory: 21632 B dk/dv, 16896 B dq).

#define ATB_TILE 64     // keys per dk/dv block, queries per dq block (two threads each)
#define ATB_BQ 16       // queries per shared-memory slice of the dk/dv kernel
#define ATB_BK 32       // keys per shared-memory slice of the dq kernel
#define ATB_THREADS 128  // two per key (dk/dv) or per query (dq)
// Per head dim D: each thread owns D / 2 elements (ATB_HALF), shared rows of the per-thread data
// have a pitch of D + 2 floats (conflict-free halves).
#define ATB_HALF(D) ((D) / 2)
#define ATB_PITCH(D) ((D) + 2)

// Mirrors `AttentionParams` in src/cuda/ops/attention.rs (the same struct as attention.cu's).
struct AttentionParams {
  unsigned batch, len, heads;
  unsigned row_stride, batch_stride;
  unsigned o_row_stride, o_batch_stride;  // unused: the backward's tensors are all dense alike
  float scale;
};

template <int D>
static __device__ __forceinline__ void attention_bwd_delta_body(float* __restrict__ delta, const float* __restrict__ o,
                                                                const float* __restrict__ dout,
                                                                const AttentionParams& p) {
  const unsigned lane = threadIdx.x & 31, row = blockIdx.x * 8 + (threadIdx.x >> 5);
  const unsigned h = blockIdx.y, b = blockIdx.z;
  if (row >= p.len) return;  // whole warps leave together: warp_sum below sees full warps
  const size_t at = (size_t)b * p.batch_stride + (size_t)row * p.row_stride + (size_t)h * D;
  float s = o[at + lane] * dout[at + lane];
#pragma unroll
  for (int c = 32; c < D; c += 32) s = fmaf(o[at + lane + c], dout[at + lane + c], s);
  s = warp_sum(s);
  if (lane == 0) delta[((size_t)b * p.heads + h) * p.len + row] = s;
}

// Copies ROWS rows of D (from row `first` of one (b, h)) into tile[r][0..D), zero past the end.
// Coalesced: consecutive threads read consecutive columns of a row.
template <int D, int ROWS, int PITCH>
static __device__ __forceinline__ void load_rows(float (*tile)[PITCH], const float* __restrict__ src, size_t head_base,
                                                 unsigned first, const AttentionParams& p) {
  for (unsigned e = threadIdx.x; e < ROWS * D; e += ATB_THREADS) {
    const unsigned row = first + e / D, d = e % D;
    tile[e / D][d] = row < p.len ? src[head_base + (size_t)row * p.row_stride + d] : 0.0f;
  }
}

// The row of the block's tile (key or query) that thread t works on, and which half of the head
// dim it owns: lanes l and l ^ 16 of a warp share a row.
static __device__ __forceinline__ unsigned pair_row(unsigned t) { return (t >> 5) * 16 + (t & 15); }
static __device__ __forceinline__ unsigned pair_half(unsigned t) { return (t >> 4) & 1; }

template <int D>
static __device__ __forceinline__ void attention_bwd_dkdv_body(
    float (*ks)[ATB_PITCH(D)], float (*vs)[ATB_PITCH(D)], float (*qs)[D], float (*dos)[D], float* lses,
    float* deltas, float* __restrict__ dk, float* __restrict__ dv, const float* __restrict__ q,
    const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ delta, const AttentionParams& p) {
  constexpr int HALF = ATB_HALF(D);
  const unsigned t = threadIdx.x, k0 = blockIdx.x * ATB_TILE, h = blockIdx.y, b = blockIdx.z;
  const unsigned kr = pair_row(t), half = pair_half(t);
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const size_t row_base = ((size_t)b * p.heads + h) * p.len;
  load_rows<D, ATB_TILE, ATB_PITCH(D)>(ks, k, head_base, k0, p);
  load_rows<D, ATB_TILE, ATB_PITCH(D)>(vs, v, head_base, k0, p);

  float dk_acc[HALF], dv_acc[HALF];
#pragma unroll
  for (int dd = 0; dd < HALF; ++dd) dk_acc[dd] = dv_acc[dd] = 0.0f;

  for (unsigned q0 = 0; q0 < p.len; q0 += ATB_BQ) {
    __syncthreads();  // the previous slice is consumed (and, first time, ks / vs are written)
    load_rows<D, ATB_BQ, D>(qs, q, head_base, q0, p);
    load_rows<D, ATB_BQ, D>(dos, dout, head_base, q0, p);
    if (t < ATB_BQ) {
      const bool ok = q0 + t < p.len;
      lses[t] = ok ? lse[row_base + q0 + t] : 0.0f;
      deltas[t] = ok ? delta[row_base + q0 + t] : 0.0f;
    }
    __syncthreads();
    const unsigned nq = min(p.len - q0, (unsigned)ATB_BQ);
    for (unsigned i = 0; i < nq; ++i) {
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int dd = 0; dd < HALF; ++dd) {
        const unsigned d = 2 * dd + half;
        s = fmaf(qs[i][d], ks[kr][d], s);
        dp = fmaf(dos[i][d], vs[kr][d], dp);
      }
      s += __shfl_xor_sync(FDM_FULL_MASK, s, 16);
      dp += __shfl_xor_sync(FDM_FULL_MASK, dp, 16);
      const float pij = expf(s * p.scale - lses[i]);
      const float ds = pij * (dp - deltas[i]);
#pragma unroll
      for (int dd = 0; dd < HALF; ++dd) {
        const unsigned d = 2 * dd + half;
        dv_acc[dd] = fmaf(pij, dos[i][d], dv_acc[dd]);
        dk_acc[dd] = fmaf(ds, qs[i][d], dk_acc[dd]);
      }
    }
  }

  const unsigned j = k0 + kr;
  if (j < p.len) {
    const size_t at = head_base + (size_t)j * p.row_stride + half;
#pragma unroll
    for (int dd = 0; dd < HALF; ++dd) {
      dk[at + 2 * dd] = dk_acc[dd] * p.scale;
      dv[at + 2 * dd] = dv_acc[dd];
    }
  }
}

template <int D>
static __device__ __forceinline__ void attention_bwd_dq_body(float (*dos)[ATB_PITCH(D)], float (*ks)[D], float (*vs)[D],
                                                             float* __restrict__ dq, const float* __restrict__ q,
                                                             const float* __restrict__ k, const float* __restrict__ v,
                                                             const float* __restrict__ dout,
                                                             const float* __restrict__ lse,
                                                             const float* __restrict__ delta,
                                                             const AttentionParams& p) {
  constexpr int HALF = ATB_HALF(D);
  const unsigned t = threadIdx.x, qrow = pair_row(t), half = pair_half(t);
  const unsigned i = blockIdx.x * ATB_TILE + qrow, h = blockIdx.y, b = blockIdx.z;
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const bool q_ok = i < p.len;
  load_rows<D, ATB_TILE, ATB_PITCH(D)>(dos, dout, head_base, blockIdx.x * ATB_TILE, p);

  float qr[HALF], dq_acc[HALF];
#pragma unroll
  for (int dd = 0; dd < HALF; ++dd) {
    qr[dd] = q_ok ? q[head_base + (size_t)i * p.row_stride + 2 * dd + half] : 0.0f;
    dq_acc[dd] = 0.0f;
  }
  const size_t row = ((size_t)b * p.heads + h) * p.len + i;
  const float lse_i = q_ok ? lse[row] : 0.0f, delta_i = q_ok ? delta[row] : 0.0f;

  for (unsigned k0 = 0; k0 < p.len; k0 += ATB_BK) {
    __syncthreads();  // the previous slice is consumed (and, first time, dos is written)
    load_rows<D, ATB_BK, D>(ks, k, head_base, k0, p);
    load_rows<D, ATB_BK, D>(vs, v, head_base, k0, p);
    __syncthreads();
    const unsigned nk = min(p.len - k0, (unsigned)ATB_BK);
    for (unsigned j = 0; j < nk; ++j) {
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int dd = 0; dd < HALF; ++dd) {
        const unsigned d = 2 * dd + half;
        s = fmaf(qr[dd], ks[j][d], s);
        dp = fmaf(dos[qrow][d], vs[j][d], dp);
      }
      s += __shfl_xor_sync(FDM_FULL_MASK, s, 16);
      dp += __shfl_xor_sync(FDM_FULL_MASK, dp, 16);
      const float ds = expf(s * p.scale - lse_i) * (dp - delta_i);
#pragma unroll
      for (int dd = 0; dd < HALF; ++dd) dq_acc[dd] = fmaf(ds, ks[j][2 * dd + half], dq_acc[dd]);
    }
  }

  if (q_ok) {
    const size_t at = head_base + (size_t)i * p.row_stride + half;
#pragma unroll
    for (int dd = 0; dd < HALF; ++dd) dq[at + 2 * dd] = dq_acc[dd] * p.scale;
  }
}

// Entry points: the shared tiles live here so that each head dim has its own.
extern "C" __global__ void __launch_bounds__(256)
    attention_bwd_delta_f32(float* __restrict__ delta, const float* __restrict__ o, const float* __restrict__ dout,
                          AttentionParams p) {
  attention_bwd_delta_body<64>(delta, o, dout, p);
}

extern "C" __global__ void __launch_bounds__(ATB_THREADS)
    attention_bwd_dkdv_f32(float* __restrict__ dk, float* __restrict__ dv, const float* __restrict__ q,
                         const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dout,
                         const float* __restrict__ lse, const float* __restrict__ delta, AttentionParams p) {
  __shared__ float ks[ATB_TILE][ATB_PITCH(64)];
  __shared__ float vs[ATB_TILE][ATB_PITCH(64)];
  __shared__ float qs[ATB_BQ][64];
  __shared__ float dos[ATB_BQ][64];
  __shared__ float lses[ATB_BQ], deltas[ATB_BQ];
  attention_bwd_dkdv_body<64>(ks, vs, qs, dos, lses, deltas, dk, dv, q, k, v, dout, lse, delta, p);
}

extern "C" __global__ void __launch_bounds__(ATB_THREADS)
    attention_bwd_dq_f32(float* __restrict__ dq, const float* __restrict__ q, const float* __restrict__ k,
                       const float* __restrict__ v, const float* __restrict__ dout, const float* __restrict__ lse,
                       const float* __restrict__ delta, AttentionParams p) {
  __shared__ float dos[ATB_TILE][ATB_PITCH(64)];
  __shared__ float ks[ATB_BK][64];
  __shared__ float vs[ATB_BK][64];
  attention_bwd_dq_body<64>(dos, ks, vs, dq, q, k, v, dout, lse, delta, p);
}

extern "C" __global__ void __launch_bounds__(256)
    attention_bwd_delta_d32_f32(float* __restrict__ delta, const float* __restrict__ o, const float* __restrict__ dout,
                          AttentionParams p) {
  attention_bwd_delta_body<32>(delta, o, dout, p);
}

extern "C" __global__ void __launch_bounds__(ATB_THREADS)
    attention_bwd_dkdv_d32_f32(float* __restrict__ dk, float* __restrict__ dv, const float* __restrict__ q,
                         const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dout,
                         const float* __restrict__ lse, const float* __restrict__ delta, AttentionParams p) {
  __shared__ float ks[ATB_TILE][ATB_PITCH(32)];
  __shared__ float vs[ATB_TILE][ATB_PITCH(32)];
  __shared__ float qs[ATB_BQ][32];
  __shared__ float dos[ATB_BQ][32];
  __shared__ float lses[ATB_BQ], deltas[ATB_BQ];
  attention_bwd_dkdv_body<32>(ks, vs, qs, dos, lses, deltas, dk, dv, q, k, v, dout, lse, delta, p);
}

extern "C" __global__ void __launch_bounds__(ATB_THREADS)
    attention_bwd_dq_d32_f32(float* __restrict__ dq, const float* __restrict__ q, const float* __restrict__ k,
                       const float* __restrict__ v, const float* __restrict__ dout, const float* __restrict__ lse,
                       const float* __restrict__ delta, AttentionParams p) {
  __shared__ float dos[ATB_TILE][ATB_PITCH(32)];
  __shared__ float ks[ATB_BK][32];
  __shared__ float vs[ATB_BK][32];
  attention_bwd_dq_body<32>(dos, ks, vs, dq, q, k, v, dout, lse, delta, p);
}
