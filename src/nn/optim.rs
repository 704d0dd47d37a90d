//! Optimisers (Adam, SGD with momentum) whose updates run on the parameters' device, and the
//! reduce-on-plateau learning-rate schedule.

use super::Param;
use crate::autograd::Gradients;
use crate::ops::optim::{AdamHyper, SgdHyper};
use crate::tensor::Tensor;
use crate::{Error, Result};
use std::collections::HashMap;

/// An optimiser: updates parameters in place from their gradients.
pub trait Optimizer {
    /// One update of every parameter that has a gradient.
    fn step(&mut self, params: &[Param], grads: &Gradients) -> Result<()>;
    /// Current learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (schedules).
    fn set_lr(&mut self, lr: f32);
    /// The optimiser state as named tensors (for checkpoints and `--resume`).
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores a state saved by [`Optimizer::state`].
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

fn zeros_like(t: &Tensor) -> Result<Tensor> {
    Tensor::zeros(t.shape(), t.device())
}

/// Adam with bias correction (Kingma & Ba), optional L2 weight decay.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    step: u64,
    moments: HashMap<String, (Tensor, Tensor)>,
}

impl Adam {
    /// Adam with the usual defaults (0.9, 0.999, 1e-7 as in Keras).
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            step: 0,
            moments: HashMap::new(),
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &[Param], grads: &Gradients) -> Result<()> {
        self.step += 1;
        let h = AdamHyper {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            step: self.step,
            weight_decay: self.weight_decay,
        };
        for p in params {
            let Some(g) = grads.get(&p.tensor) else {
                continue;
            };
            if !self.moments.contains_key(&p.name) {
                self.moments.insert(
                    p.name.clone(),
                    (zeros_like(&p.tensor)?, zeros_like(&p.tensor)?),
                );
            }
            let (m, v) = &self.moments[&p.name];
            if m.shape() != p.tensor.shape() {
                return Err(Error::shape(
                    "Adam::step",
                    format!(
                        "state of `{}` has shape {:?}, parameter {:?}",
                        p.name,
                        m.shape(),
                        p.tensor.shape()
                    ),
                ));
            }
            let backend = p.tensor.device().backend();
            let gs = g.storage();
            backend.adam_step(
                &mut p.tensor.update_storage(),
                &gs,
                &mut m.update_storage(),
                &mut v.update_storage(),
                &h,
            )?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![];
        let mut names: Vec<&String> = self.moments.keys().collect();
        names.sort();
        for n in names {
            let (m, v) = &self.moments[n];
            out.push((format!("adam.m.{n}"), m.clone()));
            out.push((format!("adam.v.{n}"), v.clone()));
        }
        if let Ok(t) = Tensor::scalar(self.step as f32, &crate::Device::cpu()) {
            out.push(("adam.step".to_string(), t));
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.moments.clear();
        for (k, m) in state {
            if let Some(name) = k.strip_prefix("adam.m.") {
                let v = state.get(&format!("adam.v.{name}")).ok_or_else(|| {
                    Error::arg(
                        "Adam::load_state",
                        "state",
                        format!("missing `adam.v.{name}`"),
                    )
                })?;
                self.moments
                    .insert(name.to_string(), (m.clone(), v.clone()));
            }
        }
        if let Some(s) = state.get("adam.step") {
            self.step = s.item()? as u64;
        }
        Ok(())
    }
}

/// SGD with momentum: `v = momentum * v + g; p -= lr * v`.
#[derive(Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    velocity: HashMap<String, Tensor>,
}

impl Sgd {
    /// SGD with the given momentum (0 for plain gradient descent).
    pub fn new(lr: f32, momentum: f32) -> Sgd {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            velocity: HashMap::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &[Param], grads: &Gradients) -> Result<()> {
        let h = SgdHyper {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        };
        for p in params {
            let Some(g) = grads.get(&p.tensor) else {
                continue;
            };
            if !self.velocity.contains_key(&p.name) {
                self.velocity.insert(p.name.clone(), zeros_like(&p.tensor)?);
            }
            let v = &self.velocity[&p.name];
            let backend = p.tensor.device().backend();
            let gs = g.storage();
            backend.sgd_step(
                &mut p.tensor.update_storage(),
                &gs,
                &mut v.update_storage(),
                &h,
            )?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .velocity
            .iter()
            .map(|(k, t)| (format!("sgd.v.{k}"), t.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        self.velocity = state
            .iter()
            .filter_map(|(k, t)| k.strip_prefix("sgd.v.").map(|n| (n.to_string(), t.clone())))
            .collect();
        Ok(())
    }
}

/// Divides the learning rate by `1/factor` when the monitored loss has not improved for
/// `patience` epochs (Keras' ReduceLROnPlateau with mode "min").
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    /// Multiplier applied to the learning rate on a plateau.
    pub factor: f32,
    /// Epochs without improvement before reducing.
    pub patience: usize,
    /// Lower bound of the learning rate.
    pub min_lr: f32,
    /// Relative improvement that counts as better.
    pub threshold: f32,
    best: f32,
    wait: usize,
}

impl ReduceOnPlateau {
    /// A schedule with the given factor, patience and floor.
    pub fn new(factor: f32, patience: usize, min_lr: f32) -> ReduceOnPlateau {
        ReduceOnPlateau {
            factor,
            patience,
            min_lr,
            threshold: 1e-4,
            best: f32::INFINITY,
            wait: 0,
        }
    }

    /// Records the epoch's loss and returns the learning rate to use next.
    pub fn observe(&mut self, loss: f32, lr: f32) -> f32 {
        if loss < self.best * (1.0 - self.threshold) {
            self.best = loss;
            self.wait = 0;
            return lr;
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.wait = 0;
            return (lr * self.factor).max(self.min_lr);
        }
        lr
    }
}
