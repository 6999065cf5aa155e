//! Linear layer on the CPU: `y[rows, out] = x[rows, in] * W^T + b` with PyTorch's weight layout
//! `W [out, in]` and bias `[out]` (spec §0; the transformer's q/k/v/proj/MLP of §3.2 and the
//! encoder MLP of §2.1 at 1024 tokens are the hot callers), and its backward:
//! `dx = g * W` ([rows, out] x [out, in]), `dW = g^T * x` ([out, rows] x [rows, in]),
//! `db = sum over rows of g`.
//! The fast versions are GEMMs with the transposes folded into packing (no copies of W).

use super::gemm::gemm_fast;
use super::out_buf::{filled_vec, OutElem};
use crate::params::gemm::GemmParams;
use crate::params::linear::LinearParams;
use rayon::prelude::*;

/// The oracle: y = x W^T + b with f64 accumulation.
pub fn linear_ref(p: &LinearParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let (rows, inf, outf) = p.dims();
    for r in 0..rows {
        for o in 0..outf {
            let mut s = b.map_or(0.0, |b| b[o] as f64);
            for i in 0..inf {
                s += x[r * inf + i] as f64 * w[o * inf + i] as f64;
            }
            y[r * outf + o] = s as f32;
        }
    }
}

/// The oracle backward: (dx, dW, db) with f64 accumulation.
pub fn linear_backward_ref(p: &LinearParams, x: &[f32], w: &[f32], g: &[f32], dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
    let (rows, inf, outf) = p.dims();
    for r in 0..rows {
        for i in 0..inf {
            dx[r * inf + i] = (0..outf).map(|o| g[r * outf + o] as f64 * w[o * inf + i] as f64).sum::<f64>() as f32;
        }
    }
    for o in 0..outf {
        for i in 0..inf {
            dw[o * inf + i] = (0..rows).map(|r| g[r * outf + o] as f64 * x[r * inf + i] as f64).sum::<f64>() as f32;
        }
        db[o] = (0..rows).map(|r| g[r * outf + o] as f64).sum::<f64>() as f32;
    }
}

/// y = x W^T + b: the bias is written into y first and the GEMM accumulates onto it (beta = 1),
/// so no second pass over y is needed.
pub fn linear_fast(p: &LinearParams, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    let (rows, _, outf) = p.dims();
    let y = &mut y[..rows * outf];
    let beta = match b {
        Some(b) if outf > 0 => {
            y.par_chunks_mut(outf).for_each(|row| row.copy_from_slice(&b[..outf]));
            1.0
        }
        _ => 0.0,
    };
    product_onto(p, x, w, beta, y);
}

/// `linear_fast` into a new vector. With a bias, the bias rows are the buffer's first write, so
/// it is not zeroed first (`out_buf`); without one it is zeroed, as the GEMM's output buffer.
pub fn linear_fast_new(p: &LinearParams, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let (rows, _, outf) = p.dims();
    let Some(b) = b.filter(|_| outf > 0) else {
        let mut y = vec![0f32; rows * outf];
        product_onto(p, x, w, 0.0, &mut y);
        return y;
    };
    let b = &b[..outf];
    // SAFETY: the rows of `outf` elements cover the whole buffer (`rows * outf`), and each is
    // written in full by `copy_in`.
    let mut y = unsafe {
        filled_vec(rows * outf, |y| {
            y.par_chunks_mut(outf).for_each(|row| {
                OutElem::copy_in(row, b);
            })
        })
    };
    product_onto(p, x, w, 1.0, &mut y);
    y
}

/// `y = x W^T + beta y` (beta 0: y is written without being read).
fn product_onto(p: &LinearParams, x: &[f32], w: &[f32], beta: f32, y: &mut [f32]) {
    let (rows, inf, outf) = p.dims();
    gemm_fast(&GemmParams::with_trans(rows, outf, inf, false, true).beta(beta), x, w, y);
}

/// dx[rows, in] = g[rows, out] * W[out, in].
pub fn linear_backward_input_fast(p: &LinearParams, w: &[f32], g: &[f32], dx: &mut [f32]) {
    let (rows, inf, outf) = p.dims();
    gemm_fast(&GemmParams::new(rows, inf, outf), g, w, dx);
}

/// dW[out, in] = g^T[out, rows] * x[rows, in].
pub fn linear_backward_weight_fast(p: &LinearParams, x: &[f32], g: &[f32], dw: &mut [f32]) {
    let (rows, inf, outf) = p.dims();
    gemm_fast(&GemmParams::with_trans(outf, inf, rows, true, false), g, x, dw);
}

/// db[out] = sum over rows of g[rows, out] (f64 partial sums per block of rows, then reduced).
pub fn linear_backward_bias_fast(p: &LinearParams, g: &[f32], db: &mut [f32]) {
    let (rows, _, outf) = p.dims();
    column_sums(g, rows, outf, db);
}

/// Sum of each column of a dense `[rows, cols]` matrix.
pub fn column_sums(g: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    const BLOCK_ROWS: usize = 256;
    if cols == 0 {
        return;
    }
    let zero = || vec![0f64; cols];
    let sums = g[..rows * cols]
        .par_chunks(BLOCK_ROWS * cols)
        .map(|block| {
            let mut s = zero();
            for row in block.chunks_exact(cols) {
                s.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
            }
            s
        })
        .reduce(zero, |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    out[..cols].iter_mut().zip(&sums).for_each(|(o, &s)| *o = s as f32);
}
