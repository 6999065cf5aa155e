//! `fdm profile`: one inpainting with every layer/op timed, grouped by stage (encode, the sampling
//! passes summed, FDM, decode, composite), printed as a table of time, share of the total, MACs
//! and achieved GFLOP/s, with FDM's overhead as a fraction of the whole (the paper: 0.004 s of
//! 25.2 s). `--json` writes the aggregate, `--chrome-trace` every event for a timeline viewer
//! (chrome://tracing, Perfetto). On a CUDA device every kernel launch is also listed: grouped by
//! (stage, kernel) with launches and time from CUDA events (host time on the emulated device).

use crate::profile::{self, Event, KernelEvent, Recording};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Serialize, Debug, Clone)]
pub struct Row {
    pub stage: String,
    pub op: String,
    pub calls: usize,
    pub ms: f64,
    pub share: f64,
    pub macs: u64,
    pub gflops: f64,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub device: String,
    pub total_ms: f64,
    pub passes: usize,
    pub fdm_ms: f64,
    pub fdm_fraction: f64,
    pub stages: Vec<Row>,
    pub ops: Vec<Row>,
    /// Per (stage, kernel) launch totals; empty on the CPU.
    pub kernels: Vec<KernelRow>,
    /// Launches whose device timing could not be read (not in `kernels`).
    pub untimed_kernels: usize,
}

#[derive(Serialize, Debug, Clone)]
pub struct KernelRow {
    pub stage: String,
    pub module: String,
    pub kernel: String,
    pub launches: usize,
    pub ms: f64,
    /// Share of the whole run's wall time (kernel time over wall time: the rest is host work
    /// and launch gaps).
    pub share: f64,
    pub mean_us: f64,
}

const STAGE_ORDER: [&str; 5] = ["encode", "sample", "fdm", "decode", "composite"];

fn row(stage: &str, op: &str, evs: &[&Event], total_us: f64) -> Row {
    let us: f64 = evs.iter().map(|e| e.dur_us).sum();
    let macs: u64 = evs.iter().map(|e| e.macs).sum();
    Row {
        stage: stage.into(),
        op: op.into(),
        calls: evs.len(),
        ms: us / 1e3,
        share: if total_us > 0.0 { us / total_us } else { 0.0 },
        macs,
        gflops: if us > 0.0 { 2.0 * macs as f64 / (us * 1e3) } else { 0.0 },
    }
}

/// Aggregate recorded events into per-stage and per-(stage, op) rows.
pub fn aggregate(events: &[Event], device: &str, passes: usize) -> Report {
    let stage_events: Vec<&Event> = events.iter().filter(|e| e.op == "(stage)").collect();
    let total_us: f64 = stage_events.iter().map(|e| e.dur_us).sum();
    let mut stages = Vec::new();
    for name in STAGE_ORDER {
        let evs: Vec<&Event> = stage_events.iter().copied().filter(|e| e.stage == name).collect();
        if !evs.is_empty() {
            let mut r = row(name, "(all)", &evs, total_us);
            r.macs = events.iter().filter(|e| e.stage == name && e.op != "(stage)").map(|e| e.macs).sum();
            r.gflops = if r.ms > 0.0 { 2.0 * r.macs as f64 / (r.ms * 1e6) } else { 0.0 };
            stages.push(r);
        }
    }
    let mut by_op: BTreeMap<(usize, &str), Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.op != "(stage)") {
        let order = STAGE_ORDER.iter().position(|s| *s == e.stage).unwrap_or(STAGE_ORDER.len());
        by_op.entry((order, e.op)).or_default().push(e);
    }
    let mut ops: Vec<Row> = by_op.iter().map(|((_, op), evs)| row(evs[0].stage, op, evs, total_us)).collect();
    ops.sort_by(|a, b| {
        let (oa, ob) = (STAGE_ORDER.iter().position(|s| *s == a.stage), STAGE_ORDER.iter().position(|s| *s == b.stage));
        oa.cmp(&ob).then(b.ms.total_cmp(&a.ms))
    });
    let fdm_ms = stages.iter().find(|r| r.stage == "fdm").map(|r| r.ms).unwrap_or(0.0);
    let total_ms = total_us / 1e3;
    Report { device: device.into(), total_ms, passes, fdm_ms, fdm_fraction: if total_ms > 0.0 { fdm_ms / total_ms } else { 0.0 }, stages, ops, kernels: Vec::new(), untimed_kernels: 0 }
}

/// `aggregate` plus the per-kernel rows of a recording: grouped by (stage, kernel), stages in
/// pipeline order, the slowest kernels first within a stage.
pub fn aggregate_recording(rec: &Recording, device: &str, passes: usize) -> Report {
    let mut report = aggregate(&rec.events, device, passes);
    let total_us = report.total_ms * 1e3;
    let stage_order = |s: &str| STAGE_ORDER.iter().position(|x| *x == s).unwrap_or(STAGE_ORDER.len());
    let mut groups: BTreeMap<(usize, &str, &str), Vec<&KernelEvent>> = BTreeMap::new();
    for k in &rec.kernels {
        groups.entry((stage_order(k.stage), k.stage, k.kernel)).or_default().push(k);
    }
    let mut rows: Vec<KernelRow> = groups
        .into_iter()
        .map(|((_, stage, kernel), ks)| {
            let us: f64 = ks.iter().map(|k| k.dur_us).sum();
            KernelRow {
                stage: stage.into(),
                module: ks[0].module.into(),
                kernel: kernel.into(),
                launches: ks.len(),
                ms: us / 1e3,
                share: if total_us > 0.0 { us / total_us } else { 0.0 },
                mean_us: us / ks.len() as f64,
            }
        })
        .collect();
    rows.sort_by(|a, b| stage_order(&a.stage).cmp(&stage_order(&b.stage)).then(b.ms.total_cmp(&a.ms)));
    report.kernels = rows;
    report.untimed_kernels = rec.untimed_kernels;
    report
}

fn fmt_macs(m: u64) -> String {
    match m {
        0 => "-".into(),
        m if m >= 1_000_000_000 => format!("{:.2} G", m as f64 / 1e9),
        m => format!("{:.1} M", m as f64 / 1e6),
    }
}

pub fn print(r: &Report) {
    println!("{:<10} {:<18} {:>6} {:>10} {:>7} {:>10} {:>9}", "stage", "op", "calls", "ms", "share", "MACs", "GFLOP/s");
    for s in &r.stages {
        println!("{:<10} {:<18} {:>6} {:>10.2} {:>6.1}% {:>10} {:>9.1}", s.stage, "(stage total)", s.calls, s.ms, 100.0 * s.share, fmt_macs(s.macs), s.gflops);
        for o in r.ops.iter().filter(|o| o.stage == s.stage) {
            println!("{:<10} {:<18} {:>6} {:>10.2} {:>6.1}% {:>10} {:>9.1}", "", o.op, o.calls, o.ms, 100.0 * o.share, fmt_macs(o.macs), o.gflops);
        }
    }
    print_kernels(r);
    println!(
        "total {:.2} ms on {} ({} transformer passes); FDM {:.2} ms = {:.4} of the whole (paper: 0.004 s of 25.2 s = 0.00016)",
        r.total_ms, r.device, r.passes, r.fdm_ms, r.fdm_fraction
    );
}

fn print_kernels(r: &Report) {
    if r.kernels.is_empty() {
        return;
    }
    println!();
    println!("{:<10} {:<44} {:>8} {:>10} {:>7} {:>10}", "stage", "kernel (module)", "launches", "ms", "share", "mean us");
    for k in &r.kernels {
        let name = format!("{} ({})", k.kernel, k.module);
        println!("{:<10} {:<44} {:>8} {:>10.3} {:>6.1}% {:>10.1}", k.stage, name, k.launches, k.ms, 100.0 * k.share, k.mean_us);
    }
    let in_stages = |k: &&KernelRow| r.stages.iter().any(|s| s.stage == k.stage);
    let kernel_ms: f64 = r.kernels.iter().filter(in_stages).map(|k| k.ms).sum();
    let outside_ms: f64 = r.kernels.iter().filter(|k| !in_stages(k)).map(|k| k.ms).sum();
    println!("kernels: {kernel_ms:.2} ms of the stages' {:.2} ms wall time; {outside_ms:.2} ms outside the stages (input upload and preparation)", r.total_ms);
    if r.untimed_kernels > 0 {
        println!("({} launches could not be timed and are not listed)", r.untimed_kernels);
    }
}

pub fn write_json(r: &Report, path: &Path) -> Result<()> {
    crate::io::atomic::write_atomic(path, serde_json::to_string_pretty(r)?.as_bytes())?;
    Ok(())
}

/// Chrome trace-event format: one complete ("X") event per op; stages, ops and kernel launches
/// each on their own row.
pub fn write_chrome_trace(rec: &Recording, path: &Path) -> Result<()> {
    let mut trace: Vec<serde_json::Value> = rec
        .events
        .iter()
        .map(|e| {
            let (name, tid) = if e.op == "(stage)" { (e.stage, 0) } else { (e.op, 1) };
            serde_json::json!({"name": name, "cat": e.stage, "ph": "X", "ts": e.start_us, "dur": e.dur_us, "pid": 1, "tid": tid, "args": {"macs": e.macs}})
        })
        .collect();
    trace.extend(rec.kernels.iter().map(|k| {
        serde_json::json!({"name": k.kernel, "cat": k.stage, "ph": "X", "ts": k.start_us, "dur": k.dur_us, "pid": 1, "tid": 2, "args": {"module": k.module, "op": k.op}})
    }));
    crate::io::atomic::write_atomic(path, serde_json::to_string(&serde_json::json!({ "traceEvents": trace }))?.as_bytes())?;
    Ok(())
}

/// Record one run of `f` (which returns the number of passes) on `device`.
pub fn record(device: &crate::device::Device, f: impl FnOnce() -> Result<usize>) -> Result<(Recording, usize)> {
    profile::start_for(device);
    let res = f();
    let rec = profile::finish_with_kernels();
    Ok((rec, res?))
}
