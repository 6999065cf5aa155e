//! Caching device allocator (design.md §1: "the sampler's passes reuse the same buffers").
//! Device memory freed by a tensor goes back to a per-device pool of size buckets instead of to
//! the driver, and the next allocation of the same bucket takes it from there: the ~400
//! transformer passes of one inpainting then allocate from the driver only during the first pass.
//!
//! Buckets: sizes up to 1 MiB round up to a multiple of 512 bytes, larger ones to a multiple of
//! 2 MiB (the waste stays small where it matters and the number of distinct buckets stays low).
//! A buffer is handed out with its logical length; the bucket size stays hidden.
//!
//! Reuse is safe because every kernel and copy of a device runs on its one stream, in order: a
//! buffer returned to the pool while earlier kernels still use it is only touched again by work
//! queued after them. When the driver runs out of memory, the pool frees everything it caches and
//! the allocation is tried once more.
//!
//! CUDA graphs (`cuda::graph`): while a graph is captured, blocks returned to the pool go to a
//! capture list that only the capture itself reuses; at the end of the capture they move into a
//! `GraphReserve` that the graph owns, so no work outside the graph is ever given memory that the
//! graph's replays write. A capture may not allocate from the driver (the stream-ordered
//! allocation would be captured into the graph): a pool miss during a capture is an error, so a
//! capture follows an eager run of the same work, which leaves the blocks it needs in the pool.
//!
//! `BucketPool` is the bookkeeping alone (generic over the block type, so it is unit-tested
//! without a GPU); `DeviceAllocator` puts it in front of cudarc.

use crate::error::{Error, Result};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

const SMALL_LIMIT: usize = 1 << 20;
const SMALL_ROUND: usize = 512;
const LARGE_ROUND: usize = 2 << 20;

/// The bucket (allocation size in bytes) for a request of `bytes`.
pub fn bucket_size(bytes: usize) -> usize {
    let bytes = bytes.max(1);
    if bytes <= SMALL_LIMIT {
        bytes.div_ceil(SMALL_ROUND) * SMALL_ROUND
    } else {
        bytes.div_ceil(LARGE_ROUND) * LARGE_ROUND
    }
}

/// Counters of one pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Requests served from the pool.
    pub hits: u64,
    /// Requests that went to the driver.
    pub misses: u64,
    /// Bytes (bucket sizes) handed out and not yet returned.
    pub in_use_bytes: usize,
    /// The largest `in_use_bytes` seen.
    pub peak_in_use_bytes: usize,
    /// Bytes (bucket sizes) held in the free lists.
    pub cached_bytes: usize,
}

/// Free lists per bucket plus the counters. `B` is a block of device memory (or a stand-in).
#[derive(Debug)]
pub struct BucketPool<B> {
    free: BTreeMap<usize, Vec<B>>,
    /// Some while a CUDA graph is captured: the blocks returned during the capture.
    capture: Option<BTreeMap<usize, Vec<B>>>,
    stats: AllocStats,
}

impl<B> Default for BucketPool<B> {
    fn default() -> Self {
        BucketPool {
            free: BTreeMap::new(),
            capture: None,
            stats: AllocStats::default(),
        }
    }
}

impl<B> BucketPool<B> {
    /// A cached block of exactly `bucket` bytes, if any (counted as a hit), else None (a miss:
    /// the caller allocates `bucket` bytes and reports it with `note_fresh`).
    /// During a capture, blocks returned by the capture come first.
    pub fn take(&mut self, bucket: usize) -> Option<B> {
        let captured = self.capture.as_mut().and_then(|c| c.get_mut(&bucket)?.pop());
        let block = captured.or_else(|| self.free.get_mut(&bucket).and_then(|v| v.pop()));
        match block {
            Some(b) => {
                self.stats.hits += 1;
                self.stats.cached_bytes -= bucket;
                self.note_in_use(bucket);
                Some(b)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }
    /// A fresh block of `bucket` bytes was allocated after a miss.
    pub fn note_fresh(&mut self, bucket: usize) {
        self.note_in_use(bucket);
    }
    fn note_in_use(&mut self, bucket: usize) {
        self.stats.in_use_bytes += bucket;
        self.stats.peak_in_use_bytes = self.stats.peak_in_use_bytes.max(self.stats.in_use_bytes);
    }
    /// A block of `bucket` bytes comes back from its user.
    pub fn give(&mut self, bucket: usize, block: B) {
        self.stats.in_use_bytes -= bucket;
        self.stats.cached_bytes += bucket;
        let lists = self.capture.as_mut().unwrap_or(&mut self.free);
        lists.entry(bucket).or_default().push(block);
    }
    /// Whether a capture is under way.
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }
    /// Start a capture: from now on returned blocks are kept for the capture (false: one is
    /// already under way).
    pub fn begin_capture(&mut self) -> bool {
        if self.capture.is_some() {
            return false;
        }
        self.capture = Some(BTreeMap::new());
        true
    }
    /// End the capture: the blocks returned during it, with their buckets, counted as in use
    /// (the graph holds them) until they are given back.
    pub fn end_capture(&mut self) -> Vec<(usize, B)> {
        let held: Vec<(usize, B)> = self
            .capture
            .take()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(bucket, blocks)| blocks.into_iter().map(move |b| (bucket, b)))
            .collect();
        for &(bucket, _) in &held {
            self.stats.cached_bytes -= bucket;
            self.stats.in_use_bytes += bucket;
        }
        held
    }
    /// Every cached block, emptying the free lists (to be freed by the caller).
    pub fn drain(&mut self) -> Vec<B> {
        self.stats.cached_bytes = 0;
        std::mem::take(&mut self.free)
            .into_values()
            .flatten()
            .collect()
    }
    pub fn stats(&self) -> AllocStats {
        self.stats
    }
}

type SharedPool = Arc<Mutex<BucketPool<CudaSlice<u8>>>>;

/// The pool of one device (one per ordinal for the whole process).
#[derive(Clone, Debug)]
pub struct DeviceAllocator {
    pool: SharedPool,
}

impl DeviceAllocator {
    /// The allocator of device `ordinal`, shared by every `CudaDevice` handle of that device.
    pub fn for_ordinal(ordinal: usize) -> Self {
        static POOLS: OnceLock<Mutex<HashMap<usize, SharedPool>>> = OnceLock::new();
        let mut pools = POOLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        DeviceAllocator {
            pool: pools.entry(ordinal).or_default().clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketPool<CudaSlice<u8>>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of `bytes` logical bytes (contents undefined).
    pub fn alloc(&self, stream: &Arc<CudaStream>, bytes: usize) -> Result<PooledBuf> {
        let bucket = bucket_size(bytes);
        if let Some(slice) = self.lock().take(bucket) {
            return Ok(PooledBuf {
                slice: Some(slice),
                len: bytes,
                bucket,
                pool: self.pool.clone(),
            });
        }
        if self.lock().capturing() {
            return Err(Error::Cuda(format!(
                "capturing a CUDA graph: no cached block of {bucket} bytes for {bytes} (the capture must follow an eager run of the same work)"
            )));
        }
        let slice = match unsafe { stream.alloc::<u8>(bucket) } {
            Ok(s) => s,
            Err(_) => {
                // Out of memory (or close): give the cache back to the driver and try once more.
                drop(self.lock().drain());
                unsafe { stream.alloc::<u8>(bucket) }
                    .map_err(|e| Error::Cuda(format!("allocating {bytes} bytes: {e:?}")))?
            }
        };
        self.lock().note_fresh(bucket);
        Ok(PooledBuf {
            slice: Some(slice),
            len: bytes,
            bucket,
            pool: self.pool.clone(),
        })
    }

    /// Free every cached (unused) block.
    pub fn empty_cache(&self) {
        drop(self.lock().drain());
    }

    pub fn stats(&self) -> AllocStats {
        self.lock().stats()
    }

    /// Start keeping the blocks returned from now on for a graph capture (Err: one is already
    /// under way on this device).
    pub fn begin_capture(&self) -> Result<()> {
        if self.lock().begin_capture() {
            Ok(())
        } else {
            Err(Error::Cuda("a CUDA graph capture is already under way on this device".into()))
        }
    }

    /// End the capture; the blocks it used are held by the returned reserve until it drops.
    pub fn end_capture(&self) -> GraphReserve {
        GraphReserve {
            blocks: self.lock().end_capture(),
            pool: self.pool.clone(),
        }
    }
}

/// The blocks a captured graph writes (its intermediates), kept out of the pool while the graph
/// lives; they go back to the pool when the reserve drops.
pub struct GraphReserve {
    blocks: Vec<(usize, CudaSlice<u8>)>,
    pool: SharedPool,
}

impl Drop for GraphReserve {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        for (bucket, block) in self.blocks.drain(..) {
            pool.give(bucket, block);
        }
    }
}

/// A device buffer from the pool: `len` logical bytes inside a block of `bucket` bytes; returns
/// to the pool when dropped.
pub struct PooledBuf {
    slice: Option<CudaSlice<u8>>,
    len: usize,
    bucket: usize,
    pool: SharedPool,
}

impl PooledBuf {
    /// Logical length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn slice(&self) -> &CudaSlice<u8> {
        self.slice
            .as_ref()
            .expect("a PooledBuf holds its block until dropped")
    }
    /// The logical bytes as a view (for copies).
    pub fn view(&self) -> CudaView<'_, u8> {
        self.slice().slice(0..self.len)
    }
    /// The logical bytes as a mutable view (for uploads).
    pub fn view_mut(&mut self) -> CudaViewMut<'_, u8> {
        let len = self.len;
        self.slice
            .as_mut()
            .expect("a PooledBuf holds its block until dropped")
            .slice_mut(0..len)
    }
    /// The device address of the first byte.
    pub fn device_address(&self, stream: &CudaStream) -> u64 {
        let (ptr, _record) = self.slice().device_ptr(stream);
        ptr
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PooledBuf({} of {} bytes)", self.len, self.bucket)
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(slice) = self.slice.take() {
            self.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .give(self.bucket, slice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_small_to_512_and_large_to_2mib() {
        assert_eq!(bucket_size(0), 512);
        assert_eq!(bucket_size(1), 512);
        assert_eq!(bucket_size(512), 512);
        assert_eq!(bucket_size(513), 1024);
        assert_eq!(bucket_size(1 << 20), 1 << 20);
        assert_eq!(bucket_size((1 << 20) + 1), 2 << 20);
        assert_eq!(bucket_size(5 << 20), 6 << 20);
        // The sampler's per-pass activations: 1024 x 512 f32 = 2 MiB exactly.
        assert_eq!(bucket_size(1024 * 512 * 4), 2 << 20);
    }

    #[test]
    fn pool_reuses_blocks_of_the_same_bucket_and_counts() {
        let mut p: BucketPool<u32> = BucketPool::default();
        assert_eq!(p.take(512), None);
        p.note_fresh(512);
        assert_eq!(p.take(1024), None);
        p.note_fresh(1024);
        assert_eq!(
            p.stats(),
            AllocStats {
                hits: 0,
                misses: 2,
                in_use_bytes: 1536,
                peak_in_use_bytes: 1536,
                cached_bytes: 0
            }
        );
        p.give(512, 7);
        assert_eq!(p.stats().cached_bytes, 512);
        assert_eq!(p.take(1024), None, "no cross-bucket reuse");
        p.note_fresh(1024);
        assert_eq!(p.take(512), Some(7));
        let s = p.stats();
        assert_eq!(
            (
                s.hits,
                s.misses,
                s.in_use_bytes,
                s.peak_in_use_bytes,
                s.cached_bytes
            ),
            (1, 3, 2560, 2560, 0)
        );
    }

    #[test]
    fn pool_is_lifo_per_bucket_and_drain_empties_it() {
        let mut p: BucketPool<u32> = BucketPool::default();
        for _ in 0..3 {
            assert_eq!(p.take(4096), None);
            p.note_fresh(4096);
        }
        for id in 0..3 {
            p.give(4096, id);
        }
        // The most recently freed block comes back first (warm in cache, like PyTorch's pool).
        assert_eq!(p.take(4096), Some(2));
        let mut drained = p.drain();
        drained.sort();
        assert_eq!(drained, vec![0, 1]);
        assert_eq!(p.stats().cached_bytes, 0);
        assert_eq!(p.stats().in_use_bytes, 4096);
        assert_eq!(p.take(4096), None);
    }

    #[test]
    fn steady_state_loop_allocates_from_the_driver_only_once() {
        // A pass that allocates three buffers and frees them, repeated: misses only in pass one.
        let mut p: BucketPool<usize> = BucketPool::default();
        let sizes = [
            bucket_size(1024 * 512 * 4),
            bucket_size(1024 * 4),
            bucket_size(1024 * 2048 * 4),
        ];
        for pass in 0..400 {
            let blocks: Vec<(usize, usize)> = sizes
                .iter()
                .map(|&b| match p.take(b) {
                    Some(id) => (b, id),
                    None => {
                        p.note_fresh(b);
                        (b, pass)
                    }
                })
                .collect();
            for (b, id) in blocks {
                p.give(b, id);
            }
        }
        let s = p.stats();
        assert_eq!(s.misses, 3);
        assert_eq!(s.hits, 3 * 399);
        assert_eq!(s.in_use_bytes, 0);
        assert_eq!(s.peak_in_use_bytes, sizes.iter().sum::<usize>());
    }

    #[test]
    fn blocks_returned_during_a_capture_are_reused_by_it_and_then_held() {
        let mut p: BucketPool<u32> = BucketPool::default();
        for _ in 0..2 {
            assert_eq!(p.take(512), None);
            p.note_fresh(512);
        }
        p.give(512, 0);
        p.give(512, 1);
        assert!(p.begin_capture());
        assert!(!p.begin_capture(), "one capture at a time");
        // The capture takes a cached block, returns it, and takes it again.
        let a = p.take(512).unwrap();
        p.give(512, a);
        assert_eq!(p.take(512), Some(a), "the capture reuses its own returned block first");
        p.give(512, a);
        let held = p.end_capture();
        assert_eq!(held, vec![(512, a)]);
        assert!(!p.capturing());
        // Outside the capture only the untouched block is cached; the graph's is in use.
        let s = p.stats();
        assert_eq!((s.cached_bytes, s.in_use_bytes), (512, 512));
        assert_eq!(p.take(512), Some(1 - a));
        assert_eq!(p.take(512), None, "the graph's block is not handed out");
        p.give(512, a); // the reserve drops
        assert_eq!(p.take(512), Some(a));
    }
}
