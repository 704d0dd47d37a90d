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
    /// A new layer with `kernel.len()` spatial dimensions (2 or 3), weights drawn by `init`
    /// and a zero bias.
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

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
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
