//! Layers on the autograd tape: parameters (`params`), initialisation (`init`) and the layer
//! types the models are built from.
pub mod init;
pub mod layers;
pub mod params;

pub use params::{Bound, ParamId, ParamStore};
