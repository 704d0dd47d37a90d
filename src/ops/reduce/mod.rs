//! Sums over all or some axes (means are sums scaled by the tensor layer), and the
//! max-reduction (`max.rs`, a custom op).

pub mod cpu;
pub mod max;
pub mod opencl;

/// The shape of a sum over `axes` that keeps them as size-1 dimensions.
pub fn reduced_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect()
}
