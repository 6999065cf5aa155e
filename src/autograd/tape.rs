//! The autograd tape: an explicit, append-only list of layer-level nodes (linear, conv,
//! attention, layernorm, ...), each with a hand-written backward rule. Inference never creates a
//! tape, so it is gradient-free by construction; training builds one tape per step.
//!
//! A node's backward closure receives the gradient of the node's output and returns one
//! optional gradient per input, in input order. `backward(loss)` walks the nodes in reverse and
//! sums gradients that meet at the same variable.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::collections::HashMap;

pub type VarId = usize;
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

/// A value on the tape. `requires_grad` is false for constants and for results that depend on
/// no trainable variable (no node is recorded for those).
#[derive(Clone, Debug)]
pub struct Var {
    id: VarId,
    value: Tensor,
    requires_grad: bool,
}

impl Var {
    pub fn id(&self) -> VarId {
        self.id
    }
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
}

struct Node {
    output: VarId,
    inputs: Vec<Option<VarId>>, // None: the input needs no gradient
    backward: BackwardFn,
}

#[derive(Default)]
pub struct Tape {
    next_id: RefCell<VarId>,
    nodes: RefCell<Vec<Node>>,
    no_grad: bool,
}

/// Gradients by variable id, produced by `Tape::backward`.
#[derive(Default, Debug)]
pub struct Grads {
    map: HashMap<VarId, Tensor>,
}

impl Grads {
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        self.map.get(&v.id)
    }
    /// The gradient of `v`, or an error naming it when `v` did not influence the loss.
    pub fn expect(&self, v: &Var, name: &str) -> Result<&Tensor> {
        self.get(v).ok_or_else(|| Error::msg(format!("no gradient reached {name}")))
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Tape {
    pub fn new() -> Self {
        Tape::default()
    }
    /// A tape on which every variable is a constant: nothing is ever recorded. Inference runs
    /// the same model code as training on such a tape.
    pub fn no_grad() -> Self {
        Tape { no_grad: true, ..Tape::default() }
    }
    pub fn is_no_grad(&self) -> bool {
        self.no_grad
    }
    fn fresh_id(&self) -> VarId {
        let mut n = self.next_id.borrow_mut();
        *n += 1;
        *n
    }
    /// A trainable leaf (a parameter, or an input whose gradient is wanted).
    pub fn var(&self, value: Tensor) -> Var {
        Var { id: self.fresh_id(), value, requires_grad: !self.no_grad }
    }
    /// A value that needs no gradient (data, masks, frozen weights).
    pub fn constant(&self, value: Tensor) -> Var {
        Var { id: self.fresh_id(), value, requires_grad: false }
    }
    /// Record the result of an op. When no input requires a gradient, no node is stored and the
    /// closure is dropped unused.
    pub fn record(&self, value: Tensor, inputs: &[&Var], backward: BackwardFn) -> Var {
        if !inputs.iter().any(|v| v.requires_grad) {
            return self.constant(value);
        }
        let out = Var { id: self.fresh_id(), value, requires_grad: true };
        let inputs = inputs.iter().map(|v| v.requires_grad.then_some(v.id)).collect();
        self.nodes.borrow_mut().push(Node { output: out.id, inputs, backward });
        out
    }
    pub fn num_nodes(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Gradients of a scalar `loss` with respect to every variable that influenced it.
    pub fn backward(&self, loss: &Var) -> Result<Grads> {
        if loss.value.numel() != 1 {
            return Err(Error::shape("backward", format!("loss must be a scalar, got shape {:?}", loss.shape())));
        }
        let seed = Tensor::full(1.0, loss.shape()).to_device(&loss.value.device())?;
        self.backward_with(loss, seed)
    }

    /// Backward from `out` with an explicit output gradient `seed` (same shape as `out`).
    pub fn backward_with(&self, out: &Var, seed: Tensor) -> Result<Grads> {
        if seed.shape() != out.shape() {
            return Err(Error::shape("backward", format!("seed {:?} vs output {:?}", seed.shape(), out.shape())));
        }
        let mut grads = Grads::default();
        if !out.requires_grad {
            return Ok(grads);
        }
        grads.map.insert(out.id, seed);
        let nodes = self.nodes.borrow();
        for node in nodes.iter().rev() {
            let Some(g_out) = grads.map.get(&node.output).cloned() else { continue };
            let g_in = (node.backward)(&g_out)?;
            if g_in.len() != node.inputs.len() {
                return Err(Error::msg(format!("backward rule returned {} gradients for {} inputs", g_in.len(), node.inputs.len())));
            }
            for (id, g) in node.inputs.iter().zip(g_in) {
                if let (Some(id), Some(g)) = (id, g) {
                    accumulate(&mut grads.map, *id, g)?;
                }
            }
        }
        Ok(grads)
    }
}

fn accumulate(map: &mut HashMap<VarId, Tensor>, id: VarId, g: Tensor) -> Result<()> {
    let sum = match map.remove(&id) {
        Some(prev) => crate::ops::binary::add(&prev, &g)?,
        None => g,
    };
    map.insert(id, sum);
    Ok(())
}
