//! Parameters of a 2-D convolution (cross-correlation, as PyTorch's Conv2d) on NCHW tensors:
//! `x [batch, in_channels, in_h, in_w]`, weight `[out_channels, in_channels, kernel_h, kernel_w]`
//! (spec §0), optional bias `[out_channels]`, zero padding, groups = 1, dilation 1:
//! `y[n,o,oh,ow] = b[o] + sum_{c,i,j} x[n, c, oh*stride_h + i - pad_h, ow*stride_w + j - pad_w]
//! * w[o,c,i,j]`, with `out_h = (in_h + 2*pad_h - kernel_h) / stride_h + 1` (likewise w).
//! Shared by the CPU code (`cpu/ops/conv2d.rs`) and the CUDA launcher.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub batch: u32,
    pub in_channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_channels: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
}

impl Conv2dParams {
    /// Square stride and padding. The caller has checked that the kernel fits the padded input
    /// and `stride >= 1` (see `ops::conv`); `out_h`/`out_w` follow PyTorch's formula.
    #[allow(clippy::too_many_arguments)]
    pub fn new(batch: usize, in_channels: usize, in_hw: (usize, usize), out_channels: usize, kernel: (usize, usize), stride: usize, pad: usize, has_bias: bool) -> Self {
        let out = |len: usize, k: usize| (len + 2 * pad - k) / stride + 1;
        Conv2dParams {
            batch: batch as u32,
            in_channels: in_channels as u32,
            in_h: in_hw.0 as u32,
            in_w: in_hw.1 as u32,
            out_channels: out_channels as u32,
            out_h: out(in_hw.0, kernel.0) as u32,
            out_w: out(in_hw.1, kernel.1) as u32,
            kernel_h: kernel.0 as u32,
            kernel_w: kernel.1 as u32,
            stride_h: stride as u32,
            stride_w: stride as u32,
            pad_h: pad as u32,
            pad_w: pad as u32,
            has_bias: has_bias as u32,
        }
    }
    /// Elements of one input image (`in_channels * in_h * in_w`).
    pub fn in_image_len(&self) -> usize {
        (self.in_channels * self.in_h * self.in_w) as usize
    }
    /// Elements of one output image (`out_channels * out_h * out_w`).
    pub fn out_image_len(&self) -> usize {
        self.out_channels as usize * self.out_plane()
    }
    /// Output positions per channel (`out_h * out_w`): the columns of the im2col matrix.
    pub fn out_plane(&self) -> usize {
        (self.out_h * self.out_w) as usize
    }
    /// Rows of the im2col matrix (`in_channels * kernel_h * kernel_w`): the GEMM's k.
    pub fn col_rows(&self) -> usize {
        (self.in_channels * self.kernel_h * self.kernel_w) as usize
    }
    /// Weight elements (`out_channels * col_rows`).
    pub fn weight_len(&self) -> usize {
        self.out_channels as usize * self.col_rows()
    }
    /// 1x1 kernel, stride 1, no padding: the input image already is the column matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride_h == 1 && self.stride_w == 1 && self.pad_h == 0 && self.pad_w == 0
    }
    /// Multiply-adds of the forward pass (for GFLOP/s reports).
    pub fn macs(&self) -> f64 {
        self.batch as f64 * self.out_image_len() as f64 * self.col_rows() as f64
    }
}
