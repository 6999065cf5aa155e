//! Ctrl-C on `fdm train`, with real signals to the built binary: the first interrupt stops the
//! run after its current step and writes a checkpoint, also when the one interrupt reaches the
//! process twice at once (`timeout -s INT` signals the command and then its process group; on a
//! GPU machine that once made a run quit without its checkpoint). SIGTERM does the same; either
//! way the run then exits non-zero (128 + the signal). A data-parallel group (`--ranks 2`)
//! signalled through its launcher alone stops the same way: the launcher forwards the signal to
//! its ranks, waits for their checkpoint and exits 128 + the signal, leaving no rank behind; a
//! SIGHUP (terminal closed) stops the group the same way, the ranks getting SIGTERM. A single
//! run stops on SIGHUP as on SIGTERM (exit 129, also with its output gone), unless it started
//! with SIGHUP ignored (nohup). Ctrl-Z (SIGTSTP) to a group's launcher stops its ranks too, and
//! SIGCONT continues them all.
#![cfg(unix)]

use fdm::train::signals::is_second_press;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fdm-cli-interrupt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A long phase-2 run on the bundled photos and weights (batch 1: ~10 steps/s on 2 cores).
fn spawn_training(out: &Path) -> Child {
    training_command(out).spawn().unwrap()
}

/// The command of `spawn_training`.
fn training_command(out: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fdm"));
    cmd.args(["train", "phase2", "--preset", "tiny", "--batch", "1", "--no-progress", "--device", "cpu"])
        .arg("--data")
        .arg(root.join("assets/photos"))
        .arg("--init")
        .arg(root.join("assets/weights/fdm-tiny.safetensors"))
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Start `cmd` with `signal`'s disposition set to `action` (`SIG_DFL`, `SIG_IGN`) whatever the
/// test inherited: a test run under nohup passes an ignored SIGHUP on, and a run in a terminal
/// session has the default.
fn with_disposition(cmd: &mut Command, signal: libc::c_int, action: libc::sighandler_t) -> &mut Command {
    // SAFETY: signal(2) is async-signal-safe, as code between fork and exec must be.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            libc::signal(signal, action);
            Ok(())
        })
    }
}

/// Data rows in the run's loss log so far.
fn logged_steps(out: &Path) -> usize {
    std::fs::read_to_string(out.join("losses.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

fn interrupt(child: &Child) {
    signal(child, "INT");
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -{name} failed");
}

/// Waits until the run has logged `n` steps.
fn wait_for_steps(out: &Path, n: usize) {
    let t0 = Instant::now();
    while logged_steps(out) < n {
        assert!(t0.elapsed() < Duration::from_secs(300), "no training steps logged in 300 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The checkpoint of the last logged step is complete and the output points at it.
fn assert_checkpoint_of_last_step(out: &Path, text: &str) {
    let steps = logged_steps(out);
    let ckpt = out.join(format!("ckpt-{steps:08}"));
    assert!(text.contains(&format!("checkpoint: {}", ckpt.display())), "{text}");
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ckpt.join(f).is_file(), "{} missing", ckpt.join(f).display());
    }
    let state = std::fs::read_to_string(ckpt.join("state.json")).unwrap();
    assert!(state.contains(&format!("\"step\": {steps}")), "state.json of step {steps}: {state}");
}

/// Waits for the child to exit (at most `limit`); its exit code and output.
fn wait(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            child.kill().unwrap();
            panic!("the run did not stop within {limit:?} of the interrupt");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn interrupt_delivered_twice_at_once_still_writes_the_checkpoint_cpu() {
    let dir = scratch("twice");
    let out = dir.join("run");
    let child = spawn_training(&out);
    wait_for_steps(&out, 3);
    // The second delivery 20 ms after the first: before the fix any second SIGINT quit at once
    // (exit 130, no checkpoint); with no gap the kernel may merge the two pending signals.
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(20));
    interrupt(&child);
    let (code, text) = wait(child, Duration::from_secs(120));
    // Not 0: `fdm train phase1a ... && fdm train phase1b ...` must not go on from a stopped run.
    assert_eq!(code, Some(130), "an interrupted run exits 130 after its checkpoint:\n{text}");
    assert!(text.contains("stopped early; continue with --resume"), "{text}");
    assert_checkpoint_of_last_step(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM (`kill`, `timeout`, job schedulers) stops the run like Ctrl-C, with exit status 143.
#[test]
fn sigterm_writes_the_checkpoint_and_exits_143_cpu() {
    let dir = scratch("term");
    let out = dir.join("run");
    let child = spawn_training(&out);
    wait_for_steps(&out, 2);
    signal(&child, "TERM");
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(143), "a terminated run exits 143 after its checkpoint:\n{text}");
    assert!(text.contains("stopped early; continue with --resume"), "{text}");
    assert_checkpoint_of_last_step(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP (the terminal closed) stops a single run like SIGTERM: the checkpoint of the last
/// step, the `--resume` hint, exit 129. The hangup arriving again (the kernel's, then the
/// shell's) is not a second press.
#[test]
fn sighup_writes_the_checkpoint_and_exits_129_cpu() {
    let dir = scratch("hup");
    let out = dir.join("run");
    let child = with_disposition(&mut training_command(&out), libc::SIGHUP, libc::SIG_DFL).spawn().unwrap();
    wait_for_steps(&out, 2);
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    // Not `signal`: the run may have finished its checkpoint and exited meanwhile (a zombie
    // until waited for, so the id is still the child's).
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(129), "a hung-up run exits 129 after its checkpoint:\n{text}");
    assert!(text.contains("stopped early; continue with --resume"), "{text}");
    assert_checkpoint_of_last_step(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a hangup the terminal is gone: writing the final lines fails (here: the pipes of the
/// output are closed), and the run still writes its checkpoint and exits 129 (not a panic's 101).
#[test]
fn sighup_with_the_output_gone_still_writes_the_checkpoint_and_exits_129_cpu() {
    let dir = scratch("hup-gone");
    let out = dir.join("run");
    let mut child = with_disposition(&mut training_command(&out), libc::SIGHUP, libc::SIG_DFL).spawn().unwrap();
    wait_for_steps(&out, 2);
    drop(child.stdout.take());
    drop(child.stderr.take());
    signal(&child, "HUP");
    let (code, _) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(129), "a hung-up run exits 129 after its checkpoint, its output gone");
    let steps = logged_steps(&out);
    let state = std::fs::read_to_string(out.join(format!("ckpt-{steps:08}")).join("state.json")).unwrap();
    assert!(state.contains(&format!("\"step\": {steps}")), "state.json of step {steps}: {state}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under nohup (SIGHUP ignored when the run starts) a hangup changes nothing: the run goes on.
#[test]
fn ignored_sighup_stays_ignored_cpu() {
    let dir = scratch("nohup");
    let out = dir.join("run");
    let mut child = with_disposition(&mut training_command(&out), libc::SIGHUP, libc::SIG_IGN).spawn().unwrap();
    wait_for_steps(&out, 2);
    signal(&child, "HUP");
    let steps = logged_steps(&out);
    wait_for_steps(&out, steps + 3);
    assert!(child.try_wait().unwrap().is_none(), "the run goes on after an ignored hangup");
    signal(&child, "TERM");
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(143), "{text}");
    assert!(!text.contains("SIGHUP"), "{text}");
    assert_checkpoint_of_last_step(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_a_later_interrupt_counts_as_a_second_press_cpu() {
    assert!(!is_second_press(Duration::from_micros(30)));
    assert!(!is_second_press(Duration::from_millis(100)));
    assert!(is_second_press(Duration::from_millis(400)));
    assert!(is_second_press(Duration::from_secs(3)));
}

/// A long phase-2 run of two ranks (`--ranks 2`, global batch 2) whose schedule spans far more
/// steps than the test waits for (tiny's 20 epochs of 4 photos would end in a few seconds).
fn spawn_group_training(dir: &Path, out: &Path) -> Child {
    group_command(dir, out).spawn().unwrap()
}

/// The command of `spawn_group_training`.
fn group_command(dir: &Path, out: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = fdm::train::TrainConfig::tiny(fdm::train::Phase::Phase2);
    cfg.epochs = 100_000;
    let cfg_path = dir.join("long.json");
    std::fs::write(&cfg_path, cfg.to_json()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fdm"));
    cmd.args(["train", "phase2", "--batch", "2", "--ranks", "2", "--no-progress", "--device", "cpu", "--dist-timeout", "120"])
        .arg("--config")
        .arg(&cfg_path)
        .arg("--data")
        .arg(root.join("assets/photos"))
        .arg("--init")
        .arg(root.join("assets/weights/fdm-tiny.safetensors"))
        .arg("--out")
        .arg(out)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Processes whose command line mentions `text` (Linux: /proc; elsewhere none are found).
fn processes_mentioning(text: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(text))
        .collect()
}

/// The group is gone, its checkpoint is that of the last logged step, and it resumes.
fn assert_group_stopped_resumably(out: &Path, text: &str) {
    assert!(processes_mentioning(out.to_str().unwrap()).is_empty(), "a rank outlived its launcher: {:?}", processes_mentioning(out.to_str().unwrap()));
    assert_checkpoint_of_last_step(out, text);
    let steps = logged_steps(out);
    let ckpt = out.join(format!("ckpt-{steps:08}"));
    assert!(text.contains(&format!("continue with --resume {}", ckpt.display())), "{text}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let resumed = Command::new(env!("CARGO_BIN_EXE_fdm"))
        .args(["train", "phase2", "--no-progress", "--device", "cpu", "--steps", &(steps + 1).to_string()])
        .arg("--data")
        .arg(root.join("assets/photos"))
        .arg("--resume")
        .arg(out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "resuming the group's checkpoint: {log}");
    assert!(out.join(format!("ckpt-{:08}", steps + 1)).join("state.json").is_file(), "{log}");
}

/// SIGTERM to the launcher only (as `kill PID` or a job scheduler sends it): forwarded to both
/// ranks, which write the checkpoint; the launcher exits 143 and names it.
#[test]
fn sigterm_to_the_launcher_stops_every_rank_with_a_checkpoint_and_exits_143_cpu() {
    let dir = scratch("group-term");
    let out = dir.join("run");
    let child = spawn_group_training(&dir, &out);
    wait_for_steps(&out, 3);
    signal(&child, "TERM");
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(143), "a terminated group exits 143 after its checkpoint:\n{text}");
    assert!(text.contains("interrupted by SIGTERM"), "{text}");
    assert_group_stopped_resumably(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process ids of the ranks (not the launcher) of the group writing to `out` (Linux: /proc).
fn rank_pids(out: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let c = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).ok()?).into_owned();
            (c.contains(out.to_str().unwrap()) && c.contains("\0--rank\0")).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn kill_pids(pids: &[String], name: &str) {
    for pid in pids {
        let ok = Command::new("kill").args([&format!("-{name}"), pid]).status().unwrap().success();
        assert!(ok, "kill -{name} {pid} failed");
    }
}

/// SIGHUP to the launcher (its terminal closed): the ranks get SIGTERM and write the checkpoint;
/// the launcher exits 129 and names it. A hangup arriving again later (the kernel's, then the
/// shell's) is not a second press: the ranks, held stopped meanwhile so that the group is still
/// waiting for them, still finish their checkpoint.
#[test]
fn sighup_to_the_launcher_stops_every_rank_with_a_checkpoint_and_exits_129_cpu() {
    let dir = scratch("group-hup");
    let out = dir.join("run");
    let mut cmd = group_command(&dir, &out);
    // The launcher keeps an ignored SIGHUP ignored (`nohup`), and a test run under nohup (as CI
    // jobs often are) passes that on: start the launcher with the default action, as a terminal
    // session would.
    // SAFETY: signal(2) is async-signal-safe, as code between fork and exec must be.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    wait_for_steps(&out, 3);
    let ranks = rank_pids(&out);
    if cfg!(target_os = "linux") {
        assert_eq!(ranks.len(), 2, "{:?}", processes_mentioning(out.to_str().unwrap()));
    }
    kill_pids(&ranks, "STOP");
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(400));
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(200));
    kill_pids(&ranks, "CONT");
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(129), "a hung-up group exits 129 after its checkpoint:\n{text}");
    // The launcher says what it sent. (Rank 0's own "send SIGTERM again" line is not certain:
    // a stop on any rank stops the group after the same step, and rank 0 may finish and exit
    // before its signal watcher, which polls every 50 ms, prints.)
    assert!(text.contains("interrupted by SIGHUP (the ranks were sent SIGTERM)"), "{text}");
    assert_group_stopped_resumably(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The state letter of process `pid` in /proc/PID/stat (`T`: stopped); None once it is gone.
fn process_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Polls `done` every 20 ms until it holds; after `limit`, kills `pids` (so a failure leaves
/// nothing stopped or running behind) and fails naming `what`.
fn wait_until(what: &str, limit: Duration, pids: &[String], done: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !done() {
        if t0.elapsed() > limit {
            let states: Vec<_> = pids.iter().map(|p| (p.clone(), process_state(p))).collect();
            for pid in pids {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            panic!("{what}: not within {limit:?} (process states {states:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ctrl-Z (SIGTSTP to the launcher, what the terminal sends its foreground job) stops the whole
/// group, not the launcher alone: the ranks, in process groups of their own, are stopped with
/// it and train no step; SIGCONT (`fg`, `bg`) continues all of them, and the run then stops
/// on SIGTERM with its checkpoint as usual.
#[cfg(target_os = "linux")]
#[test]
fn sigtstp_to_the_launcher_stops_every_rank_and_sigcont_continues_them_cpu() {
    let dir = scratch("group-tstp");
    let out = dir.join("run");
    let mut cmd = group_command(&dir, &out);
    // A process group of its own: the kernel discards the stop of a SIGTSTP in an "orphaned"
    // group, which the test's own group may be (whatever runs the tests). And SIGTSTP's default
    // action, not an ignore inherited from that runner.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = with_disposition(&mut cmd, libc::SIGTSTP, libc::SIG_DFL).spawn().unwrap();
    wait_for_steps(&out, 2);
    let mut pids = rank_pids(&out);
    assert_eq!(pids.len(), 2, "{:?}", processes_mentioning(out.to_str().unwrap()));
    pids.push(child.id().to_string());
    let limit = Duration::from_secs(30);
    signal(&child, "TSTP");
    wait_until("the launcher and both ranks stopped", limit, &pids, || pids.iter().all(|p| process_state(p) == Some('T')));
    let steps = logged_steps(&out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(logged_steps(&out), steps, "no step while the group is stopped");
    signal(&child, "CONT");
    wait_until("the launcher and both ranks running again", limit, &pids, || {
        pids.iter().all(|p| process_state(p).is_some_and(|s| s != 'T'))
    });
    wait_until("two more steps after SIGCONT", Duration::from_secs(120), &pids, || logged_steps(&out) >= steps + 2);
    signal(&child, "TERM");
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(143), "a terminated group exits 143 after its checkpoint:\n{text}");
    assert_group_stopped_resumably(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGINT delivered to the launcher twice at once (`timeout -s INT`) is one interrupt: the
/// ranks still write their checkpoint, and the group exits 130.
#[test]
fn sigint_to_the_launcher_twice_at_once_still_writes_the_checkpoint_cpu() {
    let dir = scratch("group-int");
    let out = dir.join("run");
    let child = spawn_group_training(&dir, &out);
    wait_for_steps(&out, 3);
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(20));
    interrupt(&child);
    let (code, text) = wait(child, Duration::from_secs(120));
    assert_eq!(code, Some(130), "an interrupted group exits 130 after its checkpoint:\n{text}");
    assert!(text.contains("interrupted by SIGINT"), "{text}");
    assert_group_stopped_resumably(&out, &text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second signal a while after the first kills the ranks at once; the launcher still exits
/// with the first signal's status. Deliveries within a quarter of a second are the first again.
#[test]
fn launcher_counts_a_later_signal_as_the_second_cpu() {
    use fdm::train::signals::{LauncherAction, LauncherStop};
    let t0 = Instant::now();
    let mut s = LauncherStop::default();
    assert_eq!(s.poll_at(0, 0, t0), LauncherAction::Nothing);
    // Two deliveries seen at once: forwarded once.
    assert_eq!(s.poll_at(15, 2, t0), LauncherAction::Forward(15));
    assert_eq!(s.poll_at(15, 2, t0 + Duration::from_secs(5)), LauncherAction::Nothing);
    // One more 100 ms later: the same signal delivered again.
    let mut s = LauncherStop::default();
    assert_eq!(s.poll_at(2, 1, t0), LauncherAction::Forward(2));
    assert_eq!(s.poll_at(2, 2, t0 + Duration::from_millis(100)), LauncherAction::Nothing);
    // A later one, even another signal (the first is what is recorded): kill, once.
    assert_eq!(s.poll_at(2, 3, t0 + Duration::from_secs(2)), LauncherAction::KillRanks(2));
    assert_eq!(s.poll_at(2, 4, t0 + Duration::from_secs(3)), LauncherAction::Nothing);
}

/// A SIGHUP is forwarded as SIGTERM (a rank's own SIGHUP would kill it without a checkpoint),
/// and only a first hangup counts: a repeated one is never a second press.
#[test]
fn launcher_forwards_a_hangup_as_sigterm_cpu() {
    use fdm::train::signals::{counts_again, forwarded, signal_name, LauncherAction, LauncherStop};
    assert_eq!((forwarded(1), forwarded(2), forwarded(15)), (15, 2, 15));
    assert!(!counts_again(1) && counts_again(2) && counts_again(15));
    assert_eq!(signal_name(1), "SIGHUP");
    let mut s = LauncherStop::default();
    assert_eq!(s.poll_at(1, 1, Instant::now()), LauncherAction::Forward(15));
}
