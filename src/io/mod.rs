//! Files in and out: weights (safetensors, memory-mapped, atomic saves) and images and masks
//! (PNG/JPEG), with typed errors callers can branch on.
pub mod error;
pub mod safetensors;
pub mod weight_store;

pub use error::{ImageError, SpecMismatch, WeightsError};
pub use weight_store::WeightStore;
