//! Data-parallel training: the communicator every rank talks through, and the few collective
//! steps the trainer takes with it (what the official code's `DistributedDataParallel` does,
//! spec §6.0, §2.3).
//!
//! A run of `world` ranks trains on one global batch per step, exactly as a single process with
//! that batch would: rank r takes items `[r B / world, (r + 1) B / world)` of the step's batch
//! (`data::BatchSource::shard`), computes its loss and gradients on them, and before every
//! optimiser update the gradients are averaged over the ranks (`reduce_grads`), so every rank
//! applies the same update and the replicas stay identical. Other cross-sample state:
//! * the EMA codebook statistics of phase 1a (assignment counts and summed rows) are summed over
//!   the ranks before the update, as the official quantizer all-reduces them (spec §2.3);
//! * the spectral-norm vectors of the discriminator are updated by a power iteration that reads
//!   only the weights and the vectors, which are identical on every rank, so every rank computes
//!   the same vectors (DDP broadcasts rank 0's buffers; the result is the same);
//! * the phase-1b random quantisation draws one number per position of the **global** batch on
//!   every rank and uses its shard's slice, so the draws match a single process;
//! * logged loss values are averaged over the ranks (counts such as `masked_positions` summed);
//!   the NaN guard looks at the averaged loss, so a NaN on any rank stops every rank at the same
//!   point, before any update.
//!
//! Where DDP differs from one process on the global batch: a loss normalised by something that
//! depends on the shard (the hole fraction of L1n in phases 1a / 3, the number of masked
//! positions of the phase-1b cross-entropy) is normalised per rank and the per-rank gradients
//! are then averaged; that is what DDP computes, and it equals the single-process loss only when
//! every shard has the same normaliser. Losses that are plain means over equally sized shards
//! (phase 2's L_qe, the BCE and commitment terms) are the same up to rounding.
//!
//! Transports: `SingleRank` (world 1, what a plain `fdm train` uses), `dist_tcp` (several
//! processes or threads on one machine over 127.0.0.1; CPU or CUDA tensors through host copies)
//! and `dist_nccl` (NCCL on CUDA devices, one process per GPU).

use super::trainer::Trainer;
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;
use std::sync::Arc;

/// How a collective combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size.
    Mean,
}

/// The group of ranks a training process belongs to. Every rank must call the same collectives
/// in the same order with the same sizes; a rank that fails or leaves makes the others' next
/// collective return an error (never a hang).
pub trait Communicator: Send + Sync {
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// Replace every tensor by its elementwise reduction over the ranks. The result is identical
    /// on every rank (the transport fixes the summation order) and stays on each tensor's device.
    fn all_reduce(&self, tensors: &mut [Tensor], op: ReduceOp) -> Result<()>;
    /// Reduce host scalars (loss values, flags); the result is identical on every rank.
    fn all_reduce_scalars(&self, values: &mut [f64], op: ReduceOp) -> Result<()>;
    /// Replace every tensor by rank 0's (same shapes on every rank).
    fn broadcast(&self, tensors: &mut [Tensor]) -> Result<()>;
    /// Replace `bytes` by rank 0's bytes (any length on the other ranks).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) -> Result<()>;
    /// Wait until every rank has arrived.
    fn barrier(&self) -> Result<()> {
        self.all_reduce_scalars(&mut [], ReduceOp::Sum)
    }
}

/// A group of one: every collective is the identity. A plain `fdm train` trains with it, so the
/// data-parallel code path runs in every single-process training test.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleRank;

impl Communicator for SingleRank {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn all_reduce(&self, _: &mut [Tensor], _: ReduceOp) -> Result<()> {
        Ok(())
    }
    fn all_reduce_scalars(&self, _: &mut [f64], _: ReduceOp) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _: &mut [Tensor]) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, _: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// The communicator of a single-process run.
pub fn single() -> Arc<dyn Communicator> {
    Arc::new(SingleRank)
}

/// Items `[lo, hi)` of a global batch of `batch` that rank `rank` of `world` trains on; an error
/// when the batch does not split evenly (every rank must see the same number of samples, or the
/// mean of the per-rank means would not be the mean over the batch).
pub fn shard_range(batch: usize, rank: usize, world: usize) -> Result<(usize, usize)> {
    if world == 0 || rank >= world {
        return Err(Error::msg(format!("rank {rank} of a group of {world}")));
    }
    if batch % world != 0 {
        return Err(Error::msg(format!(
            "the global batch of {batch} does not split over {world} ranks: it must be a multiple of the number of ranks (--batch)"
        )));
    }
    let per = batch / world;
    Ok((rank * per, (rank + 1) * per))
}

/// Average the gradients of one optimiser over the ranks (in place; `None` entries, parameters
/// the loss did not reach, are skipped and must be `None` on every rank).
pub fn reduce_grads(comm: &dyn Communicator, grads: &mut [Option<Tensor>]) -> Result<()> {
    if comm.world() == 1 {
        return Ok(());
    }
    let mut present: Vec<Tensor> = grads.iter().flatten().cloned().collect();
    comm.all_reduce(&mut present, ReduceOp::Mean)?;
    let mut reduced = present.into_iter();
    for g in grads.iter_mut().flatten() {
        *g = reduced
            .next()
            .expect("one reduced tensor per present gradient");
    }
    Ok(())
}

/// The mean of one loss value over the ranks (NaN on any rank gives NaN everywhere).
pub fn mean_scalar(comm: &dyn Communicator, value: f32) -> Result<f32> {
    if comm.world() == 1 {
        return Ok(value);
    }
    let mut v = [value as f64];
    comm.all_reduce_scalars(&mut v, ReduceOp::Mean)?;
    Ok(v[0] as f32)
}

/// Whether any rank raised its flag (so every rank takes the same branch, e.g. to stop).
pub fn any(comm: &dyn Communicator, flag: bool) -> Result<bool> {
    if comm.world() == 1 {
        return Ok(flag);
    }
    let mut v = [if flag { 1.0 } else { 0.0 }];
    comm.all_reduce_scalars(&mut v, ReduceOp::Sum)?;
    Ok(v[0] > 0.0)
}

/// Loss terms that are counts over the batch (summed over the ranks); the others are averaged.
const SUMMED_TERMS: [&str; 1] = ["masked_positions"];

/// Combine one step's logged terms over the ranks in one collective.
pub fn reduce_terms(comm: &dyn Communicator, terms: &mut [(&'static str, f32)]) -> Result<()> {
    if comm.world() == 1 {
        return Ok(());
    }
    let mut v: Vec<f64> = terms.iter().map(|(_, x)| *x as f64).collect();
    comm.all_reduce_scalars(&mut v, ReduceOp::Sum)?;
    let world = comm.world() as f64;
    for ((name, x), sum) in terms.iter_mut().zip(v) {
        *x = if SUMMED_TERMS.contains(name) {
            sum
        } else {
            sum / world
        } as f32;
    }
    Ok(())
}

/// The rows of every rank stacked in rank order (`rows` is this rank's `n x c`; every rank has
/// the same `n`): an all-gather made of one sum, each rank contributing its rows at its offset
/// and zeros elsewhere. Adding zeros is exact, so the result is bit-identical to the rows a
/// single process would have computed for the global batch (rank order = batch order).
pub fn all_gather_rows(comm: &dyn Communicator, rows: &Tensor) -> Result<Tensor> {
    let (world, rank) = (comm.world(), comm.rank());
    if world == 1 {
        return Ok(rows.clone());
    }
    let (n, c) = (rows.shape()[0], rows.shape()[1]);
    let device = rows.device();
    let zeros = |k: usize| Tensor::zeros(&[k * n, c]).to_device(&device);
    let (before, after) = (zeros(rank)?, zeros(world - rank - 1)?);
    let parts: Vec<&Tensor> = [&before, rows, &after]
        .into_iter()
        .filter(|t| t.shape()[0] > 0)
        .collect();
    let mut all = [ops::concat::concat(&parts, 0)?];
    comm.all_reduce(&mut all, ReduceOp::Sum)?;
    let [all] = all;
    Ok(all)
}

/// Start of a data-parallel run: every rank must hold rank 0's configuration and step (an error
/// naming the difference otherwise), and the model and discriminator tensors are replaced by
/// rank 0's (as DDP broadcasts the module's parameters and buffers when it is built), so the
/// replicas start identical even if a rank loaded different weights.
pub fn sync_start(tr: &mut Trainer) -> Result<()> {
    let comm = tr.comm.clone();
    if comm.world() == 1 {
        return Ok(());
    }
    let mine = format!("step {}\n{}", tr.step, tr.cfg.to_json());
    let mut lead = mine.clone().into_bytes();
    comm.broadcast_bytes(&mut lead)?;
    if lead != mine.as_bytes() {
        return Err(Error::msg(format!(
            "rank {} does not start from rank 0's configuration and step (rank 0: {}; this rank: {})",
            comm.rank(),
            String::from_utf8_lossy(&lead).lines().next().unwrap_or(""),
            mine.lines().next().unwrap_or("")
        )));
    }
    broadcast_store(&*comm, &mut tr.model.store)?;
    if let Some(d) = tr.disc.as_mut() {
        broadcast_store(&*comm, &mut d.store)?;
    }
    Ok(())
}

fn broadcast_store(comm: &dyn Communicator, store: &mut crate::nn::ParamStore) -> Result<()> {
    let ids: Vec<_> = store.iter().map(|(id, _, _)| id).collect();
    let mut values: Vec<Tensor> = ids.iter().map(|&id| store.get(id).clone()).collect();
    comm.broadcast(&mut values)?;
    for (id, v) in ids.into_iter().zip(values) {
        store.set(id, v)?;
    }
    Ok(())
}

/// Host copies of `tensors` (f32 only) concatenated, with each one's length: what the host
/// transport sends. One message per collective instead of one per tensor.
pub fn flatten_f32(tensors: &[Tensor]) -> Result<(Vec<f32>, Vec<usize>)> {
    let mut flat = Vec::with_capacity(tensors.iter().map(|t| t.numel()).sum());
    let mut lens = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.dtype() != crate::dtype::DType::F32 {
            return Err(Error::DType {
                op: "all_reduce",
                dtype: t.dtype(),
            });
        }
        let v = t.to_vec_f32()?;
        lens.push(v.len());
        flat.extend_from_slice(&v);
    }
    Ok((flat, lens))
}

/// The inverse of `flatten_f32`: each tensor replaced by its slice of `flat`, with its shape, on
/// its own device.
pub fn unflatten_f32(tensors: &mut [Tensor], flat: &[f32]) -> Result<()> {
    let mut offset = 0;
    for t in tensors.iter_mut() {
        let n = t.numel();
        let host = Tensor::from_vec(flat[offset..offset + n].to_vec(), t.shape())?;
        *t = host.to_device(&t.device())?;
        offset += n;
    }
    Ok(())
}
