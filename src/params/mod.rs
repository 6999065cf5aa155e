//! Op parameters: one `#[repr(C)]` struct per op, read by the CPU loops and passed by value to
//! the CUDA kernel, so both backends read the same fields.
pub mod index;
pub mod gemm;
pub mod linear;
pub mod conv2d;
pub mod conv_transpose2d;
