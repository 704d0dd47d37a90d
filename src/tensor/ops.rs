//! The differentiable tensor operations: shape checks, the call of the device primitive, and
//! the backward rule recorded for autograd, side by side.

use super::Tensor;
use crate::autograd::{record, Node};
use crate::backend::Storage;
use crate::device::Device;
use crate::ops::conv::ConvGeometry;
use crate::ops::copy::AxisCopy;
use crate::ops::elementwise::{broadcast_shape, BinaryOp, UnaryOp};
use crate::ops::filter::AxisFilter;
use crate::ops::pool::PoolGeometry;
use crate::ops::reduce::reduced_shape;
use crate::ops::resample::UpsampleGeometry;
use crate::{Error, Result};
use std::sync::Arc;

/// Padding mode of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// TensorFlow/Keras "same": output `ceil(in / stride)`, smaller half of the padding first.
    Same,
    /// No padding.
    Valid,
}

fn wrap(storage: Storage, shape: Vec<usize>, device: &Device) -> Tensor {
    Tensor::from_parts(storage, shape, device.clone(), None, false)
}

/// Spatial extent of an NC... tensor as (D, H, W), 2-D tensors having D = 1.
fn spatial3(op: &'static str, shape: &[usize]) -> Result<[usize; 3]> {
    match shape.len() {
        4 => Ok([1, shape[2], shape[3]]),
        5 => Ok([shape[2], shape[3], shape[4]]),
        _ => Err(Error::shape(
            op,
            format!("expected an NCHW (rank 4) or NCDHW (rank 5) tensor, got shape {shape:?}"),
        )),
    }
}

/// Expands a per-spatial-axis argument (`[v]` for all axes or one value per axis) to 3 axes.
fn per_axis(
    op: &'static str,
    arg: &'static str,
    v: &[usize],
    spatial_rank: usize,
) -> Result<[usize; 3]> {
    let vals: Vec<usize> = match v.len() {
        1 => vec![v[0]; spatial_rank],
        n if n == spatial_rank => v.to_vec(),
        n => {
            return Err(Error::arg(
                op,
                arg,
                format!("needs 1 or {spatial_rank} values, got {n}: {v:?}"),
            ))
        }
    };
    let mut out = [1; 3];
    out[3 - spatial_rank..].copy_from_slice(&vals);
    Ok(out)
}

fn spatial_shape(batch: usize, channels: usize, s: [usize; 3], rank: usize) -> Vec<usize> {
    if rank == 4 {
        vec![batch, channels, s[1], s[2]]
    } else {
        vec![batch, channels, s[0], s[1], s[2]]
    }
}

impl Tensor {
    pub(crate) fn with_node(self, node: Node) -> Tensor {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.node = Some(node);
                inner.requires_grad = true;
                Tensor(Arc::new(inner))
            }
            Err(shared) => {
                let t = Tensor(shared);
                let mut fresh = t.detach();
                let inner = Arc::get_mut(&mut fresh.0).expect("fresh tensor is unique");
                inner.node = Some(node);
                inner.requires_grad = true;
                fresh
            }
        }
    }

    fn same_device(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if self.device().same(other.device()) {
            Ok(())
        } else {
            Err(Error::Device(format!(
                "{op}: tensors on different devices ({} and {})",
                self.device().name(),
                other.device().name()
            )))
        }
    }

    fn check_not_empty(&self, op: &'static str) -> Result<()> {
        if self.numel() == 0 {
            Err(Error::shape(
                op,
                format!("empty tensor of shape {:?}", self.shape()),
            ))
        } else {
            Ok(())
        }
    }

    // ---------------------------------------------------------------- element-wise unary

    /// Applies a unary element-wise op.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let backend = self.device().backend();
        let y = backend.unary(op, &self.storage())?;
        let out = wrap(y, self.shape().to_vec(), self.device());
        let x = self.detach();
        Ok(record(out, "unary", &[self], move |gy| {
            let g = x
                .device()
                .backend()
                .unary_backward(op, &x.storage(), &gy.storage())?;
            Ok(vec![Some(wrap(g, x.shape().to_vec(), x.device()))])
        }))
    }

    /// `-x`
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// `exp(x)`
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// `ln(x)`
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// `ln(1 + x)`
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log1p)
    }
    /// `sqrt(x)`
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// `|x|`
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// `x^2`
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    /// `1/x`
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    /// `max(x, 0)`
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// `x` where positive, else `slope * x`.
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }
    /// `1/(1+exp(-x))`
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// `1/(1+exp(-a x))`, the output of the 3-D patch model (a = 1.5).
    pub fn scaled_sigmoid(&self, a: f32) -> Result<Tensor> {
        self.unary(UnaryOp::ScaledSigmoid(a))
    }
    /// `tanh(x)`
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// `sin(x)`
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    /// `cos(x)`
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    /// `x + c`
    pub fn add_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c))
    }
    /// `c * x`
    pub fn mul_scalar(&self, c: f32) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c))
    }
    /// `min(max(x, lo), hi)`
    pub fn clamp(&self, lo: f32, hi: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Clamp(lo, hi))
    }

    // ---------------------------------------------------------------- element-wise binary

    /// Applies a binary op with numpy broadcasting (shapes aligned on the right).
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        };
        self.same_device(other, name)?;
        let rank = self.rank().max(other.rank());
        let pad = |s: &[usize]| {
            let mut v = vec![1; rank - s.len()];
            v.extend_from_slice(s);
            v
        };
        let (a_shape, b_shape) = (pad(self.shape()), pad(other.shape()));
        let out_shape = broadcast_shape(&a_shape, &b_shape).ok_or_else(|| {
            Error::shape(
                name,
                format!(
                    "cannot broadcast {:?} with {:?}",
                    self.shape(),
                    other.shape()
                ),
            )
        })?;
        let y = self.device().backend().binary(
            op,
            &self.storage(),
            &a_shape,
            &other.storage(),
            &b_shape,
            &out_shape,
        )?;
        let out = wrap(y, out_shape, self.device());
        let (a, b) = (self.detach(), other.detach());
        let (need_a, need_b) = (self.requires_grad(), other.requires_grad());
        Ok(record(out, name, &[self, other], move |gy| {
            let ga = |g: Tensor| g.sum_to(&a_shape, a.shape());
            let gb = |g: Tensor| g.sum_to(&b_shape, b.shape());
            let (da, db) = match op {
                BinaryOp::Add => (
                    need_a.then(|| ga(gy.clone())).transpose()?,
                    need_b.then(|| gb(gy.clone())).transpose()?,
                ),
                BinaryOp::Sub => (
                    need_a.then(|| ga(gy.clone())).transpose()?,
                    need_b.then(|| gb(gy.neg()?)).transpose()?,
                ),
                BinaryOp::Mul => (
                    need_a.then(|| ga(gy.mul(&b)?)).transpose()?,
                    need_b.then(|| gb(gy.mul(&a)?)).transpose()?,
                ),
                BinaryOp::Div => (
                    need_a.then(|| ga(gy.div(&b)?)).transpose()?,
                    need_b
                        .then(|| gb(gy.mul(&a)?.div(&b.square()?)?.neg()?))
                        .transpose()?,
                ),
            };
            Ok(vec![da, db])
        }))
    }

    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add)
    }
    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub)
    }
    /// `self * other` (broadcasting).
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul)
    }
    /// `self / other` (broadcasting).
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div)
    }

    /// Sums a broadcast gradient back to `padded` (same rank as self) and reshapes it to
    /// `original`.
    fn sum_to(&self, padded: &[usize], original: &[usize]) -> Result<Tensor> {
        let axes: Vec<usize> = (0..padded.len())
            .filter(|&d| padded[d] == 1 && self.shape()[d] != 1)
            .collect();
        let summed = if axes.is_empty() {
            self.clone()
        } else {
            self.sum_axes(&axes, true)?
        };
        summed.reshape(original)
    }

    // ---------------------------------------------------------------- shapes and reductions

    /// The same numbers with another shape of the same size (storage shared).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {:?} ({} elements) as {shape:?}",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let mut out = self.detach();
        Arc::get_mut(&mut out.0)
            .expect("fresh tensor is unique")
            .shape = shape.to_vec();
        let old = self.shape().to_vec();
        Ok(record(out, "reshape", &[self], move |gy| {
            Ok(vec![Some(gy.reshape(&old)?)])
        }))
    }

    /// Broadcasts to `shape` (same rank, size-1 axes repeated).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let zeros = Tensor::zeros(shape, self.device())?;
        let out = self.add(&zeros)?;
        if out.shape() != shape {
            return Err(Error::shape(
                "broadcast_to",
                format!("cannot broadcast {:?} to {shape:?}", self.shape()),
            ));
        }
        Ok(out)
    }

    /// Sum over `axes`; `keepdim` keeps them as size-1 dimensions. Removing every axis gives
    /// shape `[1]`.
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let mut axes = axes.to_vec();
        axes.sort_unstable();
        axes.dedup();
        if let Some(&bad) = axes.iter().find(|&&a| a >= self.rank()) {
            return Err(Error::arg(
                "sum",
                "axes",
                format!("axis {bad} out of range for shape {:?}", self.shape()),
            ));
        }
        let kept = reduced_shape(self.shape(), &axes);
        let y = self
            .device()
            .backend()
            .sum_axes(&self.storage(), self.shape(), &axes)?;
        let out = wrap(y, kept.clone(), self.device());
        let in_shape = self.shape().to_vec();
        let out = record(out, "sum", &[self], move |gy| {
            Ok(vec![Some(gy.reshape(&kept)?.broadcast_to(&in_shape)?)])
        });
        if keepdim {
            Ok(out)
        } else {
            let mut squeezed: Vec<usize> = self
                .shape()
                .iter()
                .enumerate()
                .filter(|(d, _)| !axes.contains(d))
                .map(|(_, &n)| n)
                .collect();
            if squeezed.is_empty() {
                squeezed.push(1);
            }
            out.reshape(&squeezed)
        }
    }

    /// Sum of all elements, shape `[1]`.
    pub fn sum(&self) -> Result<Tensor> {
        let axes: Vec<usize> = (0..self.rank()).collect();
        self.sum_axes(&axes, false)
    }

    /// Mean of all elements, shape `[1]`.
    pub fn mean(&self) -> Result<Tensor> {
        self.check_not_empty("mean")?;
        self.sum()?.mul_scalar(1.0 / self.numel() as f32)
    }

    /// Mean over `axes`.
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.check_not_empty("mean")?;
        let count: usize = axes.iter().filter_map(|&a| self.shape().get(a)).product();
        self.sum_axes(axes, keepdim)?
            .mul_scalar(1.0 / count.max(1) as f32)
    }

    // ---------------------------------------------------------------- convolutions

    /// N-d convolution (cross-correlation) of an NCHW / NCDHW tensor with weights
    /// `[O, C, k...]`, optional bias `[O]`, per-axis `dilation` and `stride` (one value or one
    /// per spatial axis).
    pub fn conv(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: &[usize],
        stride: &[usize],
        padding: Padding,
    ) -> Result<Tensor> {
        self.conv_impl("conv", weight, bias, dilation, stride, padding, None)
    }

    /// [`Tensor::conv`] followed by [`Tensor::leaky_relu`] with `slope`, fused: the activation
    /// is applied as the convolution stores its outputs, and the backward pass recovers the
    /// activation's gradient from the output, so the pre-activation tensor is never kept. The
    /// values and gradients are those of the two ops in sequence. A negative or non-finite
    /// slope (the sign of the output then no longer tells the sign of the input) runs the two
    /// ops unfused.
    pub fn conv_leaky_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: &[usize],
        stride: &[usize],
        padding: Padding,
        slope: f32,
    ) -> Result<Tensor> {
        if !(slope.is_finite() && slope >= 0.0) {
            return self
                .conv(weight, bias, dilation, stride, padding)?
                .leaky_relu(slope);
        }
        let op = "conv_leaky_relu";
        self.conv_impl(op, weight, bias, dilation, stride, padding, Some(slope))
    }

    /// The convolution, with the LeakyReLU of slope `leaky` (>= 0) fused when given.
    #[allow(clippy::too_many_arguments)]
    fn conv_impl(
        &self,
        op: &'static str,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: &[usize],
        stride: &[usize],
        padding: Padding,
        leaky: Option<f32>,
    ) -> Result<Tensor> {
        let (g, out_shape) = self.conv_geometry(op, weight, bias, dilation, stride, padding)?;
        let backend = self.device().backend();
        let y = {
            let (x, w, b) = (self.storage(), weight.storage(), bias.map(|b| b.storage()));
            match leaky {
                Some(s) => backend.conv_forward_leaky_relu(&x, &w, b.as_deref(), s, &g)?,
                None => backend.conv_forward(&x, &w, b.as_deref(), &g)?,
            }
        };
        let out = wrap(y, out_shape.clone(), self.device());
        // The activation's gradient is read off the output: y > 0 exactly where the
        // pre-activation is, for a slope >= 0.
        let y_keep = leaky.map(|_| out.detach());
        let (x, w) = (self.detach(), weight.detach());
        let (need_x, need_w) = (self.requires_grad(), weight.requires_grad());
        let need_b = bias.is_some_and(|b| b.requires_grad());
        let mut inputs = vec![self, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        Ok(record(out, op, &inputs, move |gy| {
            let be = gy.device().backend();
            let gy = match (leaky, &y_keep) {
                (Some(s), Some(y)) => {
                    let g =
                        be.unary_backward(UnaryOp::LeakyRelu(s), &y.storage(), &gy.storage())?;
                    wrap(g, gy.shape().to_vec(), gy.device())
                }
                _ => gy.clone(),
            };
            let gx = need_x
                .then(|| -> Result<Tensor> {
                    let s = be.conv_backward_data(&gy.storage(), &w.storage(), &g)?;
                    Ok(wrap(s, x.shape().to_vec(), x.device()))
                })
                .transpose()?;
            let gw = need_w
                .then(|| -> Result<Tensor> {
                    let s = be.conv_backward_weight(&x.storage(), &gy.storage(), &g)?;
                    Ok(wrap(s, w.shape().to_vec(), w.device()))
                })
                .transpose()?;
            let mut grads = vec![gx, gw];
            if need_b {
                let axes: Vec<usize> = (0..gy.rank()).filter(|&d| d != 1).collect();
                grads.push(Some(gy.sum_axes(&axes, false)?));
            } else if out_shape.len() > 1 {
                grads.push(None);
            }
            Ok(grads)
        }))
    }

    fn conv_geometry(
        &self,
        op: &'static str,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: &[usize],
        stride: &[usize],
        padding: Padding,
    ) -> Result<(ConvGeometry, Vec<usize>)> {
        self.same_device(weight, op)?;
        self.check_not_empty(op)?;
        let input = spatial3(op, self.shape())?;
        let rank = self.rank();
        if weight.rank() != rank {
            return Err(Error::shape(
                op,
                format!(
                    "weights {:?} must have the rank of the input {:?} ([O, C, k...])",
                    weight.shape(),
                    self.shape()
                ),
            ));
        }
        let (batch, channels) = (self.shape()[0], self.shape()[1]);
        let (out_ch, w_in) = (weight.shape()[0], weight.shape()[1]);
        if w_in != channels {
            return Err(Error::shape(
                op,
                format!(
                    "input has {channels} channels {:?} but weights {:?} expect {w_in}",
                    self.shape(),
                    weight.shape()
                ),
            ));
        }
        if let Some(b) = bias {
            self.same_device(b, op)?;
            if b.shape() != [out_ch] {
                return Err(Error::shape(
                    op,
                    format!("bias {:?} must have shape [{out_ch}]", b.shape()),
                ));
            }
        }
        let kernel = spatial3(op, weight.shape())?;
        let sr = rank - 2;
        let dilation = per_axis(op, "dilation", dilation, sr)?;
        let stride = per_axis(op, "stride", stride, sr)?;
        let g = match padding {
            Padding::Same => {
                ConvGeometry::same(op, batch, channels, out_ch, input, kernel, dilation, stride)?
            }
            Padding::Valid => {
                ConvGeometry::valid(op, batch, channels, out_ch, input, kernel, dilation, stride)?
            }
        };
        let shape = spatial_shape(batch, out_ch, g.output, rank);
        Ok((g, shape))
    }

    /// Transposed convolution with Keras "same" semantics: output spatial size
    /// `input * stride`. Weights `[C_in, C_out, k...]` (the layout of the convolution it is the
    /// adjoint of), optional bias `[C_out]`.
    pub fn conv_transpose(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dilation: &[usize],
        stride: &[usize],
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose";
        self.same_device(weight, OP)?;
        self.check_not_empty(OP)?;
        let input = spatial3(OP, self.shape())?;
        let rank = self.rank();
        if weight.rank() != rank || weight.shape()[0] != self.shape()[1] {
            return Err(Error::shape(
                OP,
                format!(
                    "weights {:?} must be [C_in={}, C_out, k...] with the input's rank ({:?})",
                    weight.shape(),
                    self.shape()[1],
                    self.shape()
                ),
            ));
        }
        let (batch, out_ch) = (self.shape()[0], weight.shape()[1]);
        let sr = rank - 2;
        let dilation = per_axis(OP, "dilation", dilation, sr)?;
        let stride = per_axis(OP, "stride", stride, sr)?;
        let kernel = spatial3(OP, weight.shape())?;
        let big = [0, 1, 2].map(|a| input[a] * stride[a]);
        // The convolution this op is the adjoint of: big -> input.
        let g = ConvGeometry::same(
            OP,
            batch,
            out_ch,
            self.shape()[1],
            big,
            kernel,
            dilation,
            stride,
        )?;
        debug_assert_eq!(g.output, input);
        let y =
            self.device()
                .backend()
                .conv_backward_data(&self.storage(), &weight.storage(), &g)?;
        let out = wrap(y, spatial_shape(batch, out_ch, big, rank), self.device());
        let (x, w) = (self.detach(), weight.detach());
        let (need_x, need_w) = (self.requires_grad(), weight.requires_grad());
        let out = record(out, OP, &[self, weight], move |gy| {
            let be = gy.device().backend();
            let gx = need_x
                .then(|| -> Result<Tensor> {
                    let s = be.conv_forward(&gy.storage(), &w.storage(), None, &g)?;
                    Ok(wrap(s, x.shape().to_vec(), x.device()))
                })
                .transpose()?;
            let gw = need_w
                .then(|| -> Result<Tensor> {
                    let s = be.conv_backward_weight(&gy.storage(), &x.storage(), &g)?;
                    Ok(wrap(s, w.shape().to_vec(), w.device()))
                })
                .transpose()?;
            Ok(vec![gx, gw])
        });
        match bias {
            None => Ok(out),
            Some(b) => {
                if b.shape() != [out_ch] {
                    return Err(Error::shape(
                        OP,
                        format!("bias {:?} must have shape [{out_ch}]", b.shape()),
                    ));
                }
                let mut bshape = vec![1; rank];
                bshape[1] = out_ch;
                out.add(&b.reshape(&bshape)?)
            }
        }
    }

    // ---------------------------------------------------------------- pooling and resampling

    /// Max-pooling with window = stride (one value or one per spatial axis). Every spatial size
    /// must be a multiple of its window; otherwise this is an error naming the sizes (use
    /// [`Tensor::max_pool_ceil`] to keep the last partial window or
    /// [`Tensor::max_pool_floor`] to drop it).
    pub fn max_pool(&self, window: &[usize]) -> Result<Tensor> {
        const OP: &str = "max_pool";
        self.check_not_empty(OP)?;
        let input = spatial3(OP, self.shape())?;
        let w = per_axis(OP, "window", window, self.rank() - 2)?;
        if (0..3).any(|a| w[a] > 0 && input[a] % w[a] != 0) {
            return Err(Error::shape(
                OP,
                format!(
                    "spatial sizes of {:?} are not multiples of the window {window:?}: use \
                     max_pool_ceil (keeps the last partial window) or max_pool_floor (drops it)",
                    self.shape()
                ),
            ));
        }
        self.max_pool_floor(window)
    }

    /// Max-pooling with window = stride and floor output size: a last partial window along an
    /// axis is dropped.
    pub fn max_pool_floor(&self, window: &[usize]) -> Result<Tensor> {
        const OP: &str = "max_pool";
        self.check_not_empty(OP)?;
        let input = spatial3(OP, self.shape())?;
        let rank = self.rank();
        let window = per_axis(OP, "window", window, rank - 2)?;
        let (n, c) = (self.shape()[0], self.shape()[1]);
        let g = PoolGeometry::new(n * c, input, window)?;
        let (y, arg) = self
            .device()
            .backend()
            .maxpool_forward(&self.storage(), &g)?;
        let out = wrap(y, spatial_shape(n, c, g.output, rank), self.device());
        let argmax = wrap(arg, out.shape().to_vec(), self.device());
        let in_shape = self.shape().to_vec();
        Ok(record(out, OP, &[self], move |gy| {
            let be = gy.device().backend();
            let s = be.maxpool_backward(&gy.storage(), &argmax.storage(), &g)?;
            Ok(vec![Some(wrap(s, in_shape.clone(), gy.device()))])
        }))
    }

    /// Nearest-neighbour upsampling by integer factors (one value or one per spatial axis).
    pub fn upsample(&self, factor: &[usize]) -> Result<Tensor> {
        const OP: &str = "upsample";
        self.check_not_empty(OP)?;
        let input = spatial3(OP, self.shape())?;
        let rank = self.rank();
        let factor = per_axis(OP, "factor", factor, rank - 2)?;
        let (n, c) = (self.shape()[0], self.shape()[1]);
        let g = UpsampleGeometry::new(n * c, input, factor)?;
        let y = self
            .device()
            .backend()
            .upsample_forward(&self.storage(), &g)?;
        let out = wrap(y, spatial_shape(n, c, g.output(), rank), self.device());
        let in_shape = self.shape().to_vec();
        Ok(record(out, OP, &[self], move |gy| {
            let s = gy.device().backend().upsample_backward(&gy.storage(), &g)?;
            Ok(vec![Some(wrap(s, in_shape.clone(), gy.device()))])
        }))
    }

    // ---------------------------------------------------------------- slicing

    /// `len` positions starting at `start` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        const OP: &str = "narrow";
        if axis >= self.rank() || start + len > self.shape()[axis] || len == 0 {
            return Err(Error::arg(
                OP,
                "range",
                format!(
                    "axis {axis}, start {start}, length {len} do not fit shape {:?}",
                    self.shape()
                ),
            ));
        }
        let shape = self.shape();
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let mut out_shape = shape.to_vec();
        out_shape[axis] = len;
        let c = AxisCopy {
            outer,
            inner,
            src_len: shape[axis],
            src_start: start,
            dst_len: len,
            dst_start: 0,
            count: len,
        };
        let backend = self.device().backend();
        let mut y = backend.full(out_shape.iter().product(), 0.0)?;
        backend.copy_axis(&self.storage(), &mut y, &c)?;
        let out = wrap(y, out_shape, self.device());
        let in_shape = shape.to_vec();
        Ok(record(out, OP, &[self], move |gy| {
            let be = gy.device().backend();
            let mut gx = be.full(in_shape.iter().product(), 0.0)?;
            let back = AxisCopy {
                src_len: c.dst_len,
                src_start: 0,
                dst_len: c.src_len,
                dst_start: c.src_start,
                ..c
            };
            be.copy_axis(&gy.storage(), &mut gx, &back)?;
            Ok(vec![Some(wrap(gx, in_shape.clone(), gy.device()))])
        }))
    }

    // ---------------------------------------------------------------- separable filters

    /// 1-D "valid" correlation with `taps` along `axis` (output shorter by `taps - 1`).
    pub fn filter_axis(&self, axis: usize, taps: &[f32]) -> Result<Tensor> {
        const OP: &str = "filter_axis";
        if axis >= self.rank() {
            return Err(Error::arg(
                OP,
                "axis",
                format!("{axis} out of range for {:?}", self.shape()),
            ));
        }
        if taps.is_empty() || taps.len() > self.shape()[axis] {
            return Err(Error::arg(
                OP,
                "taps",
                format!(
                    "{} taps do not fit axis {axis} of shape {:?}",
                    taps.len(),
                    self.shape()
                ),
            ));
        }
        let shape = self.shape();
        let f = AxisFilter {
            outer: shape[..axis].iter().product(),
            len: shape[axis],
            inner: shape[axis + 1..].iter().product(),
            taps: taps.to_vec(),
            adjoint: false,
        };
        let mut out_shape = shape.to_vec();
        out_shape[axis] = f.out_len();
        let y = self.device().backend().filter_axis(&self.storage(), &f)?;
        let out = wrap(y, out_shape.clone(), self.device());
        let in_shape = shape.to_vec();
        Ok(record(out, OP, &[self], move |gy| {
            let adj = AxisFilter {
                len: f.out_len(),
                adjoint: true,
                ..f.clone()
            };
            let s = gy.device().backend().filter_axis(&gy.storage(), &adj)?;
            Ok(vec![Some(wrap(s, in_shape.clone(), gy.device()))])
        }))
    }
}

/// Concatenates tensors along `axis`; all other dimensions must agree.
pub fn concat(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
    const OP: &str = "concat";
    let first = tensors
        .first()
        .ok_or_else(|| Error::arg(OP, "tensors", "needs at least one tensor"))?;
    let shape = first.shape();
    if axis >= shape.len() {
        return Err(Error::arg(
            OP,
            "axis",
            format!("{axis} out of range for {shape:?}"),
        ));
    }
    let mut total = 0;
    for t in tensors {
        first.same_device(t, OP)?;
        let s = t.shape();
        let ok = s.len() == shape.len() && (0..s.len()).all(|d| d == axis || s[d] == shape[d]);
        if !ok {
            return Err(Error::shape(
                OP,
                format!(
                    "along axis {axis}: {:?}",
                    tensors
                        .iter()
                        .map(|t| t.shape().to_vec())
                        .collect::<Vec<_>>()
                ),
            ));
        }
        total += s[axis];
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape[axis] = total;
    let device = first.device().clone();
    let backend = device.backend();
    // the copies below cover every element of the output
    let mut y = backend.for_overwrite(out_shape.iter().product())?;
    let mut copies = Vec::with_capacity(tensors.len());
    let mut offset = 0;
    for t in tensors {
        let len = t.shape()[axis];
        let c = AxisCopy {
            outer,
            inner,
            src_len: len,
            src_start: 0,
            dst_len: total,
            dst_start: offset,
            count: len,
        };
        backend.copy_axis(&t.storage(), &mut y, &c)?;
        copies.push((c, t.shape().to_vec()));
        offset += len;
    }
    let out = wrap(y, out_shape, &device);
    Ok(record(out, OP, tensors, move |gy| {
        let be = gy.device().backend();
        copies
            .iter()
            .map(|(c, s)| {
                // one copy covers the whole input gradient
                let mut g = be.for_overwrite(s.iter().product())?;
                let back = AxisCopy {
                    src_len: c.dst_len,
                    src_start: c.dst_start,
                    dst_len: c.src_len,
                    dst_start: 0,
                    ..*c
                };
                be.copy_axis(&gy.storage(), &mut g, &back)?;
                Ok(Some(wrap(g, s.clone(), gy.device())))
            })
            .collect()
    }))
}
