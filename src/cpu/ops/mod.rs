//! CPU op implementations on flat slices. Each file: `<op>_ref`, `<op>_fast`, and backward.
pub mod index;
pub mod gemm;
pub mod gemm_kernel;
pub mod linear;
pub mod im2col;
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
