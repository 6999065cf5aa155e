//! Parameters of softmax / log-softmax over the last dim: `x [rows, len]` -> same shape.

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub len: u32,
    /// 1 for log-softmax, 0 for softmax.
    pub log: u32,
}

impl SoftmaxParams {
    pub fn new(rows: usize, len: usize, log: bool) -> Self {
        SoftmaxParams {
            rows: rows as u32,
            len: len as u32,
            log: log as u32,
        }
    }
    pub fn dims(&self) -> (usize, usize) {
        (self.rows as usize, self.len as usize)
    }
    pub fn is_log(&self) -> bool {
        self.log != 0
    }
}
