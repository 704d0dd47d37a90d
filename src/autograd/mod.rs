//! Reverse-mode automatic differentiation.
//!
//! Every differentiable op records a [`Node`] (its inputs and a backward closure) on its
//! output when gradients are enabled and an input requires them. [`backward`] walks the graph
//! in reverse topological order, calls each node's closure and accumulates the gradients of
//! the trainable leaves. The graph is owned by the output tensors: dropping the loss frees it.
//! [`no_grad`] and [`InferenceGuard`] turn recording off on the current thread.

pub mod gradcheck;

use crate::tensor::Tensor;
use crate::{Error, Result};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// The backward closure of a node: maps the gradient of the output to one optional gradient
/// per input (`None` where the input needs none).
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

/// How a tensor was computed: the op, its inputs and its backward rule.
pub struct Node {
    /// Op name, for error messages and debugging.
    pub op: &'static str,
    /// The op's inputs, in the order the backward closure returns their gradients.
    pub inputs: Vec<Tensor>,
    /// The backward rule.
    pub backward: BackwardFn,
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record graph nodes on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Disables graph recording on this thread until dropped (inference mode).
pub struct InferenceGuard {
    previous: bool,
}

impl InferenceGuard {
    /// Turns recording off; the previous state comes back when the guard drops.
    pub fn new() -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        InferenceGuard { previous }
    }
}

impl Default for InferenceGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InferenceGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` without recording any graph.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _guard = InferenceGuard::new();
    f()
}

/// The gradients of the trainable leaves after a backward pass, keyed by tensor id.
#[derive(Default)]
pub struct Gradients {
    map: HashMap<u64, Tensor>,
}

impl Gradients {
    /// The gradient of `t`, if `t` is a trainable leaf the loss depends on.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }

    /// Sets the gradient of `t` (code that combines gradients, such as data-parallel
    /// training, builds its result with this).
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        self.map.insert(t.id(), grad);
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Attaches a backward rule to `out`, the result of an op on `inputs`: when gradients are
/// enabled and an input requires one, `out` gets a graph node named `op` whose `backward` maps
/// the output gradient to one optional gradient per input. The low-level hook behind every op;
/// [`crate::ops::custom`] is the structured way to add one.
pub fn record(
    out: Tensor,
    op: &'static str,
    inputs: &[&Tensor],
    backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Tensor {
    if !is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
        return out;
    }
    let node = Node {
        op,
        inputs: inputs.iter().map(|t| (*t).clone()).collect(),
        backward: Box::new(backward),
    };
    out.with_node(node)
}

/// Reverse-mode differentiation from a one-element tensor.
pub fn backward(root: &Tensor) -> Result<Gradients> {
    if root.numel() != 1 {
        return Err(Error::shape(
            "backward",
            format!("needs a one-element loss, got shape {:?}", root.shape()),
        ));
    }
    if !root.requires_grad() {
        return Err(Error::arg(
            "backward",
            "loss",
            "does not depend on any trainable parameter (or was computed under no_grad)",
        ));
    }
    let _guard = InferenceGuard::new();
    // Iterative post-order DFS: children before parents.
    let mut order: Vec<Tensor> = Vec::new();
    let mut visited: HashSet<u64> = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(node) = &t.0.node {
            for input in &node.inputs {
                if input.requires_grad() && !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    let mut grads: HashMap<u64, Tensor> = HashMap::new();
    grads.insert(root.id(), Tensor::ones(root.shape(), root.device())?);
    let mut leaves: HashMap<u64, Tensor> = HashMap::new();
    for t in order.iter().rev() {
        let Some(gy) = grads.remove(&t.id()) else {
            continue;
        };
        let Some(node) = &t.0.node else {
            leaves.insert(t.id(), gy);
            continue;
        };
        let input_grads = (node.backward)(&gy)?;
        for (input, g) in node.inputs.iter().zip(input_grads) {
            let Some(g) = g else { continue };
            if !input.requires_grad() {
                continue;
            }
            if g.shape() != input.shape() {
                return Err(Error::shape(
                    "backward",
                    format!(
                        "op `{}` returned a gradient of shape {:?} for an input of shape {:?}",
                        node.op,
                        g.shape(),
                        input.shape()
                    ),
                ));
            }
            let acc = match grads.remove(&input.id()) {
                Some(prev) => prev.add(&g)?,
                None => g,
            };
            grads.insert(input.id(), acc);
        }
    }
    Ok(Gradients { map: leaves })
}
