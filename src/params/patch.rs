//! Parameters of patch unfold/fold (spec §1.1): image `[batch, channels, height, width]` (NCHW)
//! <-> tokens `[batch, (height/patch)*(width/patch), channels*patch*patch]`, non-overlapping
//! patches ordered row-major over the grid, element order `c*patch*patch + ky*patch + kx`.

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PatchParams {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub patch: u32,
}

impl PatchParams {
    pub fn new(batch: usize, channels: usize, height: usize, width: usize, patch: usize) -> Self {
        PatchParams {
            batch: batch as u32,
            channels: channels as u32,
            height: height as u32,
            width: width as u32,
            patch: patch as u32,
        }
    }
    /// (batch, channels, height, width, patch) as usize.
    pub fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.batch as usize,
            self.channels as usize,
            self.height as usize,
            self.width as usize,
            self.patch as usize,
        )
    }
    /// Patches per row and per column of the grid.
    pub fn grid(&self) -> (usize, usize) {
        (
            (self.height / self.patch) as usize,
            (self.width / self.patch) as usize,
        )
    }
    /// Length of one patch vector: channels * patch * patch.
    pub fn patch_len(&self) -> usize {
        (self.channels * self.patch * self.patch) as usize
    }
}
