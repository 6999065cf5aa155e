//! A small profiler: when recording is on (one thread at a time), layers and ops report
//! (stage, op, start, duration, MACs) events, and pipeline stages (encode, sampling passes, FDM,
//! decode) name the stage the events belong to. Off by default, when each hook costs one
//! thread-local check. CPU work is timed on the wall clock of the calling thread (the op's rayon
//! workers run inside that span). On a CUDA device (`start_for`) every timed span begins and ends
//! with a device synchronisation, so an op's time is the wall time of its kernels (launches are
//! asynchronous otherwise) at the cost of the pipelining between ops while profiling.

use std::cell::RefCell;
use std::time::Instant;

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
    REC.with(|r| *r.borrow_mut() = Some(Recorder { t0: Instant::now(), stages: Vec::new(), events: Vec::new(), device }));
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
    REC.with(|r| r.borrow_mut().take().map(|rec| rec.events).unwrap_or_default())
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
    let start = Instant::now();
    let out = f();
    let m = macs(&out);
    push(name, start, m, None);
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
}
