//! fdm: a from-scratch tensor engine (CPU + hand-written CUDA kernels) and, on it, PUT + FDM
//! pluralistic image inpainting. Layers, bottom to top (each calls only the one below):
//! core (`tensor`, `storage`, `shape`, `dtype`) -> backends (`cpu`, `cuda`) -> `ops` + `autograd`
//! -> `nn` -> `model` -> `pipeline` -> the `fdm` binary. See docs/ARCHITECTURE.md.

pub mod dtype;
pub mod error;
pub mod shape;
pub mod storage;
pub mod host_alloc;
pub mod host_threads;
pub mod tensor;
pub mod device;
pub mod rng;
pub mod profile;
pub mod params;
pub mod cpu;
pub mod cuda;
pub mod ops;
pub mod autograd;
pub mod nn;
pub mod data;
pub mod pipeline;
pub mod cli;
pub mod testing;
pub mod model;
pub mod io;

pub use device::Device;
pub use dtype::DType;
pub use error::{Error, Result};
pub use tensor::Tensor;
pub mod optim;
pub mod train;
pub mod metrics;
