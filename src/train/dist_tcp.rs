//! The host transport of data-parallel training: ranks on one machine (processes, or threads in
//! tests) talk over TCP on 127.0.0.1 to a hub that combines their values.
//!
//! This file is a rank's end (`TcpComm`) and the wire format; the hub is `dist_hub`. Every
//! collective is one request to the hub and one reply, the same reply for every rank. Tensors on
//! a CUDA device travel as host copies (`dist::flatten_f32`) and come back to their device.
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
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use super::dist_hub::{start_hub, Hub};

pub(crate) const MAGIC: &[u8; 8] = b"FDMDIST1";
pub(crate) const KIND_F32: u8 = 1;
pub(crate) const KIND_F64: u8 = 2;
pub(crate) const KIND_BROADCAST: u8 = 3;

pub(crate) fn op_code(op: ReduceOp) -> u8 {
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
        let out = self.exchange(
            KIND_F32,
            op_code(op),
            flat.len() as u64,
            bytemuck::cast_slice(&flat),
        )?;
        unflatten_f32(tensors, &bytemuck::pod_collect_to_vec::<u8, f32>(&out))
    }
    fn all_reduce_scalars(&self, values: &mut [f64], op: ReduceOp) -> Result<()> {
        let out = self.exchange(
            KIND_F64,
            op_code(op),
            values.len() as u64,
            bytemuck::cast_slice(values),
        )?;
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
