//! Tensor-level dual-codebook quantizer pieces (spec §2.3): nearest code per row of z
//! `[N, D]` against the codebook `[K, D]` with a u32 half selector `[N]` per row (see
//! `params::codebook`), giving u32 indices `[N]`; and the EMA codebook update from the
//! assignments (statistics, then the decay / Laplace-smoothing step).
//! On a CUDA device the statistics come from `cuda::ops::optim::codebook_assignment_stats` and the
//! EMA step from `codebook_ema_apply`, which updates its buffers in place: the op updates fresh
//! device copies and returns them, so the `CodebookEma` it was given is unchanged (as on the CPU).

use super::argcheck::{expect_f32, expect_rank, expect_same_device, expect_u32};
use super::optim::device_copy;
use crate::cpu::ops::codebook as cpu;
use crate::cuda::ops::codebook as cuda;
use crate::cuda::ops::optim as cuda_optim;
use crate::error::{Error, Result};
use crate::params::codebook::{CodebookEmaParams, CodebookParams, CODEBOOK_ALL};
use crate::storage::Storage;
use crate::tensor::Tensor;

fn check_z_codebook(op: &'static str, z: &Tensor, codebook: &Tensor) -> Result<CodebookParams> {
    expect_f32(op, z)?;
    expect_f32(op, codebook)?;
    expect_rank(op, "z", z, 2)?;
    expect_rank(op, "codebook", codebook, 2)?;
    if z.shape()[1] != codebook.shape()[1] {
        return Err(Error::shape(
            op,
            format!(
                "z {:?} and codebook {:?} differ in dim",
                z.shape(),
                codebook.shape()
            ),
        ));
    }
    if codebook.shape()[0] == 0 {
        return Err(Error::shape(op, "the codebook has no code"));
    }
    expect_same_device(op, &[z, codebook])?;
    Ok(CodebookParams {
        n: z.shape()[0] as u32,
        codes: codebook.shape()[0] as u32,
        dim: z.shape()[1] as u32,
    })
}

/// Index of the nearest code (squared Euclidean distance) within each row's half; ties go to
/// the lowest index. `half` is a u32 tensor `[N]` on z's device; on CUDA it is read back to the
/// host to find the ranges (use `codebook_argmin_halves` where the selectors are host data).
pub fn codebook_argmin(z: &Tensor, codebook: &Tensor, half: &Tensor) -> Result<Tensor> {
    const OP: &str = "codebook_argmin";
    check_z_codebook(OP, z, codebook)?;
    expect_u32(OP, half)?;
    expect_same_device(OP, &[z, half])?;
    if half.rank() != 1 {
        return Err(Error::shape(OP, format!("half selector {:?} must be [{}], one per row of z", half.shape(), z.shape()[0])));
    }
    let half = half.contiguous()?;
    match half.storage() {
        Storage::Cpu(_) => codebook_argmin_halves(z, codebook, half.cpu_u32()?),
        Storage::Cuda(_) => codebook_argmin_halves(z, codebook, &half.to_vec_u32()?),
    }
}

/// `codebook_argmin` with the half selectors (one per row of z, `params::codebook`) given as
/// host data, as the quantizer has them: on CUDA the ranges are found on the host and only the
/// rows' first codes are uploaded, with no read-back before the search.
pub fn codebook_argmin_halves(z: &Tensor, codebook: &Tensor, half: &[u32]) -> Result<Tensor> {
    const OP: &str = "codebook_argmin";
    let p = check_z_codebook(OP, z, codebook)?;
    if half.len() != p.n as usize {
        return Err(Error::shape(OP, format!("{} half selectors for {} rows of z", half.len(), p.n)));
    }
    let (z, codebook) = (z.contiguous()?, codebook.contiguous()?);
    match z.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0u32; p.n as usize];
            cpu::codebook_argmin_fast(&p, z.cpu_f32()?, codebook.cpu_f32()?, half, &mut out)?;
            Tensor::from_u32(out, &[p.n as usize])
        }
        Storage::Cuda(_) => {
            let (offsets, span) = row_offsets(&p, half)?;
            let shape = cuda::ArgminShape { n: p.n as usize, k: p.codes as usize, d: p.dim as usize, span };
            // Rows that all start at code 0 need no offsets on the device (and no upload).
            let offsets = if offsets.iter().any(|&o| o != 0) { Some(Tensor::from_u32(offsets, &[p.n as usize])?.to_device(&z.device())?) } else { None };
            let offsets = offsets.as_ref().map(|o| o.cuda_dense()).transpose()?;
            let (idx, _) = cuda::codebook_argmin(z.cuda_dense()?, codebook.cuda_dense()?, offsets, shape)?;
            Tensor::from_cuda(idx, &[p.n as usize])
        }
    }
}

/// The first code of every row's range and the one span they share, for the CUDA kernel; rows
/// whose ranges differ in length in one call are an error.
fn row_offsets(p: &CodebookParams, half: &[u32]) -> Result<(Vec<u32>, usize)> {
    let ranges = cpu::ranges(p, half)?;
    let span = ranges.first().map_or(p.codes as usize, |r| r.1 - r.0);
    if let Some((i, r)) = ranges.iter().enumerate().find(|(_, r)| r.1 - r.0 != span) {
        return Err(Error::shape(
            "codebook_argmin",
            format!("row {i} searches {} codes but row 0 searches {span}: one call takes one range length on CUDA", r.1 - r.0),
        ));
    }
    Ok((ranges.iter().map(|r| r.0 as u32).collect(), span))
}

/// Nearest code over the whole codebook (the quantizer called without a token-type map).
pub fn codebook_argmin_all(z: &Tensor, codebook: &Tensor) -> Result<Tensor> {
    let n = if z.rank() == 2 { z.shape()[0] } else { 0 };
    codebook_argmin_halves(z, codebook, &vec![CODEBOOK_ALL; n])
}

/// Assignment statistics for the EMA update: (counts `[K]`, sums of assigned rows `[K, D]`).
/// On several GPUs both are all-reduced (sum) before `codebook_ema_apply`.
pub fn codebook_assignment_stats(
    z: &Tensor,
    idx: &Tensor,
    codes: usize,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "codebook_assignment_stats";
    expect_f32(OP, z)?;
    expect_rank(OP, "z", z, 2)?;
    expect_u32(OP, idx)?;
    if idx.shape() != [z.shape()[0]] {
        return Err(Error::shape(
            OP,
            format!(
                "indices {:?} must be [{}], one per row of z",
                idx.shape(),
                z.shape()[0]
            ),
        ));
    }
    expect_same_device(OP, &[z, idx])?;
    let p = CodebookParams {
        n: z.shape()[0] as u32,
        codes: codes as u32,
        dim: z.shape()[1] as u32,
    };
    let (z, idx) = (z.contiguous()?, idx.contiguous()?);
    match z.storage() {
        Storage::Cpu(_) => {
            let d = p.dim as usize;
            let (mut counts, mut sums) = (vec![0f32; codes], vec![0f32; codes * d]);
            cpu::codebook_assignment_stats(
                &p,
                z.cpu_f32()?,
                idx.cpu_u32()?,
                &mut counts,
                &mut sums,
            )?;
            Ok((
                Tensor::from_vec(counts, &[codes])?,
                Tensor::from_vec(sums, &[codes, d])?,
            ))
        }
        Storage::Cuda(_) => {
            let (counts, sums) =
                cuda_optim::codebook_assignment_stats(z.cuda_dense()?, idx.cuda_dense()?, &p)?;
            Ok((
                Tensor::from_cuda(counts, &[codes])?,
                Tensor::from_cuda(sums, &[codes, p.dim as usize])?,
            ))
        }
    }
}

/// The quantizer's EMA buffers (spec §2.3).
#[derive(Clone, Debug)]
pub struct CodebookEma {
    /// `[K]`, init 0.
    pub cluster_size: Tensor,
    /// `[K, D]`, init = a copy of the embedding.
    pub embedding_avg: Tensor,
    /// `[K, D]`, the codebook.
    pub embedding: Tensor,
}

/// One EMA step from (all-reduced) statistics; returns the updated buffers.
pub fn codebook_ema_apply(
    state: &CodebookEma,
    counts: &Tensor,
    sums: &Tensor,
    decay: f32,
    eps: f32,
) -> Result<CodebookEma> {
    const OP: &str = "codebook_ema_apply";
    let e = &state.embedding;
    expect_rank(OP, "embedding", e, 2)?;
    let (k, d) = (e.shape()[0], e.shape()[1]);
    for (name, t, shape) in [
        ("cluster_size", &state.cluster_size, vec![k]),
        ("embedding_avg", &state.embedding_avg, vec![k, d]),
        ("counts", counts, vec![k]),
        ("sums", sums, vec![k, d]),
    ] {
        expect_f32(OP, t)?;
        if t.shape() != shape.as_slice() {
            return Err(Error::shape(
                OP,
                format!("{name} {:?} must be {shape:?}", t.shape()),
            ));
        }
    }
    expect_same_device(
        OP,
        &[e, &state.cluster_size, &state.embedding_avg, counts, sums],
    )?;
    let p = CodebookEmaParams {
        codes: k as u32,
        dim: d as u32,
        decay,
        eps,
    };
    match e.storage() {
        Storage::Cpu(_) => {
            let (mut cs, mut avg, mut emb) = (
                state.cluster_size.to_vec_f32()?,
                state.embedding_avg.to_vec_f32()?,
                e.to_vec_f32()?,
            );
            let (counts, sums) = (counts.contiguous()?, sums.contiguous()?);
            cpu::codebook_ema_apply(
                &p,
                counts.cpu_f32()?,
                sums.cpu_f32()?,
                &mut cs,
                &mut avg,
                &mut emb,
            );
            Ok(CodebookEma {
                cluster_size: Tensor::from_vec(cs, &[k])?,
                embedding_avg: Tensor::from_vec(avg, &[k, d])?,
                embedding: Tensor::from_vec(emb, &[k, d])?,
            })
        }
        Storage::Cuda(_) => {
            let (cs, avg, emb) = (
                device_copy(&state.cluster_size)?,
                device_copy(&state.embedding_avg)?,
                device_copy(e)?,
            );
            let (counts, sums) = (counts.contiguous()?, sums.contiguous()?);
            cuda_optim::codebook_ema_apply(
                cs.cuda_dense()?,
                avg.cuda_dense()?,
                emb.cuda_dense()?,
                counts.cuda_dense()?,
                sums.cuda_dense()?,
                &p,
            )?;
            Ok(CodebookEma {
                cluster_size: cs,
                embedding_avg: avg,
                embedding: emb,
            })
        }
    }
}
