//! Plain reference loops for the CUDA kernels' semantics (f64 accumulation for long sums).
//! They will be replaced by the CPU backend's `x_ref` functions once those land.
#![allow(dead_code)]
