//! N-d convolution (2-D as depth 1): geometry, "same" padding, and the shape checks.
//!
//! Layouts: input `[N, C, D, H, W]`, weights `[O, C, kD, kH, kW]` (2-D tensors simply have no
//! depth axis), output `[N, O, D', H', W']`. The op is a cross-correlation like every
//! deep-learning framework's "convolution": `y[o, p] = b[o] + sum_{c,k} w[o, c, k] x[c, p*s + k*d - pad]`.

pub mod cpu;
pub(crate) mod direct;
pub(crate) mod im2col;
pub mod opencl;
pub mod reference;

use crate::{Error, Result};

/// Everything a convolution primitive needs to know about its shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels C.
    pub in_channels: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Input spatial size (D, H, W); 2-D uses D = 1.
    pub input: [usize; 3],
    /// Output spatial size.
    pub output: [usize; 3],
    /// Kernel size per axis.
    pub kernel: [usize; 3],
    /// Dilation per axis (>= 1).
    pub dilation: [usize; 3],
    /// Stride per axis (>= 1).
    pub stride: [usize; 3],
    /// Zero padding before the first element, per axis.
    pub pad_before: [usize; 3],
}

impl ConvGeometry {
    /// Geometry of a convolution with TensorFlow/Keras "same" padding: output `ceil(in/stride)`,
    /// total padding `max((out-1)*s + d*(k-1) + 1 - in, 0)` with the smaller half before.
    #[allow(clippy::too_many_arguments)]
    pub fn same(
        op: &'static str,
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input: [usize; 3],
        kernel: [usize; 3],
        dilation: [usize; 3],
        stride: [usize; 3],
    ) -> Result<Self> {
        for a in 0..3 {
            if dilation[a] == 0 {
                return Err(Error::arg(
                    op,
                    "dilation",
                    format!("must be >= 1, got {dilation:?}"),
                ));
            }
            if stride[a] == 0 {
                return Err(Error::arg(
                    op,
                    "stride",
                    format!("must be >= 1, got {stride:?}"),
                ));
            }
            if kernel[a] == 0 {
                return Err(Error::arg(
                    op,
                    "kernel",
                    format!("must be >= 1, got {kernel:?}"),
                ));
            }
            if input[a] == 0 {
                return Err(Error::shape(op, format!("empty spatial input {input:?}")));
            }
        }
        let mut output = [0; 3];
        let mut pad_before = [0; 3];
        for a in 0..3 {
            let extent = dilation[a] * (kernel[a] - 1) + 1;
            output[a] = input[a].div_ceil(stride[a]);
            let total = ((output[a] - 1) * stride[a] + extent).saturating_sub(input[a]);
            pad_before[a] = total / 2;
        }
        Ok(ConvGeometry {
            batch,
            in_channels,
            out_channels,
            input,
            output,
            kernel,
            dilation,
            stride,
            pad_before,
        })
    }

    /// Geometry of a convolution without padding ("valid"): output `(in - extent)/stride + 1`.
    /// A kernel whose dilated extent exceeds the input is an error.
    #[allow(clippy::too_many_arguments)]
    pub fn valid(
        op: &'static str,
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        input: [usize; 3],
        kernel: [usize; 3],
        dilation: [usize; 3],
        stride: [usize; 3],
    ) -> Result<Self> {
        let mut g = Self::same(
            op,
            batch,
            in_channels,
            out_channels,
            input,
            kernel,
            dilation,
            stride,
        )?;
        for a in 0..3 {
            let extent = dilation[a] * (kernel[a] - 1) + 1;
            if extent > input[a] {
                return Err(Error::arg(
                    op,
                    "kernel",
                    format!(
                        "kernel {kernel:?} with dilation {dilation:?} spans {extent} voxels on axis {a}, larger than the unpadded input {input:?}"
                    ),
                ));
            }
            g.output[a] = (input[a] - extent) / stride[a] + 1;
            g.pad_before[a] = 0;
        }
        Ok(g)
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.input.iter().product::<usize>()
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.output.iter().product::<usize>()
    }

    /// Number of weight elements.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel.iter().product::<usize>()
    }

    /// Multiply-adds of one forward pass, times two (the usual FLOP count).
    pub fn forward_flops(&self) -> f64 {
        2.0 * self.output_len() as f64
            * self.in_channels as f64
            * self.kernel.iter().product::<usize>() as f64
    }
}
