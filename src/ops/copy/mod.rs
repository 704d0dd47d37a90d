//! Range copies along one axis: the primitive behind concat, slice (narrow) and their
//! backward passes.

pub mod cpu;
pub mod opencl;

/// Copy `count` positions of `src` starting at `src_start` along an axis into `dst` starting
/// at `dst_start`. Both tensors are viewed as `[outer, axis_len, inner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AxisCopy {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
    /// Axis length in the source.
    pub src_len: usize,
    /// First source position copied.
    pub src_start: usize,
    /// Axis length in the destination.
    pub dst_len: usize,
    /// First destination position written.
    pub dst_start: usize,
    /// Number of positions copied.
    pub count: usize,
}
