//! Convolution layers (2-D and 3-D from the same code: the rank comes from the kernel).

use super::{Init, Module, Param};
use crate::tensor::{ops_api::Padding, Tensor};
use crate::{Device, Error, Result};
use rand::Rng;

/// A convolution layer with "same" padding, per-axis dilation and stride, optional bias.
#[derive(Debug, Clone)]
pub struct Conv {
    /// Weights `[out, in, k...]`.
    pub weight: Tensor,
    /// Bias `[out]`.
    pub bias: Option<Tensor>,
    /// Dilation per spatial axis.
    pub dilation: Vec<usize>,
    /// Stride per spatial axis.
    pub stride: Vec<usize>,
    /// Padding mode.
    pub padding: Padding,
}

impl Conv {
    /// A new layer with `kernel.len()` spatial dimensions (2 or 3), weights drawn by `init`,
    /// a zero bias, stride 1 and "same" padding (see [`Conv::with_stride`],
    /// [`Conv::with_padding`]).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: &[usize],
        dilation: &[usize],
        init: Init,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Conv> {
        if !(2..=3).contains(&kernel.len()) {
            return Err(Error::arg(
                "Conv::new",
                "kernel",
                format!("needs 2 or 3 sizes, got {kernel:?}"),
            ));
        }
        if in_channels == 0 || out_channels == 0 || kernel.contains(&0) {
            return Err(Error::arg(
                "Conv::new",
                "shape",
                format!(
                    "channels {in_channels}->{out_channels} and kernel {kernel:?} must be positive"
                ),
            ));
        }
        let (weight, bias) = weight_and_bias(
            [out_channels, in_channels],
            in_channels,
            out_channels,
            kernel,
            init,
            rng,
            device,
        )?;
        Ok(Conv {
            weight,
            bias: Some(bias),
            dilation: dilation.to_vec(),
            stride: vec![1],
            padding: Padding::Same,
        })
    }

    /// A new layer with `stride` (one value or one per spatial axis) and dilation 1: the
    /// downsampling convolution, `Conv::new(..).with_stride(stride)` in one call.
    pub fn strided(
        in_channels: usize,
        out_channels: usize,
        kernel: &[usize],
        stride: &[usize],
        init: Init,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Conv> {
        Conv::new(in_channels, out_channels, kernel, &[1], init, rng, device)?.with_stride(stride)
    }

    /// The same layer with `stride` (one value or one per spatial axis; output size
    /// `ceil(in / stride)` with "same" padding).
    pub fn with_stride(mut self, stride: &[usize]) -> Result<Conv> {
        let sr = self.weight.rank() - 2;
        if !(stride.len() == 1 || stride.len() == sr) || stride.contains(&0) {
            return Err(Error::arg(
                "Conv::with_stride",
                "stride",
                format!("needs 1 or {sr} positive values, got {stride:?}"),
            ));
        }
        self.stride = stride.to_vec();
        Ok(self)
    }

    /// The same layer with `padding`.
    pub fn with_padding(mut self, padding: Padding) -> Conv {
        self.padding = padding;
        self
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The layer followed by LeakyReLU of `slope`, fused into one op
    /// ([`Tensor::conv_leaky_relu`]): the values of `forward(x)?.leaky_relu(slope)` with one
    /// pass less over memory and no pre-activation kept for the backward.
    pub fn forward_leaky_relu(&self, x: &Tensor, slope: f32) -> Result<Tensor> {
        x.conv_leaky_relu(
            &self.weight,
            self.bias.as_ref(),
            &self.dilation,
            &self.stride,
            self.padding,
            slope,
        )
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv(
            &self.weight,
            self.bias.as_ref(),
            &self.dilation,
            &self.stride,
            self.padding,
        )
    }

    fn parameters(&self) -> Vec<Param> {
        weight_bias_params(&self.weight, self.bias.as_ref())
    }
}

/// A transposed convolution with Keras "same" semantics (output = input * stride).
#[derive(Debug, Clone)]
pub struct ConvTranspose {
    /// Weights `[in, out, k...]`.
    pub weight: Tensor,
    /// Bias `[out]`.
    pub bias: Option<Tensor>,
    /// Dilation per spatial axis.
    pub dilation: Vec<usize>,
    /// Stride per spatial axis (1 or 2 in the BCDI models).
    pub stride: Vec<usize>,
}

impl ConvTranspose {
    /// A new layer with `kernel.len()` spatial dimensions.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: &[usize],
        stride: &[usize],
        init: Init,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<ConvTranspose> {
        if !(2..=3).contains(&kernel.len())
            || in_channels == 0
            || out_channels == 0
            || kernel.contains(&0)
        {
            return Err(Error::arg(
                "ConvTranspose::new",
                "shape",
                format!("channels {in_channels}->{out_channels}, kernel {kernel:?}: need positive sizes and 2 or 3 axes"),
            ));
        }
        let (weight, bias) = weight_and_bias(
            [in_channels, out_channels],
            in_channels,
            out_channels,
            kernel,
            init,
            rng,
            device,
        )?;
        Ok(ConvTranspose {
            weight,
            bias: Some(bias),
            dilation: vec![1],
            stride: stride.to_vec(),
        })
    }
}

impl Module for ConvTranspose {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv_transpose(
            &self.weight,
            self.bias.as_ref(),
            &self.dilation,
            &self.stride,
        )
    }

    fn parameters(&self) -> Vec<Param> {
        weight_bias_params(&self.weight, self.bias.as_ref())
    }
}

/// Draws a weight tensor of shape `lead ++ kernel` (fans from the channel counts) and a zero bias
/// of `out_channels`, both trainable.
fn weight_and_bias(
    lead: [usize; 2],
    in_channels: usize,
    out_channels: usize,
    kernel: &[usize],
    init: Init,
    rng: &mut impl Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let k: usize = kernel.iter().product();
    let mut shape = lead.to_vec();
    shape.extend_from_slice(kernel);
    let w = init.sample(
        out_channels * in_channels * k,
        in_channels * k,
        out_channels * k,
        rng,
    );
    let weight = Tensor::param(&w, &shape, device)?;
    let bias = Tensor::zeros(&[out_channels], device)?.into_param();
    Ok((weight, bias))
}

/// The `weight` and optional `bias` parameters of a layer.
fn weight_bias_params(weight: &Tensor, bias: Option<&Tensor>) -> Vec<Param> {
    let mut p = vec![Param::new("weight", weight)];
    if let Some(b) = bias {
        p.push(Param::new("bias", b));
    }
    p
}

/// A fully connected layer on the last axis: `y = x W + b` with `W` of shape `[in, out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weights `[in, out]`.
    pub weight: Tensor,
    /// Bias `[out]`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A new layer with weights drawn by `init` and a zero bias.
    pub fn new(
        in_features: usize,
        out_features: usize,
        init: Init,
        rng: &mut impl Rng,
        device: &Device,
    ) -> Result<Linear> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::arg(
                "Linear::new",
                "features",
                format!("{in_features}->{out_features} must be positive"),
            ));
        }
        let w = init.sample(in_features * out_features, in_features, out_features, rng);
        Ok(Linear {
            weight: Tensor::param(&w, &[in_features, out_features], device)?,
            bias: Some(Tensor::zeros(&[out_features], device)?.into_param()),
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight)?;
        match &self.bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    fn parameters(&self) -> Vec<Param> {
        weight_bias_params(&self.weight, self.bias.as_ref())
    }
}

/// Group normalisation with a learnable scale and shift per channel (see
/// [`Tensor::group_norm`]).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    /// Number of channel groups.
    pub groups: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Scale `[C]`, initially 1.
    pub weight: Tensor,
    /// Shift `[C]`, initially 0.
    pub bias: Tensor,
}

impl GroupNorm {
    /// A new layer for `channels` channels split into `groups` groups (eps 1e-5).
    pub fn new(groups: usize, channels: usize, device: &Device) -> Result<GroupNorm> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::arg(
                "GroupNorm::new",
                "groups",
                format!("{groups} groups must divide {channels} channels"),
            ));
        }
        Ok(GroupNorm {
            groups,
            eps: 1e-5,
            weight: Tensor::ones(&[channels], device)?.into_param(),
            bias: Tensor::zeros(&[channels], device)?.into_param(),
        })
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut s = vec![1; x.rank()];
        if x.rank() < 2 || x.shape()[1] != self.weight.numel() {
            return Err(Error::shape(
                "GroupNorm",
                format!(
                    "input {:?} must be [N, {}, ...]",
                    x.shape(),
                    self.weight.numel()
                ),
            ));
        }
        s[1] = self.weight.numel();
        x.group_norm(self.groups, self.eps)?
            .mul(&self.weight.reshape(&s)?)?
            .add(&self.bias.reshape(&s)?)
    }

    fn parameters(&self) -> Vec<Param> {
        vec![
            Param::new("weight", &self.weight),
            Param::new("bias", &self.bias),
        ]
    }
}

/// Dropout with a fresh mask per call while training (see [`Tensor::dropout`]); the identity
/// in evaluation mode.
#[derive(Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub p: f32,
    seed: std::sync::atomic::AtomicU64,
    training: std::sync::atomic::AtomicBool,
}

impl Dropout {
    /// A dropout layer in training mode; masks derive from `seed` and a call counter.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::arg(
                "Dropout::new",
                "p",
                format!("must be in [0, 1), got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            seed: std::sync::atomic::AtomicU64::new(seed),
            training: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Switches between training (dropout on) and evaluation (identity).
    pub fn set_training(&self, training: bool) {
        self.training
            .store(training, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        use std::sync::atomic::Ordering;
        if !self.training.load(Ordering::Relaxed) {
            return Ok(x.clone());
        }
        let seed = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x.dropout(self.p, seed)
    }

    fn parameters(&self) -> Vec<Param> {
        Vec::new()
    }
}
