//! The NCCL transport of data-parallel training (`fdm train ... --gpus N`): one process per GPU,
//! gradients all-reduced on the devices by NCCL (cudarc's `nccl` bindings, loaded at run time).
//!
//! Tests: the CI machines have no GPU and no NCCL, so there this file is only compiled and its
//! "NCCL is missing" path is tested. On a GPU with NCCL, tests/cuda_nccl.rs builds a group of one
//! through the launcher's `join` and checks every collective (a group of several GPUs needs a
//! multi-GPU machine, which no session has had). The data-parallel logic it plugs into
//! (sharding, which values are reduced, who writes, failure handling) is the same for every
//! transport and is tested with the host transport (`dist_tcp`, tests/train_dist.rs,
//! tests/train_dist_launch.rs).
//!
//! How it works: the ranks first join the host transport's hub (`TcpComm`); rank 0 creates the
//! NCCL unique id and hands it to the others through the hub; each rank then builds its NCCL
//! communicator on its own device's stream (`Comm::from_rank`). Tensor collectives run on the
//! device: each tensor is all-reduced (sum) into a fresh buffer inside one NCCL group, then the
//! mean is taken by scaling with 1/world (an exact power-of-two scale for 2, 4, 8 GPUs). Scalars
//! (loss values, flags) and byte broadcasts stay on the host transport. Before every device
//! collective the ranks pass a host barrier: NCCL has no timeout, so a rank that died would
//! otherwise leave the others waiting inside NCCL; the barrier turns that into a clean error.
//! The communicator's creation (`ncclCommInitRank`) also waits for every rank; a rank that dies
//! before it is handled by the launcher, which kills the other ranks of a failed run.
//!
//! cudarc looks for the library under the names `libnccl.so`, `libnccl.so.{13,12,11,10,9,1}`;
//! NCCL 2 installs `libnccl.so.2` (and `libnccl.so` only with its development files), so a folder
//! on `LD_LIBRARY_PATH` with a `libnccl.so` link to `libnccl.so.2` may be needed.

use super::dist::{Communicator, ReduceOp};
use super::dist_tcp::TcpComm;
use crate::cuda::memory::DeviceBuf;
use crate::cuda::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;
use cudarc::nccl::{group_end, group_start, Comm, Id, ReduceOp as NcclOp};
use std::sync::Mutex;

/// Whether the NCCL library can be loaded; the reason (and the fix) when not. Never panics:
/// cudarc's NCCL calls panic when the library is absent, so this runs before any of them.
pub fn nccl_available() -> std::result::Result<(), String> {
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        Ok(())
    } else {
        Err("no NCCL library found on the loader path (looked for libnccl.so and libnccl.so.{13,12,11,10,9,1}; NCCL 2 installs libnccl.so.2: put a libnccl.so link to it in a folder on LD_LIBRARY_PATH), or use --ranks N --device cuda for the host transport".into())
    }
}

fn nccl_err(what: &'static str) -> impl Fn(cudarc::nccl::result::NcclError) -> Error {
    move |e| Error::Cuda(format!("NCCL {what}: {:?}", e.0))
}

/// One rank's NCCL communicator, with the host transport beside it.
pub struct NcclComm {
    host: TcpComm,
    comm: Mutex<Comm>,
    device: CudaDevice,
}

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it do not overlap;
// the Mutex serialises every call, and the stream it enqueues on is the device's own stream.
unsafe impl Send for NcclComm {}
unsafe impl Sync for NcclComm {}

impl NcclComm {
    /// Build rank `host.rank()`'s communicator on `device` (a real GPU). Every rank of the group
    /// must call this at the same point.
    pub fn new(host: TcpComm, device: &CudaDevice) -> Result<NcclComm> {
        nccl_available().map_err(Error::msg)?;
        let stream = device.stream()?.clone();
        let mut id: Vec<u8> = if host.rank() == 0 {
            let id = Id::new().map_err(nccl_err("unique id"))?;
            id.internal().iter().map(|&c| c as u8).collect()
        } else {
            Vec::new()
        };
        host.broadcast_bytes(&mut id)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        if id.len() != internal.len() {
            return Err(Error::msg(format!(
                "NCCL id of {} bytes from rank 0",
                id.len()
            )));
        }
        for (d, s) in internal.iter_mut().zip(&id) {
            *d = *s as std::ffi::c_char;
        }
        let comm = Comm::from_rank(stream, host.rank(), host.world(), Id::uninit(internal))
            .map_err(nccl_err("communicator init"))?;
        Ok(NcclComm {
            host,
            comm: Mutex::new(comm),
            device: device.clone(),
        })
    }

    /// Whether every tensor is a dense-able f32 tensor on this rank's GPU (else the host path).
    fn on_device(&self, tensors: &[Tensor]) -> bool {
        tensors.iter().all(|t| {
            t.dtype() == DType::F32
                && matches!(t.device(), crate::Device::Cuda(d) if d.same_as(&self.device))
        })
    }

    /// `root = None`: all-reduce (sum) every tensor; `Some(0)`: broadcast from rank 0. Each
    /// result goes to a fresh buffer (tensors share storage, so nothing is changed in place).
    fn collective(&self, tensors: &mut [Tensor], root: Option<i32>) -> Result<()> {
        self.host.barrier()?;
        let srcs = tensors
            .iter()
            .map(|t| t.contiguous())
            .collect::<Result<Vec<_>>>()?;
        let mut outs = srcs
            .iter()
            .map(|t| self.device.alloc(DType::F32, t.numel()))
            .collect::<Result<Vec<_>>>()?;
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        group_start().map_err(nccl_err("group start"))?;
        let enqueued = srcs
            .iter()
            .zip(outs.iter_mut())
            .try_for_each(|(src, out)| enqueue(&comm, src.cuda_dense()?, out, root));
        let ended = group_end().map_err(nccl_err("group end"));
        enqueued?;
        ended?;
        for ((t, src), out) in tensors.iter_mut().zip(&srcs).zip(outs) {
            *t = Tensor::from_cuda(out, src.shape())?;
        }
        Ok(())
    }
}

/// One NCCL call from `src` into `out` (same length, f32, both on the communicator's device).
fn enqueue(comm: &Comm, src: &CudaStorage, out: &mut CudaStorage, root: Option<i32>) -> Result<()> {
    let n = src.len();
    if n == 0 {
        return Ok(());
    }
    let (DeviceBuf::Gpu(s), DeviceBuf::Gpu(o)) = (&src.buf, &mut out.buf) else {
        return Err(Error::msg("NCCL needs buffers on a real GPU"));
    };
    let bad = || Error::msg("NCCL: buffer shorter than its tensor");
    let sv = s.view();
    // SAFETY: both buffers hold f32 tensors of n elements (checked by the caller's dtype test).
    let sv = unsafe { sv.transmute::<f32>(n) }.ok_or_else(bad)?;
    let mut ov = o.view_mut();
    let mut ov = unsafe { ov.transmute_mut::<f32>(n) }.ok_or_else(bad)?;
    match root {
        None => comm
            .all_reduce(&sv, &mut ov, &NcclOp::Sum)
            .map_err(nccl_err("all-reduce"))?,
        Some(r) => comm
            .broadcast(Some(&sv), &mut ov, r)
            .map_err(nccl_err("broadcast"))?,
    };
    Ok(())
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn world(&self) -> usize {
        self.host.world()
    }
    fn all_reduce(&self, tensors: &mut [Tensor], op: ReduceOp) -> Result<()> {
        if !self.on_device(tensors) {
            return self.host.all_reduce(tensors, op);
        }
        self.collective(tensors, None)?;
        if op == ReduceOp::Mean {
            let scale = 1.0 / self.world() as f32;
            for t in tensors.iter_mut() {
                *t = ops::unary::mul_scalar(t, scale)?;
            }
        }
        Ok(())
    }
    fn all_reduce_scalars(&self, values: &mut [f64], op: ReduceOp) -> Result<()> {
        self.host.all_reduce_scalars(values, op)
    }
    fn broadcast(&self, tensors: &mut [Tensor]) -> Result<()> {
        if !self.on_device(tensors) {
            return self.host.broadcast(tensors);
        }
        self.collective(tensors, Some(0))
    }
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()> {
        self.host.broadcast_bytes(bytes)
    }
}
