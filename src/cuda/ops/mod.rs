//! Launchers: the only place that knows a kernel's grid, block and argument order.
pub mod attention;
pub mod checks;
pub mod codebook;
pub mod conv2d;
pub mod copy;
pub mod elementwise;
pub mod gather;
pub mod gemm;
pub mod image;
pub mod layernorm;
pub mod losses;
pub mod optim;
pub mod reduce;
pub mod sampling;
pub mod selftest;
pub mod softmax;
pub mod unary;
