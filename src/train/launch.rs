//! Starting a data-parallel run: `fdm train ... --ranks N` (N processes, host transport, each on
//! `--device`) or `--gpus N` (N processes, one per CUDA GPU, NCCL).
//!
//! The launcher checks what the run needs before starting anything (the global batch splits
//! over N; N usable GPUs and the NCCL library for `--gpus`), starts the host transport's hub
//! (`dist_tcp::start_hub`), then runs N copies of the same binary with the same arguments plus
//! `--rank r --dist-addr ADDR`. Rank 0 keeps the terminal (progress bar, messages, summary);
//! the other ranks' standard output is discarded and the end of their error output kept. It
//! waits for all of them: when one fails, the others get a short grace to stop on their own
//! (the hub tells them why) and are then killed, and the error names the failing rank, its exit
//! status and the end of its error output. Each CPU rank gets `cores / N` rayon threads unless
//! `RAYON_NUM_THREADS` is set.
//!
//! Signals (unix): each rank runs in a process group of its own, so a Ctrl-C in the terminal,
//! `kill` or `timeout` reaches the launcher alone, and the launcher forwards the first SIGINT /
//! SIGTERM to every rank still running: each then stops after its step with a checkpoint as a
//! single process does, the launcher waits for them and exits with 128 + the signal. A SIGHUP
//! (the terminal closed) does the same, with SIGTERM sent to the ranks: without it the launcher
//! died and its ranks failed at their next step without a checkpoint. A second SIGINT / SIGTERM
//! while waiting kills the ranks (`signals::LauncherStop`). Were the ranks in the
//! launcher's group, a terminal Ctrl-C would reach each rank twice (the terminal's and the
//! forwarded one), and one that came late would count as a second press. Ctrl-Z (SIGTSTP) stops
//! the ranks and then the launcher, and SIGCONT (`fg`, `bg`) continues them
//! (`job_control`).

use super::cli::{resolve_config, TrainArgs};
use super::config::Phase;
use super::dist::{self, Communicator};
use super::dist_nccl::{nccl_available, NcclComm};
use super::dist_tcp::{start_hub, TcpComm};
use super::job_control;
use super::signals::{self, LauncherAction, LauncherStop};
use crate::cli::device::{pick_device, DeviceArg};
use crate::error::{Error, Result};
use crate::Device;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the ranks exchange tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `--ranks N`: the host transport (`dist_tcp`).
    Tcp,
    /// `--gpus N`: NCCL on the GPUs (`dist_nccl`), the host transport beside it.
    Nccl,
}

/// A data-parallel run's size and transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub world: usize,
    pub transport: Transport,
}

/// Lines of a failing rank's error output quoted in the launcher's error.
const TAIL_LINES: usize = 20;
/// How long the other ranks may take to stop on their own after one failed.
const GRACE: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT_S: u64 = 1800;

/// The multi-process run the arguments ask for; None for a single process.
pub fn plan(args: &TrainArgs) -> Result<Option<Plan>> {
    let ranks = args.ranks.unwrap_or(1);
    if args.gpus == 0 || ranks == 0 {
        return Err(Error::msg("--gpus and --ranks must be at least 1"));
    }
    let plan = match (args.gpus > 1, ranks > 1) {
        (true, true) => {
            return Err(Error::msg(
                "--gpus N (NCCL on N GPUs) and --ranks N (host transport) are two ways to start a data-parallel run: give one",
            ))
        }
        (true, false) => Plan { world: args.gpus, transport: Transport::Nccl },
        (false, true) => Plan { world: ranks, transport: Transport::Tcp },
        (false, false) => return Ok(None),
    };
    if args.compare_sampler {
        return Err(Error::msg(
            "--compare-sampler measures one process; drop --gpus / --ranks",
        ));
    }
    Ok(Some(plan))
}

/// The wait bound of the data-parallel transport (`--dist-timeout`).
pub fn timeout(args: &TrainArgs) -> Duration {
    Duration::from_secs(args.dist_timeout.unwrap_or(DEFAULT_TIMEOUT_S).max(1))
}

/// Everything the launcher can check before starting a process; a clear error naming what is
/// missing (never a panic on a machine without CUDA or NCCL).
pub fn preflight(args: &TrainArgs, plan: &Plan) -> Result<()> {
    match plan.transport {
        Transport::Nccl => {
            if matches!(args.device, DeviceArg::Cpu | DeviceArg::CudaEmu) {
                return Err(Error::msg(format!(
                    "--gpus {n} trains on {n} CUDA GPUs with NCCL; for {n} CPU processes use --ranks {n} --device cpu",
                    n = plan.world
                )));
            }
            need_gpus(plan.world, "--gpus")?;
            nccl_available().map_err(|why| Error::msg(format!("--gpus {}: {why}", plan.world)))?;
        }
        Transport::Tcp if args.device == DeviceArg::Cuda => need_gpus(plan.world, "--ranks")?,
        Transport::Tcp => {}
    }
    let (cfg, _) = resolve_config(args, Phase::parse(&args.phase)?)?;
    dist::shard_range(cfg.batch_size, 0, plan.world).map(|_| ())
}

fn need_gpus(n: usize, flag: &str) -> Result<()> {
    let count = crate::cuda::device_count()
        .map_err(|why| Error::msg(format!("{flag} {n} needs {n} CUDA GPUs: {why}")))?;
    if count < n {
        return Err(Error::msg(format!(
            "{flag} {n} needs {n} CUDA GPUs, this machine has {count}"
        )));
    }
    crate::cuda::probe()
        .map(|_| ())
        .map_err(|why| Error::msg(format!("{flag} {n}: {why}")))
}

/// This process's place in the group: connect rank `rank` to the hub at `addr`, pick its device
/// (GPU `rank` for `--gpus`, and for `--ranks` with `--device cuda`; `auto` takes GPU `rank`
/// when it is usable, else the CPU) and build the communicator.
pub fn join(
    plan: &Plan,
    rank: usize,
    addr: &str,
    timeout: Duration,
    device: DeviceArg,
) -> Result<(Arc<dyn Communicator>, Device)> {
    if rank >= plan.world {
        return Err(Error::msg(format!(
            "--rank {rank} of a group of {}",
            plan.world
        )));
    }
    let host = TcpComm::connect(addr, rank, plan.world, timeout)?;
    let gpu = || {
        crate::cuda::probe_ordinal(rank)
            .map(Device::Cuda)
            .map_err(|why| Error::msg(format!("rank {rank} trains on GPU {rank}: {why}")))
    };
    let device = match (plan.transport, device) {
        (Transport::Nccl, _) | (Transport::Tcp, DeviceArg::Cuda) => gpu()?,
        (Transport::Tcp, DeviceArg::Auto) => gpu().unwrap_or(Device::Cpu),
        (Transport::Tcp, other) => pick_device(other)?,
    };
    let comm: Arc<dyn Communicator> = match (plan.transport, &device) {
        (Transport::Nccl, Device::Cuda(d)) => Arc::new(NcclComm::new(host, d)?),
        (Transport::Nccl, Device::Cpu) => unreachable!("--gpus ranks run on a GPU"),
        (Transport::Tcp, _) => Arc::new(host),
    };
    Ok((comm, device))
}

/// `fdm train ... --ranks N` / `--gpus N`: run the group of `plan` from this binary. When a
/// SIGINT / SIGTERM / SIGHUP interrupted it (module docs), say so in one line naming the
/// checkpoint to resume from, after the error of a rank that failed if one did, and exit with
/// 128 + the signal, as a single process does.
pub fn main(args: &TrainArgs, plan: &Plan) -> Result<()> {
    signals::handle_launcher_signals()?;
    job_control::handle_job_control()?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::msg(format!("cannot find this program's path: {e}")))?;
    let result = launch(args, &exe, plan);
    let Some(signal) = signals::launcher_stopped_by() else {
        return result;
    };
    // Written ignoring errors, not with eprintln!, which panics when the write fails: after a
    // SIGHUP the terminal may be gone, and the exit status must still say what happened.
    use std::io::Write;
    if let Err(e) = &result {
        let _ = writeln!(std::io::stderr(), "error: {e}");
    }
    let _ = writeln!(std::io::stderr(), "{}", interrupted_line(args, plan, signal));
    let _ = std::io::stdout().flush();
    std::process::exit(128 + signal);
}

/// What an interrupted group leaves: the newest checkpoint of its output folder.
fn interrupted_line(args: &TrainArgs, plan: &Plan, signal: i32) -> String {
    let resumed = args.resume.as_deref().and_then(|p| super::checkpoint::resolve(p).ok());
    let newest = Phase::parse(&args.phase)
        .ok()
        .map(|phase| super::cli::output_dir(args, phase, resumed.as_deref()))
        .and_then(|out| super::checkpoint::list(&out).pop());
    let mut group = format!("data-parallel training ({} ranks) interrupted by {}", plan.world, signals::signal_name(signal));
    if signals::forwarded(signal) != signal {
        group += &format!(" (the ranks were sent {})", signals::signal_name(signals::forwarded(signal)));
    }
    match newest {
        Some(ckpt) => format!("{group}: the newest checkpoint is {0}; continue with --resume {0}", ckpt.display()),
        None => format!("{group}: no checkpoint was written"),
    }
}

/// The last lines a rank wrote to its error output.
type Tail = Arc<Mutex<VecDeque<String>>>;

struct Rank {
    child: Child,
    tail: Option<Tail>,
    status: Option<ExitStatus>,
}

impl Rank {
    /// A rank just started: Ctrl-Z and `fg` reach it (`job_control`).
    fn new(child: Child, tail: Option<Tail>) -> Rank {
        job_control::add_rank(child.id());
        Rank { child, tail, status: None }
    }

    /// Its exit status, once it has exited (it is then reaped, and job control forgets it).
    fn try_wait(&mut self, r: usize) -> Result<Option<ExitStatus>> {
        let status = self
            .child
            .try_wait()
            .map_err(|e| Error::msg(format!("waiting for rank {r}: {e}")))?;
        if status.is_some() {
            job_control::remove_rank(self.child.id());
        }
        Ok(status)
    }

    /// Kill it and reap it.
    fn kill(&mut self) {
        job_control::remove_rank(self.child.id());
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }
}

impl Drop for Rank {
    fn drop(&mut self) {
        job_control::remove_rank(self.child.id());
    }
}

/// Start the group of `plan` running `exe` (the fdm binary) and wait for it. Ok when every rank
/// finished; otherwise the error of the first rank that failed (module docs).
pub fn launch(args: &TrainArgs, exe: &Path, plan: &Plan) -> Result<()> {
    preflight(args, plan)?;
    let hub = start_hub(plan.world, timeout(args))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / plan.world).max(1).to_string();
    if signals::launcher_stopped_by().is_some() {
        hub.cancel();
        return Ok(()); // interrupted before any rank started: nothing to stop
    }
    let mut ranks: Vec<Rank> = Vec::new();
    for r in 0..plan.world {
        let mut argv = to_argv(args);
        argv.extend(["--rank".into(), r.to_string().into()]);
        argv.extend(["--dist-addr".into(), hub.addr().to_string().into()]);
        let mut cmd = Command::new(exe);
        cmd.args(&argv);
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            cmd.env("RAYON_NUM_THREADS", &threads);
        }
        // The quoted end of a failing rank's output should be its error, not a backtrace of
        // where the error value was made (panics still print theirs under RUST_BACKTRACE).
        if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
            cmd.env("RUST_LIB_BACKTRACE", "0");
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if r > 0 {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
        }
        match cmd.spawn() {
            Ok(mut child) => {
                let tail = child.stderr.take().map(keep_tail);
                ranks.push(Rank::new(child, tail));
            }
            Err(e) => {
                stop_all(&mut ranks);
                hub.cancel();
                return Err(Error::msg(format!(
                    "cannot start rank {r} ({}): {e}",
                    exe.display()
                )));
            }
        }
    }
    let waited = wait_all(&mut ranks)?;
    hub.cancel();
    let hub_result = hub.join();
    match waited {
        Waited::Done => hub_result,
        Waited::Failed(r) => Err(failure_report(&ranks, r, hub_result.err())),
        // The caller reports the interruption; the hub's complaint about the lost ranks is noise.
        Waited::Killed => Ok(()),
    }
}

/// A thread that keeps the last `TAIL_LINES` lines of a rank's error output.
fn keep_tail(stderr: std::process::ChildStderr) -> Tail {
    let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
    let sink = tail.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut t = sink.lock().unwrap_or_else(|e| e.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
    tail
}

/// How the group ended.
enum Waited {
    /// Every rank exited with success (also after a forwarded stop signal).
    Done,
    /// This rank failed first (the others stopped on their own or were killed).
    Failed(usize),
    /// A second stop signal: the ranks were killed.
    Killed,
}

/// Wait for every rank, forwarding a stop signal the launcher gets (module docs).
fn wait_all(ranks: &mut [Rank]) -> Result<Waited> {
    let mut first_failure: Option<(usize, Instant)> = None;
    let mut stop = LauncherStop::default();
    loop {
        match stop.poll() {
            LauncherAction::Nothing => {}
            LauncherAction::Forward(signal) => {
                for rank in ranks.iter().filter(|r| r.status.is_none()) {
                    signals::send(rank.child.id(), signal);
                }
            }
            LauncherAction::KillRanks(_) => {
                stop_all(ranks);
                return Ok(Waited::Killed);
            }
        }
        for (r, rank) in ranks.iter_mut().enumerate() {
            if rank.status.is_none() {
                if let Some(s) = rank.try_wait(r)? {
                    rank.status = Some(s);
                    if !s.success() && first_failure.is_none() {
                        first_failure = Some((r, Instant::now()));
                    }
                }
            }
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            return Ok(first_failure.map_or(Waited::Done, |(r, _)| Waited::Failed(r)));
        }
        if let Some((r, since)) = first_failure {
            if since.elapsed() > GRACE {
                stop_all(ranks);
                return Ok(Waited::Failed(r));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kill every rank still running (only the processes this launcher started) and reap them.
fn stop_all(ranks: &mut [Rank]) {
    for rank in ranks.iter_mut().filter(|r| r.status.is_none()) {
        rank.kill();
    }
}

fn failure_report(ranks: &[Rank], failed: usize, hub: Option<Error>) -> Error {
    let status = |r: &Rank| match r.status {
        Some(s) => s.to_string(),
        None => "unknown status".into(),
    };
    let mut msg = format!(
        "data-parallel training failed: rank {failed} of {} stopped first ({})",
        ranks.len(),
        status(&ranks[failed])
    );
    match &ranks[failed].tail {
        None => msg.push_str("; its messages are above"),
        Some(tail) => {
            // Give the reader thread a moment to take the last lines of a rank that just exited.
            std::thread::sleep(Duration::from_millis(200));
            let lines = tail.lock().unwrap_or_else(|e| e.into_inner());
            msg.push_str("; the end of its error output:");
            for l in lines.iter() {
                msg.push_str("\n  ");
                msg.push_str(l);
            }
        }
    }
    let others: Vec<String> = ranks
        .iter()
        .enumerate()
        .filter(|(r, _)| *r != failed)
        .map(|(r, rank)| {
            let last = rank.tail.as_ref().and_then(|t| {
                let t = t.lock().unwrap_or_else(|e| e.into_inner());
                t.iter().rev().find(|l| l.starts_with("error:")).cloned()
            });
            match last {
                Some(line) => format!("rank {r}: {} ({line})", status(rank)),
                None => format!("rank {r}: {}", status(rank)),
            }
        })
        .collect();
    msg.push_str(&format!("\nother ranks: {}", others.join(", ")));
    if let Some(e) = hub {
        msg.push_str(&format!("\nhub: {e}"));
    }
    Error::msg(msg)
}

/// The command line (after the program name) that parses back into `args`: what the launcher
/// gives each rank process, followed by its `--rank` and `--dist-addr`. Every field of
/// `TrainArgs` must appear here (tests/dist_transport.rs parses the result back and compares).
pub fn to_argv(args: &TrainArgs) -> Vec<std::ffi::OsString> {
    let mut v: Vec<OsString> = vec!["train".into(), args.phase.clone().into()];
    let mut opt = |name: &str, value: Option<OsString>| {
        if let Some(x) = value {
            v.push(format!("--{name}").into());
            v.push(x);
        }
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.as_os_str().to_owned());
    let num = |n: Option<u64>| n.map(|n| n.to_string().into());
    opt("data", Some(args.data.as_os_str().to_owned()));
    opt("preset", Some(args.preset.clone().into()));
    opt("config", path(&args.config));
    opt("out", path(&args.out));
    opt("init", path(&args.init));
    opt("resume", path(&args.resume));
    opt("steps", num(args.steps));
    opt("batch", num(args.batch.map(|b| b as u64)));
    opt("seed", num(args.seed));
    opt("sample-every", num(args.sample_every));
    opt("checkpoint-every", num(args.checkpoint_every));
    opt("progress-every", args.progress_every.map(|s| s.to_string().into()));
    opt("masks", path(&args.masks));
    opt("vgg", path(&args.vgg));
    let device = clap::ValueEnum::to_possible_value(&args.device).expect("every device has a name");
    opt("device", Some(device.get_name().into()));
    opt("gpus", num(Some(args.gpus as u64)));
    opt("ranks", num(args.ranks.map(|n| n as u64)));
    opt("dist-timeout", num(args.dist_timeout));
    opt("rank", num(args.rank.map(|n| n as u64)));
    opt("dist-addr", args.dist_addr.clone().map(Into::into));
    opt("inject-nan-at", num(args.inject_nan_at));
    opt(
        "inject-nan-rank",
        num(args.inject_nan_rank.map(|n| n as u64)),
    );
    for (flag, on) in [
        ("--no-progress", args.no_progress),
        ("--compare-sampler", args.compare_sampler),
        ("--overwrite", args.overwrite),
        ("--allow-data-change", args.allow_data_change),
    ] {
        if on {
            v.push(flag.into());
        }
    }
    v
}
