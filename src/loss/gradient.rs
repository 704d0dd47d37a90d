//! Gradient-difference loss: finite differences of prediction and truth along every spatial
//! axis, compared with an L1 or L2 norm, optionally in the gap only.

use super::{check_finite_by_policy, check_pair, Means};
use crate::tensor::Tensor;
use crate::Result;

/// The norm applied to the difference of the finite differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientNorm {
    /// Mean absolute difference.
    L1,
    /// Mean squared difference.
    L2,
}

fn diff(t: &Tensor, axis: usize) -> Result<Tensor> {
    let n = t.shape()[axis];
    t.narrow(axis, 1, n - 1)?.sub(&t.narrow(axis, 0, n - 1)?)
}

/// Mean over the spatial axes (2.. of NCHW/NCDHW) of the norm of `d(pred) - d(target)`.
/// With a mask, a difference counts when either of its two voxels is in the gap.
pub fn gradient_loss(
    pred: &Tensor,
    target: &Tensor,
    mask: Option<&Tensor>,
    norm: GradientNorm,
) -> Result<Tensor> {
    gradient_loss_in(pred, target, mask, norm, &Means::local())
}

/// The pairs of neighbours along `axis` with at least one voxel in the gap (`a + b - a b`).
pub(super) fn pair_mask(m: &Tensor, axis: usize) -> Result<Tensor> {
    let n = m.shape()[axis];
    let (a, b) = (m.narrow(axis, 1, n - 1)?, m.narrow(axis, 0, n - 1)?);
    Ok(a.add(&b)?.sub(&a.mul(&b)?)?.detach())
}

pub(super) fn gradient_loss_in(
    pred: &Tensor,
    target: &Tensor,
    mask: Option<&Tensor>,
    norm: GradientNorm,
    means: &Means,
) -> Result<Tensor> {
    check_pair("gradient_loss", pred, target, mask)?;
    let mut total: Option<Tensor> = None;
    let mut terms = 0;
    for axis in 2..pred.rank() {
        if pred.shape()[axis] < 2 {
            continue;
        }
        let d = diff(pred, axis)?.sub(&diff(target, axis)?)?;
        let v = match norm {
            GradientNorm::L1 => d.abs()?,
            GradientNorm::L2 => d.square()?,
        };
        let pairs = match mask {
            None => None,
            Some(m) => Some(pair_mask(m, axis)?),
        };
        let term = means.masked(&v, pairs.as_ref())?;
        total = Some(match total {
            None => term,
            Some(t) => t.add(&term)?,
        });
        terms += 1;
    }
    let total = match total {
        Some(t) => t.mul_scalar(1.0 / terms as f32)?,
        None => Tensor::zeros(&[1], pred.device())?,
    };
    check_finite_by_policy("gradient_loss", total)
}
