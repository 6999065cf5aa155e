//! Op parameters: one `#[repr(C)]` struct per op, read by the CPU loops and passed by value to
//! the CUDA kernel, so both backends read the same fields.
pub mod attention;
pub mod codebook;
pub mod losses;
pub mod optim;
pub mod sampling;
