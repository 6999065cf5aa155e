//! Parameters of the sampling references (spec §5.2): position choice over logits `[rows,
//! classes]` and top-K token sampling with a caller-supplied uniform per row.

/// `choose_positions`: logits `[seq_len, classes]`, pick `k` unknown positions.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChoosePositionsParams {
    pub seq_len: u32,
    pub classes: u32,
    pub k: u32,
}

/// `topk_sample`: logits `[rows, classes]`; keep the `k` largest logits per row, softmax of
/// `logits / temperature` over them, inverse-CDF draw with the row's uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopkSampleParams {
    pub rows: u32,
    pub classes: u32,
    pub k: u32,
    pub temperature: f32,
}
