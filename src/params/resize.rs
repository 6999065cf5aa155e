//! Parameters of 2-D resizing of `[planes = N*C, in_h, in_w]` -> `[planes, out_h, out_w]`, with
//! PyTorch `F.interpolate` semantics: `mode='nearest'` (source index `floor(i * in/out)`, the
//! top-left pixel of each block when downsampling, spec §1.5) or `mode='bilinear',
//! align_corners=False` (no antialias).

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest = 0,
    Bilinear = 1,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ResizeParams {
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub mode: u32,
}

impl ResizeParams {
    pub fn new(
        mode: ResizeMode,
        planes: usize,
        in_hw: (usize, usize),
        out_hw: (usize, usize),
    ) -> Self {
        ResizeParams {
            planes: planes as u32,
            in_h: in_hw.0 as u32,
            in_w: in_hw.1 as u32,
            out_h: out_hw.0 as u32,
            out_w: out_hw.1 as u32,
            mode: mode as u32,
        }
    }
    pub fn is_nearest(&self) -> bool {
        self.mode == ResizeMode::Nearest as u32
    }
    pub fn in_plane(&self) -> usize {
        (self.in_h * self.in_w) as usize
    }
    pub fn out_plane(&self) -> usize {
        (self.out_h * self.out_w) as usize
    }
}
