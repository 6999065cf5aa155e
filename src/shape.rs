//! Shapes, strides and views. A `Layout` is (shape, strides, offset) in elements over a flat
//! storage; views (reshape of contiguous data, permute, narrow, broadcast) only change the layout.

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 }
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// True when elements are laid out row-major with no gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }
    pub fn reshape(&self, shape: &[usize]) -> Result<Layout> {
        if numel(shape) != self.numel() {
            return Err(Error::shape("reshape", format!("{:?} ({} elements) to {:?}", self.shape, self.numel(), shape)));
        }
        if !self.is_contiguous() {
            return Err(Error::shape("reshape", "view of non-contiguous tensor; call contiguous() first"));
        }
        Ok(Layout { shape: shape.to_vec(), strides: contiguous_strides(shape), offset: self.offset })
    }
    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if dims.len() != r || dims.iter().any(|&d| d >= r || std::mem::replace(&mut seen[d], true)) {
            return Err(Error::shape("permute", format!("{dims:?} is not a permutation of 0..{r}")));
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        if dim >= self.rank() || start + len > self.shape[dim] {
            return Err(Error::shape("narrow", format!("dim {dim} [{start}, {}) of {:?}", start + len, self.shape)));
        }
        let mut l = self.clone();
        l.shape[dim] = len;
        l.offset += start * self.strides[dim];
        Ok(l)
    }
    /// Broadcast to `shape` (numpy rules: align trailing dims; size-1 dims get stride 0).
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.rank() {
            return Err(Error::shape("broadcast", format!("{:?} to {:?}", self.shape, shape)));
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..self.rank() {
            let (d, t) = (self.shape[i], shape[lead + i]);
            strides[lead + i] = if d == t {
                self.strides[i]
            } else if d == 1 {
                0
            } else {
                return Err(Error::shape("broadcast", format!("{:?} to {:?}", self.shape, shape)));
            };
        }
        Ok(Layout { shape: shape.to_vec(), strides, offset: self.offset })
    }
    /// Flat storage index of every element in row-major order of `shape`.
    pub fn indices(&self) -> StridedIndex<'_> {
        StridedIndex { layout: self, pos: vec![0; self.rank()], next: self.offset, left: self.numel() }
    }
}

/// The broadcast shape of two shapes (numpy rules), or a shape error naming `op`.
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(Error::shape(op, format!("cannot broadcast {a:?} with {b:?}"))),
        };
    }
    Ok(out)
}

pub struct StridedIndex<'a> {
    layout: &'a Layout,
    pos: Vec<usize>,
    next: usize,
    left: usize,
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let cur = self.next;
        self.left -= 1;
        for d in (0..self.pos.len()).rev() {
            self.pos[d] += 1;
            self.next += self.layout.strides[d];
            if self.pos[d] < self.layout.shape[d] {
                break;
            }
            self.next -= self.pos[d] * self.layout.strides[d];
            self.pos[d] = 0;
        }
        Some(cur)
    }
}
