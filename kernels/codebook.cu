// codebook.cu: nearest codebook entry per feature row, the dual-codebook quantiser of spec §2.3.
//   codebook_sqnorm_f32(norms, codebook, K, D)
//       norms[k] = |codebook[k,:]|^2                               codebook: [K, D] row-major
//   codebook_argmin_f32(idx, dist, z, codebook, norms, row_offset, N, K, D, span)
//       z: [N, D] row-major (the B x 256 x 32 x 32 feature map flattened to BHW x 256 rows).
//       Row r searches codes [row_offset[r], row_offset[r] + span) (clamped to K); row_offset null
//       means offset 0 for every row. Spec §2.3: type-1 (visible) positions search 0..511, the
//       others 512..1023 (offset 512, span 512); the result is the absolute code index.
//       idx[r] = argmin_k |z_r|^2 + |e_k|^2 - 2 z_r.e_k; ties: the LOWEST index wins;
//       dist[r] = that minimum (may be null). A row with no code to search gets idx 0xffffffff.
//   codebook_argmin_split_f32(part_score, part_idx, z, codebook, norms, row_offset, N, K, D, span,
//                             splits) + codebook_argmin_merge_f32(idx, dist, part_score, part_idx,
//                             z, N, D, splits)
//       The same search with each block's codes cut into `splits` ranges of whole 64-code tiles,
//       one block per (32 rows, range): at the model's batch 1 (1024 rows: 32 blocks) the unsplit
//       kernel leaves most multiprocessors idle. Range s writes its best (|e|^2 - 2 z.e, code) per
//       row to part_score / part_idx [splits, N] (INFINITY / 0xffffffff when it has no code of
//       the row's range); the merge takes the lexicographic (value, index) minimum over the ranges
//       (one warp per row) and adds |z|^2. A code's score does not depend on its range, so the
//       index is the unsplit kernel's exactly; dist sums |z|^2 in another order (last bits).
// The distance matrix is never stored: each block takes 32 rows and walks the codes of its rows'
// ranges in tiles of 64 codes, the dot products accumulated from shared-memory tiles of 32 dims
// (2 rows x 4 codes per thread in registers), the running (min, index) kept per thread, then
// combined across the 16 threads sharing a row with shuffles (lexicographic (value, index) min).
// Every code's dot product is summed in the same order whatever its position in a tile, so equal
// codebook rows give bit-identical distances and the tie rule is exact.
// Launch: codebook_argmin_f32 with 256 threads per block, ceil(N / 32) blocks (the split kernel:
// ceil(N / 32) x splits); codebook_sqnorm_f32 and the merge with one warp per code / row.

#define CB_ROWS 32    // rows of z per block
#define CB_CODES 64   // codes per tile
#define CB_DK 32      // dims per shared-memory tile
#define CB_THREADS 256

// |row|^2 of a D-float row, summed by one warp (every lane gets it).
static __device__ __forceinline__ float cb_warp_sqnorm(const float* __restrict__ row, unsigned D, unsigned lane) {
  float s = 0.0f;
  for (unsigned d = lane; d < D; d += 32) s += row[d] * row[d];
  return warp_sum(s);
}

extern "C" __global__ void codebook_sqnorm_f32(float* __restrict__ norms, const float* __restrict__ codebook,
                                               unsigned K, unsigned D) {
  const unsigned warps_per_block = blockDim.x >> 5;
  const unsigned lane = threadIdx.x & 31;
  for (unsigned k = blockIdx.x * warps_per_block + (threadIdx.x >> 5); k < K; k += gridDim.x * warps_per_block) {
    const float s = cb_warp_sqnorm(codebook + (size_t)k * D, D, lane);
    if (lane == 0) norms[k] = s;
  }
}

// (value, index) pair that is smaller: lower value, or equal value and lower index.
static __device__ __forceinline__ bool cb_better(float v, unsigned i, float best, unsigned best_i) {
  return v < best || (v == best && i < best_i);
}

// Where a block's per-row results go: the final idx / dist (`part` false), or range blockIdx.y's
// partial scores and indices (`part` true; dist then holds the score without |z|^2).
struct CbOut {
  unsigned* idx;
  float* val;
  bool part;
};

// The search of rows blockIdx.x * 32 .. + 31 over range `split` of `splits` of their codes.
static __device__ __forceinline__ void cb_search(const CbOut& out, const float* __restrict__ z,
                                                 const float* __restrict__ codebook, const float* __restrict__ norms,
                                                 const unsigned* __restrict__ row_offset, unsigned N, unsigned K,
                                                 unsigned D, unsigned span, unsigned split, unsigned splits) {
  __shared__ float zs[CB_DK][CB_ROWS + 1];   // +1: transposed stores without bank conflicts
  __shared__ float es[CB_DK][CB_CODES + 1];
  __shared__ unsigned s_off[CB_ROWS];
  const unsigned t = threadIdx.x, tx = t % 16, ty = t / 16;
  const unsigned row0 = blockIdx.x * CB_ROWS;

  if (t < CB_ROWS) s_off[t] = (row_offset && row0 + t < N) ? row_offset[row0 + t] : 0u;
  __syncthreads();
  // The union of the code ranges of this block's rows (a single range when they agree).
  unsigned lo = 0xffffffffu, hi = 0;
  for (unsigned r = 0; r < CB_ROWS && row0 + r < N; ++r) {
    lo = min(lo, s_off[r]);
    hi = max(hi, min(s_off[r] + span, K));
  }
  if (lo < hi) {  // this range's whole tiles of [lo, hi)
    const unsigned tiles = (hi - lo + CB_CODES - 1) / CB_CODES;
    const unsigned first = lo + CB_CODES * (split * tiles / splits);
    hi = min(hi, lo + CB_CODES * ((split + 1) * tiles / splits));
    lo = first;
  }
  unsigned my_off[2];
  float best[2];
  unsigned best_i[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    my_off[i] = s_off[ty + 16 * i];
    best[i] = FDM_INF;
    best_i[i] = 0xffffffffu;
  }

  for (unsigned c0 = lo; c0 < hi; c0 += CB_CODES) {
    float acc[2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (unsigned d0 = 0; d0 < D; d0 += CB_DK) {
#pragma unroll
      for (int q = 0; q < CB_ROWS * CB_DK / CB_THREADS; ++q) {
        const unsigned e = t + CB_THREADS * q, r = e / CB_DK, k = e % CB_DK;
        const unsigned row = row0 + r, d = d0 + k;
        zs[k][r] = (row < N && d < D) ? z[(size_t)row * D + d] : 0.0f;
      }
#pragma unroll
      for (int q = 0; q < CB_CODES * CB_DK / CB_THREADS; ++q) {
        const unsigned e = t + CB_THREADS * q, c = e / CB_DK, k = e % CB_DK;
        const unsigned code = c0 + c, d = d0 + k;
        es[k][c] = (code < hi && d < D) ? codebook[(size_t)code * D + d] : 0.0f;
      }
      __syncthreads();
#pragma unroll 8
      for (int k = 0; k < CB_DK; ++k) {
        const float a0 = zs[k][ty], a1 = zs[k][ty + 16];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float b = es[k][tx + 16 * j];
          acc[0][j] = fmaf(a0, b, acc[0][j]);
          acc[1][j] = fmaf(a1, b, acc[1][j]);
        }
      }
      __syncthreads();
    }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const unsigned code = c0 + tx + 16 * j;  // ascending in j: strict < keeps the lowest index
      if (code >= hi) continue;
      const float nk = norms[code];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const bool in_range = code >= my_off[i] && code < my_off[i] + span;
        const float score = nk - 2.0f * acc[i][j];
        if (in_range && score < best[i]) {
          best[i] = score;
          best_i[i] = code;
        }
      }
    }
  }

  // |z|^2 for the reported distance (final results only): dims d = tx (mod 16), summed across the
  // 16 lanes below.
  float zz[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const unsigned row = row0 + ty + 16 * i;
    if (row < N && !out.part)
      for (unsigned d = tx; d < D; d += 16) {
        const float v = z[(size_t)row * D + d];
        zz[i] += v * v;
      }
  }
  // Combine the 16 threads (lanes tx = 0..15 of one half-warp) that share each row.
#pragma unroll
  for (int off = 8; off > 0; off >>= 1) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float ov = __shfl_xor_sync(FDM_FULL_MASK, best[i], off);
      const unsigned oi = __shfl_xor_sync(FDM_FULL_MASK, best_i[i], off);
      if (cb_better(ov, oi, best[i], best_i[i])) {
        best[i] = ov;
        best_i[i] = oi;
      }
      zz[i] += __shfl_xor_sync(FDM_FULL_MASK, zz[i], off);
    }
  }
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const unsigned row = row0 + ty + 16 * i;
      if (row >= N) continue;
      const size_t at = (size_t)split * N + row;
      out.idx[at] = best_i[i];
      if (out.part)
        out.val[at] = best[i];
      else if (out.val)
        out.val[at] = zz[i] + best[i];
    }
  }
}

extern "C" __global__ void __launch_bounds__(CB_THREADS)
    codebook_argmin_f32(unsigned* __restrict__ idx, float* __restrict__ dist, const float* __restrict__ z,
                        const float* __restrict__ codebook, const float* __restrict__ norms,
                        const unsigned* __restrict__ row_offset, unsigned N, unsigned K, unsigned D, unsigned span) {
  cb_search(CbOut{idx, dist, false}, z, codebook, norms, row_offset, N, K, D, span, 0, 1);
}

extern "C" __global__ void __launch_bounds__(CB_THREADS)
    codebook_argmin_split_f32(float* __restrict__ part_score, unsigned* __restrict__ part_idx,
                              const float* __restrict__ z, const float* __restrict__ codebook,
                              const float* __restrict__ norms, const unsigned* __restrict__ row_offset, unsigned N,
                              unsigned K, unsigned D, unsigned span, unsigned splits) {
  cb_search(CbOut{part_idx, part_score, true}, z, codebook, norms, row_offset, N, K, D, span, blockIdx.y, splits);
}

extern "C" __global__ void codebook_argmin_merge_f32(unsigned* __restrict__ idx, float* __restrict__ dist,
                                                     const float* __restrict__ part_score,
                                                     const unsigned* __restrict__ part_idx, const float* __restrict__ z,
                                                     unsigned N, unsigned D, unsigned splits) {
  const unsigned warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  for (unsigned r = blockIdx.x * warps + (threadIdx.x >> 5); r < N; r += gridDim.x * warps) {
    const float zz = cb_warp_sqnorm(z + (size_t)r * D, D, lane);
    if (lane != 0) continue;
    float best = FDM_INF;
    unsigned best_i = 0xffffffffu;
    for (unsigned s = 0; s < splits; ++s) {
      const float v = part_score[(size_t)s * N + r];
      const unsigned i = part_idx[(size_t)s * N + r];
      if (cb_better(v, i, best, best_i)) {
        best = v;
        best_i = i;
      }
    }
    idx[r] = best_i;
    if (dist) dist[r] = zz + best;
  }
}
