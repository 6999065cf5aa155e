// sampling.cu: one step of the token sampler (spec §5.2) on the transformer's logits
// [B, L, V] (B images, L = 1024 positions, V = 512 classes), row-major.
//   row_max_f32(out, x, rows, cols)
//       out[r] = max_c x[r, c]: the confidence of each position (the max RAW logit, spec §5.2.3).
//   select_positions_f32(positions, score, known, B, L, n)
//       For image b, the n unknown positions (known[b*L + l] == 0) with the largest score, in
//       descending order; ties: the lowest position first. positions[b*n + j]; slots beyond the
//       number of unknown positions get 0xffffffff. Known positions are never chosen (spec §5.2.3:
//       known positions are set to -inf; with fewer than n unknown the official code's extra picks
//       are known positions that it then skips).
//   topk_sample_f32(tokens, logits, uniforms, positions, p)
//       For every sampled row q in 0..p.rows: its logits are row q of `logits` (positions null),
//       or row (q / p.per_image) * p.seq_len + positions[q] (a position chosen above; 0xffffffff
//       gives token 0xffffffff). Keep the top p.k logits (ties: lowest class index first), take
//       softmax(logit / p.temperature) over them, and draw by inverse CDF with the uniform
//       u = uniforms[q] in [0, 1): the first kept class, in class-index order, whose running (f64)
//       sum of exp((l - l_max) / temperature) exceeds u * total. tokens[q] = class index.
//       The uniforms come from the host's seeded generator, so the CPU and GPU draw the same
//       tokens (design.md §2). Logits are finite or -inf; a row of all -inf is undefined.
//   apply_picks_f32(table, tokens, known, order, codebook, positions, drawn, p)
//       The sampler's state update after a step, on the device (no host round trip): for every
//       pick q in 0..p.picks whose position is not 0xffffffff, with i = (q / p.per_image) *
//       p.seq_len + positions[q]: table[i, :] = codebook[drawn[q], :] (p.width floats),
//       tokens[i] = drawn[q], known[i] = 1, order[i] = p.order_base + q % p.per_image (the pick's
//       rank in its image's fill order). drawn[q] < the codebook's rows is the caller's
//       guarantee (tokens come from topk_sample_f32 over V <= codebook rows).
// One block per image (select_positions) or sampled row (topk_sample), one warp per row
// (row_max). select_positions and topk_sample sort their row with a bitonic network in shared
// memory in `precedes` order (exact and deterministic, ties by lowest index); then one thread of
// topk_sample takes the running sum over the k kept classes in class-index order.
// Dynamic shared memory: topk_sample_f32 (2 n + 2 k) * 4 bytes with n the power of two >= V;
// select_positions_f32 2 n * 4 bytes with n the power of two >= L.

#define SAMPLE_NONE 0xffffffffu

// Mirrors `PickParams` in src/cuda/ops/sampling.rs.
struct PickParams {
  unsigned picks;       // B * n pick slots
  unsigned per_image;   // n
  unsigned seq_len;     // L
  unsigned width;       // C: floats per table / codebook row
  unsigned order_base;  // fill-order rank of this step's first pick in each image
};

// Mirrors `TopkParams` in src/cuda/ops/sampling.rs.
struct TopkParams {
  unsigned rows;       // rows to sample
  unsigned vocab;      // V
  unsigned k;          // top-K (1 <= k <= V)
  unsigned seq_len;    // L: logits rows per image (used with positions)
  unsigned per_image;  // sampled rows per image (used with positions)
  float temperature;  // logits are divided by it (> 0)
};

extern "C" __global__ void row_max_f32(float* __restrict__ out, const float* __restrict__ x, unsigned rows,
                                       unsigned cols) {
  const unsigned warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  for (unsigned r = blockIdx.x * warps + (threadIdx.x >> 5); r < rows; r += gridDim.x * warps) {
    float m = -FDM_INF;
    for (unsigned c = lane; c < cols; c += 32) m = fmaxf(m, x[(size_t)r * cols + c]);
    m = warp_max(m);
    if (lane == 0) out[r] = m;
  }
}

// a precedes b in "descending value, then ascending index" order.
static __device__ __forceinline__ bool precedes(float va, unsigned ia, float vb, unsigned ib) {
  return va > vb || (va == vb && ia < ib);
}

// Sorts n = a power of two (value, index) pairs in shared memory into `precedes` order (largest
// value first, ties: lowest index first) with a bitonic network: log2(n) (log2(n) + 1) / 2 stages
// of n / 2 compare-exchanges, all threads of the block, a barrier after each stage.
static __device__ __forceinline__ void bitonic_sort_desc(float* v, unsigned* idx, unsigned n) {
  for (unsigned size = 2; size <= n; size <<= 1)
    for (unsigned stride = size >> 1; stride > 0; stride >>= 1) {
      for (unsigned t = threadIdx.x; t < n / 2; t += blockDim.x) {
        const unsigned lo = 2 * t - (t & (stride - 1)), hi = lo + stride;
        const float va = v[lo], vb = v[hi];
        const unsigned ia = idx[lo], ib = idx[hi];
        // Blocks of `size` alternate direction until the last merge, which is all one way.
        const bool swap = (lo & size) == 0 ? precedes(vb, ib, va, ia) : precedes(va, ia, vb, ib);
        if (swap) {
          v[lo] = vb;
          v[hi] = va;
          idx[lo] = ib;
          idx[hi] = ia;
        }
      }
      __syncthreads();
    }
}

extern "C" __global__ void select_positions_f32(unsigned* __restrict__ positions, const float* __restrict__ score,
                                                const unsigned* __restrict__ known, unsigned B, unsigned L,
                                                unsigned n) {
  unsigned len = 1;  // the sort's size: the next power of two >= L
  while (len < L) len <<= 1;
  DYN_SHARED(float, s_score);
  unsigned* s_pos = reinterpret_cast<unsigned*>(s_score + len);
  for (unsigned b = blockIdx.x; b < B; b += gridDim.x) {
    // Known positions (and the padding) sort after every unknown one: -inf with an index past L.
    for (unsigned l = threadIdx.x; l < len; l += blockDim.x) {
      const bool open = l < L && !known[(size_t)b * L + l];
      s_score[l] = open ? score[(size_t)b * L + l] : -FDM_INF;
      s_pos[l] = open ? l : L + l;
    }
    __syncthreads();
    bitonic_sort_desc(s_score, s_pos, len);
    for (unsigned j = threadIdx.x; j < n; j += blockDim.x)
      positions[(size_t)b * n + j] = j < len && s_pos[j] < L ? s_pos[j] : SAMPLE_NONE;
    __syncthreads();  // s_score / s_pos are rewritten for the next image
  }
}

extern "C" __global__ void topk_sample_f32(unsigned* __restrict__ tokens, const float* __restrict__ logits,
                                           const float* __restrict__ uniforms, const unsigned* __restrict__ positions,
                                           TopkParams p) {
  unsigned n = 1;  // the sort's size: the next power of two >= V
  while (n < p.vocab) n <<= 1;
  DYN_SHARED(float, s_val);                                          // [n] sorted logits
  unsigned* s_idx = reinterpret_cast<unsigned*>(s_val + n);          // [n] their classes
  float* s_w = reinterpret_cast<float*>(s_idx + n);                  // [k] kept weights, class order
  unsigned* s_cls = reinterpret_cast<unsigned*>(s_w + p.k);          // [k] kept classes, class order
  for (unsigned q = blockIdx.x; q < p.rows; q += gridDim.x) {
    size_t row = q;
    if (positions) {
      const unsigned pos = positions[q];
      if (pos == SAMPLE_NONE) {
        if (threadIdx.x == 0) tokens[q] = SAMPLE_NONE;
        continue;  // uniform across the block: every thread skips this row
      }
      row = (size_t)(q / p.per_image) * p.seq_len + pos;
    }
    // Padding sorts after every class: -inf with an index past V (a class's -inf has a lower one).
    for (unsigned c = threadIdx.x; c < n; c += blockDim.x) {
      s_val[c] = c < p.vocab ? logits[row * p.vocab + c] : -FDM_INF;
      s_idx[c] = c;
    }
    __syncthreads();
    bitonic_sort_desc(s_val, s_idx, n);
    // The first k are the top k. Each goes to its place in class-index order (the number of kept
    // classes below it), with its weight exp((l - max) / temperature).
    const float top = s_val[0];
    for (unsigned r = threadIdx.x; r < p.k; r += blockDim.x) {
      const unsigned c = s_idx[r];
      unsigned at = 0;
      for (unsigned j = 0; j < p.k; ++j) at += s_idx[j] < c ? 1u : 0u;
      s_w[at] = expf((s_val[r] - top) / p.temperature);
      s_cls[at] = c;
    }
    __syncthreads();
    // The draw walks the kept classes in class-index order with an f64 running sum, exactly as
    // the CPU sampler (src/cpu/ops/sampling.rs, rng::categorical_with_uniform) does, so both
    // backends draw the same token from the same uniform; classes of weight 0 (exp underflow,
    // -inf logits) are never drawn.
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (unsigned j = 0; j < p.k; ++j) total += (double)s_w[j];
      const double target = (double)uniforms[q] * total;
      double run = 0.0;
      unsigned pick = s_idx[0];
      for (unsigned j = 0; j < p.k; ++j) {
        const float w = s_w[j];
        if (w > 0.0f) {
          pick = s_cls[j];  // rounding may leave target == total: keep the last live class
          run += (double)w;
          if (target < run) break;
        }
      }
      tokens[q] = pick;
    }
    __syncthreads();  // the shared row is reloaded for the next q
  }
}

extern "C" __global__ void apply_picks_f32(float* __restrict__ table, unsigned* __restrict__ tokens,
                                           unsigned* __restrict__ known, unsigned* __restrict__ order,
                                           const float* __restrict__ codebook,
                                           const unsigned* __restrict__ positions,
                                           const unsigned* __restrict__ drawn, PickParams p) {
  for (unsigned q = blockIdx.x; q < p.picks; q += gridDim.x) {
    const unsigned pos = positions[q];
    if (pos == SAMPLE_NONE) continue;  // uniform across the block
    const unsigned tok = drawn[q];
    const size_t i = (size_t)(q / p.per_image) * p.seq_len + pos;
    for (unsigned c = threadIdx.x; c < p.width; c += blockDim.x) table[i * p.width + c] = codebook[(size_t)tok * p.width + c];
    if (threadIdx.x == 0) {
      tokens[i] = tok;
      known[i] = 1u;
      order[i] = p.order_base + q % p.per_image;
    }
  }
}
