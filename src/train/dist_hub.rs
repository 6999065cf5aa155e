//! The hub of the host transport (`dist_tcp`): started by the `--ranks` / `--gpus` launcher (or
//! by a test) on 127.0.0.1, it accepts `world` connections, then serves one collective after
//! another: it reads every rank's request in rank order, checks that they agree (same
//! collective, same length), combines them and sends every rank the same reply. Sums are
//! accumulated in f64 in rank order 0, 1, ..., so the result does not depend on timing and is
//! bit-identical on every rank.
//!
//! It is where failures become errors instead of hangs: a rank that closes its connection while
//! others wait in a collective, requests that do not match, a rank that does not connect or send
//! within the timeout: every rank still connected gets an abort reply with the reason. When every
//! rank closes its connection at the same point, the run ended normally.

use super::dist::ReduceOp;
use super::dist_tcp::{op_code, KIND_BROADCAST, KIND_F32, KIND_F64, MAGIC};
use crate::error::{Error, Result};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The running hub: its address (for `TcpComm::connect`), and its outcome.
pub struct Hub {
    addr: SocketAddr,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Hub {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Stop waiting for ranks to connect (the launcher calls this when a rank died early).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    /// Wait for the hub to end: Ok when every rank finished, else the reason it stopped.
    pub fn join(mut self) -> Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::msg("the data-parallel hub thread panicked")),
            None => Ok(()),
        }
    }
}

/// Bind 127.0.0.1 on a free port and serve a group of `world` ranks on a background thread.
/// `timeout` bounds the wait for every rank to connect and for each rank's next request.
pub fn start_hub(world: usize, timeout: Duration) -> Result<Hub> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| {
        Error::msg(format!(
            "data-parallel hub: cannot listen on 127.0.0.1: {e}"
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::msg(format!("data-parallel hub: {e}")))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("fdm-dist-hub".into())
        .spawn(move || serve(listener, world, timeout, &flag))
        .map_err(|e| Error::msg(format!("data-parallel hub: {e}")))?;
    Ok(Hub {
        addr,
        cancel,
        thread: Some(thread),
    })
}

fn serve(
    listener: TcpListener,
    world: usize,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<()> {
    let mut conns = accept_all(&listener, world, timeout, cancel)?;
    drop(listener);
    loop {
        match round(&mut conns) {
            Ok(true) => continue,
            Ok(false) => return Ok(()),
            Err(why) => {
                abort_all(&mut conns, &why);
                return Err(Error::msg(why));
            }
        }
    }
}

/// The `world` connections, indexed by rank.
fn accept_all(
    listener: &TcpListener,
    world: usize,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<TcpStream>> {
    let fail = |why: String, conns: &mut Vec<Option<TcpStream>>| {
        let mut open: Vec<TcpStream> = conns.iter_mut().filter_map(Option::take).collect();
        abort_all(&mut open, &why);
        Err(Error::msg(why))
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::msg(format!("data-parallel hub: {e}")))?;
    let deadline = Instant::now() + timeout;
    let mut conns: Vec<Option<TcpStream>> = (0..world).map(|_| None).collect();
    while conns.iter().any(Option::is_none) {
        if cancel.load(Ordering::SeqCst) {
            return fail("the launcher stopped the group".into(), &mut conns);
        }
        let missing = || {
            let m: Vec<String> = (0..world)
                .filter(|&r| conns[r].is_none())
                .map(|r| r.to_string())
                .collect();
            m.join(", ")
        };
        if Instant::now() >= deadline {
            let why = format!(
                "rank(s) {} did not connect within {} s",
                missing(),
                timeout.as_secs()
            );
            return fail(why, &mut conns);
        }
        let mut s = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return fail(format!("accept: {e}"), &mut conns),
        };
        let setup = s
            .set_nonblocking(false)
            .and(s.set_nodelay(true))
            .and(s.set_read_timeout(Some(timeout)));
        let mut hello = [0u8; 16];
        if let Err(e) = setup.and(s.read_exact(&mut hello)) {
            return fail(format!("a rank's hello failed: {e}"), &mut conns);
        }
        let rank = u32::from_le_bytes(hello[8..12].try_into().expect("4 bytes")) as usize;
        let w = u32::from_le_bytes(hello[12..16].try_into().expect("4 bytes")) as usize;
        if &hello[..8] != MAGIC || w != world || rank >= world || conns[rank].is_some() {
            let why = format!("unexpected connection (rank {rank} of {w}; the hub serves {world} ranks, connected: all but {})", missing());
            return fail(why, &mut conns);
        }
        conns[rank] = Some(s);
    }
    Ok(conns
        .into_iter()
        .map(|c| c.expect("every rank connected"))
        .collect())
}

/// A request's header and payload; None when the rank closed its connection between requests.
struct Request {
    kind: u8,
    op: u8,
    count: u64,
    payload: Vec<u8>,
}

fn read_request(s: &mut TcpStream, rank: usize) -> std::result::Result<Option<Request>, String> {
    let mut head = [0u8; 10];
    let mut got = 0;
    while got < head.len() {
        match s.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(format!("rank {rank} closed its connection mid-request")),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no request from rank {rank} within the timeout (it hangs or is far slower)"
                ))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(format!("rank {rank}: {e}")),
        }
    }
    let (kind, op) = (head[0], head[1]);
    let count = u64::from_le_bytes(head[2..10].try_into().expect("8 bytes"));
    let bytes = match kind {
        KIND_F32 => count * 4,
        KIND_F64 => count * 8,
        KIND_BROADCAST => count,
        _ => return Err(format!("rank {rank} sent an unknown request kind {kind}")),
    };
    let mut payload = vec![0u8; bytes as usize];
    s.read_exact(&mut payload)
        .map_err(|e| format!("rank {rank} failed while sending {bytes} bytes: {e}"))?;
    Ok(Some(Request {
        kind,
        op,
        count,
        payload,
    }))
}

fn describe(r: &Request) -> String {
    let what = match r.kind {
        KIND_F32 => "reduce of f32 values",
        KIND_F64 => "reduce of scalars",
        _ => "broadcast",
    };
    format!("{what} (op {}, count {})", r.op, r.count)
}

/// One collective: Ok(true) served, Ok(false) every rank closed (the run ended), Err(reason).
fn round(conns: &mut [TcpStream]) -> std::result::Result<bool, String> {
    let world = conns.len();
    let mut first: Option<Request> = None;
    let mut acc: Vec<f64> = Vec::new();
    let mut closed = Vec::new();
    for (rank, s) in conns.iter_mut().enumerate() {
        let Some(req) = read_request(s, rank)? else {
            closed.push(rank);
            continue;
        };
        if let Some(f) = &first {
            let same = f.kind == req.kind
                && f.op == req.op
                && (f.kind == KIND_BROADCAST || f.count == req.count);
            if !same {
                return Err(format!("the ranks disagree: one sent a {}, rank {rank} a {} (they are not running the same training)", describe(f), describe(&req)));
            }
        }
        match req.kind {
            KIND_F32 => add_into(
                &mut acc,
                bytemuck::pod_collect_to_vec::<u8, f32>(&req.payload)
                    .into_iter()
                    .map(f64::from),
            ),
            KIND_F64 => add_into(
                &mut acc,
                bytemuck::pod_collect_to_vec::<u8, f64>(&req.payload).into_iter(),
            ),
            _ => {}
        }
        if first.is_none() {
            first = Some(req);
        }
    }
    match (&first, closed.len()) {
        (None, _) => return Ok(false),
        (Some(f), n) if n > 0 => {
            let list: Vec<String> = closed.iter().map(|r| r.to_string()).collect();
            return Err(format!("rank(s) {} left (failed, were killed, or ended early) while the others wait in a {}", list.join(", "), describe(f)));
        }
        _ => {}
    }
    let f = first.expect("some request");
    let reply: Vec<u8> = match f.kind {
        KIND_BROADCAST => f.payload,
        kind => {
            if f.op == op_code(ReduceOp::Mean) {
                acc.iter_mut().for_each(|v| *v /= world as f64);
            }
            if kind == KIND_F32 {
                let v: Vec<f32> = acc.iter().map(|&x| x as f32).collect();
                bytemuck::cast_slice(&v).to_vec()
            } else {
                bytemuck::cast_slice(&acc).to_vec()
            }
        }
    };
    for (rank, s) in conns.iter_mut().enumerate() {
        send_reply(s, 0, &reply).map_err(|e| format!("rank {rank}: {e}"))?;
    }
    Ok(true)
}

/// Sums in rank order (the first rank's values start the sum).
fn add_into(acc: &mut Vec<f64>, values: impl ExactSizeIterator<Item = f64>) {
    if acc.is_empty() {
        acc.extend(values);
    } else {
        acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
    }
}

fn send_reply(s: &mut TcpStream, status: u8, body: &[u8]) -> std::io::Result<()> {
    let mut msg = vec![status];
    msg.extend((body.len() as u64).to_le_bytes());
    msg.extend_from_slice(body);
    s.write_all(&msg)
}

/// Tell every rank why the group stops, then wait briefly for them to close, so the reason is
/// read before the connection resets.
fn abort_all(conns: &mut [TcpStream], why: &str) {
    for s in conns.iter_mut() {
        let _ = send_reply(s, 1, why.as_bytes());
        let _ = s.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for s in conns.iter_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            match s.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
