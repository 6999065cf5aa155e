//! What a training run says about its pace: the progress bar (on a terminal), the plain progress
//! lines (elsewhere), and the summary line at the end.
//!
//! Every rate and ETA is over training time: the wall time less the time spent writing sample
//! grids (`--sample-every`) and checkpoints. A grid runs the whole inpainting pipeline, which can
//! take longer than many training steps; counted in, it would make the rate depend on how often
//! grids are asked for, and the ETA would jump after each one.

use super::runner::RunSummary;
use std::time::{Duration, Instant};

/// Steps per second of training: `steps` over the `total` wall seconds less the `writing`
/// seconds spent on samples and checkpoints.
pub fn train_rate(steps: u64, total: f64, writing: f64) -> f64 {
    steps as f64 / (total - writing).max(1e-9)
}

/// Seconds the `left` steps take at `rate` steps per second.
pub fn eta_seconds(left: u64, rate: f64) -> f64 {
    left as f64 / rate.max(1e-9)
}

/// Time a run has spent writing beside training.
#[derive(Clone, Copy, Debug, Default)]
pub struct Writing {
    pub samples: Duration,
    pub checkpoints: Duration,
}

impl Writing {
    pub fn total(&self) -> Duration {
        self.samples + self.checkpoints
    }
}

/// Runs `f` and adds its wall time to `slot`.
pub fn timed<T>(slot: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *slot += t.elapsed();
    out
}

/// The bar or the plain lines of a run (or neither), both fed the same way.
pub struct Progress {
    bar: indicatif::ProgressBar,
    lines: Option<Duration>,
    last_line: Instant,
    t0: Instant,
    start: u64,
    end: u64,
}

impl Progress {
    /// A bar when `bar`, plain lines every `lines` when given (indicatif draws nothing on a
    /// stderr that is not a terminal: a log file, a pipe), else silence.
    pub fn new(bar: bool, lines: Option<Duration>, start: u64, end: u64) -> Self {
        let now = Instant::now();
        Progress { bar: progress_bar(bar, start, end), lines, last_line: now, t0: now, start, end }
    }

    /// After step `step` (completed steps), with its terms and the writing time so far.
    pub fn update(&mut self, step: u64, terms: &[(&str, f32)], writing: Duration) {
        let rate = train_rate(step - self.start, self.t0.elapsed().as_secs_f64(), writing.as_secs_f64());
        let eta = clock(eta_seconds(self.end.saturating_sub(step), rate));
        self.bar.set_position(step);
        self.bar.set_message(format!("eta {eta} {} | {rate:.2} steps/s", format_terms(terms)));
        let Some(every) = self.lines else { return };
        if self.last_line.elapsed() < every {
            return;
        }
        self.last_line = Instant::now();
        // A failed write (the log's reader gone, e.g. a `| tee` ended by the terminal's hangup)
        // must not cost the run its steps and checkpoint: not eprintln!, which panics then.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "step {step}/{} | {} | {rate:.2} steps/s | eta {eta}", self.end, format_terms(terms));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn format_terms(terms: &[(&str, f32)]) -> String {
    terms
        .iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(n, v)| format!("{n} {v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bar's own `{eta}` would count the writing in: the ETA is in the message instead.
fn progress_bar(show: bool, start: u64, end: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(end);
    let style = indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg}").expect("valid template");
    bar.set_style(style);
    bar.set_position(start);
    bar
}

/// Seconds as h:mm:ss.
fn clock(seconds: f64) -> String {
    let s = seconds.round().min(u64::MAX as f64 / 2.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The summary of a run that trained: steps, time, the training rates, and the time spent
/// writing when there was any.
pub fn summary_line(s: &RunSummary) -> String {
    let terms: Vec<String> = s.last_terms.iter().map(|(n, v)| format!("{n}={v:.5}")).collect();
    let steady = s
        .steady_steps_per_second()
        .map_or(String::new(), |r| format!("; {r:.3} after the first step, which carries the start-up"));
    let writing = match (s.sample_seconds, s.checkpoint_seconds) {
        (a, b) if a + b < 0.05 => String::new(),
        (a, b) => format!(" ({a:.1} s writing sample grids and {b:.1} s writing checkpoints, left out of the rates)"),
    };
    format!(
        "{} steps in {:.1} s{writing} ({:.3} steps/s{steady}), step {}; last: {}",
        s.steps_run,
        s.seconds,
        s.steps_per_second(),
        s.step,
        terms.join(" ")
    )
}
