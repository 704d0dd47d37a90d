//! CPU code of the convolution primitives.

use super::{reference, ConvGeometry};

/// Forward convolution.
pub fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
    reference::forward(x, w, bias, g)
}

/// Gradient with respect to the input.
pub fn backward_data(gy: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    reference::backward_data(gy, w, g)
}

/// Gradient with respect to the weights.
pub fn backward_weight(x: &[f32], gy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    reference::backward_weight(x, gy, g)
}
