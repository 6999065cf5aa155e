//! Parameters of the loss ops (spec §3.5, §6.5). Element-wise losses (L1, MSE, BCE, hinge) need
//! only the slice length and have no struct.

/// Cross-entropy over the last dim: logits `[rows, classes]`, targets `[rows]` (u32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossEntropyParams {
    pub rows: u32,
    pub classes: u32,
    /// Rows whose target equals this contribute nothing (loss 0, gradient 0). Use
    /// `CROSS_ENTROPY_NO_IGNORE` to ignore nothing; PyTorch's -100 is `(-100i32) as u32`.
    pub ignore_index: u32,
}

/// `ignore_index` value that no valid target can take (targets must be < classes).
pub const CROSS_ENTROPY_NO_IGNORE: u32 = u32::MAX;

/// Gram matrix of `[batch, channels, height*width]` features: `[batch, channels, channels]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GramParams {
    pub batch: u32,
    pub channels: u32,
    /// height * width
    pub hw: u32,
}

/// Image-gradient loss L_G on two NCHW images of the same shape.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageGradParams {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

impl ImageGradParams {
    pub fn numel(&self) -> usize {
        (self.batch * self.channels * self.height * self.width) as usize
    }
}
