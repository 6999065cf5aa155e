// selftest.cu: small kernels that pin down the CUDA execution-model features the real kernels rely
// on: warp shuffles and votes (with sub-warp widths), block barriers with shared memory, dynamic
// shared memory, float/int atomics across blocks, and 3-D thread/block coordinates. The same file
// runs on the CPU emulator (tests/cuda_emu_runtime.rs) and on a real GPU (tests/cuda_runtime.rs),
// so a GPU run checks that the emulator models the hardware. Not used by the model itself.
//
// selftest_warp_ops(out)          blocks of 64 threads; 8 ints per thread (layout in the Rust test)
// selftest_block_sum(out, x, n)   *out += sum(x) via block_sum + one float atomicAdd per block
// selftest_reverse_dyn(out, x)    each block reverses its blockDim.x-element slice through dynamic
//                                 shared memory
// selftest_coords(out)            out[global linear thread id] = packed threadIdx/blockIdx
// selftest_atomics(counter, maxv) counter += 1 per thread; maxv = max global linear id
// selftest_misuse(out, mode)      mode 0: a correct half-warp shuffle; mode 1 and 2 are deliberate
//                                 misuse that the emulator must report (never launched on a GPU):
//                                 1 = half a warp shuffles while the other half waits at
//                                 __syncthreads (deadlock), 2 = a shuffle mask without the caller.

extern "C" __global__ void selftest_warp_ops(int* out) {
  const int lane = threadIdx.x & 31;
  int* o = out + 8 * (blockIdx.x * blockDim.x + threadIdx.x);
  o[0] = __shfl_xor_sync(FDM_FULL_MASK, lane * 10, 5);
  o[1] = __shfl_down_sync(FDM_FULL_MASK, lane, 3);
  o[2] = __shfl_up_sync(FDM_FULL_MASK, lane, 2);
  o[3] = __shfl_sync(FDM_FULL_MASK, lane + 100 * (int)(threadIdx.x >> 5), 7);
  o[4] = __shfl_sync(FDM_FULL_MASK, lane, 3, 8);
  o[5] = (int)__ballot_sync(FDM_FULL_MASK, lane % 3 == 0);
  o[6] = __any_sync(FDM_FULL_MASK, lane == 31);
  o[7] = __all_sync(FDM_FULL_MASK, lane < 31);
}

extern "C" __global__ void selftest_block_sum(float* out, const float* x, unsigned n) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) acc += x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

extern "C" __global__ void selftest_reverse_dyn(float* out, const float* x) {
  DYN_SHARED(float, tile);
  const unsigned base = blockIdx.x * blockDim.x;
  tile[threadIdx.x] = x[base + threadIdx.x];
  __syncthreads();
  out[base + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// Two words per thread: threadIdx packed 8 bits per coordinate (x | y<<8 | z<<16), then blockIdx.
extern "C" __global__ void selftest_coords(unsigned* out) {
  const unsigned tpb = blockDim.x * blockDim.y * blockDim.z;
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  unsigned* o = out + 2 * (block * tpb + thread);
  o[0] = threadIdx.x | (threadIdx.y << 8) | (threadIdx.z << 16);
  o[1] = blockIdx.x | (blockIdx.y << 8) | (blockIdx.z << 16);
}

extern "C" __global__ void selftest_atomics(int* counter, unsigned* maxv) {
  atomicAdd(counter, 1);
  atomicMax(maxv, blockIdx.x * blockDim.x + threadIdx.x);
}

extern "C" __global__ void selftest_misuse(int* out, int mode) {
  const int lane = threadIdx.x & 31;
  int v = lane;
  if (mode == 0) {
    if (lane < 16) v = __shfl_xor_sync(0x0000ffffu, lane, 1);
  } else if (mode == 1) {
    if (lane < 16) v = __shfl_xor_sync(FDM_FULL_MASK, lane, 1);
    else __syncthreads();
  } else {
    v = __shfl_xor_sync(0x1u, lane, 1);
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}
