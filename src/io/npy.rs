//! NumPy `.npy` files (format version 1.0), written by `fdm inspect` and read back by its tests.
//!
//! Layout (NumPy's `format.py`): the magic `\x93NUMPY`, the version bytes `1 0`, a little-endian
//! u16 header length, then an ASCII dict `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64,
//! 32, 32), }` padded with spaces and ended by `\n` so that the data starts at a multiple of 64
//! bytes, then the elements in C order (last index fastest), little-endian. Three element types:
//! `<f4` (f32), `<i8` (i64) and `<i4` (i32). Files are written to `.<name>.tmp-<pid>` beside the
//! target and renamed over it, so a reader never sees a half-written file.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::DType;
use std::path::Path;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data of a version-1.0 file starts at a multiple of this many bytes.
const ALIGN: usize = 64;

/// The elements of an array, one variant per supported `descr`.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

impl NpyData {
    fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::I32(v) => v.len(),
        }
    }

    /// The NumPy type string of the elements.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::I64(_) => "<i8",
            NpyData::I32(_) => "<i4",
        }
    }
}

/// An array with its shape (C order).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    pub fn new(shape: &[usize], data: NpyData) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape("npy", format!("{} elements for shape {shape:?} ({n})", data.len())));
        }
        Ok(NpyArray { shape: shape.to_vec(), data })
    }

    /// An f32 tensor (any device, any layout) as a `<f4` array of its shape.
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        if t.dtype() != DType::F32 {
            return Err(Error::DType { op: "npy", dtype: t.dtype() });
        }
        NpyArray::new(t.shape(), NpyData::F32(t.to_vec_f32()?))
    }

    /// The whole file: header then data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(self.data.descr(), &self.shape);
        match &self.data {
            NpyData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
        out
    }

    /// Parse a whole version-1.0 file (C order, one of the three `descr`s).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::msg(format!("npy: {what}"));
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err(bad("not an .npy file (magic bytes missing)"));
        }
        if bytes[6] != 1 {
            return Err(bad(&format!("format version {}.{} (only 1.0 is read)", bytes[6], bytes[7])));
        }
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let text = bytes.get(10..10 + len).ok_or_else(|| bad("header runs past the end of the file"))?;
        let text = std::str::from_utf8(text).map_err(|_| bad("header is not ASCII"))?;
        let descr = dict_value(text, "descr").ok_or_else(|| bad("header has no 'descr'"))?;
        if dict_value(text, "fortran_order").map(str::trim) != Some("False") {
            return Err(bad("only C-order arrays are read (fortran_order must be False)"));
        }
        let shape = parse_shape(dict_value(text, "shape").ok_or_else(|| bad("header has no 'shape'"))?)?;
        let n: usize = shape.iter().product();
        let body = &bytes[10 + len..];
        let descr = descr.trim().trim_matches('\'');
        let size = match descr {
            "<f4" | "<i4" => 4,
            "<i8" => 8,
            other => return Err(bad(&format!("element type {other} (read: <f4, <i8, <i4)"))),
        };
        if body.len() != n * size {
            return Err(bad(&format!("{} data bytes for shape {shape:?} of {descr} ({} expected)", body.len(), n * size)));
        }
        let data = match descr {
            "<f4" => NpyData::F32(body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()),
            "<i4" => NpyData::I32(body.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()),
            _ => NpyData::I64(body.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()),
        };
        Ok(NpyArray { shape, data })
    }
}

/// Magic, version, length and the padded header dict.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    // A one-element tuple needs its trailing comma: `(5,)`.
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    let total = (10 + dict.len() + 1).next_multiple_of(ALIGN);
    while 10 + dict.len() + 1 < total {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// The text after `'key':` up to the next top-level comma (tuples kept whole).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = text[start..].trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(s: &str) -> Result<Vec<usize>> {
    let inner = s.trim().strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| Error::msg(format!("npy: shape `{s}` is not a tuple")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| Error::msg(format!("npy: shape `{s}` has a non-integer dimension"))))
        .collect()
}

/// Write `array` to `path` atomically (module docs).
pub fn write(path: impl AsRef<Path>, array: &NpyArray) -> Result<()> {
    write_atomic(path.as_ref(), &array.to_bytes())
}

/// Read a whole `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::msg(format!("reading {}: {e}", path.display())))?;
    NpyArray::from_bytes(&bytes).map_err(|e| Error::msg(format!("{}: {e}", path.display())))
}

/// `io::atomic::write_atomic` with this module's error type.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    super::atomic::write_atomic(path, bytes).map_err(|e| Error::msg(e.to_string()))
}
