//! The host transport of data-parallel training: ranks on one machine (processes, or threads in
//! tests) talk over TCP on 127.0.0.1 to a hub that combines their values.
//!
//! The hub (`start_hub`, run by the `--ranks` / `--gpus` launcher or by a test) accepts `world`
//! connections, then serves one collective after another: it reads every rank's request in rank
//! order, checks that they agree (same collective, same length), combines them and sends every
//! rank the same reply. Sums are accumulated in f64 in rank order 0, 1, ..., so the result does
//! not depend on timing and is bit-identical on every rank. Tensors on a CUDA device travel as
//! host copies (`dist::flatten_f32`) and come back to their device.
//!
//! Failure, never a hang: a rank that closes its connection (it failed, was killed, or finished
//! while others still wait), a request that does not match the others', or no request within the
//! timeout makes the hub send every rank an abort with the reason and stop; each rank's pending
//! or next collective returns that reason as an error. A rank that cannot reach the hub, or hears
//! nothing within the timeout, fails the same way. When every rank closes its connection at the
//! same point, the run ended normally.
//!
//! Wire format (little-endian): hello `FDMDIST1, u32 rank, u32 world`; request `u8 kind, u8 op,
//! u64 count, payload` (kind 1: count f32 values, 2: count f64 values, 3: broadcast, count bytes
//! from rank 0, none from the others); reply `u8 status (0 ok, 1 abort), u64 length, payload`.

use super::dist::{flatten_f32, unflatten_f32, Communicator, ReduceOp};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"FDMDIST1";
const KIND_F32: u8 = 1;
const KIND_F64: u8 = 2;
const KIND_BROADCAST: u8 = 3;

fn op_code(op: ReduceOp) -> u8 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
    }
}

/// One rank's end of the host transport.
pub struct TcpComm {
    rank: usize,
    world: usize,
    stream: Mutex<TcpStream>,
}

impl TcpComm {
    /// Connect rank `rank` of `world` to the hub at `addr`, retrying until `timeout` (the hub may
    /// still be starting). `timeout` also bounds every later wait for a reply.
    pub fn connect(addr: &str, rank: usize, world: usize, timeout: Duration) -> Result<TcpComm> {
        if rank >= world {
            return Err(Error::msg(format!("rank {rank} of a group of {world}")));
        }
        let deadline = Instant::now() + timeout;
        let mut stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::msg(format!(
                        "rank {rank}: cannot reach the data-parallel hub at {addr} within {} s: {e}",
                        timeout.as_secs()
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let io = |e: std::io::Error| Error::msg(format!("rank {rank}: hub connection: {e}"));
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        let mut hello = MAGIC.to_vec();
        hello.extend((rank as u32).to_le_bytes());
        hello.extend((world as u32).to_le_bytes());
        stream.write_all(&hello).map_err(io)?;
        Ok(TcpComm {
            rank,
            world,
            stream: Mutex::new(stream),
        })
    }

    /// Send one request and wait for the hub's reply (the combined payload).
    fn exchange(&self, kind: u8, op: u8, count: u64, payload: &[u8]) -> Result<Vec<u8>> {
        let mut s = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        let lost = |e: std::io::Error| {
            let why = match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    "no answer within the timeout (a rank hangs or is far slower)".to_string()
                }
                _ => e.to_string(),
            };
            Error::msg(format!(
                "rank {}: lost the data-parallel group: {why}",
                self.rank
            ))
        };
        let mut req = vec![kind, op];
        req.extend(count.to_le_bytes());
        req.extend_from_slice(payload);
        s.write_all(&req).map_err(lost)?;
        let mut head = [0u8; 9];
        s.read_exact(&mut head).map_err(lost)?;
        let len = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes")) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).map_err(lost)?;
        if head[0] != 0 {
            return Err(Error::msg(format!(
                "rank {}: the data-parallel group stopped: {}",
                self.rank,
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body)
    }
}

impl Drop for TcpComm {
    fn drop(&mut self) {
        // Closing is the goodbye: the hub sees every rank close at the same point when the run
        // ended, and one rank close early when it failed.
        if let Ok(s) = self.stream.lock() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Communicator for TcpComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.world
    }
    fn all_reduce(&self, tensors: &mut [Tensor], op: ReduceOp) -> Result<()> {
        let (flat, _) = flatten_f32(tensors)?;
        let out = self.exchange(KIND_F32, op_code(op), flat.len() as u64, bytemuck::cast_slice(&flat))?;
        unflatten_f32(tensors, &bytemuck::pod_collect_to_vec::<u8, f32>(&out))
    }
    fn all_reduce_scalars(&self, values: &mut [f64], op: ReduceOp) -> Result<()> {
        let out = self.exchange(KIND_F64, op_code(op), values.len() as u64, bytemuck::cast_slice(values))?;
        values.copy_from_slice(&bytemuck::pod_collect_to_vec::<u8, f64>(&out));
        Ok(())
    }
    fn broadcast(&self, tensors: &mut [Tensor]) -> Result<()> {
        let (flat, _) = flatten_f32(tensors)?;
        let mut bytes = bytemuck::cast_slice::<f32, u8>(&flat).to_vec();
        self.broadcast_bytes(&mut bytes)?;
        if bytes.len() != flat.len() * 4 {
            return Err(Error::msg(format!(
                "rank {}: broadcast of {} values, rank 0 sent {}",
                self.rank,
                flat.len(),
                bytes.len() / 4
            )));
        }
        unflatten_f32(tensors, &bytemuck::pod_collect_to_vec::<u8, f32>(&bytes))
    }
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()> {
        let payload: &[u8] = if self.rank == 0 { bytes } else { &[] };
        *bytes = self.exchange(KIND_BROADCAST, 0, payload.len() as u64, payload)?;
        Ok(())
    }
}

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
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::msg(format!("data-parallel hub: cannot listen on 127.0.0.1: {e}")))?;
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

fn serve(listener: TcpListener, world: usize, timeout: Duration, cancel: &AtomicBool) -> Result<()> {
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
            let m: Vec<String> = (0..world).filter(|&r| conns[r].is_none()).map(|r| r.to_string()).collect();
            m.join(", ")
        };
        if Instant::now() >= deadline {
            let why = format!("rank(s) {} did not connect within {} s", missing(), timeout.as_secs());
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
        let setup = s.set_nonblocking(false).and(s.set_nodelay(true)).and(s.set_read_timeout(Some(timeout)));
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
    Ok(conns.into_iter().map(|c| c.expect("every rank connected")).collect())
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
                return Err(format!("no request from rank {rank} within the timeout (it hangs or is far slower)"))
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
    Ok(Some(Request { kind, op, count, payload }))
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
            let same = f.kind == req.kind && f.op == req.op && (f.kind == KIND_BROADCAST || f.count == req.count);
            if !same {
                return Err(format!("the ranks disagree: one sent a {}, rank {rank} a {} (they are not running the same training)", describe(f), describe(&req)));
            }
        }
        match req.kind {
            KIND_F32 => add_into(&mut acc, bytemuck::pod_collect_to_vec::<u8, f32>(&req.payload).into_iter().map(f64::from)),
            KIND_F64 => add_into(&mut acc, bytemuck::pod_collect_to_vec::<u8, f64>(&req.payload).into_iter()),
            _ => {}
        }
        if first.is_none() || (req.kind == KIND_BROADCAST && rank == 0) {
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
