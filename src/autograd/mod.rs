//! Autograd: the tape (`tape.rs`) and, per op group, functions that run the forward op on a
//! `Var` and record its backward rule.
pub mod tape;
pub mod view;
pub mod linear;
pub mod conv;

pub use tape::{BackwardFn, Grads, Tape, Var, VarId};
