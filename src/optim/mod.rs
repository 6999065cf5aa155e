//! User-facing optimisation (spec §6.0-§6.1): Adam / AdamW with parameter groups and
//! exportable state, the `CosineAnnealingLRWithWarmup` schedule, gradient clipping, the
//! weight EMA and gradient accumulation. The element loops are in `cpu::ops::optim` (and the
//! CUDA kernels), the Tensor-level ops in `ops::optim`.
pub mod adam;
pub mod grad;
pub mod schedule;

pub use adam::{Adam, AdamConfig, AdamParamState};
pub use grad::{clip_grad_norm, Ema, GradAccumulator};
pub use schedule::{CosineAnnealingLRWithWarmup, ScheduleState};
