//! Parameters of the element-wise unary ops and activations (`y = f(x)`, any shape, dense).
//! `alpha`/`beta` carry the op's constants: leaky slope, clamp bounds, the scalar of
//! add/mul/pow_scalar. GELU2 is `x * sigmoid(1.702 x)` (spec §3.2).

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg = 0,
    Abs = 1,
    Exp = 2,
    Log = 3,
    Sqrt = 4,
    Square = 5,
    Relu = 6,
    /// `x if x > 0 else alpha * x`.
    LeakyRelu = 7,
    Sigmoid = 8,
    Tanh = 9,
    /// Exact GELU `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu = 10,
    /// `x * sigmoid(1.702 x)` (spec §3.2).
    Gelu2 = 11,
    /// `min(max(x, alpha), beta)`.
    Clamp = 12,
    /// `x + alpha`.
    AddScalar = 13,
    /// `x * alpha`.
    MulScalar = 14,
    /// `x ^ alpha`.
    PowScalar = 15,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 16] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Square,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Gelu,
        UnaryOp::Gelu2,
        UnaryOp::Clamp,
        UnaryOp::AddScalar,
        UnaryOp::MulScalar,
        UnaryOp::PowScalar,
    ];
    pub fn from_u32(op: u32) -> Option<UnaryOp> {
        UnaryOp::ALL.into_iter().find(|o| *o as u32 == op)
    }
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Square => "square",
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu => "leaky_relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Gelu2 => "gelu2",
            UnaryOp::Clamp => "clamp",
            UnaryOp::AddScalar => "add_scalar",
            UnaryOp::MulScalar => "mul_scalar",
            UnaryOp::PowScalar => "pow_scalar",
        }
    }
}

/// Passed by value to the CUDA kernels of `kernels/unary.cu` (same field order).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct UnaryParams {
    pub op: u32,
    pub n: u32,
    pub alpha: f32,
    pub beta: f32,
}

impl UnaryParams {
    pub fn new(op: UnaryOp, n: usize, alpha: f32, beta: f32) -> Self {
        UnaryParams {
            op: op as u32,
            n: n as u32,
            alpha,
            beta,
        }
    }
    pub fn kind(&self) -> UnaryOp {
        UnaryOp::from_u32(self.op).expect("UnaryParams built from a UnaryOp")
    }
}
