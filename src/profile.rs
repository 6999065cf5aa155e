//! A small profiler: when recording is on (one thread at a time), layers and ops report
//! (stage, op, start, duration, MACs) events, and pipeline stages (encode, sampling passes, FDM,
//! decode) name the stage the events belong to. Off by default, when each hook costs one
//! thread-local check. CPU work is timed on the wall clock of the calling thread (the op's rayon
//! workers run inside that span). On a CUDA device (`start_for`) every timed span begins and ends
//! with a device synchronisation, so an op's time is the wall time of its kernels (launches are
//! asynchronous otherwise) at the cost of the pipelining between ops while profiling. Each CUDA
//! launch is also recorded on its own (`kernels`): CUDA events around it on a GPU, host time on
//! the emulated device.

pub mod kernels;

pub use kernels::{DeviceSpan, KernelEvent};
use kernels::{Origin, PendingKernel, Timing};
use std::cell::RefCell;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    pub stage: &'static str,
    pub op: &'static str,
    pub start_us: f64,
    pub dur_us: f64,
    pub macs: u64,
}

struct Recorder {
    t0: Instant,
    stages: Vec<&'static str>,
    events: Vec<Event>,
    /// The ops being timed, innermost last (kernel launches are attributed to the innermost).
    ops: Vec<&'static str>,
    kernels: Vec<PendingKernel>,
    origin: Option<Origin>,
    /// The device whose queued work is waited for at the edges of every timed span.
    device: crate::device::Device,
}

thread_local! {
    static REC: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Start recording CPU work on this thread (drops anything recorded before).
pub fn start() {
    start_for(&crate::device::Device::Cpu);
}

/// Start recording work on `device` on this thread (drops anything recorded before).
pub fn start_for(device: &crate::device::Device) {
    let device = device.clone();
    REC.with(|r| *r.borrow_mut() = Some(Recorder { t0: Instant::now(), stages: Vec::new(), events: Vec::new(), ops: Vec::new(), kernels: Vec::new(), origin: None, device }));
}

/// Wait for the recorded device's queued kernels (nothing to wait for on the CPU). A failed
/// synchronisation surfaces at the next op that reads the device, so it is not reported here.
fn sync() {
    let dev = REC.with(|r| r.borrow().as_ref().map(|rec| rec.device.clone()));
    if let Some(crate::device::Device::Cuda(d)) = dev {
        let _ = d.synchronize();
    }
}

/// Stop recording and return the events in the order they finished.
pub fn finish() -> Vec<Event> {
    finish_with_kernels().events
}

/// Everything one recording saw.
#[derive(Default)]
pub struct Recording {
    pub events: Vec<Event>,
    /// Every CUDA launch, in launch order.
    pub kernels: Vec<KernelEvent>,
    /// Launches whose device timing could not be read (left out of `kernels`).
    pub untimed_kernels: usize,
}

/// Stop recording; return the op/stage events and the kernel launches (reading the device's
/// timing events, which waits for the device to finish them).
pub fn finish_with_kernels() -> Recording {
    let Some(rec) = REC.with(|r| r.borrow_mut().take()) else {
        return Recording::default();
    };
    let (kernels, untimed_kernels) = kernels::resolve(rec.kernels, rec.origin);
    Recording { events: rec.events, kernels, untimed_kernels }
}

/// Where a launch belongs: (stage, innermost op), or None when not recording.
fn launch_context() -> Option<(&'static str, &'static str)> {
    REC.with(|r| {
        r.borrow().as_ref().map(|rec| (rec.stages.last().copied().unwrap_or("other"), rec.ops.last().copied().unwrap_or("-")))
    })
}

/// Record a launch that ran synchronously on the host (the emulated device) from `start` for `dur`.
pub fn kernel_on_host(module: &'static str, kernel: &'static str, start: Instant, dur: Duration) {
    let Some((stage, op)) = launch_context() else { return };
    REC.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let timing = Timing::Host { start_us: kernels::micros_since(rec.t0, start), dur_us: dur.as_secs_f64() * 1e6 };
            rec.kernels.push(PendingKernel { stage, op, module, kernel, timing });
        }
    });
}

/// Record a launch queued on a device, as a span its events will give when recording finishes.
/// `queued` is the host time it was queued at (used to place the first device span).
pub fn kernel_on_device(module: &'static str, kernel: &'static str, queued: Instant, span: Box<dyn DeviceSpan>) {
    let Some((stage, op)) = launch_context() else { return };
    REC.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            if rec.origin.is_none() {
                rec.origin = Some(Origin { index: rec.kernels.len(), host_us: kernels::micros_since(rec.t0, queued) });
            }
            rec.kernels.push(PendingKernel { stage, op, module, kernel, timing: Timing::Device(span) });
        }
    });
}

pub fn is_recording() -> bool {
    REC.with(|r| r.borrow().is_some())
}

fn push(op: &'static str, start: Instant, macs: u64, stage_override: Option<&'static str>) {
    sync();
    let end = Instant::now();
    REC.with(|r| {
        if let Some(rec) = r.borrow_mut().as_mut() {
            let stage = stage_override.unwrap_or_else(|| rec.stages.last().copied().unwrap_or("other"));
            rec.events.push(Event {
                stage,
                op,
                start_us: start.duration_since(rec.t0).as_secs_f64() * 1e6,
                dur_us: end.duration_since(start).as_secs_f64() * 1e6,
                macs,
            });
        }
    });
}

/// Time `f` as op `name`; `macs` computes the op's multiply-accumulates from its result.
pub fn op<T>(name: &'static str, f: impl FnOnce() -> T, macs: impl FnOnce(&T) -> u64) -> T {
    if !is_recording() {
        return f();
    }
    sync();
    REC.with(|r| r.borrow_mut().as_mut().map(|rec| rec.ops.push(name)));
    let start = Instant::now();
    let out = f();
    let m = macs(&out);
    push(name, start, m, None);
    REC.with(|r| r.borrow_mut().as_mut().map(|rec| rec.ops.pop()));
    out
}

/// Run `f` as pipeline stage `name`: ops inside are attributed to it, and the stage itself is
/// recorded as an event with op name "(stage)".
pub fn stage<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    if !is_recording() {
        return f();
    }
    REC.with(|r| r.borrow_mut().as_mut().map(|rec| rec.stages.push(name)));
    sync();
    let start = Instant::now();
    let out = f();
    REC.with(|r| r.borrow_mut().as_mut().map(|rec| rec.stages.pop()));
    push("(stage)", start, 0, Some(name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_ops_inside_stages_only_when_on_cpu() {
        assert_eq!(op("x", || 1, |_| 5), 1);
        assert!(finish().is_empty(), "nothing recorded while off");
        start();
        stage("encode", || op("linear", || std::thread::sleep(std::time::Duration::from_millis(2)), |_| 7));
        op("loose", || (), |_| 0);
        let ev = finish();
        assert_eq!(ev.len(), 3);
        assert_eq!((ev[0].stage, ev[0].op, ev[0].macs), ("encode", "linear", 7));
        assert!(ev[0].dur_us >= 2000.0);
        assert_eq!((ev[1].stage, ev[1].op), ("encode", "(stage)"));
        assert!(ev[1].dur_us >= ev[0].dur_us);
        assert_eq!(ev[2].stage, "other");
        assert!(!is_recording());
    }

    #[test]
    fn host_kernels_take_the_innermost_op_and_stage() {
        start();
        kernel_on_host("m", "outside", Instant::now(), Duration::from_micros(5));
        stage("decode", || {
            op("conv2d", || kernel_on_host("conv2d", "conv2d_fwd", Instant::now(), Duration::from_micros(40)), |_| 0)
        });
        let rec = finish_with_kernels();
        assert_eq!(rec.untimed_kernels, 0);
        let k: Vec<_> = rec.kernels.iter().map(|k| (k.stage, k.op, k.kernel, k.dur_us)).collect();
        assert_eq!(k, vec![("other", "-", "outside", 5.0), ("decode", "conv2d", "conv2d_fwd", 40.0)]);
        kernel_on_host("m", "after", Instant::now(), Duration::from_micros(1));
        assert!(finish_with_kernels().kernels.is_empty(), "nothing recorded after finishing");
    }
}
