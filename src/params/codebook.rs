//! Parameters of the dual-codebook nearest-neighbour search and EMA update (spec §2.3).
//! z is `[n, dim]`, the codebook `[codes, dim]`; codes `0..codes/2` are the "unmasked" half,
//! `codes/2..codes` the "masked" half. Each row of z names the half it searches (a u32 per row).

/// Row searches the unmasked half, codes `0..codes/2` (token type 1, visible patch).
pub const CODEBOOK_HALF_UNMASKED: u32 = 0;
/// Row searches the masked half, codes `codes/2..codes` (token types 0 and 2).
pub const CODEBOOK_HALF_MASKED: u32 = 1;
/// Row searches the whole codebook (the quantizer called with no token-type map).
pub const CODEBOOK_ALL: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodebookParams {
    pub n: u32,
    pub codes: u32,
    pub dim: u32,
}

impl CodebookParams {
    /// The code range `[start, end)` searched by a row with selector `half`, or None for an
    /// unknown selector.
    pub fn range(&self, half: u32) -> Option<(usize, usize)> {
        let (k, h) = (self.codes as usize, self.codes as usize / 2);
        match half {
            CODEBOOK_HALF_UNMASKED => Some((0, h)),
            CODEBOOK_HALF_MASKED => Some((h, k)),
            CODEBOOK_ALL => Some((0, k)),
            _ => None,
        }
    }
}

/// EMA codebook update constants (spec §2.3: decay 0.99, eps 1e-5).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CodebookEmaParams {
    pub codes: u32,
    pub dim: u32,
    pub decay: f32,
    pub eps: f32,
}

impl CodebookEmaParams {
    /// The official constants: decay 0.99, eps 1e-5.
    pub fn paper(codes: usize, dim: usize) -> Self {
        CodebookEmaParams {
            codes: codes as u32,
            dim: dim as u32,
            decay: 0.99,
            eps: 1e-5,
        }
    }
}

/// The half a position searches, from its token type (spec §1.2 / §2.3): type 1 (fully
/// visible) -> unmasked half; types 0 and 2 (masked or partially masked) -> masked half.
pub fn half_for_token_type(token_type: u32) -> u32 {
    if token_type == 1 {
        CODEBOOK_HALF_UNMASKED
    } else {
        CODEBOOK_HALF_MASKED
    }
}
