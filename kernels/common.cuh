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


// GELU2 of the transformer's MLP (spec §3.2): x sigmoid(1.702 x). One definition for unary.cu and
// the fused input cast of gemm_tc.cu, so both give the same bits.
static __device__ __forceinline__ float fdm_gelu2(float x) { return x / (1.0f + expf(-1.702f * x)); }

// ---- bf16 tensor cores (kernels/gemm_tc.cu, kernels/attention_tc.cu) ----
// mma.sync m16n8k16 bf16 x bf16 -> f32; the fragment layout (PTX ISA 9.7.14.5.8) is written out
// at the top of gemm_tc.cu and pinned by its one-warp self-test.
// f32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign. Integer bit
// operations only, so neither cuda_bf16.h nor an sm_80 conversion instruction is needed.
static __device__ __forceinline__ unsigned fdm_bf16_bits(float f) {
  const unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

static __device__ __forceinline__ float fdm_bf16_to_f32(unsigned bits) { return __uint_as_float(bits << 16); }

// Two floats -> one word of bf16 bits, `lo` in bits 0-15 and `hi` in bits 16-31 (the order of the
// mma fragments' pairs), each rounded to nearest even. On a GPU one cvt.rn.bf16x2.f32 (sm_80+)
// instead of about a dozen integer operations: the tensor-core kernels convert every staged
// element, and with few warps per multiprocessor that issue time is not hidden. Same bits as
// fdm_bf16_bits for every input but NaN (the instruction gives the canonical NaN 0x7fff); the
// emulator runs the integer twin.
#ifndef FDM_EMU
static __device__ __forceinline__ unsigned fdm_bf16x2_bits(float lo, float hi) {
  unsigned d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
#else
static __device__ __forceinline__ unsigned fdm_bf16x2_bits(float lo, float hi) {
  return fdm_bf16_bits(lo) | (fdm_bf16_bits(hi) << 16);
}
#endif

#ifndef FDM_EMU
// d += A * B for one 16 x 8 x 16 tile held in the fragments above (every lane of the warp calls it).
static __device__ __forceinline__ void fdm_mma_bf16_16816(float (&d)[4], const unsigned (&a)[4],
                                                          const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#else
// Emulated twin of the instruction above. Lane (g, t) produces rows g and g+8, cols 2t and 2t+1 of
// D, so it needs rows g, g+8 of A (held by lanes 4g .. 4g+3) and cols 2t, 2t+1 of B (held by lanes
// 4n .. 4n+3 for col n). Each 64-bit shuffle moves two registers of one source lane. The bf16
// products are exact in f32; they are summed in k order in f32 and added to d.
static void fdm_mma_bf16_16816(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  typedef unsigned long long u64;
  const unsigned lane = ::cuda_emu::lane(), g = lane >> 2, t = lane & 3;
  float arow[2][16], bcol[2][16];  // arow[h][k] = A[g + 8h][k]; bcol[c][k] = B[k][2t + c]
  for (unsigned j = 0; j < 4; ++j) {
    const unsigned src = 4 * g + j;  // holds k 2j, 2j+1 (a[0], a[1]) and 2j+8, 2j+9 (a[2], a[3])
    const u64 lo = __shfl_sync(FDM_FULL_MASK, (u64)a[0] | ((u64)a[1] << 32), (int)src);
    const u64 hi = __shfl_sync(FDM_FULL_MASK, (u64)a[2] | ((u64)a[3] << 32), (int)src);
    for (unsigned h = 0; h < 2; ++h) {
      const unsigned wlo = (unsigned)(lo >> (32 * h)), whi = (unsigned)(hi >> (32 * h));
      arow[h][2 * j] = fdm_bf16_to_f32(wlo & 0xffffu);
      arow[h][2 * j + 1] = fdm_bf16_to_f32(wlo >> 16);
      arow[h][2 * j + 8] = fdm_bf16_to_f32(whi & 0xffffu);
      arow[h][2 * j + 9] = fdm_bf16_to_f32(whi >> 16);
    }
  }
  for (unsigned c = 0; c < 2; ++c) {
    for (unsigned j = 0; j < 4; ++j) {
      const unsigned src = 4 * (2 * t + c) + j;  // col 2t+c: k 2j, 2j+1 (b[0]) and 2j+8, 2j+9 (b[1])
      const u64 v = __shfl_sync(FDM_FULL_MASK, (u64)b[0] | ((u64)b[1] << 32), (int)src);
      const unsigned w0 = (unsigned)v, w1 = (unsigned)(v >> 32);
      bcol[c][2 * j] = fdm_bf16_to_f32(w0 & 0xffffu);
      bcol[c][2 * j + 1] = fdm_bf16_to_f32(w0 >> 16);
      bcol[c][2 * j + 8] = fdm_bf16_to_f32(w1 & 0xffffu);
      bcol[c][2 * j + 9] = fdm_bf16_to_f32(w1 >> 16);
    }
  }
  for (unsigned i = 0; i < 4; ++i) {
    const unsigned h = i >> 1, c = i & 1;
    float s = 0.0f;
    for (unsigned k = 0; k < 16; ++k) s += arow[h][k] * bcol[c][k];
    d[i] += s;
  }
}
#endif

// ---- shared-memory fragment loads and asynchronous copies (kernels/attention_tc.cu) ----
// fdm_ldmatrix_x4(r, row): ldmatrix.sync.aligned.m8n8.x4.shared.b16. Four 8 x 8 matrices of
// 16-bit elements, each row 16 contiguous bytes of shared memory; lane l gives the address of
// row l % 8 of matrix l / 8. Lane (g = l / 4, t = l % 4) receives in r[i] the elements (g, 2t)
// (low half) and (g, 2t + 1) of matrix i: one mma B fragment word of a row-major [n][k] tile.
// fdm_ldmatrix_x4_trans: the same matrices transposed: r[i] holds (2t, g) (low) and (2t + 1, g),
// the B fragment word of a row-major [k][n] tile.
// fdm_cp_async16(dst, src, ok): cp.async.cg of 16 bytes global -> shared (both 16-byte aligned),
// or 16 zero bytes when ok is false (src is then not read); fdm_cp_async_commit closes a group
// of copies and fdm_cp_async_wait<N>() waits until at most N groups are pending (a barrier must
// follow before other threads read the bytes). The emulated twins copy at once and read the rows
// of the other lanes through shuffled addresses, as the instructions do.
#ifndef FDM_EMU
static __device__ __forceinline__ void fdm_ldmatrix_x4(unsigned (&r)[4], const void* row) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
static __device__ __forceinline__ void fdm_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
static __device__ __forceinline__ void fdm_cp_async16(void* dst, const void* src, bool ok) {
  const unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src), "r"(ok ? 16 : 0) : "memory");
}
static __device__ __forceinline__ void fdm_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void fdm_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#else
static void fdm_ldmatrix_x4(unsigned (&r)[4], const void* row) {
  const unsigned lane = ::cuda_emu::lane(), g = lane >> 2, t = lane & 3;
  for (unsigned i = 0; i < 4; ++i) {
    const unsigned char* src = (const unsigned char*)__shfl_sync(FDM_FULL_MASK, row, (int)(8 * i + g));
    if (reinterpret_cast<uintptr_t>(src) % 16 != 0) ::cuda_emu::fail("ldmatrix: row address not 16-byte aligned");
    std::memcpy(&r[i], src + 4 * t, 4);
  }
}
static void fdm_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  const unsigned lane = ::cuda_emu::lane(), g = lane >> 2, t = lane & 3;
  for (unsigned i = 0; i < 4; ++i) {
    const unsigned short* r0 = (const unsigned short*)__shfl_sync(FDM_FULL_MASK, row, (int)(8 * i + 2 * t));
    const unsigned short* r1 = (const unsigned short*)__shfl_sync(FDM_FULL_MASK, row, (int)(8 * i + 2 * t + 1));
    if (reinterpret_cast<uintptr_t>(r0) % 16 != 0 || reinterpret_cast<uintptr_t>(r1) % 16 != 0)
      ::cuda_emu::fail("ldmatrix.trans: row address not 16-byte aligned");
    r[i] = (unsigned)r0[g] | ((unsigned)r1[g] << 16);
  }
}
static void fdm_cp_async16(void* dst, const void* src, bool ok) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || (ok && reinterpret_cast<uintptr_t>(src) % 16 != 0))
    ::cuda_emu::fail("cp.async: address not 16-byte aligned");
  if (ok) std::memcpy(dst, src, 16);
  else std::memset(dst, 0, 16);
}
static void fdm_cp_async_commit() {}
template <int N>
static void fdm_cp_async_wait() {}
#endif

#endif  // FDM_COMMON_CUH
