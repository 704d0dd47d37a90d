//! Neural-network building blocks: the [`Module`] trait that built-in and user layers
//! implement, convolution layers, seeded initialisers, optimisers and schedules, and
//! safetensors checkpoints.
//!
//! # A custom layer
//! ```
//! use bragg::nn::{Module, Param};
//! use bragg::{Device, Result, Tensor};
//!
//! /// `y = scale * x + shift`, one learnable scale and shift per channel.
//! struct Affine {
//!     scale: Tensor,
//!     shift: Tensor,
//! }
//!
//! impl Module for Affine {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         let c = self.scale.numel();
//!         let mut shape = vec![1; x.rank()];
//!         shape[1] = c;
//!         x.mul(&self.scale.reshape(&shape)?)?.add(&self.shift.reshape(&shape)?)
//!     }
//!     fn parameters(&self) -> Vec<Param> {
//!         vec![Param::new("scale", &self.scale), Param::new("shift", &self.shift)]
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let dev = Device::cpu();
//! let layer = Affine {
//!     scale: Tensor::param(&[2.0, 3.0], &[2], &dev)?,
//!     shift: Tensor::param(&[0.0, 1.0], &[2], &dev)?,
//! };
//! let x = Tensor::ones(&[1, 2, 4, 4], &dev)?;
//! let loss = layer.forward(&x)?.sum()?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.get(&layer.scale).unwrap().to_vec()?, vec![16.0, 16.0]);
//! # Ok(())
//! # }
//! ```

pub mod init;
pub mod io;
pub mod layers;
pub mod optim;

pub use init::Init;
pub use layers::{Conv, ConvTranspose, Dropout, GroupNorm, Linear};
pub use optim::{Adam, Optimizer, ReduceOnPlateau, Sgd};

use crate::tensor::Tensor;
use crate::Result;

/// A named trainable tensor. Names are dotted paths (`enc1.conv.weight`), used as the
/// tensor names of safetensors checkpoints.
#[derive(Debug, Clone)]
pub struct Param {
    /// Dotted path of the parameter inside its model.
    pub name: String,
    /// The trainable tensor (shared storage: optimisers update it in place).
    pub tensor: Tensor,
}

impl Param {
    /// Names a parameter.
    pub fn new(name: impl Into<String>, tensor: &Tensor) -> Param {
        Param {
            name: name.into(),
            tensor: tensor.clone(),
        }
    }
}

/// A layer or a model: a forward computation and its parameters.
pub trait Module: Send + Sync {
    /// Runs the layer.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// The trainable parameters, with dotted names unique inside the module.
    fn parameters(&self) -> Vec<Param>;
    /// Runs a layer of several inputs (an image and its mask, ...). The default passes a single
    /// input to [`Module::forward`] and rejects more; multi-input layers override it.
    fn forward_many(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        match inputs {
            [x] => self.forward(x),
            _ => Err(crate::Error::arg(
                "Module::forward_many",
                "inputs",
                format!(
                    "this module takes one input, got {} (override forward_many)",
                    inputs.len()
                ),
            )),
        }
    }
    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.tensor.numel()).sum()
    }
}

/// Prefixes the names of a child's parameters with `prefix.`.
pub fn prefixed(prefix: &str, params: Vec<Param>) -> Vec<Param> {
    params
        .into_iter()
        .map(|p| Param {
            name: format!("{prefix}.{}", p.name),
            tensor: p.tensor,
        })
        .collect()
}
