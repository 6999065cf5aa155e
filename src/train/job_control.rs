//! Job control of a data-parallel group (unix): Ctrl-Z in the terminal stops the launcher and
//! every rank with it, `fg` / `bg` continues them all.
//!
//! Each rank runs in a process group of its own (`launch`), so the terminal's SIGTSTP reaches
//! the launcher alone: with SIGTSTP's default action the launcher would stop and its ranks train
//! on. The launcher's SIGTSTP handler sends SIGSTOP to every rank's group (a signal no rank can
//! catch, ignore or have discarded), then stops the launcher itself as a program without a
//! handler stops: the default action back, SIGTSTP unblocked and raised, so the shell sees its
//! job stopped by SIGTSTP. When the launcher continues (SIGCONT: `fg`, `bg`, `kill -CONT`), the
//! rest of that handler sends SIGCONT to the ranks' groups and reinstalls itself; a SIGCONT
//! handler does the same for a launcher stopped otherwise (SIGSTOP). Where the launcher's own
//! group is orphaned (no member's parent in another group of its session), the kernel discards
//! the stop of a SIGTSTP, as POSIX asks: the raise returns at once and the ranks are continued
//! with it. A SIGTSTP ignored at start stays ignored (the launcher is not meant to stop), as an
//! ignored SIGHUP does (`signals`).
//!
//! The handlers do only what a signal handler may: atomic loads, kill(2), signal(2),
//! pthread_sigmask(3) and raise(3), keeping errno. The ranks' process ids are in a fixed table of
//! atomics (`RANK_GROUPS`): each rank's entered when it starts, cleared when it is reaped.

#[cfg(unix)]
use std::sync::atomic::{AtomicI32, Ordering};

/// Ranks whose groups the handlers signal; beyond that many (all groups of this process
/// together), a rank trains through a Ctrl-Z.
#[cfg(unix)]
const SLOTS: usize = 1024;

/// The process ids (= process group ids) of the running ranks, 0 for a free slot.
#[cfg(unix)]
static RANK_GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// A rank started (`pid`: its process, the leader of its group): job control reaches it.
#[cfg(unix)]
pub(super) fn add_rank(pid: u32) {
    let pid = pid as i32;
    for slot in &RANK_GROUPS {
        if slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            return;
        }
    }
}

/// A rank exited (or is about to be killed): job control leaves its process id alone, which may
/// name another process once the rank is reaped.
#[cfg(unix)]
pub(super) fn remove_rank(pid: u32) {
    let pid = pid as i32;
    for slot in &RANK_GROUPS {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Send `signal` to every registered rank's process group. Async-signal-safe.
#[cfg(unix)]
fn signal_rank_groups(signal: libc::c_int) {
    for slot in &RANK_GROUPS {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) on a rank's group; a failure (it has just exited) is harmless.
            unsafe { libc::kill(-pid, signal) };
        }
    }
}

/// errno, saved when a handler starts and restored when it returns: the code it interrupted may
/// be about to read errno, which kill(2) on a rank that has just exited would change.
#[cfg(unix)]
struct SavedErrno(Option<libc::c_int>);

#[cfg(unix)]
impl SavedErrno {
    fn save() -> Self {
        // SAFETY: errno_location points at this thread's errno (or is None).
        SavedErrno(errno_location().map(|p| unsafe { *p }))
    }
}

#[cfg(unix)]
impl Drop for SavedErrno {
    fn drop(&mut self) {
        if let (Some(p), Some(v)) = (errno_location(), self.0) {
            // SAFETY: as in `save`.
            unsafe { *p = v };
        }
    }
}

#[cfg(target_os = "linux")]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: returns the address of the calling thread's errno.
    Some(unsafe { libc::__errno_location() })
}

#[cfg(target_os = "android")]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: returns the address of the calling thread's errno.
    Some(unsafe { libc::__errno() })
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: returns the address of the calling thread's errno.
    Some(unsafe { libc::__error() })
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android", target_os = "macos", target_os = "ios", target_os = "freebsd"))))]
fn errno_location() -> Option<*mut libc::c_int> {
    None
}

/// Ctrl-Z: stop the ranks, then the launcher; continued, continue the ranks (module docs).
#[cfg(unix)]
extern "C" fn on_sigtstp(_: libc::c_int) {
    let _errno = SavedErrno::save();
    signal_rank_groups(libc::SIGSTOP);
    // SAFETY: signal(2), sigemptyset / sigaddset on a local set, pthread_sigmask(3) and raise(3)
    // are async-signal-safe. SIGTSTP is blocked while its handler runs: unblocked, the raised
    // one stops the process before raise returns.
    unsafe {
        libc::signal(libc::SIGTSTP, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTSTP);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGTSTP);
        // Continued (or the stop was discarded: module docs).
        libc::signal(libc::SIGTSTP, on_sigtstp as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    signal_rank_groups(libc::SIGCONT);
}

/// The launcher continues: so do its ranks.
#[cfg(unix)]
extern "C" fn on_sigcont(_: libc::c_int) {
    let _errno = SavedErrno::save();
    signal_rank_groups(libc::SIGCONT);
}

/// The launcher's SIGTSTP and SIGCONT handlers (module docs).
#[cfg(unix)]
pub(super) fn handle_job_control() -> crate::error::Result<()> {
    use super::signals::{install, is_ignored};
    if !is_ignored(libc::SIGTSTP) {
        install(libc::SIGTSTP, on_sigtstp, "SIGTSTP")?;
    }
    install(libc::SIGCONT, on_sigcont, "SIGCONT")
}

#[cfg(not(unix))]
pub(super) fn add_rank(_: u32) {}

#[cfg(not(unix))]
pub(super) fn remove_rank(_: u32) {}

/// Without POSIX job control there is nothing to forward.
#[cfg(not(unix))]
pub(super) fn handle_job_control() -> crate::error::Result<()> {
    Ok(())
}
