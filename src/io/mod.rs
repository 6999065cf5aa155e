//! Files in and out: weights (safetensors, memory-mapped, atomic saves), images and masks
//! (read: PNG, JPEG, WebP, BMP, TIFF, GIF; written: PNG, JPEG), NumPy `.npy` arrays, a small
//! mask drawer and atomic whole-file writes; typed errors callers can branch on.
pub mod atomic;
pub mod error;
pub mod image;
pub mod jpeg;
pub mod mask_draw;
pub mod npy;
pub mod safetensors;
pub mod weight_store;

pub use error::{ImageError, SpecMismatch, WeightsError};
pub use weight_store::WeightStore;
