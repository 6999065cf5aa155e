// cuda_emu.h: a shim that lets the project's CUDA kernel sources (`kernels/*.cu`) compile as host
// C++17 and run on the CPU with the CUDA execution model (design.md §3, tier 3; toolchain.md §7).
//
// Model:
// * Every GPU thread of a block is a fiber (its own stack, guard page below it). All fibers of a
//   block run on one OS thread, one at a time, switching only at barriers and warp operations, so
//   a block runs start to finish on one OS thread. Blocks run in parallel on a few OS threads.
// * `threadIdx` is read through the current fiber; `blockIdx`, `blockDim`, `gridDim` are
//   per-OS-thread values. Static `__shared__` is `static thread_local` (one copy per OS thread, i.e.
//   per running block); dynamic shared memory goes through `DYN_SHARED(T, name)`.
// * `__syncthreads()` waits until every live thread of the block has arrived (exited threads count
//   as arrived). Warp operations (`__shfl*_sync`, `__ballot_sync`, `__any/__all_sync`,
//   `__syncwarp`) wait until every live lane named in the mask has arrived; the values are then
//   exchanged at once, so a fast lane can never overwrite a value its partner has not read.
//   Warp-synchronous code without `*_sync` (implicit lockstep) is not supported (nor is it correct
//   on Volta and later GPUs).
// * Atomics are real atomic read-modify-writes, because blocks run concurrently.
// * Any deadlock (threads waiting at different barriers with nobody runnable) fails the launch with
//   a message instead of hanging.
// Kernel sources must not `#include` anything: the emulator includes each one inside a namespace.
#pragma once

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#define FDM_EMU 1

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

namespace cuda_emu {

// The part of a fiber that kernel code reads directly (threadIdx); the scheduler's Fiber extends it.
struct ThreadCoords {
  dim3 tid;
  unsigned lane;
};

extern thread_local ThreadCoords* tl_thread;
extern thread_local dim3 tl_block_idx;
extern thread_local dim3 tl_block_dim;
extern thread_local dim3 tl_grid_dim;

enum WarpOpKind : int { WARP_SYNC = 0, WARP_SHFL = 1, WARP_BALLOT = 2 };

void sync_threads();
// Post `value` (for WARP_SHFL read from lane `src_lane`; for WARP_BALLOT a predicate) and wait for
// the warp. Returns the shuffled value, or for a ballot (participants << 32) | ballot bits.
uint64_t warp_op(WarpOpKind kind, unsigned mask, unsigned src_lane, uint64_t value);
void* dynamic_shared();
[[noreturn]] void fail(const char* what);

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::tl_thread->tid)
#define blockIdx (::cuda_emu::tl_block_idx)
#define blockDim (::cuda_emu::tl_block_dim)
#define gridDim (::cuda_emu::tl_grid_dim)
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ static thread_local
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define DYN_SHARED(T, name) T* name = reinterpret_cast<T*>(::cuda_emu::dynamic_shared())

static inline void __syncthreads() { ::cuda_emu::sync_threads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cuda_emu::warp_op(::cuda_emu::WARP_SYNC, mask, 0, 0); }
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- warp shuffles and votes ----
namespace cuda_emu {
template <class T>
inline T shfl_from(unsigned mask, T var, unsigned src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = warp_op(WARP_SHFL, mask, src, bits);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
inline unsigned lane() { return tl_thread->lane; }
}  // namespace cuda_emu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  unsigned l = ::cuda_emu::lane(), w = (unsigned)width;
  return ::cuda_emu::shfl_from(mask, var, (l & ~(w - 1)) + ((unsigned)src_lane & (w - 1)));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  unsigned l = ::cuda_emu::lane(), w = (unsigned)width, seg = l & ~(w - 1);
  unsigned src = l ^ (unsigned)lane_mask;
  if (src < seg || src >= seg + w) src = l;
  return ::cuda_emu::shfl_from(mask, var, src);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  unsigned l = ::cuda_emu::lane(), w = (unsigned)width, seg = l & ~(w - 1);
  unsigned src = l + delta < seg + w ? l + delta : l;
  return ::cuda_emu::shfl_from(mask, var, src);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  unsigned l = ::cuda_emu::lane(), w = (unsigned)width, seg = l & ~(w - 1);
  unsigned src = l >= seg + delta ? l - delta : l;
  return ::cuda_emu::shfl_from(mask, var, src);
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
  return (unsigned)::cuda_emu::warp_op(::cuda_emu::WARP_BALLOT, mask, 0, pred != 0);
}
static inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
static inline int __all_sync(unsigned mask, int pred) {
  uint64_t r = ::cuda_emu::warp_op(::cuda_emu::WARP_BALLOT, mask, 0, pred != 0);
  return (unsigned)r == (unsigned)(r >> 32);
}

// ---- atomics (real read-modify-writes: blocks run on several OS threads) ----
#define FDM_EMU_ATOMIC_INT(T)                                                                     \
  static inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }     \
  static inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }     \
  static inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }   \
  static inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }     \
  static inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }       \
  static inline T atomicCAS(T* a, T expected, T v) {                                              \
    __atomic_compare_exchange_n(a, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);      \
    return expected;                                                                              \
  }                                                                                               \
  static inline T atomicMax(T* a, T v) {                                                          \
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                 \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {} \
    return old;                                                                                   \
  }                                                                                               \
  static inline T atomicMin(T* a, T v) {                                                          \
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                 \
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {} \
    return old;                                                                                   \
  }
FDM_EMU_ATOMIC_INT(int)
FDM_EMU_ATOMIC_INT(unsigned int)
FDM_EMU_ATOMIC_INT(unsigned long long)
#undef FDM_EMU_ATOMIC_INT

static inline float atomicAdd(float* a, float v) {
  uint32_t* p = reinterpret_cast<uint32_t*>(a);
  uint32_t old = __atomic_load_n(p, __ATOMIC_SEQ_CST), upd;
  do {
    float f;
    std::memcpy(&f, &old, 4);
    f += v;
    std::memcpy(&upd, &f, 4);
  } while (!__atomic_compare_exchange_n(p, &old, upd, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  float r;
  std::memcpy(&r, &old, 4);
  return r;
}
static inline float atomicExch(float* a, float v) {
  uint32_t bits, old;
  std::memcpy(&bits, &v, 4);
  old = __atomic_exchange_n(reinterpret_cast<uint32_t*>(a), bits, __ATOMIC_SEQ_CST);
  float r;
  std::memcpy(&r, &old, 4);
  return r;
}

// ---- device math intrinsics (host versions; the GPU's may differ by a few ulp) ----
// (__expf and __logf need no shim: glibc declares both.)
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
template <class T>
static inline T __ldg(const T* p) { return *p; }

// CUDA's built-in vector types that kernels load through (16- and 8-byte global accesses).
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

#define FDM_EMU_MINMAX(T)                                \
  static inline T min(T a, T b) { return a < b ? a : b; } \
  static inline T max(T a, T b) { return a > b ? a : b; }
FDM_EMU_MINMAX(int)
FDM_EMU_MINMAX(unsigned int)
FDM_EMU_MINMAX(long long)
FDM_EMU_MINMAX(unsigned long long)
FDM_EMU_MINMAX(float)
#undef FDM_EMU_MINMAX

// ---- kernel registry: how Rust launches a kernel by name with a cuLaunchKernel-style argument list ----
namespace cuda_emu {

typedef void (*Invoker)(void* const* args);

struct KernelEntry {
  const char* module;
  const char* name;
  Invoker invoke;
  const char* codes;      // one letter per parameter: p pointer, i int32, u uint32, f float, s struct
  const unsigned* sizes;  // sizeof of each parameter
  unsigned nargs;
};

template <class T>
constexpr char arg_code() {
  if (std::is_pointer<T>::value) return 'p';
  if (std::is_same<T, float>::value) return 'f';
  if (std::is_same<T, int>::value) return 'i';
  if (std::is_same<T, unsigned>::value) return 'u';
  if (std::is_same<T, long long>::value || std::is_same<T, long>::value) return 'l';
  if (std::is_same<T, unsigned long long>::value || std::is_same<T, unsigned long>::value) return 'L';
  if (std::is_class<T>::value) return 's';
  return '?';
}

template <class T>
inline T load_arg(void* p) {
  typename std::remove_cv<T>::type v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <class F>
struct Signature;
template <class... A>
struct Signature<void (*)(A...)> {
  static constexpr unsigned n = sizeof...(A);
  static constexpr char codes[sizeof...(A) + 1] = {arg_code<A>()..., '\0'};
  static constexpr unsigned sizes[sizeof...(A) + 1] = {(unsigned)sizeof(A)..., 0u};
  template <void (*K)(A...), std::size_t... I>
  static void call(void* const* args, std::index_sequence<I...>) {
    K(load_arg<A>(args[I])...);
  }
};

template <auto K>
void invoke(void* const* args) {
  using S = Signature<decltype(K)>;
  S::template call<K>(args, std::make_index_sequence<S::n>{});
}

// The table of every emulated kernel (generated by build.rs), ending in an entry with name nullptr.
const KernelEntry* const* kernel_tables();

}  // namespace cuda_emu

#define FDM_EMU_ENTRY(module, ns, fn)                                                               \
  ::cuda_emu::KernelEntry {                                                                         \
    module, #fn, &::cuda_emu::invoke<&ns::fn>, ::cuda_emu::Signature<decltype(&ns::fn)>::codes,      \
        ::cuda_emu::Signature<decltype(&ns::fn)>::sizes, ::cuda_emu::Signature<decltype(&ns::fn)>::n \
  }
