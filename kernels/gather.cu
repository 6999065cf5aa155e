// gather.cu: row gathers and scatters over row-major tables, the embedding backward, and the
// block copy behind concat. Spec §3.2 (token and position embeddings of the transformer:
// table [vocab, dim] = [1024 or 512, 512]) and §5.2 step 5 (the sampler reads the logits of
// chosen positions and writes codebook rows into the feature table).
//   gather_rows_f32(out, table, idx, count, width, rows)
//       out[i, c] = table[idx[i], c]; table [rows, width], idx u32 [count], out [count, width].
//       The embedding lookup is this with rows = vocab, width = dim. An index >= rows gives a
//       row of zeros (the launcher checks indices first; the kernel never reads out of bounds).
//       Launch: grid-stride over count * width elements, 256 threads per block.
//   embedding_bwd_f32(dtable, idx, g, n, vocab, dim)
//       dtable[v, c] = sum of g[i, c] over positions i with idx[i] == v, in increasing i (the
//       CPU fast path's order, so the f32 result is the same bit for bit); rows never looked up
//       get 0; dtable is overwritten. g [n, dim]. Deterministic with no atomics: one block per
//       vocabulary row (grid-stride) scans the indices in tiles of blockDim, compacts the hits
//       of each tile in position order (warp ballots + per-warp counts), and each thread sums up
//       to EMB_COLS columns of the hit rows. Cost: vocab * n index compares (spread over the
//       block), e.g. 1024 x 16K = 16M for a training batch of 16 images: well under the cost of
//       reading g once per hit row. Launch: block = a multiple of 32 up to 256 threads.
//   scatter_rows_f32(table, idx, values, count, width, rows)
//       table[idx[i], :] = values[i, :] in place; when an index repeats the LAST one wins (the
//       CPU's sequential order): block i writes only if no later index is equal, so the result
//       does not depend on block order. values [count, width]. Indices >= rows are skipped.
//       Launch: one block per index (grid-stride), 256 threads.
//   copy_block_b32(dst, src, outer, src_inner, dst_inner, dst_offset)
//       dst[o, dst_offset + j] = src[o, j] for src [outer, src_inner], dst [outer, dst_inner]
//       (params/concat.rs); any 4-byte dtype. Other columns of dst are untouched, so concat is
//       one launch per part into one output. Launch: grid-stride over outer * src_inner.
//   index_check_u32(bad, idx, n, limit)
//       *bad = min(*bad, first position i with idx[i] >= limit); the launcher sets *bad to
//       0xffffffff first. atomicMin of positions: the result does not depend on order.

#define EMB_THREADS 256
#define EMB_COLS 4

#define GATHER_LOOP(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

extern "C" __global__ void gather_rows_f32(float* __restrict__ out, const float* __restrict__ table,
                                           const unsigned* __restrict__ idx, unsigned count, unsigned width,
                                           unsigned rows) {
  GATHER_LOOP(e, count * width) {
    const unsigned i = e / width, c = e - i * width, r = idx[i];
    out[e] = r < rows ? table[(size_t)r * width + c] : 0.0f;
  }
}

extern "C" __global__ void __launch_bounds__(EMB_THREADS)
    embedding_bwd_f32(float* __restrict__ dtable, const unsigned* __restrict__ idx, const float* __restrict__ g,
                      unsigned n, unsigned vocab, unsigned dim) {
  __shared__ unsigned hits[EMB_THREADS];
  __shared__ unsigned warp_hits[EMB_THREADS / 32];
  const unsigned t = threadIdx.x, lane = t & 31, warp = t >> 5, nwarps = blockDim.x >> 5;
  for (unsigned v = blockIdx.x; v < vocab; v += gridDim.x) {
    for (unsigned c0 = 0; c0 < dim; c0 += EMB_COLS * blockDim.x) {
      float acc[EMB_COLS];
#pragma unroll
      for (int k = 0; k < EMB_COLS; ++k) acc[k] = 0.0f;
      for (unsigned i0 = 0; i0 < n; i0 += blockDim.x) {
        const unsigned i = i0 + t;
        const bool hit = i < n && idx[i] == v;
        const unsigned mask = __ballot_sync(FDM_FULL_MASK, hit);
        if (lane == 0) warp_hits[warp] = __popc(mask);
        __syncthreads();
        unsigned before = 0, total = 0;
        for (unsigned w = 0; w < nwarps; ++w) {
          before += w < warp ? warp_hits[w] : 0u;
          total += warp_hits[w];
        }
        if (hit) hits[before + __popc(mask & ((1u << lane) - 1u))] = i;
        __syncthreads();
        for (unsigned h = 0; h < total; ++h) {
          const float* gi = g + (size_t)hits[h] * dim;
#pragma unroll
          for (int k = 0; k < EMB_COLS; ++k) {
            const unsigned c = c0 + t + k * blockDim.x;
            if (c < dim) acc[k] += gi[c];
          }
        }
        __syncthreads();  // hits and warp_hits are rewritten by the next tile
      }
#pragma unroll
      for (int k = 0; k < EMB_COLS; ++k) {
        const unsigned c = c0 + t + k * blockDim.x;
        if (c < dim) dtable[(size_t)v * dim + c] = acc[k];
      }
    }
  }
}

extern "C" __global__ void scatter_rows_f32(float* __restrict__ table, const unsigned* __restrict__ idx,
                                            const float* __restrict__ values, unsigned count, unsigned width,
                                            unsigned rows) {
  __shared__ int overwritten;
  for (unsigned i = blockIdx.x; i < count; i += gridDim.x) {
    const unsigned r = idx[i];
    if (threadIdx.x == 0) overwritten = 0;
    __syncthreads();
    bool later = false;
    for (unsigned j = i + 1 + threadIdx.x; j < count; j += blockDim.x) later |= idx[j] == r;
    if (later) overwritten = 1;  // every writer stores the same value
    __syncthreads();
    if (!overwritten && r < rows)
      for (unsigned c = threadIdx.x; c < width; c += blockDim.x)
        table[(size_t)r * width + c] = values[(size_t)i * width + c];
    __syncthreads();  // `overwritten` is reset by the next index
  }
}

extern "C" __global__ void copy_block_b32(unsigned* __restrict__ dst, const unsigned* __restrict__ src,
                                          unsigned outer, unsigned src_inner, unsigned dst_inner,
                                          unsigned dst_offset) {
  GATHER_LOOP(e, outer * src_inner) {
    const unsigned o = e / src_inner, j = e - o * src_inner;
    dst[(size_t)o * dst_inner + dst_offset + j] = src[e];
  }
}

extern "C" __global__ void index_check_u32(unsigned* __restrict__ bad, const unsigned* __restrict__ idx, unsigned n,
                                           unsigned limit) {
  GATHER_LOOP(i, n) {
    if (idx[i] >= limit) atomicMin(bad, i);
  }
}
