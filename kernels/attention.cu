// attention.cu: multi-head attention forward in one pass over the keys (flash-attention style:
// the L x L score matrix is never stored), spec §3.2: 8 heads of 64, scores q.k^T / sqrt(64),
// softmax over all keys (no mask: the transformer is bidirectional), weighted sum of values.
//   attention_fwd_f32(o, lse, q, k, v, p)
//       q, k, v, o: [B, L, heads * 64] with head h in columns h*64 .. h*64+63 (the layout the
//       query/key/value Linear layers produce), addressed as
//       x[b * p.batch_stride + l * p.row_stride + h * 64 + d]  (row_stride = heads * 64 when dense);
//       o with its own strides: o[b * p.o_batch_stride + l * p.o_row_stride + h * 64 + d] (q, k and
//       v may be column blocks of one fused [B, L, 3 * heads * 64] projection, o dense)
//       o[b, l, h, :] = sum_j softmax_j(scale * q[b,l,h,:] . k[b,j,h,:]) v[b,j,h,:]
//       lse[(b * heads + h) * L + l] = log sum_j exp(scale * q.k_j) (for a backward pass); may be null.
// Head dim 64 (the paper model: attention_fwd_f32) or 32 (the tiny preset: attention_fwd_d32_f32);
// the launcher refuses others. Each block takes 64 queries of
// one (batch, head), one thread per query holding its scaled q and its output accumulator (64 + 64
// floats) in registers. Keys and values stream through shared memory in tiles of 64 (every thread
// reads the same key row: a broadcast); the running max / sum / output are updated online per key,
// rescaled only when the max grows. No warp-level communication is needed.
// Launch: grid (ceil(L / 64), heads, B), 64 threads, 2 * 64 * D * 4 bytes of static shared memory.
// attention_fwd_split_f32 / attention_fwd_split_d32_f32 (below, the launcher's default): the same
// result with 4 threads per query, each over a quarter of the keys, merged at the end; 256 threads.

#define ATT_D 64
#define ATT_BQ 64
#define ATT_BK 64
#define ATT_THREADS 64

// Mirrors `AttentionParams` in src/cuda/ops/attention.rs.
struct AttentionParams {
  unsigned batch, len, heads;
  unsigned row_stride, batch_stride;
  unsigned o_row_stride, o_batch_stride;
  float scale;
};

// Where row l of head h, batch b starts in o (its own strides: o may be denser than q, k, v).
static __device__ __forceinline__ size_t att_out_at(const AttentionParams& p, unsigned b, unsigned h, unsigned l,
                                                   unsigned d) {
  return (size_t)b * p.o_batch_stride + (size_t)l * p.o_row_stride + (size_t)h * d;
}

// This thread's query row, scaled, and a cleared output accumulator (zeros past the sequence).
template <int D>
static __device__ __forceinline__ void att_load_query(float (&qr)[D], float (&acc)[D], const float* __restrict__ q,
                                                      size_t at, bool ok, float scale) {
#pragma unroll
  for (int i = 0; i < D; ++i) {
    qr[i] = ok ? q[at + i] * scale : 0.0f;
    acc[i] = 0.0f;
  }
}

// Keys and values k0 .. k0 + ATT_BK - 1 of one (batch, head) into shared memory (zeros past the
// sequence), THREADS threads reading consecutive d (coalesced).
template <int D, int THREADS>
static __device__ __forceinline__ void att_stage_tile(float (*ks)[D], float (*vs)[D], const float* __restrict__ k,
                                                      const float* __restrict__ v, size_t head_base, unsigned k0,
                                                      const AttentionParams& p) {
#pragma unroll 4
  for (int r = 0; r < ATT_BK * D / THREADS; ++r) {
    const unsigned e = threadIdx.x + THREADS * r, key = e / D, d = e % D, j = k0 + key;
    const size_t at = head_base + (size_t)j * p.row_stride + d;
    ks[key][d] = j < p.len ? k[at] : 0.0f;
    vs[key][d] = j < p.len ? v[at] : 0.0f;
  }
}

// The online softmax over staged keys j0 .. j1 - 1: running max m, sum l and output acc, rescaled
// only when the max grows.
template <int D>
static __device__ __forceinline__ void att_consume_keys(const float (&qr)[D], float (&acc)[D], float& m, float& l,
                                                        const float (*ks)[D], const float (*vs)[D], unsigned j0,
                                                        unsigned j1) {
  for (unsigned j = j0; j < j1; ++j) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < D; ++i) s = fmaf(qr[i], ks[j][i], s);
    if (s > m) {
      const float corr = expf(m - s);
      l *= corr;
#pragma unroll
      for (int i = 0; i < D; ++i) acc[i] *= corr;
      m = s;
    }
    const float w = expf(s - m);
    l += w;
#pragma unroll
    for (int i = 0; i < D; ++i) acc[i] = fmaf(w, vs[j][i], acc[i]);
  }
}

// The kernel body for head dim D (64: the paper model; 32: the tiny preset); the entry points
// below own the shared-memory tiles so that each instantiation has its own.
template <int D>
static __device__ __forceinline__ void attention_fwd_body(float (*ks)[D], float (*vs)[D], float* __restrict__ o,
                                                          float* __restrict__ lse, const float* __restrict__ q,
                                                          const float* __restrict__ k,
                                                          const float* __restrict__ v, const AttentionParams& p) {
  const unsigned t = threadIdx.x, qi = blockIdx.x * ATT_BQ + t;
  const unsigned h = blockIdx.y, b = blockIdx.z;
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const bool q_ok = qi < p.len;
  float qr[D], acc[D];
  att_load_query<D>(qr, acc, q, head_base + (size_t)qi * p.row_stride, q_ok, p.scale);
  float m = -FDM_INF, l = 0.0f;
  for (unsigned k0 = 0; k0 < p.len; k0 += ATT_BK) {
    att_stage_tile<D, ATT_THREADS>(ks, vs, k, v, head_base, k0, p);
    __syncthreads();
    att_consume_keys<D>(qr, acc, m, l, ks, vs, 0, min(p.len - k0, (unsigned)ATT_BK));
    __syncthreads();
  }

  if (q_ok) {
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < D; ++i) o[att_out_at(p, b, h, qi, D) + i] = acc[i] * inv;
    if (lse) lse[((size_t)b * p.heads + h) * p.len + qi] = m + logf(l);
  }
}

extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    attention_fwd_f32(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                      const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ float ks[ATT_BK][ATT_D];
  __shared__ float vs[ATT_BK][ATT_D];
  attention_fwd_body<ATT_D>(ks, vs, o, lse, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(ATT_THREADS)
    attention_fwd_d32_f32(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                          const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ float ks[ATT_BK][32];
  __shared__ float vs[ATT_BK][32];
  attention_fwd_body<32>(ks, vs, o, lse, q, k, v, p);
}

// ---- Split-keys variant (the default; the kernels above are its reference) ----
// The one-thread-per-query kernel runs 2 warps per block, 128 blocks for the paper's 8 heads x 1024:
// about 2 warps per multiprocessor, so every key's dot product and exp wait on memory and on each
// other. Here ATT_SPLIT = 4 threads share a query (block of 256 threads: thread t takes query slot
// t % 64 and key group t / 64). Each group runs the same online softmax over its quarter of every
// key tile (keys g*16 .. g*16+15), so a warp still reads one key row at a time (broadcast); at the
// end the four partial states (m_g, l_g, acc_g) of a query are merged exactly:
//   M = max_g m_g,  L = sum_g l_g exp(m_g - M),  o = sum_g acc_g exp(m_g - M) / L,  lse = M + log L,
// the accumulators summed in shared memory (reusing the key tile, transposed so lanes hit
// distinct banks) in group order. Same launch grid; 256 threads.
#define ATT_SPLIT 4
#define ATT_SPLIT_THREADS (ATT_BQ * ATT_SPLIT)

template <int D>
static __device__ __forceinline__ void attention_fwd_split_body(float (*ks)[D], float (*vs)[D], float (*red)[ATT_BQ],
                                                                float* __restrict__ o, float* __restrict__ lse,
                                                                const float* __restrict__ q,
                                                                const float* __restrict__ k,
                                                                const float* __restrict__ v, const AttentionParams& p) {
  const unsigned t = threadIdx.x, slot = t % ATT_BQ, grp = t / ATT_BQ, qi = blockIdx.x * ATT_BQ + slot;
  const unsigned h = blockIdx.y, b = blockIdx.z;
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const bool q_ok = qi < p.len;
  const unsigned per_grp = ATT_BK / ATT_SPLIT;
  float qr[D], acc[D];
  att_load_query<D>(qr, acc, q, head_base + (size_t)qi * p.row_stride, q_ok, p.scale);
  float m = -FDM_INF, l = 0.0f;
  for (unsigned k0 = 0; k0 < p.len; k0 += ATT_BK) {
    att_stage_tile<D, ATT_SPLIT_THREADS>(ks, vs, k, v, head_base, k0, p);
    __syncthreads();
    const unsigned nk = min(p.len - k0, (unsigned)ATT_BK), j0 = grp * per_grp;
    att_consume_keys<D>(qr, acc, m, l, ks, vs, j0, min(j0 + per_grp, nk));
    __syncthreads();
  }

  // Merge the groups' states. red[g][slot] holds m_g, then red[ATT_SPLIT + g][slot] l_g.
  red[grp][slot] = m;
  red[ATT_SPLIT + grp][slot] = l;
  __syncthreads();
  float big = -FDM_INF;
#pragma unroll
  for (int g = 0; g < ATT_SPLIT; ++g) big = fmaxf(big, red[g][slot]);
  float total = 0.0f;
#pragma unroll
  for (int g = 0; g < ATT_SPLIT; ++g) {
    const float mg = red[g][slot];
    total += mg == -FDM_INF ? 0.0f : red[ATT_SPLIT + g][slot] * expf(mg - big);
  }
  const float own = m == -FDM_INF ? 0.0f : expf(m - big);  // a group that saw no key adds nothing
  float (*sum)[ATT_BQ] = reinterpret_cast<float (*)[ATT_BQ]>(&ks[0][0]);  // D x 64, transposed
  for (int g = 0; g < ATT_SPLIT; ++g) {
    if ((int)grp == g) {
#pragma unroll
      for (int i = 0; i < D; ++i) sum[i][slot] = (g == 0 ? 0.0f : sum[i][slot]) + acc[i] * own;
    }
    __syncthreads();
  }
  if (q_ok) {
    const float inv = 1.0f / total;
    const int d0 = grp * (D / ATT_SPLIT);
#pragma unroll
    for (int i = d0; i < d0 + D / ATT_SPLIT; ++i) o[att_out_at(p, b, h, qi, D) + i] = sum[i][slot] * inv;
    if (lse && grp == 0) lse[((size_t)b * p.heads + h) * p.len + qi] = big + logf(total);
  }
}

extern "C" __global__ void __launch_bounds__(ATT_SPLIT_THREADS)
    attention_fwd_split_f32(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                            const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ float ks[ATT_BK][ATT_D];
  __shared__ float vs[ATT_BK][ATT_D];
  __shared__ float red[2 * ATT_SPLIT][ATT_BQ];
  attention_fwd_split_body<ATT_D>(ks, vs, red, o, lse, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(ATT_SPLIT_THREADS)
    attention_fwd_split_d32_f32(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                                const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ float ks[ATT_BK][32];
  __shared__ float vs[ATT_BK][32];
  __shared__ float red[2 * ATT_SPLIT][ATT_BQ];
  attention_fwd_split_body<32>(ks, vs, red, o, lse, q, k, v, p);
}
