// cuda_emu.cpp: the scheduler behind cuda_emu.h (see the model described there).
//
// Fibers: each GPU thread of a block gets a stack (with a PROT_NONE guard page below it) and is
// started once with makecontext/setcontext; after that every switch is _setjmp/_longjmp, which
// avoids the signal-mask syscall of swapcontext (about 10x faster, toolchain.md §7). A fiber loops
// over blocks: when its thread of one block returns, it parks as Done and is resumed for the same
// thread of the next block, so stacks and contexts are set up once per worker per launch.
// Scheduling: between two block barriers the scheduler runs one warp at a time as far as it can
// go (through its shuffles and votes) before starting the next, alternating forward and reverse
// order between barrier phases, so code that forgets a barrier sees its neighbours' shared-memory
// writes in an unfavourable order. When every thread waits, it releases the block barrier or
// reports a deadlock.

#include "cuda_emu.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cuda_emu {

thread_local ThreadCoords* tl_thread = nullptr;
thread_local dim3 tl_block_idx;
thread_local dim3 tl_block_dim;
thread_local dim3 tl_grid_dim;

namespace {

enum class State { Runnable, AtBlockBarrier, AtWarpOp, Done, Failed };

struct Fiber : ThreadCoords {
  unsigned linear = 0;
  State state = State::Runnable;
  bool started = false;
  WarpOpKind op = WARP_SYNC;
  unsigned mask = 0;
  unsigned src = 0;
  uint64_t value = 0;
  uint64_t result = 0;
  jmp_buf ctx;
  ucontext_t start_ctx;
};

struct Launch {
  const KernelEntry* kernel = nullptr;
  void* const* args = nullptr;
  dim3 grid, block;
  size_t smem_bytes = 0;
  unsigned long long nblocks = 0;
  std::atomic<unsigned long long> next_block{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  std::string error;

  void fail(const std::string& msg) {
    std::lock_guard<std::mutex> g(error_mu);
    if (error.empty()) error = msg;
    failed = true;
  }
};

struct Worker {
  Launch* launch = nullptr;
  std::vector<Fiber> fibers;
  char* stacks = nullptr;
  size_t stacks_bytes = 0;
  void* smem = nullptr;
  jmp_buf sched;
  std::string block_error;
};

thread_local Worker* tl_worker = nullptr;

Fiber* current_fiber() { return static_cast<Fiber*>(tl_thread); }

// Save this fiber's registers and jump back to the block scheduler.
void yield_to_scheduler(Fiber* f) {
  if (_setjmp(f->ctx) == 0) _longjmp(tl_worker->sched, 1);
}

void fiber_main() {
  Worker* w = tl_worker;
  Fiber* f = current_fiber();
  for (;;) {
    w->launch->kernel->invoke(w->launch->args);
    f->state = State::Done;
    yield_to_scheduler(f);  // resumed for the same thread of the next block
  }
}

void run_fiber(Worker* w, Fiber* f) {
  tl_thread = f;
  if (_setjmp(w->sched) == 0) {
    if (!f->started) {
      f->started = true;
      setcontext(&f->start_ctx);
    }
    _longjmp(f->ctx, 1);
  }
  tl_thread = nullptr;
}

std::string block_name() {
  return "block (" + std::to_string(tl_block_idx.x) + "," + std::to_string(tl_block_idx.y) + "," +
         std::to_string(tl_block_idx.z) + ")";
}

// Release every lane of the warp starting at thread `base` whose warp operation is complete: all
// live lanes named in its mask have arrived. Values are exchanged here, before any released lane
// runs. Returns the number of lanes released, or -1 after recording an error.
int release_warp(Worker* w, unsigned base) {
  const unsigned n = (unsigned)w->fibers.size();
  const unsigned width = n - base < 32 ? n - base : 32;
  unsigned arrived = 0, live = 0;
  for (unsigned l = 0; l < width; ++l) {
    const Fiber& f = w->fibers[base + l];
    if (f.state != State::Done) live |= 1u << l;
    if (f.state == State::AtWarpOp) arrived |= 1u << l;
  }
  if (!arrived) return 0;
  unsigned ready = 0;
  for (unsigned l = 0; l < width; ++l) {
    if (!(arrived >> l & 1)) continue;
    unsigned need = w->fibers[base + l].mask & live;
    if ((need & ~arrived) == 0) ready |= 1u << l;
  }
  for (unsigned l = 0; l < width; ++l) {
    if (!(ready >> l & 1)) continue;
    Fiber& f = w->fibers[base + l];
    unsigned group = ready & f.mask;
    for (unsigned j = 0; j < width; ++j) {
      if ((group >> j & 1) && w->fibers[base + j].op != f.op) {
        w->block_error = "lanes " + std::to_string(l) + " and " + std::to_string(j) + " of warp " +
                         std::to_string(base / 32) + " in " + block_name() +
                         " are at different warp operations (shuffle/vote/syncwarp mismatch)";
        return -1;
      }
    }
    if (f.op == WARP_SHFL) {
      f.result = (f.src < width && (group >> f.src & 1)) ? w->fibers[base + f.src].value : f.value;
    } else if (f.op == WARP_BALLOT) {
      unsigned bits = 0;
      for (unsigned j = 0; j < width; ++j)
        if ((group >> j & 1) && w->fibers[base + j].value) bits |= 1u << j;
      f.result = ((uint64_t)group << 32) | bits;
    } else {
      f.result = 0;
    }
  }
  int released = 0;
  for (unsigned l = 0; l < width; ++l)
    if (ready >> l & 1) {
      w->fibers[base + l].state = State::Runnable;
      ++released;
    }
  return released;
}

// Run one warp as far as it can go alone: until every lane waits at __syncthreads, waits on a
// lane that exited, or has exited. Draining one warp before the next maximises the skew between
// warps, so a missing __syncthreads between warps shows up as a wrong result.
bool drain_warp(Worker* w, unsigned base, bool reverse) {
  const unsigned n = (unsigned)w->fibers.size();
  const unsigned width = n - base < 32 ? n - base : 32;
  for (;;) {
    for (unsigned k = 0; k < width; ++k) {
      Fiber* f = &w->fibers[base + (reverse ? width - 1 - k : k)];
      if (f->state == State::Runnable) run_fiber(w, f);
      if (f->state == State::Failed) return false;
    }
    int released = release_warp(w, base);
    if (released < 0) return false;
    if (released == 0) return true;
  }
}

bool run_block(Worker* w) {
  const unsigned n = (unsigned)w->fibers.size(), nwarps = (n + 31) / 32;
  for (Fiber& f : w->fibers) f.state = State::Runnable;
  // CUDA does not clear shared memory; poison it so reads before writes show up as NaNs.
  if (w->launch->smem_bytes) std::memset(w->smem, 0xff, w->launch->smem_bytes);
  for (unsigned pass = 0;; ++pass) {
    // Alternate the order of warps (and of lanes within a warp) between barrier phases.
    const bool reverse = pass & 1;
    for (unsigned k = 0; k < nwarps; ++k)
      if (!drain_warp(w, 32 * (reverse ? nwarps - 1 - k : k), reverse)) return false;
    size_t done = 0, at_block = 0, at_warp = 0;
    for (const Fiber& f : w->fibers) {
      done += f.state == State::Done;
      at_block += f.state == State::AtBlockBarrier;
      at_warp += f.state == State::AtWarpOp;
    }
    if (done == n) return true;
    if (at_warp == 0) {
      for (Fiber& f : w->fibers)
        if (f.state == State::AtBlockBarrier) f.state = State::Runnable;
      continue;
    }
    w->block_error = "deadlock in " + block_name() + ": " + std::to_string(at_block) +
                     " threads wait at __syncthreads, " + std::to_string(at_warp) +
                     " at a warp operation whose lanes never all arrive, " + std::to_string(done) + " exited";
    return false;
  }
}

size_t page_size() { return (size_t)sysconf(_SC_PAGESIZE); }

size_t stack_bytes() {
  size_t kb = 64;
  if (const char* s = std::getenv("EMU_STACK_KB")) kb = std::strtoul(s, nullptr, 10);
  if (kb < 16) kb = 16;
  size_t page = page_size();
  return (kb * 1024 + page - 1) / page * page;
}

bool setup_fibers(Worker* w, unsigned nthreads) {
  const size_t page = page_size(), stack = stack_bytes(), slot = page + stack;
  w->stacks_bytes = slot * nthreads;
  void* mem = mmap(nullptr, w->stacks_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    w->stacks = nullptr;
    w->block_error = "cannot map fiber stacks (" + std::to_string(w->stacks_bytes) + " bytes)";
    return false;
  }
  w->stacks = static_cast<char*>(mem);
  w->fibers.resize(nthreads);
  const dim3 b = w->launch->block;
  for (unsigned i = 0; i < nthreads; ++i) {
    Fiber& f = w->fibers[i];
    char* guard = w->stacks + i * slot;
    mprotect(guard, page, PROT_NONE);  // stacks grow down: the guard sits below each stack
    f.linear = i;
    f.lane = i % 32;
    f.tid = dim3(i % b.x, (i / b.x) % b.y, i / (b.x * b.y));
    getcontext(&f.start_ctx);
    f.start_ctx.uc_stack.ss_sp = guard + page;
    f.start_ctx.uc_stack.ss_size = stack;
    f.start_ctx.uc_link = nullptr;
    makecontext(&f.start_ctx, fiber_main, 0);
  }
  return true;
}

void run_worker(Launch* L);

// A worker thread: runs blocks until none is left. Allocation failures become launch errors.
void worker_main(Launch* L) {
  try {
    run_worker(L);
  } catch (const std::exception& e) {
    L->fail(std::string("emulator worker: ") + e.what());
  }
}

void run_worker(Launch* L) {
  Worker w;
  w.launch = L;
  tl_worker = &w;
  tl_grid_dim = L->grid;
  tl_block_dim = L->block;
  const unsigned nthreads = L->block.x * L->block.y * L->block.z;
  std::vector<unsigned char> smem(L->smem_bytes + 16 + 64);
  w.smem = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(smem.data()) + 63) & ~uintptr_t(63));
  if (!setup_fibers(&w, nthreads)) {
    L->fail(w.block_error);
  } else {
    const unsigned long long gx = L->grid.x, gy = L->grid.y;
    while (!L->failed) {
      unsigned long long b = L->next_block++;
      if (b >= L->nblocks) break;
      tl_block_idx = dim3((unsigned)(b % gx), (unsigned)(b / gx % gy), (unsigned)(b / (gx * gy)));
      if (!run_block(&w)) {
        L->fail(std::string("kernel ") + L->kernel->name + ": " + w.block_error);
        break;
      }
    }
  }
  if (w.stacks) munmap(w.stacks, w.stacks_bytes);
  tl_worker = nullptr;
}

const KernelEntry* find_kernel(const char* module, const char* name) {
  for (const KernelEntry* const* t = kernel_tables(); *t; ++t)
    for (const KernelEntry* e = *t; e->name; ++e)
      if (!std::strcmp(e->module, module) && !std::strcmp(e->name, name)) return e;
  return nullptr;
}

std::string check_args(const KernelEntry* k, const char* codes, const unsigned* sizes, unsigned nargs) {
  std::string want = k->codes, got(codes, nargs);
  if (nargs != k->nargs)
    return std::string(k->name) + " takes " + std::to_string(k->nargs) + " arguments (" + want + "), got " +
           std::to_string(nargs) + " (" + got + ")";
  for (unsigned i = 0; i < nargs; ++i) {
    if (want[i] != got[i] || sizes[i] != k->sizes[i])
      return std::string(k->name) + ": argument " + std::to_string(i) + " is '" + want[i] + "' of " +
             std::to_string(k->sizes[i]) + " bytes, got '" + got[i] + "' of " + std::to_string(sizes[i]) +
             " bytes (signature " + want + ", given " + got + ")";
  }
  return "";
}

std::string check_config(const unsigned grid[3], const unsigned block[3], unsigned smem) {
  unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
  if (!grid[0] || !grid[1] || !grid[2] || !threads) return "empty grid or block";
  if (threads > 1024) return "block of " + std::to_string(threads) + " threads (the limit is 1024)";
  if (block[2] > 64) return "blockDim.z above 64";
  if (grid[1] > 65535 || grid[2] > 65535) return "gridDim.y/z above 65535";
  // Without cuFuncSetAttribute a kernel may use at most 48 KiB of dynamic shared memory.
  if (smem > 48 * 1024) return "dynamic shared memory of " + std::to_string(smem) + " bytes (above 48 KiB)";
  return "";
}

unsigned worker_count(unsigned long long nblocks) {
  unsigned n = std::thread::hardware_concurrency();
  if (const char* s = std::getenv("EMU_THREADS")) n = (unsigned)std::strtoul(s, nullptr, 10);
  if (n < 1) n = 1;
  if (n > 16) n = 16;
  return nblocks < n ? (unsigned)nblocks : n;
}

}  // namespace

void sync_threads() {
  Fiber* f = current_fiber();
  f->state = State::AtBlockBarrier;
  yield_to_scheduler(f);
}

uint64_t warp_op(WarpOpKind kind, unsigned mask, unsigned src_lane, uint64_t value) {
  Fiber* f = current_fiber();
  if (!(mask >> f->lane & 1)) fail("a warp operation's mask does not include the calling lane");
  f->op = kind;
  f->mask = mask;
  f->src = src_lane;
  f->value = value;
  f->state = State::AtWarpOp;
  yield_to_scheduler(f);
  return f->result;
}

void* dynamic_shared() { return tl_worker->smem; }

void fail(const char* what) {
  Fiber* f = current_fiber();
  if (!f || !tl_worker) {
    std::fprintf(stderr, "cuda_emu: %s\n", what);
    std::abort();
  }
  tl_worker->block_error = std::string(what) + " (thread " + std::to_string(f->linear) + " of " + block_name() + ")";
  f->state = State::Failed;
  _longjmp(tl_worker->sched, 1);
}

}  // namespace cuda_emu

// Launch `module::kernel` on the emulator. `args[i]` points at the value of parameter i (as for
// cuLaunchKernel); `codes`/`sizes` describe what the caller believes the parameters are, and the
// launch is refused when that disagrees with the kernel's real signature. Returns 0 on success,
// otherwise 1 with a message in `err`.
extern "C" int fdm_emu_launch(const char* module, const char* kernel, const unsigned grid[3],
                              const unsigned block[3], unsigned smem_bytes, void* const* args,
                              const char* codes, const unsigned* sizes, unsigned nargs, char* err,
                              size_t err_len) {
  using namespace cuda_emu;
  auto report = [&](const std::string& msg) {
    if (err_len) {
      std::snprintf(err, err_len, "%s", msg.c_str());
    }
    return 1;
  };
  const KernelEntry* k = find_kernel(module, kernel);
  if (!k) return report(std::string("no emulated kernel ") + kernel + " in kernels/" + module + ".cu");
  std::string bad = check_args(k, codes, sizes, nargs);
  if (bad.empty()) bad = check_config(grid, block, smem_bytes);
  if (!bad.empty()) return report(bad);

  Launch L;
  L.kernel = k;
  L.args = args;
  L.grid = dim3(grid[0], grid[1], grid[2]);
  L.block = dim3(block[0], block[1], block[2]);
  L.smem_bytes = smem_bytes;
  L.nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
  // Fresh threads, so every thread-local (static __shared__ included) belongs to this launch only.
  std::vector<std::thread> pool;
  for (unsigned i = 0, n = worker_count(L.nblocks); i < n; ++i) {
    try {
      pool.emplace_back(worker_main, &L);
    } catch (const std::exception& e) {  // no exception may cross into Rust
      if (pool.empty()) return report(std::string("cannot start an emulator thread: ") + e.what());
      break;  // the threads already running share out the blocks
    }
  }
  for (auto& t : pool) t.join();
  if (L.failed) return report(L.error);
  return 0;
}
