//! CPU element-wise binary ops with broadcasting, on dense flat slices and the collapsed strided
//! description of `BinaryParams` (see `params/binary.rs`): `out[i] = a[off_a(i)] op b[off_b(i)]`
//! for every row-major index `i` of the output.
//!
//! `binary_ref` unravels every index and computes in f64 (the oracle). `binary_fast` walks the
//! output in rows of the innermost collapsed dim, with an inner loop specialised on the inner
//! strides (both 1 = same-shape; one of them 0 = row-vector / per-channel / per-pixel broadcast),
//! and splits large outputs across threads with rayon. `binary_fast_new` returns a new output
//! without zeroing it first (`out_buf`).

use super::out_buf::{filled_vec, OutElem};
use crate::params::binary::{BinaryOp, BinaryParams};
use rayon::prelude::*;

/// Outputs at least this long are split across threads.
const PAR_MIN: usize = 1 << 15;

/// The op in f32 (what `binary_fast` computes).
#[inline(always)]
fn apply_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        // `a > b || a is NaN` keeps a NaN in either input (b NaN: a > b is false -> b).
        BinaryOp::Maximum => {
            if a > b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a < b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::MaxGradShare => max_grad_share(a, b),
    }
}

/// The op in f64 (the oracle).
pub fn apply_f64(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum => {
            if a > b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::Minimum => {
            if a < b || a.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::MaxGradShare => max_grad_share(a as f32, b as f32) as f64,
    }
}

/// Share of the gradient of `maximum(a, b)` that goes to `a`: ties split evenly (PyTorch).
#[inline(always)]
fn max_grad_share(a: f32, b: f32) -> f32 {
    if a > b {
        1.0
    } else if a == b {
        0.5
    } else {
        0.0
    }
}

/// Offsets into `a` and `b` of the first element of output row `row` (rows = all collapsed dims
/// but the innermost).
#[inline]
fn row_offsets(p: &BinaryParams, row: usize) -> (usize, usize) {
    let r = p.rank();
    let (mut rem, mut oa, mut ob) = (row, 0usize, 0usize);
    for d in (0..r - 1).rev() {
        let n = p.shape[d] as usize;
        let i = rem % n;
        rem /= n;
        oa += i * p.a_strides[d] as usize;
        ob += i * p.b_strides[d] as usize;
    }
    (oa, ob)
}

/// The oracle: every output index unravelled independently, computed in f64.
pub fn binary_ref(p: &BinaryParams, a: &[f32], b: &[f32], out: &mut [f32]) {
    let op = BinaryOp::from_u32(p.op).expect("valid binary op");
    let r = p.rank();
    for (i, o) in out.iter_mut().enumerate() {
        let (mut rem, mut oa, mut ob) = (i, 0usize, 0usize);
        for d in (0..r).rev() {
            let n = p.shape[d] as usize;
            oa += (rem % n) * p.a_strides[d] as usize;
            ob += (rem % n) * p.b_strides[d] as usize;
            rem /= n;
        }
        *o = apply_f64(op, a[oa] as f64, b[ob] as f64) as f32;
    }
}

/// What runs: row-wise with specialised inner loops, rayon over large outputs.
pub fn binary_fast(p: &BinaryParams, a: &[f32], b: &[f32], out: &mut [f32]) {
    binary_into(p, a, b, out);
}

/// `binary_fast` into a new vector of `p.numel()` values, not zeroed first.
pub fn binary_fast_new(p: &BinaryParams, a: &[f32], b: &[f32]) -> Vec<f32> {
    // SAFETY: `run` writes every element of its output (each row of `inner` elements once).
    unsafe { filled_vec(p.numel(), |out| binary_into(p, a, b, out)) }
}

fn binary_into<O: OutElem>(p: &BinaryParams, a: &[f32], b: &[f32], out: &mut [O]) {
    match BinaryOp::from_u32(p.op).expect("valid binary op") {
        BinaryOp::Add => run(p, a, b, out, |x, y| x + y),
        BinaryOp::Sub => run(p, a, b, out, |x, y| x - y),
        BinaryOp::Mul => run(p, a, b, out, |x, y| x * y),
        BinaryOp::Div => run(p, a, b, out, |x, y| x / y),
        op => run(p, a, b, out, move |x, y| apply_f32(op, x, y)),
    }
}

fn run<O: OutElem, F: Fn(f32, f32) -> f32 + Sync + Copy>(
    p: &BinaryParams,
    a: &[f32],
    b: &[f32],
    out: &mut [O],
    f: F,
) {
    let r = p.rank();
    let inner = p.shape[r - 1] as usize;
    let (sa, sb) = (p.a_strides[r - 1] as usize, p.b_strides[r - 1] as usize);
    if inner == 0 || out.is_empty() {
        return;
    }
    // Rows per task: enough work per task to amortise scheduling.
    let rows_per_task = (PAR_MIN / inner).max(1);
    let do_rows = |first_row: usize, chunk: &mut [O]| {
        for (k, row_out) in chunk.chunks_mut(inner).enumerate() {
            let (oa, ob) = row_offsets(p, first_row + k);
            inner_loop(row_out, &a[oa..], &b[ob..], sa, sb, f);
        }
    };
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(t, chunk)| do_rows(t * rows_per_task, chunk));
    } else {
        do_rows(0, out);
    }
}

/// One output row. The three common stride pairs get their own loop so they vectorise.
#[inline(always)]
fn inner_loop<O: OutElem, F: Fn(f32, f32) -> f32>(
    out: &mut [O],
    a: &[f32],
    b: &[f32],
    sa: usize,
    sb: usize,
    f: F,
) {
    let n = out.len();
    match (sa, sb) {
        (1, 1) => out
            .iter_mut()
            .zip(&a[..n])
            .zip(&b[..n])
            .for_each(|((o, &x), &y)| o.put(f(x, y))),
        (1, 0) => {
            let y = b[0];
            out.iter_mut().zip(&a[..n]).for_each(|(o, &x)| o.put(f(x, y)));
        }
        (0, 1) => {
            let x = a[0];
            out.iter_mut().zip(&b[..n]).for_each(|(o, &y)| o.put(f(x, y)));
        }
        _ => out
            .iter_mut()
            .enumerate()
            .for_each(|(i, o)| o.put(f(a[i * sa], b[i * sb]))),
    }
}
