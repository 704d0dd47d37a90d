//! 1-D correlation along one axis with "valid" extent, and its adjoint: the separable Gaussian
//! windows of the SSIM losses are built from it.

pub mod cpu;
pub mod opencl;

/// A filter along the middle axis of a tensor viewed as `[outer, len, inner]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisFilter {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Axis length of the input.
    pub len: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
    /// The filter taps.
    pub taps: Vec<f32>,
    /// False: valid correlation, output length `len - taps + 1`. True: the adjoint of that,
    /// output length `len + taps - 1`.
    pub adjoint: bool,
}

impl AxisFilter {
    /// Output length along the filtered axis.
    pub fn out_len(&self) -> usize {
        if self.adjoint {
            self.len + self.taps.len() - 1
        } else {
            self.len + 1 - self.taps.len()
        }
    }
}

/// Normalised 1-D Gaussian taps of `size` points and standard deviation `sigma`.
pub fn gaussian_taps(size: usize, sigma: f32) -> Vec<f32> {
    let c = (size as f32 - 1.0) / 2.0;
    let w: Vec<f32> = (0..size)
        .map(|i| (-((i as f32 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}
