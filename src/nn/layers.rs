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
        let k: usize = kernel.iter().product();
        let mut shape = vec![out_channels, in_channels];
        shape.extend_from_slice(kernel);
        let w = init.sample(
            out_channels * in_channels * k,
            in_channels * k,
            out_channels * k,
            rng,
        );
        Ok(Conv {
            weight: Tensor::param(&w, &shape, device)?,
            bias: Some(Tensor::zeros(&[out_channels], device)?.into_param()),
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
        let mut p = vec![Param::new("weight", &self.weight)];
        if let Some(b) = &self.bias {
            p.push(Param::new("bias", b));
        }
        p
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
        let k: usize = kernel.iter().product();
        let mut shape = vec![in_channels, out_channels];
        shape.extend_from_slice(kernel);
        let w = init.sample(
            out_channels * in_channels * k,
            in_channels * k,
            out_channels * k,
            rng,
        );
        Ok(ConvTranspose {
            weight: Tensor::param(&w, &shape, device)?,
            bias: Some(Tensor::zeros(&[out_channels], device)?.into_param()),
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
        let mut p = vec![Param::new("weight", &self.weight)];
        if let Some(b) = &self.bias {
            p.push(Param::new("bias", b));
        }
        p
    }
}
