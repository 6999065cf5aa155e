//! Parameters of a model: an ordered store of named tensors (the state-dict keys of spec §8.2),
//! handles into it, and the binding of a store onto a tape for one forward.
//!
//! Model code is written once, over `Var`s. Training binds the trainable parameters as tape
//! variables; inference binds a `Tape::no_grad()`, where every variable is a constant and no node
//! is ever recorded, so inference is gradient-free by construction.

use crate::autograd::{Grads, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Index of a parameter in its `ParamStore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

#[derive(Clone, Debug, Default)]
pub struct ParamStore {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Register a parameter under its state-dict key. Duplicate keys are an error.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor) -> Result<ParamId> {
        let name = name.into();
        if self.index.contains_key(&name) {
            return Err(Error::msg(format!("parameter {name} registered twice")));
        }
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        self.tensors.push(value);
        Ok(ParamId(self.names.len() - 1))
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }
    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.tensors[id.0]
    }
    pub fn id_of(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).map(|&i| ParamId(i))
    }
    /// Replace a parameter's value; the shape must not change.
    pub fn set(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let old = &self.tensors[id.0];
        if old.shape() != value.shape() {
            return Err(Error::shape("ParamStore::set", format!("{}: {:?} -> {:?}", self.names[id.0], old.shape(), value.shape())));
        }
        self.tensors[id.0] = value;
        Ok(())
    }
    /// Move every parameter to `device` (a no-op for those already there).
    pub fn to_device(&mut self, device: &crate::Device) -> Result<()> {
        for t in &mut self.tensors {
            *t = t.to_device(device)?;
        }
        Ok(())
    }
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &str, &Tensor)> {
        self.names.iter().zip(&self.tensors).enumerate().map(|(i, (n, t))| (ParamId(i), n.as_str(), t))
    }
    /// Total number of scalar values.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.numel()).sum()
    }
    /// Number of scalar values of the parameters whose key starts with `prefix`.
    pub fn numel_with_prefix(&self, prefix: &str) -> usize {
        self.iter().filter(|(_, n, _)| n.starts_with(prefix)).map(|(_, _, t)| t.numel()).sum()
    }
    /// Bind every parameter on `tape`: trainable ones (by key) as variables, the rest as constants.
    pub fn bind(&self, tape: &Tape, trainable: impl Fn(&str) -> bool) -> Bound {
        let vars = self
            .iter()
            .map(|(_, n, t)| if trainable(n) { tape.var(t.clone()) } else { tape.constant(t.clone()) })
            .collect();
        Bound { vars }
    }
    /// Gradients of the bound parameters, by id (None where no gradient reached a parameter).
    pub fn grads_of(&self, bound: &Bound, grads: &Grads) -> Vec<Option<Tensor>> {
        bound.vars.iter().map(|v| grads.get(v).cloned()).collect()
    }
}

/// The parameters of a store as tape variables for one forward.
pub struct Bound {
    vars: Vec<Var>,
}

impl Bound {
    pub fn var(&self, id: ParamId) -> &Var {
        &self.vars[id.0]
    }
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }
}
