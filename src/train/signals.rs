//! Stopping a training run by signal: the first Ctrl-C (SIGINT) or SIGTERM asks the run to stop
//! after its current step with a checkpoint, a second one quits at once, and an interrupted run
//! exits with 128 + the signal, the status a shell gives a command killed by it (`cli::main`
//! installs the handlers). A SIGHUP (its terminal closed) stops it the same way (exit 129), and
//! however often the hangup arrives it never quits at once; a SIGHUP ignored when the run
//! starts (`nohup`) stays ignored.
//!
//! The launcher of a data-parallel group (`launch`) forwards the first SIGINT / SIGTERM to its
//! ranks, which stop so, waits for their checkpoint and exits with the same status; a second
//! signal kills the ranks at once (`LauncherStop`). A SIGHUP (its terminal closed) stops the
//! group like SIGTERM, which is what the ranks get; the launcher exits 128 + SIGHUP. Ctrl-Z and
//! `fg` / `bg` stop and continue the whole group (`job_control`).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether a SIGINT `since_first` after the first one is a second press (quit at once) rather
/// than the first interrupt arriving again. One interrupt often reaches the process twice within
/// microseconds: `timeout -s INT` signals the command and then its whole process group, which
/// holds the command (seen on a GPU machine: the run quit without its checkpoint). A person
/// cannot press twice within a quarter of a second by accident.
pub fn is_second_press(since_first: Duration) -> bool {
    since_first >= Duration::from_millis(250)
}

pub(super) const SIGHUP: i32 = 1;
pub(super) const SIGINT: i32 = 2;
pub(super) const SIGTERM: i32 = 15;

/// The signal that asked this process to stop (0: none). An interrupted run exits with
/// 128 + it, the status a shell reports for a command killed by that signal, so a chain such as
/// `fdm train phase1a ... && fdm train phase1b ...` does not go on from a half-trained phase.
pub(super) static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The first stop request: remember its signal, raise the run's stop flag and say what happens.
pub(super) fn request_stop(signal: i32, flag: &AtomicBool, again: &str) {
    if STOPPED_BY.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        flag.store(true, Ordering::SeqCst);
        // Not eprintln!: a rank's stderr may be a terminal that has just been closed, and a
        // failed write must not cost the run its stop.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "\nstopping after this step (a checkpoint will be written); {again}");
    }
}

/// After the summary of a run stopped by a signal: exit with that signal's status (see
/// `STOPPED_BY`); the checkpoint and the `--resume` hint are already written.
pub(super) fn exit_if_stopped() {
    let signal = STOPPED_BY.load(Ordering::SeqCst);
    if signal != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(128 + signal);
    }
}

#[cfg(unix)]
static TERM_RECEIVED: AtomicBool = AtomicBool::new(false);
#[cfg(unix)]
static HUP_RECEIVED: AtomicBool = AtomicBool::new(false);

/// Only an atomic store: the one thing a signal handler may safely do here.
#[cfg(unix)]
extern "C" fn on_sigterm(_: libc::c_int) {
    TERM_RECEIVED.store(true, Ordering::SeqCst);
}

/// Only an atomic store, as `on_sigterm`.
#[cfg(unix)]
extern "C" fn on_sighup(_: libc::c_int) {
    HUP_RECEIVED.store(true, Ordering::SeqCst);
}

/// SIGTERM (what `kill`, `timeout` and job schedulers send) and SIGHUP (the terminal closed)
/// stop the run like a first Ctrl-C: checkpoint after the current step, then exit 143 / 129
/// (`exit_if_stopped`). A watcher thread does the work outside the handlers. A quarter of a
/// second after the first SIGTERM (see `is_second_press`: `timeout` delivers it twice at once)
/// its default action is back, so another SIGTERM ends the process at once. A SIGHUP never does:
/// one closed terminal may send it more than once (the kernel, then the shell), and it asks for
/// the work done to be kept. A SIGHUP ignored at start (`nohup`) stays ignored.
///
/// Installed by every process but a launcher: a single run and each rank of a group. A rank is
/// in a process group of its own, so a terminal's hangup does not reach it; its launcher
/// forwards one as SIGTERM (`forwarded`), and a SIGHUP sent to the rank itself stops the group
/// after the step as a SIGTERM would.
#[cfg(unix)]
pub(super) fn handle_term_and_hangup(flag: Arc<AtomicBool>) -> Result<()> {
    install(libc::SIGTERM, on_sigterm, "SIGTERM")?;
    if !is_ignored(libc::SIGHUP) {
        install(libc::SIGHUP, on_sighup, "SIGHUP")?;
    }
    std::thread::spawn(move || {
        let (mut term, mut hup) = (false, false);
        while !(term && hup) {
            if !hup && HUP_RECEIVED.load(Ordering::SeqCst) {
                hup = true;
                request_stop(SIGHUP, &flag, "the terminal hung up (SIGHUP); a repeated hangup does not quit at once");
            }
            if !term && TERM_RECEIVED.load(Ordering::SeqCst) {
                term = true;
                request_stop(SIGTERM, &flag, "send SIGTERM again to quit at once");
                std::thread::sleep(Duration::from_millis(250));
                // SAFETY: restores the default disposition of SIGTERM.
                unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn handle_term_and_hangup(_: Arc<AtomicBool>) -> Result<()> {
    Ok(())
}

/// Install `handler` for `signal` (`name` for the error).
#[cfg(unix)]
pub(super) fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int), name: &str) -> Result<()> {
    // SAFETY: the handlers of this crate only do what a signal handler may (atomic operations,
    // and in `job_control` kill(2), signal(2), pthread_sigmask(3) and raise(3)).
    if unsafe { libc::signal(signal, handler as libc::sighandler_t) } == libc::SIG_ERR {
        return Err(Error::msg(format!("cannot install the {name} handler")));
    }
    Ok(())
}

/// What the launcher of a `--ranks` / `--gpus` group does about the stop signals it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LauncherAction {
    Nothing,
    /// The first stop signal: send this signal (`forwarded`) to every rank still running (each
    /// then stops after its step with a checkpoint) and wait for them.
    Forward(i32),
    /// A second one while waiting: kill the ranks at once (the first signal's number).
    KillRanks(i32),
}

/// The launcher's view of the stop signals its handler counted (`poll_at`). Deliveries within a
/// quarter of a second of the first are that first signal again (`is_second_press`).
#[derive(Debug, Default)]
pub struct LauncherStop {
    /// The first signal, when the launcher saw it and the deliveries counted up to then.
    first: Option<(i32, Instant, u32)>,
    killed: bool,
}

impl LauncherStop {
    /// The action for `count` deliveries so far, the first of them `signal` (0: none), at `now`.
    pub fn poll_at(&mut self, signal: i32, count: u32, now: Instant) -> LauncherAction {
        if signal == 0 || count == 0 {
            return LauncherAction::Nothing;
        }
        let Some((first, at, seen)) = self.first else {
            self.first = Some((signal, now, count));
            return LauncherAction::Forward(forwarded(signal));
        };
        if count == seen || self.killed {
            return LauncherAction::Nothing;
        }
        if is_second_press(now.saturating_duration_since(at)) {
            self.killed = true;
            return LauncherAction::KillRanks(first);
        }
        self.first = Some((first, at, count));
        LauncherAction::Nothing
    }

    /// `poll_at` on what the launcher's signal handler has recorded, now.
    pub fn poll(&mut self) -> LauncherAction {
        self.poll_at(LAUNCHER_SIGNAL.load(Ordering::SeqCst), LAUNCHER_DELIVERIES.load(Ordering::SeqCst), Instant::now())
    }
}

/// What the ranks get for the launcher's first stop signal: the same one, but SIGTERM for a
/// SIGHUP. The hangup is the launcher's terminal's, not theirs: the ranks are asked to stop,
/// keeping the work done, which is what SIGTERM asks (a rank stops on either the same way,
/// `handle_term_and_hangup`).
pub fn forwarded(signal: i32) -> i32 {
    if signal == SIGHUP {
        SIGTERM
    } else {
        signal
    }
}

/// Whether a delivery of `signal` that is not the launcher's first counts towards a second
/// press (`LauncherStop`). A hangup does not: one closed terminal may send it more than once
/// (the kernel, then the shell, to its jobs), apart by more than a quarter of a second, and it
/// never asks for the ranks to be killed without their checkpoint.
pub fn counts_again(signal: i32) -> bool {
    signal != SIGHUP
}

/// The first SIGINT / SIGTERM / SIGHUP the launcher received (0: none), and how many of the
/// deliveries count (`counts_again`).
static LAUNCHER_SIGNAL: AtomicI32 = AtomicI32::new(0);
static LAUNCHER_DELIVERIES: AtomicU32 = AtomicU32::new(0);

/// The signal that interrupted the launcher, if one did: it exits with 128 + it.
pub fn launcher_stopped_by() -> Option<i32> {
    Some(LAUNCHER_SIGNAL.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Only atomic operations: the one thing a signal handler may safely do here.
#[cfg(unix)]
extern "C" fn on_launcher_signal(signal: libc::c_int) {
    let first = LAUNCHER_SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
    if first || counts_again(signal) {
        LAUNCHER_DELIVERIES.fetch_add(1, Ordering::SeqCst);
    }
}

/// The launcher's SIGINT, SIGTERM and SIGHUP handlers: they only count; the launcher's wait loop
/// acts (`launch`, `LauncherStop::poll`). Each rank runs in a process group of its own, so a
/// Ctrl-C in the terminal or a signal to the launcher's group reaches them once, forwarded, never
/// twice. A SIGHUP that is ignored (`nohup`) stays ignored: the run was meant to outlive its
/// terminal.
#[cfg(unix)]
pub(super) fn handle_launcher_signals() -> Result<()> {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        if signal == libc::SIGHUP && is_ignored(signal) {
            continue;
        }
        install(signal, on_launcher_signal, name)?;
    }
    Ok(())
}

/// Whether `signal` is ignored in this process (inherited, as `nohup` sets SIGHUP).
#[cfg(unix)]
pub(super) fn is_ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction(2) with no new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Without POSIX signals the ranks share the console's Ctrl-C; the launcher only records it,
/// for its exit status.
#[cfg(not(unix))]
pub(super) fn handle_launcher_signals() -> Result<()> {
    ctrlc::set_handler(|| {
        let _ = LAUNCHER_SIGNAL.compare_exchange(0, SIGINT, Ordering::SeqCst, Ordering::SeqCst);
    })
    .map_err(|e| Error::msg(format!("cannot install the Ctrl-C handler: {e}")))
}

/// Send `signal` to the process `pid` (a rank this launcher started).
#[cfg(unix)]
pub(super) fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child process of ours; a failure (it has just exited) is harmless.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

#[cfg(not(unix))]
pub(super) fn send(_: u32, _: i32) {}

/// The name of a stop signal, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
