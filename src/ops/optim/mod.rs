//! The element-wise optimiser updates (Adam, SGD with momentum) as device primitives, so a
//! training step never leaves the device.

pub mod cpu;
pub mod opencl;

/// Hyper-parameters of one Adam step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// 1-based step number, for the bias correction.
    pub step: u64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
}

/// Hyper-parameters of one SGD step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
}
