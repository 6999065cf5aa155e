//! CPU backend: per op, `x_ref` (obvious loops, the oracle) and `x_fast` (blocked, rayon).
pub mod ops;
