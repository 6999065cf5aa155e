//! Recorded work for repeated device passes (the sampler's transformer pass): on a GPU, the
//! kernels that `work` queues are captured once into a CUDA graph (`cuda::graph`) and each
//! `replay` queues them again with one launch, writing the same output tensors. The rules of a
//! capture apply: `work` reads inputs whose contents (not buffers) change between replays, and
//! it follows an eager run of the same work.

use crate::cuda::graph::{capture, Graph};
use crate::error::{Error, Result};
use crate::Device;

/// A graph and the outputs its replays write.
pub struct Recorded<T> {
    graph: Graph,
    out: T,
}

/// Record `work` on `device` (a real GPU): nothing runs until the first `replay`. Err where
/// graphs do not exist (the CPU, the emulated CUDA device) or the capture fails, with the reason.
pub fn record<T>(device: &Device, work: impl FnOnce() -> Result<T>) -> Result<Recorded<T>> {
    let dev = match device {
        Device::Cuda(d) if !d.is_emulated() => d,
        _ => return Err(Error::msg(format!("CUDA graphs need a GPU, not {}", device.name()))),
    };
    let (graph, out) = capture(dev, work)?;
    Ok(Recorded { graph, out })
}

impl<T> Recorded<T> {
    /// Queue one run of the recorded work; its outputs (valid once the device gets there, like
    /// any kernel's) are returned.
    pub fn replay(&self) -> Result<&T> {
        self.graph.launch()?;
        Ok(&self.out)
    }
}
