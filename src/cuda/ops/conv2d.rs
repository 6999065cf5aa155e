//! Launchers for `kernels/conv2d.cu`: 2-D convolution forward (NCHW input, weight
//! `[out, in, kh, kw]`, optional bias, stride / zero padding / dilation, one group) as an implicit
//! GEMM with 64 x 64 output tiles, the reduction split over several blocks where the tiles alone
//! would leave most of the GPU idle (`conv2d_fwd_k_splits`), or with 128 x 64 tiles
//! (`conv2d_fwd_wide_f32`) on grids with many pixel tiles when `FDM_CONV_WIDE=1`.

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "conv2d";
const TILE: usize = 64;
const THREADS: u32 = 256;
/// The reduction slice of one shared-memory stage (`CONV_BK`).
const K_SLICE: usize = 16;

/// Same layout as `struct Conv2dParams` in kernels/conv2d.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub o: u32,
    pub kh: u32,
    pub kw: u32,
    pub oh: u32,
    pub ow: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub dil_h: u32,
    pub dil_w: u32,
}

impl Conv2dParams {
    /// Input [n, c, h, w], weight [o, c, kh, kw], with (stride, padding, dilation) per axis as
    /// (h, w) pairs; the output size follows PyTorch's formula. Errors on an empty output.
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: (usize, usize),
        pad: (usize, usize),
        dil: (usize, usize),
    ) -> Result<Self> {
        let [n, c, h, w] = input;
        let [o, wc, kh, kw] = weight;
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
            let span = d.checked_mul(k.checked_sub(1)?)? + 1;
            (s > 0 && size + 2 * p >= span).then(|| (size + 2 * p - span) / s + 1)
        };
        let (oh, ow) = match (out(h, kh, stride.0, pad.0, dil.0), out(w, kw, stride.1, pad.1, dil.1)) {
            (Some(a), Some(b)) if wc == c && a > 0 && b > 0 && n > 0 && o > 0 => (a, b),
            _ => return Err(Error::shape("conv2d", format!("input {input:?} with weight {weight:?}, stride {stride:?}, padding {pad:?}, dilation {dil:?}"))),
        };
        u32_arg("conv2d", n * c.max(o) * h.max(oh) * w.max(ow))?;
        let u = |v: usize| v as u32;
        Ok(Conv2dParams {
            n: u(n),
            c: u(c),
            h: u(h),
            w: u(w),
            o: u(o),
            kh: u(kh),
            kw: u(kw),
            oh: u(oh),
            ow: u(ow),
            stride_h: u(stride.0),
            stride_w: u(stride.1),
            pad_h: u(pad.0),
            pad_w: u(pad.1),
            dil_h: u(dil.0),
            dil_w: u(dil.1),
        })
    }
    pub fn input_len(&self) -> usize {
        (self.n * self.c * self.h * self.w) as usize
    }
    pub fn weight_len(&self) -> usize {
        (self.o * self.c * self.kh * self.kw) as usize
    }
    pub fn output_len(&self) -> usize {
        (self.n * self.o * self.oh * self.ow) as usize
    }
}

/// Grid: (pixel tiles, channel tiles).
pub fn conv2d_fwd_launch(y: u64, x: u64, w: u64, bias: u64, p: &Conv2dParams) -> Launch {
    let pixels = (p.n * p.oh * p.ow) as usize;
    let grid = (
        pixels.div_ceil(TILE) as u32,
        (p.o as usize).div_ceil(TILE) as u32,
        1,
    );
    let cfg = LaunchCfg {
        grid,
        block: (THREADS, 1, 1),
        smem_bytes: 0,
    };
    Launch {
        module: MODULE,
        kernel: "conv2d_fwd_f32",
        cfg,
        args: vec![
            KArg::Ptr(y),
            KArg::Ptr(x),
            KArg::Ptr(w),
            KArg::Ptr(bias),
            KArg::pod(p),
        ],
    }
}

/// Set to `1` to run large forwards (`conv2d_fwd_suits_wide`) on the 128-pixel x 64-channel
/// kernel (8 x 8 outputs per thread). Opt-in until a GPU has timed it against the 64 x 64 kernel
/// (`cuda_conv2d_wide_f32_*` benches); both give identical bits.
pub const WIDE_ENV: &str = "FDM_CONV_WIDE";
/// Pixels per block of the wide kernel (`CW_BM`); its channel tile is `TILE`.
const WIDE_PIXELS: usize = 128;
const WIDE_THREADS: u32 = 128;

/// Whether `FDM_CONV_WIDE=1` (read once).
pub fn wide_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(WIDE_ENV).is_ok_and(|v| v == "1"))
}

/// Whether `conv2d_fwd` would take the wide kernel for `p` if asked: where its grid has at least
/// 256 blocks (about two per multiprocessor of a large GPU), so the larger tiles cost no
/// parallelism. The codec's 64-channel convolutions at 256 x 256 have 512 at batch 1; FDM's
/// 256-channel ones at 32 x 32 have 32 and keep the split-K path. The kernel packs a tap's two
/// offsets dil (k - 1) into 16 bits each, so larger ones keep the 64 x 64 kernel.
pub fn conv2d_fwd_suits_wide(p: &Conv2dParams) -> bool {
    let pixels = (p.n * p.oh * p.ow) as usize;
    let offsets_fit = p.dil_h * (p.kh - 1) < 1 << 16 && p.dil_w * (p.kw - 1) < 1 << 16;
    offsets_fit && pixels.div_ceil(WIDE_PIXELS) * (p.o as usize).div_ceil(TILE) >= 256
}

/// Grid: (pixel tiles of 128, channel tiles of 64), 128 threads.
pub fn conv2d_fwd_wide_launch(y: u64, x: u64, w: u64, bias: u64, p: &Conv2dParams) -> Launch {
    let mut launch = conv2d_fwd_launch(y, x, w, bias, p);
    launch.kernel = "conv2d_fwd_wide_f32";
    launch.cfg.grid.0 = ((p.n * p.oh * p.ow) as usize).div_ceil(WIDE_PIXELS) as u32;
    launch.cfg.block = (WIDE_THREADS, 1, 1);
    launch
}

/// Reduction splits for the forward of `p`: 1 where the output tiles already make ~128 blocks;
/// otherwise enough for ~256 blocks, at most 8 and never fewer than 8 slices of 16 per split.
/// At batch 1, FDM's and the decoder's 256-channel 3 x 3 convolutions at 32 x 32 have 64 output
/// tiles, each a 2304-long reduction: 4 splits.
pub fn conv2d_fwd_k_splits(p: &Conv2dParams) -> usize {
    let pixels = (p.n * p.oh * p.ow) as usize;
    let blocks = pixels.div_ceil(TILE) * (p.o as usize).div_ceil(TILE);
    let slices = ((p.c * p.kh * p.kw) as usize).div_ceil(K_SLICE);
    if blocks >= 128 {
        return 1;
    }
    256usize.div_ceil(blocks).min(8).min(slices / 8).max(1)
}

/// The two launches of the split-K forward (`splits` >= 2, at most one per 16-long slice of the
/// reduction): each split's partial output into `part` (`splits * output_len` floats), then
/// their sum in split order plus the bias into `y`.
pub fn conv2d_fwd_split_launches(y: u64, part: u64, x: u64, w: u64, bias: u64, p: &Conv2dParams, splits: usize) -> [Launch; 2] {
    let mut split = conv2d_fwd_launch(part, x, w, 0, p);
    split.kernel = "conv2d_fwd_splitk_f32";
    split.cfg.grid.2 = splits as u32;
    split.args = vec![KArg::Ptr(part), KArg::Ptr(x), KArg::Ptr(w), KArg::pod(p), KArg::U32(splits as u32)];
    let sum = Launch {
        module: MODULE,
        kernel: "conv2d_splitk_sum_f32",
        cfg: LaunchCfg::for_elements(p.output_len(), 256, 4096),
        args: vec![KArg::Ptr(y), KArg::Ptr(part), KArg::Ptr(bias), KArg::pod(p), KArg::U32(splits as u32)],
    };
    [split, sum]
}

pub fn conv2d_fwd(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    p: &Conv2dParams,
) -> Result<CudaStorage> {
    check_f32("conv2d", x, p.input_len())?;
    check_f32("conv2d", w, p.weight_len())?;
    if let Some(b) = bias {
        check_f32("conv2d", b, p.o as usize)?;
    }
    let dev = x.device();
    let y = dev.alloc(DType::F32, p.output_len())?;
    let (yp, xp, wp, bp) = (device_ptr(&y, 0), device_ptr(x, 0), device_ptr(w, 0), bias.map_or(0, |b| device_ptr(b, 0)));
    let splits = conv2d_fwd_k_splits(p);
    if splits == 1 {
        let launch = if wide_requested() && conv2d_fwd_suits_wide(p) { conv2d_fwd_wide_launch } else { conv2d_fwd_launch };
        run_on_device(dev, &launch(yp, xp, wp, bp, p))?;
        return Ok(y);
    }
    u32_arg("conv2d partials", splits * p.output_len())?;
    let part = dev.alloc(DType::F32, splits * p.output_len())?;
    for launch in conv2d_fwd_split_launches(yp, device_ptr(&part, 0), xp, wp, bp, p, splits) {
        run_on_device(dev, &launch)?;
    }
    Ok(y)
}
