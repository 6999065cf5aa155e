//! Stopping a training run by signal: the first Ctrl-C (SIGINT) or SIGTERM asks the run to stop
//! after its current step with a checkpoint, a second one quits at once, and an interrupted run
//! exits with 128 + the signal, the status a shell gives a command killed by it (`cli::main`
//! installs the handlers).

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether a SIGINT `since_first` after the first one is a second press (quit at once) rather
/// than the first interrupt arriving again. One interrupt often reaches the process twice within
/// microseconds: `timeout -s INT` signals the command and then its whole process group, which
/// holds the command (seen on a GPU machine: the run quit without its checkpoint). A person
/// cannot press twice within a quarter of a second by accident.
pub fn is_second_press(since_first: Duration) -> bool {
    since_first >= Duration::from_millis(250)
}

pub(super) const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The signal that asked this process to stop (0: none). An interrupted run exits with
/// 128 + it, the status a shell reports for a command killed by that signal, so a chain such as
/// `fdm train phase1a ... && fdm train phase1b ...` does not go on from a half-trained phase.
pub(super) static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The first stop request: remember its signal, raise the run's stop flag and say what happens.
pub(super) fn request_stop(signal: i32, flag: &AtomicBool, again: &str) {
    if STOPPED_BY.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        flag.store(true, Ordering::SeqCst);
        eprintln!("\nstopping after this step (a checkpoint will be written); {again}");
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

/// Only an atomic store: the one thing a signal handler may safely do here.
#[cfg(unix)]
extern "C" fn on_sigterm(_: libc::c_int) {
    TERM_RECEIVED.store(true, Ordering::SeqCst);
}

/// SIGTERM (what `kill`, `timeout` and job schedulers send) stops the run like a first Ctrl-C:
/// checkpoint after the current step. A watcher thread does the work outside the handler; a
/// quarter of a second after the first SIGTERM (see `is_second_press`: `timeout` delivers it
/// twice at once) the default action is back, so another SIGTERM ends the process at once.
#[cfg(unix)]
pub(super) fn handle_sigterm(flag: Arc<AtomicBool>) -> Result<()> {
    let handler = on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs a handler that only stores to a static atomic.
    if unsafe { libc::signal(libc::SIGTERM, handler) } == libc::SIG_ERR {
        return Err(Error::msg("cannot install the SIGTERM handler"));
    }
    std::thread::spawn(move || {
        while !TERM_RECEIVED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        request_stop(SIGTERM, &flag, "send SIGTERM again to quit at once");
        std::thread::sleep(Duration::from_millis(250));
        // SAFETY: restores the default disposition of SIGTERM.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
    });
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn handle_sigterm(_: Arc<AtomicBool>) -> Result<()> {
    Ok(())
}
