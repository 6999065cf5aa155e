//! Autograd: the tape (`tape.rs`) and, per op group, functions that run the forward op on a
//! `Var` and record its backward rule.
pub mod tape;

pub use tape::{BackwardFn, Grads, Tape, Var, VarId};
pub mod attention;
pub mod losses;
