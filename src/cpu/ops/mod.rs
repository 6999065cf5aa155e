//! CPU op implementations on flat slices. Each file: `<op>_ref`, `<op>_fast`, and backward.
pub mod attention;
pub mod attention_backward;
pub mod losses;
pub mod cross_entropy;
pub mod gram;
pub mod image_grad;
pub mod optim;
pub mod codebook;
pub mod sampling;
