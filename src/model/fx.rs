//! The handful of autograd functions the model code uses, under one short name each, so the
//! model files read like the spec's equations.

pub use crate::autograd::attention::attention;
pub use crate::autograd::binary::{add, mul};
pub use crate::autograd::patch::patch_unfold;
pub use crate::autograd::shape::{concat, permute, reshape};
pub use crate::autograd::unary::{gelu2, relu};
pub use crate::autograd::{Tape, Var};
