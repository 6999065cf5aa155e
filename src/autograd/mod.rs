//! Autograd: the tape (`tape.rs`) and, per op group, functions that run the forward op on a
//! `Var` and record its backward rule.
pub mod tape;
pub mod linear;
pub mod conv;
pub mod binary;
pub mod embedding;
pub mod layernorm;
pub mod patch;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod shape;
pub mod index;
pub mod softmax;
pub mod unary;

pub use tape::{BackwardFn, Grads, Tape, Var, VarId};
pub mod attention;
pub mod losses;
