//! Parameters of 2-D max / average pooling over `[planes = N*C, in_h, in_w]` (NCHW) ->
//! `[planes, out_h, out_w]`, PyTorch semantics with `ceil_mode=False`:
//! `out = (in + 2*pad - kernel) / stride + 1`. Padding is -inf for max pooling; for average
//! pooling `count_include_pad` says whether padded zeros count in the divisor (PyTorch default 1).

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pool2dParams {
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
    pub count_include_pad: u32,
}

impl Pool2dParams {
    pub fn in_plane(&self) -> usize {
        (self.in_h * self.in_w) as usize
    }
    pub fn out_plane(&self) -> usize {
        (self.out_h * self.out_w) as usize
    }
    /// Input rows/cols `[start, end)` covered by output position `o` (clipped to the image), and
    /// the unclipped window size used as the divisor when padding counts.
    pub fn window(&self, o: usize, in_len: usize) -> (usize, usize, usize) {
        let start = (o * self.stride as usize) as isize - self.pad as isize;
        let end_padded = (start + self.kernel as isize).min((in_len + self.pad as usize) as isize);
        let lo = start.max(0) as usize;
        let hi = (end_padded.min(in_len as isize)).max(0) as usize;
        (lo, hi, (end_padded - start) as usize)
    }
}
