//! `WeightStore`: an ordered map from state-dict key to `Tensor`, the in-memory form of a
//! weights file (spec §8.2 keys). Insertion order is kept (it is the file order on load and the
//! spec order after a strict load); replacing a tensor keeps its position.
//!
//! `check_against` compares a store with a `ParamSpec` and reports every missing, unexpected,
//! mis-shaped or non-float tensor at once (spec §9.21: the official loader is non-strict and
//! silently keeps random weights for a mis-named key; this one refuses and says which).

use super::error::SpecMismatch;
use crate::dtype::DType;
use crate::error::Result;
use crate::model::ParamSpec;
use crate::tensor::Tensor;
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct WeightStore {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl WeightStore {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }
    /// Insert or replace. A new key goes at the end; a replaced key keeps its position and the
    /// previous tensor is returned.
    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => Some(std::mem::replace(&mut self.tensors[i], tensor)),
            None => {
                self.index.insert(name.clone(), self.names.len());
                self.names.push(name);
                self.tensors.push(tensor);
                None
            }
        }
    }
    /// Remove a key (the order of the others is kept).
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let i = self.index.remove(name)?;
        self.names.remove(i);
        let t = self.tensors.remove(i);
        for j in self.index.values_mut() {
            if *j > i {
                *j -= 1;
            }
        }
        Some(t)
    }
    /// (key, tensor) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
    /// Total number of scalar values.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }
    /// Every float tensor converted to the float dtype `dtype` (f32/f16/bf16), same order;
    /// u32 (index) tensors are kept as they are.
    pub fn to_dtype(&self, dtype: DType) -> Result<WeightStore> {
        if !dtype.is_float() {
            return Err(crate::error::Error::DType { op: "WeightStore::to_dtype", dtype });
        }
        let mut out = WeightStore::new();
        for (n, t) in self.iter() {
            out.insert(n, if t.dtype().is_float() { t.to_dtype(dtype)? } else { t.clone() });
        }
        Ok(out)
    }

    /// Every difference from `spec` (empty when the store holds exactly the spec's tensors with
    /// its shapes, in float dtypes). `context` names the source in the report.
    pub fn mismatch_with(&self, spec: &ParamSpec, context: &str) -> SpecMismatch {
        let mut m = SpecMismatch {
            context: context.to_string(),
            ..Default::default()
        };
        for e in &spec.entries {
            match self.get(&e.name) {
                None => m.missing.push((e.name.clone(), e.shape.clone())),
                Some(t) if t.shape() != e.shape.as_slice() => {
                    m.misshaped.push((e.name.clone(), e.shape.clone(), t.shape().to_vec()))
                }
                Some(t) if !t.dtype().is_float() => m.wrong_dtype.push((e.name.clone(), t.dtype())),
                Some(_) => {}
            }
        }
        for (n, t) in self.iter() {
            if spec.get(n).is_none() {
                m.unexpected.push((n.to_string(), t.shape().to_vec()));
            }
        }
        m
    }

    /// `Ok` when the store matches `spec` exactly; otherwise one error listing every problem.
    pub fn check_against(&self, spec: &ParamSpec, context: &str) -> std::result::Result<(), SpecMismatch> {
        let m = self.mismatch_with(spec, context);
        if m.is_empty() {
            Ok(())
        } else {
            Err(m)
        }
    }

    /// The same tensors in the order of `spec` (keys not in the spec follow, in their order).
    pub fn reordered_like(&self, spec: &ParamSpec) -> WeightStore {
        let mut out = WeightStore::new();
        for e in &spec.entries {
            if let Some(t) = self.get(&e.name) {
                out.insert(e.name.clone(), t.clone());
            }
        }
        for (n, t) in self.iter() {
            if !out.contains(n) {
                out.insert(n, t.clone());
            }
        }
        out
    }
}

impl IntoIterator for WeightStore {
    type Item = (String, Tensor);
    type IntoIter = std::iter::Zip<std::vec::IntoIter<String>, std::vec::IntoIter<Tensor>>;
    fn into_iter(self) -> Self::IntoIter {
        self.names.into_iter().zip(self.tensors)
    }
}

impl FromIterator<(String, Tensor)> for WeightStore {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        let mut s = WeightStore::new();
        for (n, t) in iter {
            s.insert(n, t);
        }
        s
    }
}
