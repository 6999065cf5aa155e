//! Typed errors of the file layer, so callers can branch (a CLI reports a key mismatch
//! differently from a missing file; `inpaint` refuses a mask with no hole). Both convert into
//! the crate's `Error` (as its message) for code that only propagates them.

use crate::dtype::DType;
use std::fmt;
use std::path::PathBuf;

/// Errors of loading or saving weights files.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Not a readable safetensors file: truncated, bad header, inconsistent offsets.
    #[error("{}: not a valid safetensors file: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// Tensors stored in a dtype the engine does not hold (it loads f32, f16, bf16, u32).
    #[error("{}: unsupported tensor dtypes (fdm loads f32, f16, bf16, u32): {}", path.display(), list_pairs(tensors))]
    UnsupportedDType {
        path: PathBuf,
        tensors: Vec<(String, String)>,
    },
    /// The `__metadata__` entry is missing what was asked for, or does not parse.
    #[error("{}: metadata: {detail}", path.display())]
    Metadata { path: PathBuf, detail: String },
    /// The file's model config is not the one the caller expected.
    #[error("{}: holds weights for config `{found}`, expected `{expected}`{detail}", path.display())]
    ConfigMismatch {
        path: PathBuf,
        found: String,
        expected: String,
        detail: String,
    },
    /// Names, shapes or dtypes differ from the parameter spec (every problem listed).
    #[error("{0}")]
    Mismatch(SpecMismatch),
    /// A tensor could not be built or read (e.g. a CUDA copy failed).
    #[error(transparent)]
    Tensor(#[from] crate::error::Error),
}

fn list_pairs(v: &[(String, String)]) -> String {
    v.iter()
        .map(|(a, b)| format!("{a} ({b})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Differences a `SpecMismatch` message lists by name; the rest are counted.
const MISMATCH_EXAMPLES: usize = 5;

/// Every difference between a set of tensors and a `ParamSpec`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecMismatch {
    /// Where the tensors came from (a file path, "weight store", ...).
    pub context: String,
    /// (name, expected shape) of spec entries with no tensor.
    pub missing: Vec<(String, Vec<usize>)>,
    /// (name, shape) of tensors the spec does not have.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// (name, expected shape, found shape).
    pub misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// (name, found dtype) of parameters not stored in a float dtype.
    pub wrong_dtype: Vec<(String, DType)>,
}

impl SpecMismatch {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.misshaped.is_empty()
            && self.wrong_dtype.is_empty()
    }
    pub fn problem_count(&self) -> usize {
        self.missing.len() + self.unexpected.len() + self.misshaped.len() + self.wrong_dtype.len()
    }
}

impl fmt::Display for SpecMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: weights do not match the model's parameter spec ({} missing, {} unexpected, {} with the wrong shape, {} with a non-float dtype)",
            self.context,
            self.missing.len(),
            self.unexpected.len(),
            self.misshaped.len(),
            self.wrong_dtype.len()
        )?;
        // The counts say how far off the file is; a few names say how (a file of another preset
        // differs in hundreds of tensors, and listing each buries the counts).
        let lines: Vec<String> = self
            .missing
            .iter()
            .map(|(n, s)| format!("missing:     {n} {s:?}"))
            .chain(self.unexpected.iter().map(|(n, s)| format!("unexpected:  {n} {s:?}")))
            .chain(self.misshaped.iter().map(|(n, want, got)| format!("wrong shape: {n}: expected {want:?}, found {got:?}")))
            .chain(self.wrong_dtype.iter().map(|(n, d)| format!("wrong dtype: {n}: {}, expected f32/f16/bf16", d.name())))
            .collect();
        for line in lines.iter().take(MISMATCH_EXAMPLES) {
            write!(f, "\n  {line}")?;
        }
        if lines.len() > MISMATCH_EXAMPLES {
            write!(f, "\n  ... and {} more", lines.len() - MISMATCH_EXAMPLES)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecMismatch {}

/// Errors of reading or writing images and masks.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file could not be decoded or encoded as an image.
    #[error("{}: {detail}", path.display())]
    Codec { path: PathBuf, detail: String },
    /// JPEG data that stops before its end-of-image marker (`io::jpeg`): a cut-off file the
    /// decoder would fill with grey.
    #[error("{}: truncated or corrupt (its JPEG data stops before the end-of-image marker)", path.display())]
    Truncated { path: PathBuf },
    /// Writing the encoded picture failed; the message (`io::atomic`) names the file and the cause.
    #[error("{0}")]
    Write(std::io::Error),
    /// A tensor handed to an image function has the wrong shape.
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    /// The mask marks no pixel as a hole, so there is nothing to inpaint.
    #[error("mask has no hole: every pixel is marked visible (white = hole; use --invert-mask if the mask marks holes in black)")]
    NoHole,
    /// Mask and image sizes differ.
    #[error("mask is {mask_w}x{mask_h} but the image is {image_w}x{image_h}")]
    SizeMismatch {
        mask_w: usize,
        mask_h: usize,
        image_w: usize,
        image_h: usize,
    },
    #[error(transparent)]
    Tensor(#[from] crate::error::Error),
}

impl From<WeightsError> for crate::error::Error {
    fn from(e: WeightsError) -> Self {
        match e {
            WeightsError::Tensor(inner) => inner,
            other => crate::error::Error::Weights(Box::new(other)),
        }
    }
}

impl From<ImageError> for crate::error::Error {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Tensor(inner) => inner,
            other => crate::error::Error::Msg(other.to_string()),
        }
    }
}
