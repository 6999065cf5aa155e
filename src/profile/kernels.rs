//! Per-launch (per-kernel) timing for the profiler. While recording, every CUDA launch reports
//! itself here with the stage and op it ran under:
//! * on a GPU, as a pair of CUDA events recorded on the stream around the launch
//!   (`DeviceSpan`); the events are read only when recording finishes, so timing a kernel adds
//!   two event records to the stream and no synchronisation of its own;
//! * on the emulated device (whose launches are synchronous), as the host wall time of the launch.
//!
//! Device spans are placed on the recording's timeline relative to the first device span
//! recorded (`origin`): its start is taken to be the host time at which it was queued, which is
//! close because the op spans around it synchronise the device (the queue is empty then).

use std::any::Any;
use std::time::Instant;

/// One kernel launch on the recording's timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelEvent {
    pub stage: &'static str,
    /// The innermost timed op the launch ran under ("-" when none).
    pub op: &'static str,
    /// The kernel file (`kernels/<module>.cu`) and the entry point.
    pub module: &'static str,
    pub kernel: &'static str,
    pub start_us: f64,
    pub dur_us: f64,
}

/// A launch's interval on a device timeline, read after the device has run it.
pub trait DeviceSpan {
    /// (microseconds from the start of `origin` to the start of this span, duration in
    /// microseconds), or None when the device cannot say (then the launch is reported untimed).
    fn resolve(&self, origin: &dyn DeviceSpan) -> Option<(f64, f64)>;
    fn as_any(&self) -> &dyn Any;
}

pub(super) enum Timing {
    Host { start_us: f64, dur_us: f64 },
    Device(Box<dyn DeviceSpan>),
}

pub(super) struct PendingKernel {
    pub stage: &'static str,
    pub op: &'static str,
    pub module: &'static str,
    pub kernel: &'static str,
    pub timing: Timing,
}

/// The device spans' anchor: the index of the first device span and its host start time.
pub(super) struct Origin {
    pub index: usize,
    pub host_us: f64,
}

/// Turn the pending launches into events; device spans are read now (this waits for the device
/// to reach each span's end event). Launches whose events cannot be read are dropped and counted.
pub(super) fn resolve(pending: Vec<PendingKernel>, origin: Option<Origin>) -> (Vec<KernelEvent>, usize) {
    let origin_span: Option<(&dyn DeviceSpan, f64)> = origin.as_ref().and_then(|o| match &pending[o.index].timing {
        Timing::Device(span) => Some((span.as_ref(), o.host_us)),
        Timing::Host { .. } => None,
    });
    let mut events = Vec::with_capacity(pending.len());
    let mut untimed = 0;
    for p in &pending {
        let times = match (&p.timing, origin_span) {
            (Timing::Host { start_us, dur_us }, _) => Some((*start_us, *dur_us)),
            (Timing::Device(span), Some((o, host_us))) => span.resolve(o).map(|(from_origin, dur)| (host_us + from_origin, dur)),
            (Timing::Device(_), None) => None,
        };
        match times {
            Some((start_us, dur_us)) => events.push(KernelEvent { stage: p.stage, op: p.op, module: p.module, kernel: p.kernel, start_us, dur_us }),
            None => untimed += 1,
        }
    }
    (events, untimed)
}

/// Microseconds from `t0` to `t`.
pub(super) fn micros_since(t0: Instant, t: Instant) -> f64 {
    t.duration_since(t0).as_secs_f64() * 1e6
}
