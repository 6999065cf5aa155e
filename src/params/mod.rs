//! Op parameters: one `#[repr(C)]` struct per op, read by the CPU loops and passed by value to
//! the CUDA kernel, so both backends read the same fields.
pub mod index;
pub mod gemm;
pub mod linear;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod binary;
pub mod concat;
pub mod embedding;
pub mod layernorm;
pub mod patch;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod softmax;
pub mod unary;
pub mod attention;
pub mod codebook;
pub mod losses;
pub mod optim;
pub mod sampling;
