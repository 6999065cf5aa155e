//! Where the host work runs: on a thread of rayon's pool, not beside it.
//!
//! The CPU ops split their work with rayon. Called from a thread outside the pool (the process's
//! main thread), each parallel op is injected into the pool as a job, a sleeping worker is woken
//! for it, and the caller blocks on a latch until the job is done and then is woken itself: a few
//! futex calls and context switches per op. A transformer pass runs dozens of ops, so the README
//! inpainting made about 37,700 futex calls in 2.4 s. Run from a pool thread instead, the same op
//! pushes its halves onto that thread's own deque, the thread works on one half itself and the
//! other workers steal the rest; the README inpainting then made 240 futex calls, and ran about
//! 8 % faster, training steps 5-12 % (`BENCHMARKS.md`). The results are the same bits: the ops
//! split their work by sizes, not by which thread calls them.
//!
//! `on_pool` runs a closure on a pool thread (the calling thread waits for it). The pool's
//! threads get the main thread's usual 8 MiB stack (`pool_setup`, effective when called before
//! the pool's first use, as the `fdm` binary does at start).
//!
//! Not for code that waits on another thread that itself needs the pool, nor for code that
//! waits on other tasks sharing the pool:
//! * the training data loader's channel: its batches are built by pool jobs, so with a
//!   one-thread pool a pool thread waiting for them would wait forever. The training runner
//!   therefore puts each step on the pool, not its whole loop;
//! * a data-parallel step, which waits inside for the other ranks' gradients: ranks that share a
//!   pool (threads of one process, as the tests run them) could deadlock, a pool thread waiting
//!   in a parallel op taking up another rank's step, which then waits for the first. A group's
//!   steps run where they are called.

use std::sync::Once;

/// Stack of each pool thread: what a Linux main thread gets by default.
pub const POOL_STACK_BYTES: usize = 8 << 20;

static SETUP: Once = Once::new();

/// Give the global pool `POOL_STACK_BYTES` stacks, keeping rayon's thread count (which follows
/// `RAYON_NUM_THREADS`). A no-op once the pool exists (it was built by an earlier op).
pub fn pool_setup() {
    SETUP.call_once(|| {
        // Err only when the global pool already exists: it keeps its settings then.
        let _ = rayon::ThreadPoolBuilder::new().stack_size(POOL_STACK_BYTES).build_global();
    });
}

/// Run `f` on a thread of the global pool and return its result (module docs).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool_setup();
    rayon::scope(|_| f())
}
