//! Plain reference loops for the CUDA kernels' semantics (f64 accumulation for long sums).
//! They will be replaced by the CPU backend's `x_ref` functions once those land.
#![allow(dead_code)]

/// Softmax over the last dim of [rows, cols].
pub fn softmax_ref(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = ((row[c] as f64 - m).exp() / s) as f32;
        }
    }
    y
}

/// dx = y * (dy - sum(dy * y)) per row.
pub fn softmax_bwd_ref(y: &[f32], dy: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dx = vec![0.0f32; rows * cols];
    for r in 0..rows {
        let base = r * cols;
        let dot: f64 = (0..cols)
            .map(|c| dy[base + c] as f64 * y[base + c] as f64)
            .sum();
        for c in 0..cols {
            dx[base + c] = (y[base + c] as f64 * (dy[base + c] as f64 - dot)) as f32;
        }
    }
    dx
}

/// LayerNorm forward: (y, mean, rstd) with the biased variance.
pub fn layernorm_ref(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    rows: usize,
    cols: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut y, mut means, mut rstds) = (
        vec![0.0f32; rows * cols],
        vec![0.0f32; rows],
        vec![0.0f32; rows],
    );
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for c in 0..cols {
            let mut h = (row[c] as f64 - mean) * rstd;
            if let Some(g) = gamma {
                h *= g[c] as f64;
            }
            if let Some(b) = beta {
                h += b[c] as f64;
            }
            y[r * cols + c] = h as f32;
        }
        means[r] = mean as f32;
        rstds[r] = rstd as f32;
    }
    (y, means, rstds)
}

/// LayerNorm backward: (dx, dgamma, dbeta) given the forward input and its (mean, rstd).
pub fn layernorm_bwd_ref(
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gamma: Option<&[f32]>,
    rows: usize,
    cols: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0f32; rows * cols];
    let (mut dgamma, mut dbeta) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for r in 0..rows {
        let base = r * cols;
        let (mu, rs) = (mean[r] as f64, rstd[r] as f64);
        let xhat: Vec<f64> = (0..cols).map(|c| (x[base + c] as f64 - mu) * rs).collect();
        let g: Vec<f64> = (0..cols)
            .map(|c| dy[base + c] as f64 * gamma.map_or(1.0, |g| g[c] as f64))
            .collect();
        let mean_g = g.iter().sum::<f64>() / cols as f64;
        let mean_gx = g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / cols as f64;
        for c in 0..cols {
            dx[base + c] = (rs * (g[c] - mean_g - xhat[c] * mean_gx)) as f32;
            dgamma[c] += dy[base + c] as f64 * xhat[c];
            dbeta[c] += dy[base + c] as f64;
        }
    }
    (
        dx,
        dgamma.iter().map(|&v| v as f32).collect(),
        dbeta.iter().map(|&v| v as f32).collect(),
    )
}

/// Squared distances in f64 from row r of z [n, d] to every code of a [k, d] codebook.
pub fn sq_dists_ref(z: &[f32], codebook: &[f32], r: usize, k: usize, d: usize) -> Vec<f64> {
    (0..k)
        .map(|c| {
            (0..d)
                .map(|j| (z[r * d + j] as f64 - codebook[c * d + j] as f64).powi(2))
                .sum()
        })
        .collect()
}

/// The marker for "no position / no token" of the sampling kernels.
pub const NONE: u32 = u32::MAX;

/// Max of each row of [rows, cols].
pub fn row_max_ref(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows)
        .map(|r| {
            x[r * cols..(r + 1) * cols]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        })
        .collect()
}

/// Per image: the n unknown positions with the largest score (ties: lowest position), padded
/// with NONE.
pub fn select_positions_ref(
    score: &[f32],
    known: &[u32],
    b: usize,
    l: usize,
    n: usize,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(b * n);
    for img in 0..b {
        let mut cand: Vec<usize> = (0..l).filter(|&p| known[img * l + p] == 0).collect();
        cand.sort_by(|&p, &q| {
            score[img * l + q]
                .total_cmp(&score[img * l + p])
                .then(p.cmp(&q))
        });
        out.extend((0..n).map(|j| cand.get(j).map_or(NONE, |&p| p as u32)));
    }
    out
}

/// Top-k draw from one row of logits by inverse CDF with the uniform u (f64 weights), over the
/// kept classes in class-index order (the CPU sampler's convention, `cpu::ops::sampling`).
/// Returns (class, margin): margin is how far u * total lies from the nearest boundary between
/// candidates, relative to the total; a kernel with other rounding may pick a neighbour only when
/// the margin is within it.
pub fn topk_sample_ref(row: &[f32], k: usize, temperature: f32, u: f32) -> (u32, f64) {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    order.truncate(k);
    let top = row[order[0]] as f64;
    order.sort_unstable();
    let w: Vec<f64> = order
        .iter()
        .map(|&c| ((row[c] as f64 - top) / temperature as f64).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let target = u as f64 * total;
    let (mut run, mut margin) = (0.0, f64::INFINITY);
    let mut pick = None;
    for (r, &wr) in w.iter().enumerate() {
        run += wr;
        margin = margin.min((run - target).abs() / total);
        if pick.is_none() && target < run {
            pick = Some(r);
        }
    }
    let last_live = w.iter().rposition(|&x| x > 0.0).unwrap_or(0);
    (order[pick.unwrap_or(last_live)] as u32, margin)
}

/// C[m, n] = alpha * sum_k A(m, k) * B(n, k) (+ bias[n]) (+ beta * c0[m, n]) in f64, with the
/// operands given as element accessors.
pub fn gemm_ref(
    m: usize,
    n: usize,
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    b: impl Fn(usize, usize) -> f32,
) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a(i, p) as f64 * b(j, p) as f64).sum();
        }
    }
    c
}

/// Direct 2-D convolution in f64: x [n,c,h,w], w [o,c,kh,kw], zero padding; returns
/// [n,o,oh,ow] given the output size. Only output channels that are multiples of `o_step` are
/// computed (the others are NaN), so large shapes can be spot-checked quickly.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_ref(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    input: [usize; 4],
    weight: [usize; 4],
    out_hw: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    o_step: usize,
) -> Vec<f32> {
    let [n, c, h, wd] = input;
    let [o, _, kh, kw] = weight;
    let (oh, ow) = out_hw;
    let mut y = vec![f32::NAN; n * o * oh * ow];
    for ni in 0..n {
        for oi in (0..o).step_by(o_step) {
            for y0 in 0..oh {
                for x0 in 0..ow {
                    let mut s = bias.map_or(0.0, |b| b[oi] as f64);
                    for ci in 0..c {
                        for a in 0..kh {
                            for b in 0..kw {
                                let ih = (y0 * stride.0 + a * dil.0) as isize - pad.0 as isize;
                                let iw = (x0 * stride.1 + b * dil.1) as isize - pad.1 as isize;
                                if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < wd {
                                    s += x[((ni * c + ci) * h + ih as usize) * wd + iw as usize]
                                        as f64
                                        * w[((oi * c + ci) * kh + a) * kw + b] as f64;
                                }
                            }
                        }
                    }
                    y[((ni * o + oi) * oh + y0) * ow + x0] = s as f32;
                }
            }
        }
    }
    y
}

/// Dense q, k, v of `rows` rows of `w` as one buffer whose rows are [q | k | v] (the layout of
/// the fused query/key/value projection).
#[allow(dead_code)]
pub fn fuse_qkv_rows(q: &[f32], k: &[f32], v: &[f32], rows: usize, w: usize) -> Vec<f32> {
    (0..rows).flat_map(|r| [q, k, v].into_iter().flat_map(move |x| x[r * w..(r + 1) * w].iter().copied())).collect()
}

/// Multi-head attention in f64 for one (batch, head, query) of dense [B, L, H*D] q, k, v:
/// returns (output row of D values, log-sum-exp of the scaled scores).
#[allow(clippy::too_many_arguments)]
pub fn attention_row_ref(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    l: usize,
    h: usize,
    d: usize,
    bi: usize,
    hi: usize,
    qi: usize,
) -> (Vec<f32>, f32) {
    let at = |x: &[f32], t: usize, c: usize| x[(bi * l + t) * h * d + hi * d + c] as f64;
    let scale = 1.0 / (d as f64).sqrt();
    let s: Vec<f64> = (0..l)
        .map(|j| (0..d).map(|c| at(q, qi, c) * at(k, j, c)).sum::<f64>() * scale)
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
    let out = (0..d)
        .map(|c| {
            (0..l)
                .map(|j| (s[j] - m).exp() / z * at(v, j, c))
                .sum::<f64>() as f32
        })
        .collect();
    (out, (m + z.ln()) as f32)
}
