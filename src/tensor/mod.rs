//! [`Tensor`]: an n-dimensional f32 array on a [`Device`], with reverse-mode autograd.
//!
//! Tensors are immutable values (cheap to clone: a reference-counted handle); the optimisers
//! update parameters in place through [`Tensor::update_storage`]. Image batches use NCHW and
//! volume batches NCDHW layouts.

mod complex;
mod ops;
/// Option types of the tensor operations.
pub mod ops_api {
    pub use super::ops::Padding;
}

pub use complex::ComplexTensor;
pub use ops::concat;

use crate::autograd::{self, Node};
use crate::backend::Storage;
use crate::device::Device;
use crate::{Error, Result};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A reference-counted n-dimensional f32 tensor.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    id: u64,
    shape: Vec<usize>,
    device: Device,
    storage: Arc<RwLock<Storage>>,
    pub(crate) node: Option<Node>,
    requires_grad: bool,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor(id={}, shape={:?}, device={}, requires_grad={})",
            self.id(),
            self.shape(),
            self.device().name(),
            self.requires_grad()
        )
    }
}

impl Tensor {
    pub(crate) fn from_parts(
        storage: Storage,
        shape: Vec<usize>,
        device: Device,
        node: Option<Node>,
        requires_grad: bool,
    ) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            device,
            storage: Arc::new(RwLock::new(storage)),
            node,
            requires_grad,
        }))
    }

    /// A tensor holding `data` with `shape`, copied to `device`.
    pub fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::from_slice(&data, shape, device)
    }

    /// A tensor holding a copy of `data` with `shape` on `device`.
    pub fn from_slice(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(
                "Tensor::from_slice",
                format!("shape {shape:?} needs {n} elements, got {}", data.len()),
            ));
        }
        let storage = device.backend().upload(data)?;
        Ok(Self::from_parts(
            storage,
            shape.to_vec(),
            device.clone(),
            None,
            false,
        ))
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f32, device: &Device) -> Result<Tensor> {
        let storage = device.backend().full(shape.iter().product(), value)?;
        Ok(Self::from_parts(
            storage,
            shape.to_vec(),
            device.clone(),
            None,
            false,
        ))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::full(shape, 0.0, device)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize], device: &Device) -> Result<Tensor> {
        Self::full(shape, 1.0, device)
    }

    /// A one-element tensor of shape `[1]`.
    pub fn scalar(value: f32, device: &Device) -> Result<Tensor> {
        Self::full(&[1], value, device)
    }

    /// A trainable leaf: gradients are computed for it by [`Tensor::backward`].
    pub fn param(data: &[f32], shape: &[usize], device: &Device) -> Result<Tensor> {
        Ok(Self::from_slice(data, shape, device)?.into_param())
    }

    /// The same numbers as a trainable leaf (storage shared, no history).
    pub fn into_param(self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape: self.0.shape.clone(),
            device: self.0.device.clone(),
            storage: self.0.storage.clone(),
            node: None,
            requires_grad: true,
        }))
    }

    /// The same numbers without history and without gradient (storage shared).
    pub fn detach(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape: self.0.shape.clone(),
            device: self.0.device.clone(),
            storage: self.0.storage.clone(),
            node: None,
            requires_grad: false,
        }))
    }

    /// A unique id (used as the key of gradients and optimiser state).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }

    /// The device holding the numbers.
    pub fn device(&self) -> &Device {
        &self.0.device
    }

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Name of the op that produced this tensor, if it was recorded.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.node.as_ref().map(|n| n.op)
    }

    /// Read access to the device storage.
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the storage, for in-place updates by optimisers. Every tensor sharing
    /// this storage (detached copies, parameters) sees the change.
    pub fn update_storage(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies the numbers to the host.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.device().backend().download(&self.storage())
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "Tensor::item",
                format!(
                    "needs exactly one element, tensor has shape {:?}",
                    self.shape()
                ),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    /// A tensor holding a copy of an ndarray array (any layout, any dimension) on `device`.
    pub fn from_ndarray<S, D>(a: &ndarray::ArrayBase<S, D>, device: &Device) -> Result<Tensor>
    where
        S: ndarray::Data<Elem = f32>,
        D: ndarray::Dimension,
    {
        let shape = a.shape().to_vec();
        match a.as_slice() {
            Some(s) => Tensor::from_slice(s, &shape, device),
            None => Tensor::from_vec(a.iter().copied().collect(), &shape, device),
        }
    }

    /// Copies the numbers to the host as an n-dimensional ndarray array of the tensor's shape.
    pub fn to_ndarray(&self) -> Result<ndarray::ArrayD<f32>> {
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(self.shape()), self.to_vec()?)
            .map_err(|e| Error::shape("Tensor::to_ndarray", e.to_string()))
    }

    /// Copies the tensor to another device (no history is kept).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if device.same(self.device()) {
            return Ok(self.detach());
        }
        Tensor::from_vec(self.to_vec()?, self.shape(), device)
    }

    /// Runs reverse-mode differentiation from this one-element tensor and returns the
    /// gradients of every trainable leaf that it depends on.
    pub fn backward(&self) -> Result<autograd::Gradients> {
        autograd::backward(self)
    }
}
