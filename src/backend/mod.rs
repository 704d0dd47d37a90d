//! The [`Backend`] trait: the primitive operations every device implements, and the
//! [`Storage`] that holds a tensor's numbers on its device.
//!
//! Tensors, autograd, layers and models only ever call these primitives, so a new device
//! (the OpenCL backend, or a user's own) slots in by implementing this trait. Each primitive's
//! CPU code lives in `ops/<name>/cpu.rs`, its OpenCL launcher in `ops/<name>/opencl.rs` and its
//! kernel in `kernels/<family>.cl`.

pub mod cpu;
pub mod opencl;

use crate::ops::conv::ConvGeometry;
use crate::ops::copy::AxisCopy;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::ops::filter::AxisFilter;
use crate::ops::optim::{AdamHyper, SgdHyper};
use crate::ops::pool::PoolGeometry;
use crate::ops::resample::UpsampleGeometry;
use crate::Result;

/// The numbers of one tensor, on the device that owns them. Always f32, contiguous, row-major.
#[derive(Debug)]
pub enum Storage {
    /// Host memory of the native CPU backend.
    Cpu(Vec<f32>),
    /// A pooled OpenCL device buffer (returned to its pool on drop).
    OpenCl(opencl::ClBuffer),
}

impl Drop for Storage {
    /// Large host buffers go back to the CPU buffer pool (`ops::alloc`) so that the
    /// next kernel output of the same size skips the page faults of a fresh mapping.
    fn drop(&mut self) {
        if let Storage::Cpu(v) = self {
            crate::ops::alloc::recycle(std::mem::take(v));
        }
    }
}

impl Storage {
    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(v) => v.len(),
            Storage::OpenCl(b) => b.len(),
        }
    }

    /// True when the storage holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host slice of a CPU storage; an error naming `op` for any other device.
    pub fn cpu(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            Storage::Cpu(v) => Ok(v),
            #[allow(unreachable_patterns)]
            _ => Err(crate::Error::Device(format!(
                "{op}: expected a CPU tensor, got one on another device"
            ))),
        }
    }

    /// The mutable host slice of a CPU storage; an error naming `op` for any other device.
    pub fn cpu_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            Storage::Cpu(v) => Ok(v),
            #[allow(unreachable_patterns)]
            _ => Err(crate::Error::Device(format!(
                "{op}: expected a CPU tensor, got one on another device"
            ))),
        }
    }
}

/// The primitive operations of a device. All shapes are validated by the caller (the tensor
/// layer) before a primitive runs; a backend may assume consistent arguments.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A short human-readable name, e.g. `cpu` or `opencl:0 (NVIDIA H100)`.
    fn name(&self) -> String;
    /// Copies host data to the device.
    fn upload(&self, data: &[f32]) -> Result<Storage>;
    /// Copies device data to the host.
    fn download(&self, storage: &Storage) -> Result<Vec<f32>>;
    /// A new storage of `len` elements all equal to `value`.
    fn full(&self, len: usize, value: f32) -> Result<Storage>;
    /// A new storage of `len` elements that the caller overwrites entirely before reading
    /// (e.g. the output of a concatenation); its contents are unspecified. Defaults to zeros.
    fn for_overwrite(&self, len: usize) -> Result<Storage> {
        self.full(len, 0.0)
    }
    /// Element-wise `op(x)`.
    fn unary(&self, op: UnaryOp, x: &Storage) -> Result<Storage>;
    /// `gy * op'(x)`, the backward of [`Backend::unary`].
    fn unary_backward(&self, op: UnaryOp, x: &Storage, gy: &Storage) -> Result<Storage>;
    /// `op(a, b)` with numpy broadcasting; all three shapes have the same rank.
    fn binary(
        &self,
        op: BinaryOp,
        a: &Storage,
        a_shape: &[usize],
        b: &Storage,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Result<Storage>;
    /// Sum over `axes` (sorted, unique), keeping them as size-1 dimensions.
    fn sum_axes(&self, x: &Storage, shape: &[usize], axes: &[usize]) -> Result<Storage>;
    /// Convolution (cross-correlation) forward: `y = w * x + b`.
    fn conv_forward(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        g: &ConvGeometry,
    ) -> Result<Storage>;
    /// Convolution followed by LeakyReLU, `y = leaky_relu(w * x + b, slope)`: the same values
    /// as [`Backend::conv_forward`] then [`Backend::unary`] with `LeakyRelu(slope)`. Backends
    /// override it to apply the activation as the outputs are stored (one pass less over
    /// memory); the default runs the two ops.
    fn conv_forward_leaky_relu(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        slope: f32,
        g: &ConvGeometry,
    ) -> Result<Storage> {
        let y = self.conv_forward(x, w, bias, g)?;
        self.unary(UnaryOp::LeakyRelu(slope), &y)
    }
    /// Gradient of the convolution with respect to its input (also the transposed convolution).
    fn conv_backward_data(&self, gy: &Storage, w: &Storage, g: &ConvGeometry) -> Result<Storage>;
    /// Gradient of the convolution with respect to its weights.
    fn conv_backward_weight(&self, x: &Storage, gy: &Storage, g: &ConvGeometry) -> Result<Storage>;
    /// Max-pool forward: the pooled values and, per output, the argmax slot inside its window.
    fn maxpool_forward(&self, x: &Storage, g: &PoolGeometry) -> Result<(Storage, Storage)>;
    /// Max-pool backward: routes each output gradient to its argmax.
    fn maxpool_backward(&self, gy: &Storage, argmax: &Storage, g: &PoolGeometry)
        -> Result<Storage>;
    /// Nearest-neighbour upsampling.
    fn upsample_forward(&self, x: &Storage, g: &UpsampleGeometry) -> Result<Storage>;
    /// Backward of the nearest upsampling: sums each block.
    fn upsample_backward(&self, gy: &Storage, g: &UpsampleGeometry) -> Result<Storage>;
    /// Copies a range along one axis of `src` into a range along the same axis of `dst`.
    fn copy_axis(&self, src: &Storage, dst: &mut Storage, c: &AxisCopy) -> Result<()>;
    /// 1-D correlation along one axis with "valid" extent, or its adjoint when `f.adjoint`.
    fn filter_axis(&self, x: &Storage, f: &AxisFilter) -> Result<Storage>;
    /// One bias-corrected Adam update of `param` in place.
    fn adam_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        m: &mut Storage,
        v: &mut Storage,
        h: &AdamHyper,
    ) -> Result<()>;
    /// One SGD-with-momentum update of `param` in place.
    fn sgd_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        velocity: &mut Storage,
        h: &SgdHyper,
    ) -> Result<()>;
    /// Waits for queued work to finish (no-op on the CPU).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Peak device memory in bytes held by tensors since the last reset, when tracked.
    fn peak_memory(&self) -> Option<usize> {
        None
    }
}
