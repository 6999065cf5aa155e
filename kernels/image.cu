// image.cu: image-shaped f32 kernels on dense NCHW tensors, forward and backward, one thread per
// output element (grid-stride, 256 threads per block). Every backward is a gather: each thread
// owns one element of the input gradient and sums what reaches it, so nothing is written twice,
// no atomics are used and the results are deterministic.
//   patch_unfold_f32(tokens, img, PatchParams)   spec §1.1
//       img [B, C, H, W] -> tokens [B, (H/p)*(W/p), C*p*p]; patches row-major over the grid
//       (l = gy*(W/p) + gx), patch vector channel-major: e = c*p*p + ky*p + kx is pixel
//       (c, gy*p + ky, gx*p + kx). p = 8 in the model (256 x 256 x 3 -> 1024 x 192).
//   patch_fold_f32(img, tokens, PatchParams)     the exact inverse (each is the other's backward)
//   resize_fwd_f32(y, x, ResizeParams)           spec §1.5, §2.4 (masks 256 -> 32/64/128)
//       x [planes, in_h, in_w] -> y [planes, out_h, out_w], PyTorch F.interpolate:
//       nearest: src = min(floor(i * (in/out)), in - 1) with an f32 scale (identity when
//       in == out); bilinear, align_corners=False: s = max((i + 0.5) * (in/out) - 0.5, 0) in f32,
//       i0 = floor(s), i1 = min(i0 + 1, in - 1), weights (1 - (s - i0), s - i0), separable.
//   resize_bwd_f32(dx, g, ResizeParams)
//       dx[iy, ix] = sum over outputs (oy, ox) whose taps touch (iy, ix) of wy * wx * g[oy, ox].
//       The taps are monotone in the output index, so the outputs touching an input index form
//       one range, found by a short search from i * out / in.
//   max_pool_fwd_f32(y, idx, x, Pool2dParams)    (VGG / LPIPS feature extractors, spec §7)
//       y = max over the window (padding never wins), idx = iy * in_w + ix of the FIRST maximum
//       in row-major window order (a NaN wins, the first NaN); PyTorch's ceil_mode=False.
//   max_pool_bwd_f32(dx, idx, g, Pool2dParams)
//       dx[i] = sum of g[o] over outputs o whose window contains i and whose idx[o] == i, in
//       increasing o (the CPU's order). idx must come from max_pool_fwd_f32 (every index inside
//       its own window), as ops/pool.rs guarantees.
//   avg_pool_fwd_f32(y, x, Pool2dParams)         window sum in f64 / divisor (like the CPU)
//   avg_pool_bwd_f32(dx, g, Pool2dParams)
//       dx[i] = sum over windows o containing i of g[o] / divisor(o) in f32, in increasing o:
//       the CPU fast path's order and arithmetic, so the result is bit-identical to it.
//   divisor: the padded window size (count_include_pad = 1) or the valid pixel count (0).
// The three parameter structs mirror params/{patch,resize,pool}.rs field for field.

struct PatchParams {
  unsigned batch, channels, height, width, patch;
};
struct ResizeParams {
  unsigned planes, in_h, in_w, out_h, out_w, mode;
};
struct Pool2dParams {
  unsigned planes, in_h, in_w, out_h, out_w, kernel, stride, pad, count_include_pad;
};

#define IMG_LOOP(i, n) \
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// ---- patches ----

// Image offset of token element (b, l, e).
static __device__ __forceinline__ size_t patch_pixel(const PatchParams& p, unsigned b, unsigned l, unsigned e) {
  const unsigned ps = p.patch, gw = p.width / ps;
  const unsigned gy = l / gw, gx = l - gy * gw;
  const unsigned c = e / (ps * ps), ky = (e / ps) % ps, kx = e % ps;
  return (((size_t)b * p.channels + c) * p.height + gy * ps + ky) * p.width + gx * ps + kx;
}

extern "C" __global__ void patch_unfold_f32(float* __restrict__ tokens, const float* __restrict__ img,
                                            PatchParams p) {
  const unsigned k = p.channels * p.patch * p.patch;
  const unsigned L = (p.height / p.patch) * (p.width / p.patch);
  IMG_LOOP(t, p.batch * L * k) {
    const unsigned e = t % k, bl = t / k;
    tokens[t] = img[patch_pixel(p, bl / L, bl % L, e)];
  }
}

extern "C" __global__ void patch_fold_f32(float* __restrict__ img, const float* __restrict__ tokens,
                                          PatchParams p) {
  const unsigned ps = p.patch, gw = p.width / ps, L = (p.height / ps) * gw;
  const unsigned k = p.channels * ps * ps;
  IMG_LOOP(i, p.batch * p.channels * p.height * p.width) {
    const unsigned x = i % p.width, y = (i / p.width) % p.height;
    const unsigned c = (i / (p.width * p.height)) % p.channels, b = i / (p.width * p.height * p.channels);
    const unsigned l = (y / ps) * gw + x / ps, e = (c * ps + y % ps) * ps + x % ps;
    img[i] = tokens[((size_t)b * L + l) * k + e];
  }
}

// ---- resize ----

struct Taps {
  unsigned i0, i1;
  float l;  // weight of i1; i0 gets 1 - l (nearest: i0 == i1, l == 0)
};

static __device__ __forceinline__ Taps resize_taps(unsigned o, unsigned in, unsigned out, bool nearest) {
  Taps t;
  const float scale = (float)in / (float)out;
  if (nearest) {
    const unsigned s = in == out ? o : min((unsigned)floorf((float)o * scale), in - 1);
    t.i0 = s;
    t.i1 = s;
    t.l = 0.0f;
  } else {
    const float s = fmaxf(((float)o + 0.5f) * scale - 0.5f, 0.0f);
    t.i0 = min((unsigned)s, in - 1);
    t.i1 = min(t.i0 + 1, in - 1);
    t.l = fminf(fmaxf(s - (float)t.i0, 0.0f), 1.0f);
  }
  return t;
}

// Weight of input index i in output o's taps (both taps may be i at the border).
static __device__ __forceinline__ float tap_weight(const Taps& t, unsigned i) {
  return (t.i0 == i ? 1.0f - t.l : 0.0f) + (t.i1 == i ? t.l : 0.0f);
}

// Outputs [lo, hi) whose taps touch input index i.
static __device__ void touching_outputs(unsigned i, unsigned in, unsigned out, bool nearest, unsigned& lo,
                                        unsigned& hi) {
  lo = min((unsigned)(((unsigned long long)i * out) / in), out - 1);
  while (lo > 0 && resize_taps(lo - 1, in, out, nearest).i1 >= i) --lo;
  while (lo < out && resize_taps(lo, in, out, nearest).i1 < i) ++lo;
  hi = lo;
  while (hi < out && resize_taps(hi, in, out, nearest).i0 <= i) ++hi;
}

extern "C" __global__ void resize_fwd_f32(float* __restrict__ y, const float* __restrict__ x, ResizeParams p) {
  const bool nearest = p.mode == 0;
  IMG_LOOP(o, p.planes * p.out_h * p.out_w) {
    const unsigned ox = o % p.out_w, oy = (o / p.out_w) % p.out_h, n = o / (p.out_w * p.out_h);
    const Taps ty = resize_taps(oy, p.in_h, p.out_h, nearest), tx = resize_taps(ox, p.in_w, p.out_w, nearest);
    const float* r0 = x + ((size_t)n * p.in_h + ty.i0) * p.in_w;
    const float* r1 = x + ((size_t)n * p.in_h + ty.i1) * p.in_w;
    if (nearest) {
      y[o] = r0[tx.i0];
    } else {
      const float top = r0[tx.i0] + (r0[tx.i1] - r0[tx.i0]) * tx.l;
      const float bot = r1[tx.i0] + (r1[tx.i1] - r1[tx.i0]) * tx.l;
      y[o] = top + (bot - top) * ty.l;
    }
  }
}

extern "C" __global__ void resize_bwd_f32(float* __restrict__ dx, const float* __restrict__ g, ResizeParams p) {
  const bool nearest = p.mode == 0;
  IMG_LOOP(i, p.planes * p.in_h * p.in_w) {
    const unsigned ix = i % p.in_w, iy = (i / p.in_w) % p.in_h, n = i / (p.in_w * p.in_h);
    unsigned y_lo, y_hi, x_lo, x_hi;
    touching_outputs(iy, p.in_h, p.out_h, nearest, y_lo, y_hi);
    touching_outputs(ix, p.in_w, p.out_w, nearest, x_lo, x_hi);
    float acc = 0.0f;
    for (unsigned oy = y_lo; oy < y_hi; ++oy) {
      const float wy = tap_weight(resize_taps(oy, p.in_h, p.out_h, nearest), iy);
      const float* grow = g + ((size_t)n * p.out_h + oy) * p.out_w;
      float row = 0.0f;
      for (unsigned ox = x_lo; ox < x_hi; ++ox) row += tap_weight(resize_taps(ox, p.in_w, p.out_w, nearest), ix) * grow[ox];
      acc += wy * row;
    }
    dx[i] = acc;
  }
}

// ---- pooling ----

// Input range [lo, hi) of output position o along one axis, and the padded window length.
static __device__ __forceinline__ void pool_window(const Pool2dParams& p, unsigned o, unsigned in, unsigned& lo,
                                                   unsigned& hi, unsigned& padded) {
  const int start = (int)(o * p.stride) - (int)p.pad;
  const int end_padded = min(start + (int)p.kernel, (int)(in + p.pad));
  lo = (unsigned)max(start, 0);
  hi = (unsigned)max(min(end_padded, (int)in), 0);
  padded = (unsigned)(end_padded - start);
}

// Outputs [lo, hi) along one axis whose window contains input index i.
static __device__ __forceinline__ void pool_outputs(const Pool2dParams& p, unsigned i, unsigned out, unsigned& lo,
                                                    unsigned& hi) {
  const unsigned ip = i + p.pad;
  lo = ip < p.kernel ? 0u : (ip - p.kernel) / p.stride + 1;
  hi = min(ip / p.stride + 1, out);
}

static __device__ __forceinline__ float pool_divisor(const Pool2dParams& p, unsigned oy, unsigned ox) {
  unsigned ylo, yhi, ypad, xlo, xhi, xpad;
  pool_window(p, oy, p.in_h, ylo, yhi, ypad);
  pool_window(p, ox, p.in_w, xlo, xhi, xpad);
  return p.count_include_pad ? (float)(ypad * xpad) : (float)((yhi - ylo) * (xhi - xlo));
}

extern "C" __global__ void max_pool_fwd_f32(float* __restrict__ y, unsigned* __restrict__ idx,
                                            const float* __restrict__ x, Pool2dParams p) {
  IMG_LOOP(o, p.planes * p.out_h * p.out_w) {
    const unsigned ox = o % p.out_w, oy = (o / p.out_w) % p.out_h, n = o / (p.out_w * p.out_h);
    unsigned ylo, yhi, ypad, xlo, xhi, xpad;
    pool_window(p, oy, p.in_h, ylo, yhi, ypad);
    pool_window(p, ox, p.in_w, xlo, xhi, xpad);
    const float* xp = x + (size_t)n * p.in_h * p.in_w;
    float best = -FDM_INF;
    unsigned at = ylo * p.in_w + xlo;
    bool found_nan = false;
    for (unsigned iy = ylo; iy < yhi && !found_nan; ++iy)
      for (unsigned ix = xlo; ix < xhi; ++ix) {
        const float v = xp[iy * p.in_w + ix];
        if (v != v) {
          best = v;
          at = iy * p.in_w + ix;
          found_nan = true;
          break;
        }
        if (v > best) {
          best = v;
          at = iy * p.in_w + ix;
        }
      }
    y[o] = best;
    idx[o] = at;
  }
}

extern "C" __global__ void max_pool_bwd_f32(float* __restrict__ dx, const unsigned* __restrict__ idx,
                                            const float* __restrict__ g, Pool2dParams p) {
  IMG_LOOP(i, p.planes * p.in_h * p.in_w) {
    const unsigned ix = i % p.in_w, iy = (i / p.in_w) % p.in_h, n = i / (p.in_w * p.in_h);
    const unsigned me = iy * p.in_w + ix;
    unsigned ylo, yhi, xlo, xhi;
    pool_outputs(p, iy, p.out_h, ylo, yhi);
    pool_outputs(p, ix, p.out_w, xlo, xhi);
    float acc = 0.0f;
    for (unsigned oy = ylo; oy < yhi; ++oy)
      for (unsigned ox = xlo; ox < xhi; ++ox) {
        const size_t o = ((size_t)n * p.out_h + oy) * p.out_w + ox;
        if (idx[o] == me) acc += g[o];
      }
    dx[i] = acc;
  }
}

extern "C" __global__ void avg_pool_fwd_f32(float* __restrict__ y, const float* __restrict__ x, Pool2dParams p) {
  IMG_LOOP(o, p.planes * p.out_h * p.out_w) {
    const unsigned ox = o % p.out_w, oy = (o / p.out_w) % p.out_h, n = o / (p.out_w * p.out_h);
    unsigned ylo, yhi, ypad, xlo, xhi, xpad;
    pool_window(p, oy, p.in_h, ylo, yhi, ypad);
    pool_window(p, ox, p.in_w, xlo, xhi, xpad);
    const float* xp = x + (size_t)n * p.in_h * p.in_w;
    double s = 0.0;
    for (unsigned iy = ylo; iy < yhi; ++iy) {
      double row = 0.0;
      for (unsigned ix = xlo; ix < xhi; ++ix) row += (double)xp[iy * p.in_w + ix];
      s += row;
    }
    y[o] = (float)(s / (double)pool_divisor(p, oy, ox));
  }
}

extern "C" __global__ void avg_pool_bwd_f32(float* __restrict__ dx, const float* __restrict__ g, Pool2dParams p) {
  IMG_LOOP(i, p.planes * p.in_h * p.in_w) {
    const unsigned ix = i % p.in_w, iy = (i / p.in_w) % p.in_h, n = i / (p.in_w * p.in_h);
    unsigned ylo, yhi, xlo, xhi;
    pool_outputs(p, iy, p.out_h, ylo, yhi);
    pool_outputs(p, ix, p.out_w, xlo, xhi);
    float acc = 0.0f;
    for (unsigned oy = ylo; oy < yhi; ++oy)
      for (unsigned ox = xlo; ox < xhi; ++ox)
        acc += g[((size_t)n * p.out_h + oy) * p.out_w + ox] / pool_divisor(p, oy, ox);
    dx[i] = acc;
  }
}
