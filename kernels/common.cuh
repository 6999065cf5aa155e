// common.cuh: definitions shared by every kernel file. NVRTC sees this file prepended to each
// kernel source (src/cuda/module.rs); the CPU emulator includes it before each source (build.rs),
// where emu/cuda_emu.h has already defined DYN_SHARED and the CUDA built-ins.
// Helpers here are `static` so that each kernel file gets its own copy (the emulator compiles
// every kernel file as a separate C++ translation unit inside its own namespace).
#ifndef FDM_COMMON_CUH
#define FDM_COMMON_CUH

#ifndef FDM_EMU
// Dynamic shared memory (size given at launch) seen as an array of T. One `extern __shared__`
// byte array per name, 16-byte aligned so float4 access is legal.
#define DYN_SHARED(T, name)                                        \
  extern __shared__ __align__(16) unsigned char name##_bytes[];    \
  T* name = reinterpret_cast<T*>(name##_bytes)
#endif

#define FDM_FULL_MASK 0xffffffffu
#define FDM_INF __int_as_float(0x7f800000)
#define FDM_MAX_RANK 6

// Index arithmetic for up to FDM_MAX_RANK dims: the shape of the output (row-major, dense) and,
// for up to two inputs, the element stride of each dim (0 for a broadcast dim). Passed by value.
// Mirrors `StridedIndex` in src/cuda/ops/elementwise.rs.
struct StridedIndex {
  unsigned numel;
  unsigned rank;
  unsigned shape[FDM_MAX_RANK];
  unsigned stride[2][FDM_MAX_RANK];
};

// Element offsets into input 0 and input 1 of output element i.
static __device__ __forceinline__ void strided_offsets(const StridedIndex& p, unsigned i, unsigned& off0,
                                                       unsigned& off1) {
  off0 = 0;
  off1 = 0;
  // Fully unrolled with constant indices, so the struct stays in the parameter bank instead of
  // being copied to local memory for dynamic indexing.
#pragma unroll
  for (int d = FDM_MAX_RANK - 1; d >= 0; --d) {
    if (d < (int)p.rank) {
      unsigned c = i % p.shape[d];
      i /= p.shape[d];
      off0 += c * p.stride[0][d];
      off1 += c * p.stride[1][d];
    }
  }
}

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FDM_FULL_MASK, v, o);
  return v;
}

static __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FDM_FULL_MASK, v, o));
  return v;
}

// Block-wide sum (or max) over a 1-D block whose size is a multiple of 32; every thread gets the
// result. `scratch` is 32 floats of shared memory. Every thread of the block must call it. The
// order of the additions is fixed, so the result is deterministic.
static __device__ float block_sum(float v, float* scratch) {
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : 0.0f;
  v = warp_sum(v);
  __syncthreads();  // scratch may be reused right after
  return v;
}

static __device__ float block_max(float v, float* scratch) {
  const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -FDM_INF;
  v = warp_max(v);
  __syncthreads();
  return v;
}

// Register-tile inner loop of the 64 x 64 tiled products (gemm.cu, conv2d.cu, conv2d_backward.cu).
// `a` and `b` are shared-memory slices of BK rows (the reduction index) by FDM_TILE columns (+1
// padding); thread (ra, rb) owns the 4 x 4 outputs at a-columns ra + 16 i and b-columns rb + 16 j
// and adds acc[i][j] += sum_k a[k][ra + 16 i] * b[k][rb + 16 j] in k order (deterministic).
// With ra running fastest across a warp the a reads are conflict-free and the b reads broadcast.
#define FDM_TILE 64
template <int BK>
static __device__ __forceinline__ void tile_fma_4x4(float (&acc)[4][4], const float (*a)[FDM_TILE + 1],
                                                    const float (*b)[FDM_TILE + 1], unsigned ra, unsigned rb) {
#pragma unroll
  for (int k = 0; k < BK; ++k) {
    float av[4], bv[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) av[i] = a[k][ra + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) bv[j] = b[k][rb + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

static __device__ __forceinline__ void zero_tile_4x4(float (&acc)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
}

#endif  // FDM_COMMON_CUH
