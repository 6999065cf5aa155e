//! Launchers: the only place that knows a kernel's grid, block and argument order.
pub mod attention;
pub mod attention_backward;
pub mod codebook;
pub mod conv2d;
pub mod conv2d_backward;
pub mod conv_transpose2d;
pub mod copy;
pub mod elementwise;
pub mod gemm;
pub mod layernorm;
pub mod sampling;
pub mod selftest;
pub mod softmax;
