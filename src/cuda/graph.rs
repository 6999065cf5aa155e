//! CUDA graphs: record the kernels that some work queues on the device's stream once, then replay
//! them with one launch (issue: "capture the pass in a CUDA graph where that helps"). The
//! sampler's transformer pass is ~400 kernel and cuBLAS launches at batch 1 of the paper model,
//! each a few microseconds of host time; a replay queues all of them at once.
//!
//! A replay repeats exactly what was recorded: the same kernels with the same arguments and the
//! same buffer addresses. So the recorded work must read its inputs from buffers whose contents
//! change between replays but not their addresses (the sampler's feature table, written in place),
//! and its outputs stay in the buffers of the capture (the caller keeps what the capture returned
//! alive for as long as it replays). Intermediates freed during the capture are held for the
//! graph by the allocator (`alloc::GraphReserve`), so nothing else is ever given them.
//!
//! A capture must follow an eager run of the same work: that run compiles the kernel modules,
//! creates the cuBLAS handle and leaves the buffers the capture needs in the pool (a capture can
//! neither load modules nor allocate from the driver). Capture mode is thread-local: a call that
//! is not allowed during a capture fails the capture instead of being left out of the graph.

use super::alloc::GraphReserve;
use super::CudaDevice;
use crate::error::{Error, Result};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;

/// A recorded piece of work, replayed by `launch`.
pub struct Graph {
    // First, so the executable graph is destroyed before its buffers return to the pool.
    graph: CudaGraph,
    _reserve: GraphReserve,
}

impl Graph {
    /// Queue one replay on the device's stream (asynchronous, like a kernel launch).
    pub fn launch(&self) -> Result<()> {
        self.graph.launch().map_err(|e| Error::Cuda(format!("replaying a CUDA graph: {e:?}")))
    }
}

/// Record what `work` queues on `dev`'s stream into a graph, without running it: the returned
/// value's device buffers are filled by the graph's launches, not by the capture. Err (and
/// nothing recorded or run) on the emulated device, when `work` fails, or when the driver
/// rejects the capture; the stream is usable again either way.
pub fn capture<T>(dev: &CudaDevice, work: impl FnOnce() -> Result<T>) -> Result<(Graph, T)> {
    let gpu = dev.require_gpu("a CUDA graph")?;
    let mode = CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
    gpu.allocator.begin_capture()?;
    if let Err(e) = gpu.stream.begin_capture(mode) {
        drop(gpu.allocator.end_capture());
        return Err(Error::Cuda(format!("starting a CUDA graph capture: {e:?}")));
    }
    let out = work();
    // Always end the capture, also after a failure, so the stream leaves capture mode.
    let ended = gpu.stream.end_capture(CUgraphInstantiate_flags(0));
    let reserve = gpu.allocator.end_capture();
    let out = out.map_err(|e| Error::Cuda(format!("capturing a CUDA graph: {e}")))?;
    match ended {
        Ok(Some(graph)) => Ok((Graph { graph, _reserve: reserve }, out)),
        Ok(None) => Err(Error::Cuda("capturing a CUDA graph: nothing was recorded".into())),
        Err(e) => Err(Error::Cuda(format!("ending a CUDA graph capture: {e:?}"))),
    }
}
