//! Typed errors of the library. Callers branch on the variant; binaries wrap them with
//! `anyhow::Context` for the user-facing message.

use crate::dtype::DType;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op}: unsupported dtype {dtype:?}")]
    DType { op: &'static str, dtype: DType },
    #[error("{op}: tensors live on different devices ({a} vs {b})")]
    DeviceMismatch { op: &'static str, a: String, b: String },
    #[error("CUDA: {0}")]
    Cuda(String),
    #[error("{0}")]
    Msg(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A weights file that could not be read or does not fit (kept typed so callers can tell a
    /// config mismatch from a corrupt file).
    #[error(transparent)]
    Weights(Box<crate::io::error::WeightsError>),
}


pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape { op, detail: detail.into() }
    }
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }
}

/// `bail!`-style early return with a typed `Error::Msg`.
#[macro_export]
macro_rules! fdm_bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::Msg(format!($($arg)*))) };
}
