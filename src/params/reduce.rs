//! Parameters of the reductions. Every reduction is brought to the form `x [outer, reduce, inner]`
//! -> `out [outer, inner]` (the reduced dims adjacent and row-major; when they are not, the
//! Tensor-level op first permutes them to the end). `ArgReduceParams` describes argmax/argmin
//! over the last dim of `x [rows, len]` -> `u32 [rows]`.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Mean = 1,
    /// NaN-propagating maximum (the first NaN of a row wins, as in PyTorch).
    Max = 2,
    /// NaN-propagating minimum.
    Min = 3,
}

impl ReduceOp {
    pub fn from_u32(op: u32) -> Option<ReduceOp> {
        [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min]
            .into_iter()
            .find(|o| *o as u32 == op)
    }
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReduceParams {
    pub op: u32,
    pub outer: u32,
    pub reduce: u32,
    pub inner: u32,
}

impl ReduceParams {
    pub fn new(op: ReduceOp, outer: usize, reduce: usize, inner: usize) -> Self {
        ReduceParams {
            op: op as u32,
            outer: outer as u32,
            reduce: reduce as u32,
            inner: inner as u32,
        }
    }
    pub fn kind(&self) -> ReduceOp {
        ReduceOp::from_u32(self.op).expect("ReduceParams built from a ReduceOp")
    }
    pub fn dims(&self) -> (usize, usize, usize) {
        (
            self.outer as usize,
            self.reduce as usize,
            self.inner as usize,
        )
    }
}

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgReduceOp {
    ArgMax = 0,
    ArgMin = 1,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ArgReduceParams {
    pub op: u32,
    pub rows: u32,
    pub len: u32,
}

impl ArgReduceParams {
    pub fn new(op: ArgReduceOp, rows: usize, len: usize) -> Self {
        ArgReduceParams {
            op: op as u32,
            rows: rows as u32,
            len: len as u32,
        }
    }
    pub fn is_argmax(&self) -> bool {
        self.op == ArgReduceOp::ArgMax as u32
    }
}
