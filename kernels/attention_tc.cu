// attention_tc.cu: multi-head attention forward on bf16 tensor cores (flash-attention 2 style),
// the transformer's attention under `--precision bf16` (spec §3.2: 8 heads of 64, no mask;
// inference only, so no backward).
//   attention_fwd_tc_bf16 (head dim 64) / attention_fwd_tc_d32_bf16 (head dim 32, the tiny preset)
//       (o, lse, q, k, v, p): the same arguments and layout as attention_fwd_f32 in attention.cu:
//       q, k, v, o f32 [B, L, heads * D], x[b * p.batch_stride + l * p.row_stride + h * D + d],
//       o[b * p.o_batch_stride + l * p.o_row_stride + h * D + d] (so q, k and v may be column blocks
//       of the fused [B, L, 3 * heads * D] projection of bf16 inference and o dense);
//       lse[(b * heads + h) * L + l] = log sum_j exp(scale q.k_j) or null.
// Numerics: q, k and v are rounded to bf16 (nearest even) when staged; the scores q.k are bf16
// products summed in f32; softmax in f32 (exp2 of fma(score, scale log2 e, -running max));
// the probabilities are rounded to bf16 for the P V product (f32 sums) while the normaliser l sums
// them unrounded. The CPU's bf16 attention (src/ops/attention.rs) rounds q, k and v the same way
// and keeps the probabilities f32.
//
// Tiling: a block of 4 warps takes 64 queries of one (batch, head), 16 per warp; keys and values
// stream through shared memory in tiles of 64. Per tile each warp computes its 16 x 64 scores as
// 8 mma tiles (D / 16 k-steps each) with its query fragments kept in registers, updates the
// running max m and sum l of its rows, and adds P V to its 16 x D output accumulator (D / 8 mma
// tiles per 16 keys). The score accumulators are reused as the A fragments of P: the C layout of
// two neighbouring 16 x 8 tiles is the A layout of one 16 x 16 tile (mma fragments: common.cuh).
//   Thread (g = lane / 4, t = lane % 4) holds rows g and g + 8 of its warp's 16 queries; score
//   s[j][e] is row g + 8 (e / 2), key 8 j + 2 t + e % 2 of the tile.
// Shared memory (bf16 pairs in 32-bit words): ks[key][d pair] and vt[d][key pair] (V transposed:
// the P V product needs pairs of consecutive keys for one d). A B fragment takes pairs t and t + 4
// of an 8-pair group; the pairs of each group are stored in the order 0 4 1 5 2 6 3 7 (`atc_col`),
// so those two words are adjacent and one 64-bit load reads both. Rows are padded to 8 (mod 32)
// words, so the 8-byte loads of a half-warp (4 rows x 4 threads) hit 32 different banks, and the
// columns of odd keys (ks) are XORed with 2 and those of d rows with bit 2 set (vt) with 16, so the
// stores of a warp, which cover two keys or two d quads, hit 32 banks too (a simulation of these
// index formulas: 2 wavefronts per 8-byte load, the minimum, and 1 per store).

// 20 KiB for D = 64. The next tile's K and V are loaded into registers (16-byte loads) while the
// current one is computed.
// Alignment: q, k, v 16-byte aligned, row_stride and batch_stride multiples of 4 (the launcher
// checks; dense tensors of head dim 32 or 64 always are).
// Launch: grid (ceil(L / 64), heads, B), 128 threads.
// attention_fwd_tc_w8[_d32]_bf16: the same with 8 warps and 128 queries per block, grid
// (ceil(L / 128), heads, B), 256 threads: each K/V tile staged once for twice the queries.
// attention_fwd_tc[_w8][_d32]_bf16_ob: the one-pass and wide kernels writing o rounded to bf16
// (pairs in 32-bit words) for a bf16-weight Linear that reads it (no cast there).
// attention_fwd_tc_kg2[_d32]_bf16: the same result from 256 threads, two key groups of 4 warps
// (even and odd 64-key tiles) over the same 64 queries, merged in shared memory at the end
// (attention_tc_kg2_body); 40 KiB for D = 64.
// attention_fwd_fa_bf16[_ob] (head dim 64): the 8-warp kernel's result, bit for bit, from q, k, v
// already in bf16: cp.async staging, ldmatrix fragments, 4 warps of 32 queries (attention_fa_body).
// attention_fwd_tc_split[_d32]_bf16 + attention_tc_merge: the keys in `splits` ranges of whole
// tiles, one block per (query tile, head, batch, range), each range's normalised result and
// log-sum-exp into partial buffers, merged exactly by the second kernel. At batch 1 the paper
// model has only 128 blocks of 4 warps for ~132 multiprocessors; splitting the keys multiplies
// the blocks (the launcher's `tc_splits`).

#define ATC_BQ 64
#define ATC_BK 64
#define ATC_THREADS 128
#define ATC_WARPS (ATC_THREADS / 32)
#define ATC_KV_LDS (ATC_BK / 2 + 8)  // words per vt row: 32 key pairs + 8 of padding
#define ATC_K_LDS(D) ((D) / 2 + 8)   // words per ks row: D / 2 d pairs + 8 of padding

// Mirrors `AttentionParams` in src/cuda/ops/attention.rs.
struct AttentionParams {
  unsigned batch, len, heads;
  unsigned row_stride, batch_stride;
  unsigned o_row_stride, o_batch_stride;
  float scale;
};

static __device__ __forceinline__ unsigned atc_pack(float lo, float hi) { return fdm_bf16x2_bits(lo, hi); }

// Shared-memory column of pair p: within each group of 8 pairs the order 0 4 1 5 2 6 3 7, so the
// pairs t and t + 4 that one B fragment needs are adjacent (see the header).
static __device__ __forceinline__ unsigned atc_col(unsigned p) { return (p & ~7u) | ((p & 3u) << 1) | ((p >> 2) & 1u); }

// Row swizzles of the columns (see the header): ks by key, vt by d.
static __device__ __forceinline__ unsigned atc_kswz(unsigned key) { return (key & 1u) << 1; }
static __device__ __forceinline__ unsigned atc_vswz(unsigned d) { return (d & 4u) << 2; }

// The two words of a B fragment: pairs 8 c + t and 8 c + t + 4 of `row` (columns XORed with
// `swz`), one 64-bit load.
static __device__ __forceinline__ void atc_frag_b(unsigned (&bf)[2], const unsigned* row, unsigned c, unsigned t,
                                                  unsigned swz) {
  const unsigned* at = row + ((8 * c + 2 * t) ^ swz);
#ifdef FDM_EMU
  // A GPU faults on a misaligned 8-byte shared load; the CPU would not notice, so check here.
  if (reinterpret_cast<uintptr_t>(at) % 8 != 0) ::cuda_emu::fail("atc_frag_b: misaligned 8-byte load");
#endif
  const uint2 w = *reinterpret_cast<const uint2*>(at);
  bf[0] = w.x;
  bf[1] = w.y;
}

// The A fragments of this thread's two query rows r0 and r0 + 8 (zeros past the sequence).
template <int D>
static __device__ __forceinline__ void atc_load_q(unsigned (&qf)[D / 16][4], const float* __restrict__ q,
                                                  size_t head_base, unsigned r0, unsigned t,
                                                  const AttentionParams& p) {
  const float* row0 = q + head_base + (size_t)r0 * p.row_stride;
  const float* row1 = row0 + (size_t)8 * p.row_stride;
  const bool ok0 = r0 < p.len, ok1 = r0 + 8 < p.len;
#pragma unroll
  for (int kd = 0; kd < D / 16; ++kd) {
    const unsigned d0 = 16 * kd + 2 * t, d1 = d0 + 8;
    qf[kd][0] = ok0 ? atc_pack(row0[d0], row0[d0 + 1]) : 0u;
    qf[kd][1] = ok1 ? atc_pack(row1[d0], row1[d0 + 1]) : 0u;
    qf[kd][2] = ok0 ? atc_pack(row0[d1], row0[d1 + 1]) : 0u;
    qf[kd][3] = ok1 ? atc_pack(row1[d1], row1[d1 + 1]) : 0u;
  }
}

// The warp's query fragments, and a cleared running state: max -inf, sum 0, accumulator 0.
// Returns the exponent scale sl2 = scale * log2(e) of atc_softmax_tile.
template <int D>
static __device__ __forceinline__ float atc_start(unsigned (&qf)[D / 16][4], float (&acc)[D / 8][4], float (&m)[2],
                                                 float (&l)[2], const float* __restrict__ q, size_t head_base,
                                                 unsigned r0, unsigned t, const AttentionParams& p) {
  atc_load_q<D>(qf, q, head_base, r0, t, p);
#pragma unroll
  for (int jd = 0; jd < D / 8; ++jd) acc[jd][0] = acc[jd][1] = acc[jd][2] = acc[jd][3] = 0.0f;
  m[0] = m[1] = -FDM_INF;
  l[0] = l[1] = 0.0f;
  return p.scale * 1.4426950408889634f;
}

// One K/V tile held in registers between its global load and its shared-memory store, so the
// loads of tile i + 1 are in flight while tile i is computed (one block per multiprocessor is
// common at batch 1, so the latency must be hidden inside the block).
// W: warps per block (the tile's loads are spread over all 32 W threads).
template <int D, int W = ATC_WARPS>
struct AtcTile {
  float4 k[ATC_BK * (D / 4) / (32 * W)];       // key rows, 4 consecutive d each
  float4 v0[(ATC_BK / 2) * (D / 4) / (32 * W)];  // even key of a pair, 4 consecutive d
  float4 v1[(ATC_BK / 2) * (D / 4) / (32 * W)];  // odd key of the pair, the same d
};

static __device__ __forceinline__ float4 atc_row4(const float* __restrict__ x, size_t at, bool ok) {
  return ok ? *reinterpret_cast<const float4*>(x + at) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

// Global -> registers for keys k0 .. k0 + 63 (zeros past the sequence). K: consecutive threads
// read consecutive 16-byte pieces of one key row. V: a warp takes 16 key pairs x 2 quads of d
// (one 32-byte sector per key row), the mapping whose transposed stores below hit 32 banks.
template <int D, int W = ATC_WARPS>
static __device__ __forceinline__ void atc_load_tile(AtcTile<D, W>& r, const float* __restrict__ k,
                                                     const float* __restrict__ v, size_t head_base, unsigned k0,
                                                     const AttentionParams& p, unsigned tid) {
  constexpr int QUADS = D / 4, QUAD_BLOCKS = QUADS / 2, THREADS = 32 * W;
#pragma unroll
  for (int i = 0; i < ATC_BK * QUADS / THREADS; ++i) {
    const unsigned e = tid + THREADS * i, j = k0 + e / QUADS;
    r.k[i] = atc_row4(k, head_base + (size_t)j * p.row_stride + 4 * (e % QUADS), j < p.len);
  }
  const unsigned lane = tid & 31, warp = tid >> 5;
#pragma unroll
  for (int i = 0; i < (ATC_BK / 2) * QUADS / THREADS; ++i) {
    const unsigned c = warp + W * i, pr = (c / QUAD_BLOCKS) * 16 + (lane & 15);
    const unsigned dq = (c % QUAD_BLOCKS) * 2 + (lane >> 4), j = k0 + 2 * pr;
    const size_t at = head_base + (size_t)j * p.row_stride + 4 * dq;
    r.v0[i] = atc_row4(v, at, j < p.len);
    r.v1[i] = atc_row4(v, at + p.row_stride, j + 1 < p.len);
  }
}

// Registers -> shared memory as bf16 pairs: ks[key][d pair] (along d) and vt[d][key pair]
// (V transposed: pairs along the keys), the same element mapping as atc_load_tile.
template <int D, int W = ATC_WARPS>
static __device__ __forceinline__ void atc_store_tile(unsigned (*ks)[ATC_K_LDS(D)], unsigned (*vt)[ATC_KV_LDS],
                                                      const AtcTile<D, W>& r, unsigned tid) {
  constexpr int QUADS = D / 4, QUAD_BLOCKS = QUADS / 2, THREADS = 32 * W;
#pragma unroll
  for (int i = 0; i < ATC_BK * QUADS / THREADS; ++i) {
    const unsigned e = tid + THREADS * i, key = e / QUADS, q = e % QUADS;
    ks[key][atc_col(2 * q) ^ atc_kswz(key)] = atc_pack(r.k[i].x, r.k[i].y);
    ks[key][atc_col(2 * q + 1) ^ atc_kswz(key)] = atc_pack(r.k[i].z, r.k[i].w);
  }
  const unsigned lane = tid & 31, warp = tid >> 5;
#pragma unroll
  for (int i = 0; i < (ATC_BK / 2) * QUADS / THREADS; ++i) {
    const unsigned c = warp + W * i, pr = (c / QUAD_BLOCKS) * 16 + (lane & 15);
    const unsigned d = 4 * ((c % QUAD_BLOCKS) * 2 + (lane >> 4));
    const unsigned col = atc_col(pr) ^ atc_vswz(d);  // d .. d + 3 share bit 2
    vt[d][col] = atc_pack(r.v0[i].x, r.v1[i].x);
    vt[d + 1][col] = atc_pack(r.v0[i].y, r.v1[i].y);
    vt[d + 2][col] = atc_pack(r.v0[i].z, r.v1[i].z);
    vt[d + 3][col] = atc_pack(r.v0[i].w, r.v1[i].w);
  }
}

// s = Q K^T for the warp's 16 rows and the tile's 64 keys (raw: not yet scaled).
template <int D>
static __device__ __forceinline__ void atc_scores(float (&s)[ATC_BK / 8][4], const unsigned (&qf)[D / 16][4],
                                                  const unsigned (*ks)[ATC_K_LDS(D)], unsigned g, unsigned t) {
#pragma unroll
  for (int j = 0; j < ATC_BK / 8; ++j) {
    s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd) {
      unsigned bf[2];
      atc_frag_b(bf, ks[8 * j + g], kd, t, atc_kswz(g));
      fdm_mma_bf16_16816(s[j], qf[kd], bf);
    }
  }
}

// Online softmax over one tile: scores become exp2(score * sl2 - new max) (0 past the sequence),
// the running max m (in units of sl2 = scale * log2(e)) and partial sum l of rows g, g + 8 and the
// output accumulator are updated. The max is taken over the raw scores and scaled once (sl2 > 0,
// and rounding is monotonic, so that equals the max of the scaled scores), and each exponent is
// one fma. Only the tile that reaches past the sequence masks keys. The row max is shared by the
// 4 threads of a row (t = 0 .. 3).
template <int D>
static __device__ __forceinline__ void atc_softmax_tile(float (&s)[ATC_BK / 8][4], float (&acc)[D / 8][4],
                                                        float (&m)[2], float (&l)[2], unsigned k0, unsigned t,
                                                        unsigned len, float sl2) {
  if (k0 + ATC_BK > len) {
#pragma unroll
    for (int j = 0; j < ATC_BK / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (k0 + 8 * j + 2 * t + (e & 1) >= len) s[j][e] = -FDM_INF;
  }
  float mx[2] = {-FDM_INF, -FDM_INF};
#pragma unroll
  for (int j = 0; j < ATC_BK / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[j][e]);
  float corr[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(FDM_FULL_MASK, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(FDM_FULL_MASK, mx[r], 2));
    // Key k0 < len is in every row's tile, so the new max is finite; corr is 0 on the first tile.
    const float next = fmaxf(m[r], mx[r] * sl2);
    corr[r] = exp2f(m[r] - next);
    m[r] = next;
    l[r] *= corr[r];
  }
#pragma unroll
  for (int j = 0; j < ATC_BK / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[j][e] = exp2f(fmaf(s[j][e], sl2, -m[e >> 1]));
      l[e >> 1] += s[j][e];
    }
#pragma unroll
  for (int jd = 0; jd < D / 8; ++jd)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[jd][e] *= corr[e >> 1];
}

// acc += P V: the probabilities (rounded to bf16) as A fragments straight from the score
// registers, V^T rows from shared memory as B fragments.
template <int D>
static __device__ __forceinline__ void atc_pv(float (&acc)[D / 8][4], const float (&s)[ATC_BK / 8][4],
                                              const unsigned (*vt)[ATC_KV_LDS], unsigned g, unsigned t) {
#pragma unroll
  for (int kk = 0; kk < ATC_BK / 16; ++kk) {
    const unsigned af[4] = {atc_pack(s[2 * kk][0], s[2 * kk][1]), atc_pack(s[2 * kk][2], s[2 * kk][3]),
                            atc_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                            atc_pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int jd = 0; jd < D / 8; ++jd) {
      unsigned bf[2];
      atc_frag_b(bf, vt[8 * jd + g], kk, t, atc_vswz(g));
      fdm_mma_bf16_16816(acc[jd], af, bf);
    }
  }
}

// Where a block's normalised output and log-sum-exp go: o rows `o_row_stride` apart from
// `o_head_base` (its (batch, head) column block), lse entries from `lse_base` (its row 0).
// Where a block's results go: o (f32) or, when ob is set instead, the same elements rounded to
// bf16 as pairs in 32-bit words (ob[i / 2], element i in the low half for even i).
struct AtcOut {
  float* o;
  float* lse;
  unsigned* ob;
  size_t o_head_base, lse_base;
  unsigned o_row_stride;
};

// o = acc / l for rows g, g + 8 (l summed over the row's 4 threads), and the log-sum-exp.
template <int D>
static __device__ __forceinline__ void atc_store(const AtcOut& out, const float (&acc)[D / 8][4], const float (&m)[2],
                                                 float (&l)[2], unsigned r0, unsigned t, unsigned len) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(FDM_FULL_MASK, l[r], 1);
    l[r] += __shfl_xor_sync(FDM_FULL_MASK, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const unsigned row = r0 + 8 * r;
    if (row >= len) continue;
    const float inv = 1.0f / l[r];
    const size_t at = out.o_head_base + (size_t)row * out.o_row_stride;
    if (out.ob) {
      // at and 8 jd + 2 t are even: each thread's two neighbours are one word.
      unsigned* dst = out.ob + at / 2;
#pragma unroll
      for (int jd = 0; jd < D / 8; ++jd) dst[4 * jd + t] = atc_pack(acc[jd][2 * r] * inv, acc[jd][2 * r + 1] * inv);
    } else {
      float* dst = out.o + at;
#pragma unroll
      for (int jd = 0; jd < D / 8; ++jd) {
        dst[8 * jd + 2 * t] = acc[jd][2 * r] * inv;
        dst[8 * jd + 2 * t + 1] = acc[jd][2 * r + 1] * inv;
      }
    }
    if (out.lse && t == 0) out.lse[out.lse_base + row] = (m[r] + log2f(l[r])) * 0.6931471805599453f;
  }
}

// Queries of block column blockIdx.x of (batch b, head h) against keys kbeg .. kend - 1
// (kbeg < kend <= len, kbeg a multiple of 64: the whole sequence, or one split of it); W warps of
// 16 queries each, so 16 W queries per block.
template <int D, int W = ATC_WARPS>
static __device__ __forceinline__ void attention_tc_body(unsigned (*ks)[ATC_K_LDS(D)], unsigned (*vt)[ATC_KV_LDS],
                                                         const AtcOut& out, const float* __restrict__ q,
                                                         const float* __restrict__ k, const float* __restrict__ v,
                                                         const AttentionParams& p, unsigned b, unsigned h,
                                                         unsigned kbeg, unsigned kend) {
  const unsigned tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const unsigned r0 = blockIdx.x * (16 * W) + 16 * warp + g;
  unsigned qf[D / 16][4];
  float acc[D / 8][4], m[2], l[2];
  const float sl2 = atc_start<D>(qf, acc, m, l, q, head_base, r0, t, p);
  AtcTile<D, W> tile;
  atc_load_tile<D, W>(tile, k, v, head_base, kbeg, p, tid);
  for (unsigned k0 = kbeg; k0 < kend; k0 += ATC_BK) {
    atc_store_tile<D, W>(ks, vt, tile, tid);
    __syncthreads();
    if (k0 + ATC_BK < kend) atc_load_tile<D, W>(tile, k, v, head_base, k0 + ATC_BK, p, tid);
    float s[ATC_BK / 8][4];
    atc_scores<D>(s, qf, ks, g, t);
    atc_softmax_tile<D>(s, acc, m, l, k0, t, kend, sl2);
    atc_pv<D>(acc, s, vt, g, t);
    __syncthreads();
  }
  atc_store<D>(out, acc, m, l, r0, t, p.len);
}

// The whole sequence: grid (ceil(L / (16 W)), heads, B).
template <int D, int W = ATC_WARPS>
static __device__ __forceinline__ void attention_tc_whole(unsigned (*ks)[ATC_K_LDS(D)], unsigned (*vt)[ATC_KV_LDS],
                                                          float* o, float* lse, unsigned* ob, const float* q,
                                                          const float* k, const float* v, const AttentionParams& p) {
  const unsigned h = blockIdx.y, b = blockIdx.z;
  const AtcOut out = {o, lse, ob, (size_t)b * p.o_batch_stride + (size_t)h * D, ((size_t)b * p.heads + h) * p.len,
                      p.o_row_stride};
  attention_tc_body<D, W>(ks, vt, out, q, k, v, p, b, h, 0, p.len);
}

// Words of shared memory per key group: its ks tile, then its vt tile.
#define ATC_GROUP_WORDS(D) (ATC_BK * ATC_K_LDS(D) + (D) * ATC_KV_LDS)

// Two key groups in one block of 2 x ATC_THREADS threads: group 0 (threads 0 .. 127) takes the
// even 64-key tiles, group 1 the odd ones, each with the same 64 queries, its own shared tiles
// (smem + grp * ATC_GROUP_WORDS(D)) and its own running max, sum and accumulator. At the end
// group 1 leaves its state in its shared words and group 0 merges it exactly (the online softmax's
// rescaling) and stores. Twice the warps per multiprocessor of attention_tc_body where the grid
// has about one block per multiprocessor (the paper model at batch 1: 128 blocks), with no second
// kernel and no partial buffers. Grid (ceil(L / 64), heads, B).
template <int D>
static __device__ __forceinline__ void attention_tc_kg2_body(unsigned* smem, float* o, float* lse,
                                                             const float* __restrict__ q, const float* __restrict__ k,
                                                             const float* __restrict__ v, const AttentionParams& p) {
  const unsigned h = blockIdx.y, b = blockIdx.z, grp = threadIdx.x / ATC_THREADS;
  // tid: the thread's index in its group, for the group's own tile loads and stores.
  const unsigned tid = threadIdx.x % ATC_THREADS, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  unsigned* mine = smem + grp * ATC_GROUP_WORDS(D);
  unsigned (*ks)[ATC_K_LDS(D)] = reinterpret_cast<unsigned (*)[ATC_K_LDS(D)]>(mine);
  unsigned (*vt)[ATC_KV_LDS] = reinterpret_cast<unsigned (*)[ATC_KV_LDS]>(mine + ATC_BK * ATC_K_LDS(D));
  AtcTile<D> tile;  // this group's next K/V tile
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * D;
  const unsigned r0 = blockIdx.x * ATC_BQ + 16 * warp + g;
  unsigned qf[D / 16][4];
  float acc[D / 8][4], m[2], l[2];
  const float sl2 = atc_start<D>(qf, acc, m, l, q, head_base, r0, t, p);
  unsigned k0 = ATC_BK * grp;
  if (k0 < p.len) atc_load_tile<D>(tile, k, v, head_base, k0, p, tid);
  // Both groups run the same number of iterations (barriers are block-wide); a group whose tile
  // starts past the sequence only takes part in the barriers.
  for (unsigned base = 0; base < p.len; base += 2 * ATC_BK, k0 += 2 * ATC_BK) {
    const bool has_tile = k0 < p.len;
    if (has_tile) atc_store_tile<D>(ks, vt, tile, tid);
    __syncthreads();
    if (k0 + 2 * ATC_BK < p.len) atc_load_tile<D>(tile, k, v, head_base, k0 + 2 * ATC_BK, p, tid);
    if (has_tile) {
      float s[ATC_BK / 8][4];
      atc_scores<D>(s, qf, ks, g, t);
      atc_softmax_tile<D>(s, acc, m, l, k0, t, p.len, sl2);
      atc_pv<D>(acc, s, vt, g, t);
    }
    __syncthreads();
  }
  // Group 1's state, entry e of thread i at xs[e * ATC_THREADS + i]: m[2], l[2] (this thread's
  // partial sums: atc_store adds the row's 4 threads), acc. Its own tile words are free now.
  float* xs = reinterpret_cast<float*>(smem + ATC_GROUP_WORDS(D));
  const unsigned i = tid;
  if (grp == 1) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      xs[r * ATC_THREADS + i] = m[r];
      xs[(2 + r) * ATC_THREADS + i] = l[r];
    }
#pragma unroll
    for (int jd = 0; jd < D / 8; ++jd)
#pragma unroll
      for (int e = 0; e < 4; ++e) xs[(4 + 4 * jd + e) * ATC_THREADS + i] = acc[jd][e];
  }
  __syncthreads();
  if (grp == 1) return;
  float c0[2], c1[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    // Group 0 saw key 0, so m[r] is finite; group 1's is -inf where it had no tile (c1 = 0).
    const float m1 = xs[r * ATC_THREADS + i], next = fmaxf(m[r], m1);
    c0[r] = exp2f(m[r] - next);
    c1[r] = exp2f(m1 - next);
    m[r] = next;
    l[r] = l[r] * c0[r] + xs[(2 + r) * ATC_THREADS + i] * c1[r];
  }
#pragma unroll
  for (int jd = 0; jd < D / 8; ++jd)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      acc[jd][e] = acc[jd][e] * c0[e >> 1] + xs[(4 + 4 * jd + e) * ATC_THREADS + i] * c1[e >> 1];
  const AtcOut out = {o, lse, nullptr, (size_t)b * p.o_batch_stride + (size_t)h * D,
                      ((size_t)b * p.heads + h) * p.len, p.o_row_stride};
  atc_store<D>(out, acc, m, l, r0, t, p.len);
}

// One of `splits` key ranges (whole 64-key tiles, none empty): grid (ceil(L / 64), heads,
// B * splits), split s = blockIdx.z / B. Writes the range's own softmax result into the dense
// partials o_part [splits, B, L, heads * D] and lse_part [splits, B, heads, L], which
// attention_tc_merge combines.
template <int D>
static __device__ __forceinline__ void attention_tc_split(unsigned (*ks)[ATC_K_LDS(D)], unsigned (*vt)[ATC_KV_LDS],
                                                          float* o_part, float* lse_part, const float* q,
                                                          const float* k, const float* v, const AttentionParams& p,
                                                          unsigned splits) {
  const unsigned h = blockIdx.y, b = blockIdx.z % p.batch, s = blockIdx.z / p.batch;
  const unsigned tiles = (p.len + ATC_BK - 1) / ATC_BK;
  const unsigned kbeg = ATC_BK * (s * tiles / splits), kend = min(p.len, ATC_BK * ((s + 1) * tiles / splits));
  const size_t sb = (size_t)s * p.batch + b, hd = (size_t)p.heads * D;
  const AtcOut out = {o_part, lse_part, nullptr, sb * p.len * hd + (size_t)h * D, (sb * p.heads + h) * p.len,
                      (unsigned)hd};
  attention_tc_body<D>(ks, vt, out, q, k, v, p, b, h, kbeg, kend);
}

// ---- bf16 q, k, v in global memory: attention_fwd_fa_bf16[_ob] (head dim 64) ----
// The same result, bit for bit, as attention_fwd_tc_w8_bf16 on the same bf16 values (every
// output is the same chain of mma and softmax steps), from q, k, v already rounded to bf16
// (`unsigned short`, strides of AttentionParams in elements, all multiples of 8 and the base
// pointers 16-byte aligned: the launcher checks). Nothing is converted while staging, so:
//   * K and V tiles go global -> shared by cp.async (16 bytes per copy, zeros past the sequence),
//     in two stages: tile i + 1 is in flight while tile i is computed, and no registers hold it;
//   * 4 warps of 32 queries (two 16-row mma tiles each), 128 queries per block: every K and V
//     fragment feeds two mma, and ldmatrix reads four fragments per instruction (.trans for V,
//     whose fragments pair two keys of one d).
// Shared tiles: row-major [key][d], 128 bytes per key, its eight 16-byte chunks stored at chunk
// c ^ (key % 8), so the eight rows of one ldmatrix matrix, and the eight chunks of one key that
// eight threads copy, fall in different banks. Grid (ceil(L / 128), heads, B), 128 threads,
// 32 KiB of shared memory.

#define AFA_WARPS 4
#define AFA_THREADS (32 * AFA_WARPS)
#define AFA_BQ (32 * AFA_WARPS)
#define AFA_ROW_BYTES 128                       // 64 bf16 of one key
#define AFA_TILE_BYTES (ATC_BK * AFA_ROW_BYTES)  // 8 KiB: one K or V tile

// Byte offset of 16-byte chunk c (d 8c .. 8c + 7) of key `key` in a tile.
static __device__ __forceinline__ unsigned afa_at(unsigned key, unsigned c) {
  return key * AFA_ROW_BYTES + ((c ^ (key & 7u)) << 4);
}

// Starts the copies of keys k0 .. k0 + 63 of K and V into the stage at `ks` (K) and
// `ks + AFA_TILE_BYTES` (V): 512 chunks of each, four per thread.
static __device__ __forceinline__ void afa_stage(unsigned char* ks, const unsigned short* __restrict__ k,
                                                 const unsigned short* __restrict__ v, size_t head_base, unsigned k0,
                                                 const AttentionParams& p, unsigned tid) {
#pragma unroll
  for (int i = 0; i < ATC_BK * 8 / AFA_THREADS; ++i) {
    const unsigned e = tid + AFA_THREADS * i, key = e >> 3, c = e & 7u, j = k0 + key;
    const bool ok = j < p.len;
    const size_t at = head_base + (size_t)(ok ? j : 0) * p.row_stride + 8 * c;
    fdm_cp_async16(ks + afa_at(key, c), k + at, ok);
    fdm_cp_async16(ks + AFA_TILE_BYTES + afa_at(key, c), v + at, ok);
  }
  fdm_cp_async_commit();
}

// The A fragments of query rows r0 and r0 + 8 straight from bf16 memory (pairs are one word).
static __device__ __forceinline__ void afa_load_q(unsigned (&qf)[4][4], const unsigned short* __restrict__ q,
                                                  size_t head_base, unsigned r0, unsigned t, const AttentionParams& p) {
  const unsigned* row0 = reinterpret_cast<const unsigned*>(q + head_base + (size_t)r0 * p.row_stride);
  const unsigned* row1 = reinterpret_cast<const unsigned*>(q + head_base + (size_t)(r0 + 8) * p.row_stride);
  const bool ok0 = r0 < p.len, ok1 = r0 + 8 < p.len;
#pragma unroll
  for (int kd = 0; kd < 4; ++kd) {
    qf[kd][0] = ok0 ? row0[8 * kd + t] : 0u;
    qf[kd][1] = ok1 ? row1[8 * kd + t] : 0u;
    qf[kd][2] = ok0 ? row0[8 * kd + 4 + t] : 0u;
    qf[kd][3] = ok1 ? row1[8 * kd + 4 + t] : 0u;
  }
}

// s[mi] = Q K^T of the warp's row tile mi and the tile's 64 keys (raw, as atc_scores). ldmatrix
// matrix i (rows given by lanes 8 i .. 8 i + 7) is keys 8 (2 jp + i / 2) .. + 7, chunk 2 kd + i % 2:
// the B fragments of key groups 2 jp (r[0], r[1]) and 2 jp + 1 (r[2], r[3]) for d 16 kd .. + 15.
static __device__ __forceinline__ void afa_scores(float (&s)[2][ATC_BK / 8][4], const unsigned (&qf)[2][4][4],
                                                  const unsigned char* ks, unsigned lane) {
  const unsigned mat = lane >> 3, r = lane & 7u;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int j = 0; j < ATC_BK / 8; ++j) s[mi][j][0] = s[mi][j][1] = s[mi][j][2] = s[mi][j][3] = 0.0f;
#pragma unroll
  for (int jp = 0; jp < ATC_BK / 16; ++jp)
#pragma unroll
    for (int kd = 0; kd < 4; ++kd) {
      unsigned b[4];
      fdm_ldmatrix_x4(b, ks + afa_at(8 * (2 * jp + (mat >> 1)) + r, 2 * kd + (mat & 1u)));
      const unsigned b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        fdm_mma_bf16_16816(s[mi][2 * jp], qf[mi][kd], b0);
        fdm_mma_bf16_16816(s[mi][2 * jp + 1], qf[mi][kd], b1);
      }
    }
}

// acc[mi] += P V for both row tiles (atc_pv's order); ldmatrix.trans matrix i is keys
// 16 kk + 8 (i % 2) .., chunk 2 jp + i / 2: the B fragments of d groups 2 jp and 2 jp + 1.
static __device__ __forceinline__ void afa_pv(float (&acc)[2][8][4], const float (&s)[2][ATC_BK / 8][4],
                                              const unsigned char* vs, unsigned lane) {
  const unsigned mat = lane >> 3, r = lane & 7u;
#pragma unroll
  for (int kk = 0; kk < ATC_BK / 16; ++kk) {
    unsigned af[2][4];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
      af[mi][0] = atc_pack(s[mi][2 * kk][0], s[mi][2 * kk][1]);
      af[mi][1] = atc_pack(s[mi][2 * kk][2], s[mi][2 * kk][3]);
      af[mi][2] = atc_pack(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
      af[mi][3] = atc_pack(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
    }
#pragma unroll
    for (int jp = 0; jp < 4; ++jp) {
      unsigned b[4];
      fdm_ldmatrix_x4_trans(b, vs + afa_at(16 * kk + 8 * (mat & 1u) + r, 2 * jp + (mat >> 1)));
      const unsigned b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        fdm_mma_bf16_16816(acc[mi][2 * jp], af[mi], b0);
        fdm_mma_bf16_16816(acc[mi][2 * jp + 1], af[mi], b1);
      }
    }
  }
}

// Queries of block column blockIdx.x of (batch blockIdx.z, head blockIdx.y) against all keys.
static __device__ __forceinline__ void attention_fa_body(unsigned char* smem, float* o, float* lse, unsigned* ob,
                                                         const unsigned short* __restrict__ q,
                                                         const unsigned short* __restrict__ k,
                                                         const unsigned short* __restrict__ v,
                                                         const AttentionParams& p) {
  const unsigned h = blockIdx.y, b = blockIdx.z;
  const unsigned tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const size_t head_base = (size_t)b * p.batch_stride + (size_t)h * 64;
  const unsigned r0 = blockIdx.x * AFA_BQ + 32 * warp + g;  // row tile mi: rows r0 + 16 mi (+ 8)
  afa_stage(smem, k, v, head_base, 0, p, tid);
  unsigned qf[2][4][4];
  float acc[2][8][4], m[2][2], l[2][2];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
    afa_load_q(qf[mi], q, head_base, r0 + 16 * mi, t, p);
#pragma unroll
    for (int jd = 0; jd < 8; ++jd) acc[mi][jd][0] = acc[mi][jd][1] = acc[mi][jd][2] = acc[mi][jd][3] = 0.0f;
    m[mi][0] = m[mi][1] = -FDM_INF;
    l[mi][0] = l[mi][1] = 0.0f;
  }
  const float sl2 = p.scale * 1.4426950408889634f;
  const unsigned tiles = (p.len + ATC_BK - 1) / ATC_BK;
  for (unsigned i = 0; i < tiles; ++i) {
    if (i + 1 < tiles) {
      afa_stage(smem + ((i + 1) & 1u) * 2 * AFA_TILE_BYTES, k, v, head_base, (i + 1) * ATC_BK, p, tid);
      fdm_cp_async_wait<1>();  // tile i has landed; tile i + 1 may still be in flight
    } else {
      fdm_cp_async_wait<0>();
    }
    __syncthreads();
    const unsigned char* ks = smem + (i & 1u) * 2 * AFA_TILE_BYTES;
    float s[2][ATC_BK / 8][4];
    afa_scores(s, qf, ks, lane);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) atc_softmax_tile<64>(s[mi], acc[mi], m[mi], l[mi], i * ATC_BK, t, p.len, sl2);
    afa_pv(acc, s, ks + AFA_TILE_BYTES, lane);
    __syncthreads();  // the next iteration's copies overwrite this stage
  }
  const AtcOut out = {o, lse, ob, (size_t)b * p.o_batch_stride + (size_t)h * 64, ((size_t)b * p.heads + h) * p.len,
                      p.o_row_stride};
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) atc_store<64>(out, acc[mi], m[mi], l[mi], r0 + 16 * mi, t, p.len);
}

extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                          const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(64)];
  __shared__ __align__(16) unsigned vt[64][ATC_KV_LDS];
  attention_tc_whole<64>(ks, vt, o, lse, nullptr, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_d32_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                              const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(32)];
  __shared__ __align__(16) unsigned vt[32][ATC_KV_LDS];
  attention_tc_whole<32>(ks, vt, o, lse, nullptr, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_split_bf16(float* __restrict__ o_part, float* __restrict__ lse_part, const float* __restrict__ q,
                                const float* __restrict__ k, const float* __restrict__ v, AttentionParams p,
                                unsigned splits) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(64)];
  __shared__ __align__(16) unsigned vt[64][ATC_KV_LDS];
  attention_tc_split<64>(ks, vt, o_part, lse_part, q, k, v, p, splits);
}

extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_split_d32_bf16(float* __restrict__ o_part, float* __restrict__ lse_part,
                                    const float* __restrict__ q, const float* __restrict__ k,
                                    const float* __restrict__ v, AttentionParams p, unsigned splits) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(32)];
  __shared__ __align__(16) unsigned vt[32][ATC_KV_LDS];
  attention_tc_split<32>(ks, vt, o_part, lse_part, q, k, v, p, splits);
}

// 8 warps, 128 queries per block: each K/V tile is staged (loaded, rounded, stored) once for
// twice the queries of attention_fwd_tc_bf16, so half the L2 -> shared-memory traffic and half
// the conversions per query, and half the tile registers per thread. For grids with enough
// blocks (batch >= 2 on the paper model); grid (ceil(L / 128), heads, B), 256 threads.
extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_w8_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                             const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(64)];
  __shared__ __align__(16) unsigned vt[64][ATC_KV_LDS];
  attention_tc_whole<64, 2 * ATC_WARPS>(ks, vt, o, lse, nullptr, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_w8_d32_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                                 const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(32)];
  __shared__ __align__(16) unsigned vt[32][ATC_KV_LDS];
  attention_tc_whole<32, 2 * ATC_WARPS>(ks, vt, o, lse, nullptr, q, k, v, p);
}

// The one-pass and wide kernels with o written as bf16 (ob: [B, L, heads * D] bf16 dense as the
// f32 o would be, in 32-bit words of two): where o's only reader is a Linear with bf16 weights,
// which would round it to bf16 anyway (`--precision bf16` inference), it then skips that cast.
// Same arguments as the f32 entries, ob in o's place.
extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_bf16_ob(unsigned* __restrict__ ob, float* __restrict__ lse, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(64)];
  __shared__ __align__(16) unsigned vt[64][ATC_KV_LDS];
  attention_tc_whole<64>(ks, vt, nullptr, lse, ob, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(ATC_THREADS)
    attention_fwd_tc_d32_bf16_ob(unsigned* __restrict__ ob, float* __restrict__ lse, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(32)];
  __shared__ __align__(16) unsigned vt[32][ATC_KV_LDS];
  attention_tc_whole<32>(ks, vt, nullptr, lse, ob, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_w8_bf16_ob(unsigned* __restrict__ ob, float* __restrict__ lse, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(64)];
  __shared__ __align__(16) unsigned vt[64][ATC_KV_LDS];
  attention_tc_whole<64, 2 * ATC_WARPS>(ks, vt, nullptr, lse, ob, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_w8_d32_bf16_ob(unsigned* __restrict__ ob, float* __restrict__ lse, const float* __restrict__ q,
        const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned ks[ATC_BK][ATC_K_LDS(32)];
  __shared__ __align__(16) unsigned vt[32][ATC_KV_LDS];
  attention_tc_whole<32, 2 * ATC_WARPS>(ks, vt, nullptr, lse, ob, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_kg2_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                              const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned smem[2 * ATC_GROUP_WORDS(64)];
  attention_tc_kg2_body<64>(smem, o, lse, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(2 * ATC_THREADS)
    attention_fwd_tc_kg2_d32_bf16(float* __restrict__ o, float* __restrict__ lse, const float* __restrict__ q,
                                  const float* __restrict__ k, const float* __restrict__ v, AttentionParams p) {
  __shared__ __align__(16) unsigned smem[2 * ATC_GROUP_WORDS(32)];
  attention_tc_kg2_body<32>(smem, o, lse, q, k, v, p);
}

// bf16 q, k, v (see attention_fa_body): o in f32, or in bf16 (`_ob`, as the other `_ob` entries).
extern "C" __global__ void __launch_bounds__(AFA_THREADS)
    attention_fwd_fa_bf16(float* __restrict__ o, float* __restrict__ lse, const unsigned short* __restrict__ q,
                          const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
                          AttentionParams p) {
  __shared__ __align__(16) unsigned char smem[4 * AFA_TILE_BYTES];
  attention_fa_body(smem, o, lse, nullptr, q, k, v, p);
}

extern "C" __global__ void __launch_bounds__(AFA_THREADS)
    attention_fwd_fa_bf16_ob(unsigned* __restrict__ ob, float* __restrict__ lse, const unsigned short* __restrict__ q,
                             const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
                             AttentionParams p) {
  __shared__ __align__(16) unsigned char smem[4 * AFA_TILE_BYTES];
  attention_fa_body(smem, nullptr, lse, ob, q, k, v, p);
}

// The split results combined (exactly, in f32): with w_s = exp(lse_s - max_s lse_s),
// o = sum_s w_s o_s / sum_s w_s and lse = max + log sum_s w_s; one thread per output element
// (grid-stride), lse written by the thread of d = 0; lse may be null.
extern "C" __global__ void attention_tc_merge(float* __restrict__ o, float* __restrict__ lse,
                                              const float* __restrict__ o_part, const float* __restrict__ lse_part,
                                              AttentionParams p, unsigned splits, unsigned head_dim) {
  const unsigned hd = p.heads * head_dim, total = p.batch * p.len * hd;
  const size_t lse_split = (size_t)p.batch * p.heads * p.len;
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
    const unsigned c = i % hd, row = (i / hd) % p.len, b = i / (hd * p.len);
    const size_t li = ((size_t)b * p.heads + c / head_dim) * p.len + row;
    float mx = -FDM_INF;
    for (unsigned s = 0; s < splits; ++s) mx = fmaxf(mx, lse_part[s * lse_split + li]);
    float num = 0.0f, den = 0.0f;
    for (unsigned s = 0; s < splits; ++s) {
      const float w = expf(lse_part[s * lse_split + li] - mx);
      den += w;
      num += w * o_part[(size_t)s * total + i];
    }
    o[(size_t)b * p.o_batch_stride + (size_t)row * p.o_row_stride + c] = num / den;
    if (lse && c % head_dim == 0) lse[li] = mx + logf(den);
  }
}
